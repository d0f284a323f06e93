from otter.test_files import test_case

OK_FORMAT = False

name = "q6_l_simple"
points = 2

@test_case(points=None, hidden=False)
def test_zero_model(l_simple):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    from course_lib.schedules import get_schedule
    g = torch.Generator().manual_seed(0)
    x0, noise = (torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g))
    loss = l_simple(lambda xt, t: torch.zeros_like(xt), x0, torch.tensor([0, 5, 50, 500]), noise, get_schedule('linear').alpha_bar)
    assert_tensor(loss, 'l_simple(...)', ())
    assert_close(loss, (noise ** 2).mean(), 'the loss of a model that always predicts 0', rtol=1e-05)

