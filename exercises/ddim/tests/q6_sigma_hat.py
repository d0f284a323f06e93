from otter.test_files import test_case

OK_FORMAT = False

name = "q6_sigma_hat"
points = 3

@test_case(points=None, hidden=False)
def test_by_hand(eta_of_sigma_hat, sigma_hat_grain):
    import math
    import torch
    from course_lib.grading import assert_close
    f64 = lambda *v: torch.tensor(v, dtype=torch.float64)
    assert_close(eta_of_sigma_hat(f64(0.25), f64(0.5)), f64(math.sqrt(1.5)), 'the eta of sigma_hat for alpha_bar_t = 0.25, alpha_bar_prev = 0.5 (sigma_hat^2 = 0.5, sigma(1)^2 = 1/3)', rtol=1e-09, atol=1e-12, precision_hint=True)
    grain = sigma_hat_grain(f64(0.9, 0.5, 0.25), [2, 0])
    assert isinstance(grain, float), f'sigma_hat_grain should return a Python float, not {type(grain).__name__}.'
    expected = math.sqrt((1 - 0.25 / 0.9) / 0.1)
    assert abs(grain - expected) < 1e-09 * expected, f'sigma_hat_grain(alpha_bar = (0.9, 0.5, 0.25), tau = [2, 0]) = {grain:.6g}, expected {expected:.6g}: sqrt(1 - 0.25 / 0.9) against sqrt(1 - 0.9).'
    grain = sigma_hat_grain(f64(0.9, 0.5, 0.25), [2, 1, 0])
    expected = math.sqrt((1 - 0.5 / 0.9) / (1 - 0.9))
    assert abs(grain - expected) < 1e-09 * expected, f'sigma_hat_grain(alpha_bar = (0.9, 0.5, 0.25), tau = [2, 1, 0]) = {grain:.6g}, expected {expected:.6g}: the last noisy step goes from index 1 to 0, sqrt(1 - 0.5 / 0.9) against sqrt(1 - 0.9).'

@test_case(points=0, hidden=False)
def test_grain_has_the_right_form(GRAIN):
    assert isinstance(GRAIN, dict) and sorted(GRAIN) == ['leading', 'quadratic', 'trailing'], f'GRAIN should have the keys "leading", "trailing", "quadratic"; it is {GRAIN!r:.80}.'
    assert all((isinstance(v, float) and v > 0 for v in GRAIN.values())), f"GRAIN's values should be positive floats: {GRAIN}."

