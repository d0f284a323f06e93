from otter.test_files import test_case

OK_FORMAT = False

name = "q5_reverse_step"
points = 3

@test_case(points=None, hidden=False)
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

@test_case(points=None, hidden=False)
def test_uses_the_noise(p_sample_step):
    import torch
    from course_lib.schedules import get_schedule
    x = torch.zeros(3, 5)
    betas = get_schedule('linear').betas
    a = p_sample_step(x, x, 500, betas, torch.zeros(3, 5))
    b = p_sample_step(x, x, 500, betas, torch.ones(3, 5))
    assert not torch.allclose(a, b), 'at t = 500 the step must add sigma_t * noise.'

