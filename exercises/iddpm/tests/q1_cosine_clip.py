from otter.test_files import test_case

OK_FORMAT = False

name = "q1_cosine_clip"
points = 2

@test_case(points=0, hidden=False)
def test_shape_and_dtype(cosine_alpha_bar):
    import torch
    from course_lib.grading import assert_tensor
    alpha_bar = cosine_alpha_bar(10)
    assert_tensor(alpha_bar, 'cosine_alpha_bar(10)', (10,))
    assert alpha_bar.dtype == torch.float64, f'cosine_alpha_bar should return float64, got {alpha_bar.dtype}.'

@test_case(points=None, hidden=False)
def test_by_hand(cosine_alpha_bar):
    import torch
    from course_lib.grading import assert_close
    alpha_bar = cosine_alpha_bar(3, s=0.0)
    assert_close(alpha_bar[:2], torch.tensor([0.75, 0.25], dtype=torch.float64), 'cosine_alpha_bar(3, s=0)[:2]: alpha_bar = f(t) / f(0) = 3/4, 1/4 before the clip', rtol=1e-09, atol=1e-12, precision_hint=True)
    assert_close(alpha_bar[2:], torch.tensor([0.25 * 0.001], dtype=torch.float64), 'cosine_alpha_bar(3, s=0)[2]: the last beta, 1, is clipped to 0.999, so alpha_bar = 1/4 * 0.001 (the formula says 0)', rtol=1e-09, atol=1e-12)
    assert_close(cosine_alpha_bar(3, s=0.0, max_beta=1.0), torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64), 'cosine_alpha_bar(3, s=0, max_beta=1): no clip, alpha_bar = f(t) / f(0) = 3/4, 1/4, 0', rtol=1e-09, atol=1e-12, precision_hint=True)
    expected = torch.tensor([0.75, 0.75 * (1 - 0.5), 0.75 * (1 - 0.5) * (1 - 0.5)], dtype=torch.float64)
    assert_close(cosine_alpha_bar(3, s=0.0, max_beta=0.5), expected, 'cosine_alpha_bar(3, s=0, max_beta=0.5): the betas 1/4, 2/3, 1 are clipped to 1/4, 1/2, 1/2 (two of them, not only the last), so alpha_bar = 3/4, 3/8, 3/16', rtol=1e-09, atol=1e-12, precision_hint=True)

@test_case(points=None, hidden=False)
def test_formula_until_the_clip(cosine_alpha_bar):
    import math
    import torch
    from course_lib.grading import assert_close
    T, s = (1000, 0.008)
    f = lambda u: torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    formula = f(torch.arange(1, T + 1, dtype=torch.float64) / T) / f(torch.zeros((), dtype=torch.float64))
    alpha_bar = cosine_alpha_bar(T)
    assert_close(alpha_bar[:-1], formula[:-1], 'cosine_alpha_bar(1000)[:999] against f(t) / f(0): only the last beta is clipped', rtol=1e-09, atol=1e-15, precision_hint=True)
    assert_close(alpha_bar[-1:], 0.001 * formula[-2:-1], 'cosine_alpha_bar(1000)[999]: the clipped last step keeps 1 - 0.999 = 0.001 of alpha_bar[998] (the formula says 0)', rtol=1e-09, atol=0.0)

@test_case(points=0, hidden=False)
def test_gain_has_the_right_form(LAST_STEP_GAIN):
    assert isinstance(LAST_STEP_GAIN, float) and LAST_STEP_GAIN > 0, f'LAST_STEP_GAIN should be a positive Python float, not {LAST_STEP_GAIN!r}.'

