from otter.test_files import test_case

OK_FORMAT = False

name = "q6_stop_gradient"
points = 3

@test_case(points=1, hidden=False)
def test_by_hand(mean_weight):
    import math
    import torch
    from course_lib.grading import assert_close, assert_tensor
    betas = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    weights = mean_weight(betas)
    assert_tensor(weights, 'mean_weight(betas [3])', (3,), finite=False)
    assert weights.dtype == torch.float64, f'mean_weight should return float64, got {weights.dtype}.'
    expected = 0.001 * 3 / math.log(2) * torch.tensor([1.0, 2 / 3], dtype=torch.float64)
    assert_close(weights[1:], expected, 'w_1 and w_2 for betas (0.5, 0.5, 0.5) and lam = 0.001: g^2 / (2 beta_tilde) = 1 and 2/3, T = 3', rtol=1e-06, precision_hint=True)
    assert_close(mean_weight(betas, lam=0.5)[1:], 500 * expected, 'w_1 and w_2 for lam = 0.5', rtol=1e-06)

@test_case(points=0, hidden=False)
def test_answers_have_the_right_form(HEAVIEST, NEGLIGIBLE):
    assert isinstance(HEAVIEST, int) and 1 <= HEAVIEST <= 999, f'HEAVIEST should be an int index in 1 ... 999, not {HEAVIEST!r}.'
    assert isinstance(NEGLIGIBLE, bool), f'NEGLIGIBLE should be True or False, not {NEGLIGIBLE!r}.'

