from otter.test_files import test_case

OK_FORMAT = False

name = "q6_l_simple"
points = 1

@test_case(points=None, hidden=False)
def test_by_hand(l_simple):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    alpha_bar = torch.tensor([1.0, 0.25, 0.0], dtype=torch.float64)
    x0, noise, t = (torch.full((3, 4), 2.0), torch.ones(3, 4), torch.tensor([0, 1, 2]))
    loss = l_simple(lambda xt, t_: xt, x0, t, noise, alpha_bar)
    assert_tensor(loss, 'l_simple(...)', ())
    assert_close(loss, torch.tensor(7 / 12), 'the loss of model(x_t, t) = x_t: mean of (1, 0.75, 0) over the rows', rtol=1e-05)
    g = torch.Generator().manual_seed(0)
    x0, noise = (torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g))
    from course_lib.schedules import get_schedule
    loss = l_simple(lambda xt, t_: torch.zeros_like(xt), x0, torch.tensor([0, 5, 50, 500]), noise, get_schedule('linear').alpha_bar)
    assert_close(loss, (noise ** 2).mean(), 'the loss of a model that always predicts 0', rtol=1e-05)

