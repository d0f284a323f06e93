from otter.test_files import test_case

OK_FORMAT = False

name = "q5_reverse_step"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(p_sample_step):
    import math
    import torch
    from course_lib.grading import assert_close
    one = torch.ones(1, 2)
    betas = torch.tensor([0.5, 0.5], dtype=torch.float64)
    expected = math.sqrt(2) * (1 - 1 / math.sqrt(3)) + 1 / math.sqrt(3)
    assert_close(p_sample_step(one, one, 1, betas, one), torch.full((1, 2), expected), 'x_0 from x_1 = 1, eps = 1, z = 1 with betas (0.5, 0.5): sqrt(2) (1 - 1/sqrt(3)) + 1/sqrt(3)')
    assert_close(p_sample_step(one, one, 0, betas, one), torch.full((1, 2), math.sqrt(2) - 1), 'the last step (t = 0) with x = 1, eps = 1: sqrt(2) (1 - 0.5 / sqrt(0.5)) and no noise')

@test_case(points=0, hidden=False)
def test_last_step_adds_no_noise(p_sample_step):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    from course_lib.schedules import get_schedule
    g = torch.Generator().manual_seed(0)
    eps, xt = (torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g))
    betas = get_schedule('linear').betas
    a = p_sample_step(eps, xt, 0, betas, torch.randn(2, 1, 4, 4, generator=g))
    b = p_sample_step(eps, xt, 0, betas, torch.randn(2, 1, 4, 4, generator=g))
    assert_tensor(a, 'p_sample_step(eps, xt, 0, betas, noise)', (2, 1, 4, 4))
    assert_close(a, b, 'x_{-1} for two different noises at t = 0 (the last step adds no noise)')

@test_case(points=0, hidden=False)
def test_uses_the_noise(p_sample_step):
    import torch
    from course_lib.schedules import get_schedule
    x = torch.zeros(3, 5)
    betas = get_schedule('linear').betas
    a = p_sample_step(x, x, 500, betas, torch.zeros(3, 5))
    b = p_sample_step(x, x, 500, betas, torch.ones(3, 5))
    assert not torch.allclose(a, b), 'at t = 500 the step must add sigma_t * noise.'

