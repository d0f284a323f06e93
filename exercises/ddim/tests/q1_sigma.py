from otter.test_files import test_case

OK_FORMAT = False

name = "q1_sigma"
points = 1

@test_case(points=None, hidden=False)
def test_by_hand(ddim_sigma):
    import math
    import torch
    from course_lib.grading import assert_close
    ab_t, ab_prev = (torch.tensor([0.25, 0.5], dtype=torch.float64), torch.tensor([0.5, 1.0], dtype=torch.float64))
    assert_close(ddim_sigma(ab_t, ab_prev, 1.0), torch.tensor([1 / math.sqrt(3), 0.0], dtype=torch.float64), 'sigma(eta = 1) for the steps 0.25 -> 0.5 (sigma^2 = (0.5 / 0.75) (1 - 0.5) = 1/3) and 0.5 -> 1 (into the data: no noise)', rtol=1e-09, atol=1e-12, precision_hint=True)
    assert_close(ddim_sigma(ab_t, ab_prev, 0.5), torch.tensor([0.5 / math.sqrt(3), 0.0], dtype=torch.float64), 'sigma(eta = 0.5) for the same two steps', rtol=1e-09, atol=1e-12, precision_hint=True)
    sigma2 = (1 - 0.9) / (1 - 0.3) * (1 - 0.3 / 0.9)
    assert_close(ddim_sigma(torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.9], dtype=torch.float64), 1.0), torch.tensor([math.sqrt(sigma2)], dtype=torch.float64), 'sigma(eta = 1) for the step 0.3 -> 0.9: sigma^2 = (1 - 0.9) / (1 - 0.3) * (1 - 0.3 / 0.9) = 2/21', rtol=1e-09, atol=1e-12, precision_hint=True)

@test_case(points=0, hidden=False)
def test_shape_and_dtype(ddim_sigma):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.schedules import get_schedule
    ab = get_schedule('linear', 1000).alpha_bar
    sigma = ddim_sigma(ab[1:], ab[:-1], 0.5)
    assert_tensor(sigma, 'ddim_sigma(alpha_bar[1:], alpha_bar[:-1], 0.5)', (999,))
    assert sigma.dtype == torch.float64, f'ddim_sigma should return float64, got {sigma.dtype}.'

@test_case(points=0, hidden=False)
def test_fits_in_the_noise_budget(ddim_sigma):
    import torch
    from course_lib.schedules import get_schedule
    ab = get_schedule('linear', 1000).alpha_bar
    taus = list(range(900, -1, -100))
    for name, ab_t, ab_prev in [('consecutive steps', ab[1:], ab[:-1]), ('the 10-step tau 900, 800, ..., 0', ab[taus[:-1]], ab[taus[1:]])]:
        budget = 1 - ab_prev
        over = ddim_sigma(ab_t, ab_prev, 1.0) ** 2 > budget * (1 + 1e-09) + 1e-15
        assert not bool(over.any()), f'on {name}, sigma_t(1)^2 exceeds 1 - alpha_bar_prev at {int(over.sum())} steps: the square root sqrt(1 - alpha_bar_prev - sigma_t^2) of Eq. 12 would have a negative argument. Check which alpha_bar goes where in Eq. 16.'

