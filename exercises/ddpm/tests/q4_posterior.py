from otter.test_files import test_case

OK_FORMAT = False

name = "q4_posterior"
points = 2

@test_case(points=None, hidden=False)
def test_first_step_is_exact(q_posterior_mean_variance):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    from course_lib.schedules import get_schedule
    g = torch.Generator().manual_seed(0)
    x0, xt = (torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g))
    mean, variance = q_posterior_mean_variance(x0, xt, torch.zeros(4, dtype=torch.long), get_schedule('linear').betas)
    assert_close(mean, x0, 'the posterior mean at t = 0 (x_{-1} is x0 itself)', atol=1e-05, precision_hint=True)
    assert_tensor(variance, 'the posterior variance')
    assert_close(torch.broadcast_to(variance, x0.shape), torch.zeros(4, 3), 'the posterior variance at t = 0', atol=1e-08)

@test_case(points=None, hidden=False)
def test_by_hand(q_posterior_mean_variance):
    import math
    import torch
    from course_lib.grading import assert_close
    x0, xt = (torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    betas = torch.tensor([0.5, 0.5], dtype=torch.float64)
    mean, variance = q_posterior_mean_variance(x0, xt, torch.tensor([1]), betas)
    c = math.sqrt(2) / 3
    assert_close(mean, torch.tensor([[c, c]]), 'the posterior mean at t = 1 for betas (0.5, 0.5)', rtol=1e-05)
    assert_close(torch.broadcast_to(variance, (1, 2)), torch.full((1, 2), 1 / 3), 'the posterior variance at t = 1 for betas (0.5, 0.5): (0.5 / 0.75) * 0.5', rtol=1e-05)

@test_case(points=0, hidden=False)
def test_image_shapes(q_posterior_mean_variance):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.schedules import get_schedule
    x = torch.zeros(2, 1, 8, 8)
    mean, variance = q_posterior_mean_variance(x, x, torch.tensor([5, 900]), get_schedule('cosine').betas)
    assert_tensor(mean, 'the posterior mean', (2, 1, 8, 8))
    assert_tensor(variance, 'the posterior variance', (2, 1, 1, 1))

