from otter.test_files import test_case

OK_FORMAT = False

name = "q1_guided_eps"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(guided_eps):
    import torch
    from course_lib.grading import assert_close
    f64 = lambda *v: torch.tensor(v, dtype=torch.float64)
    eps, grad = (torch.ones(2, 3), torch.full((2, 3), 2.0))
    assert_close(guided_eps(eps, grad, f64(0.75, 0.36), 3.0), torch.tensor([[-2.0] * 3, [-3.8] * 3]), 'eps_hat for eps = 1, grad = 2, s = 3 and alpha_bar_t = 0.75 (row 0: 1 - 3 * 0.5 * 2 = -2) and 0.36 (row 1: 1 - 3 * 0.8 * 2 = -3.8)', rtol=1e-06, atol=1e-06)
    out = guided_eps(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 100.0), f64(0.9999), 1.0)
    assert_close(out, torch.full((1, 1, 2, 2), -1.0), "eps_hat for eps = 0, grad = 100, s = 1 at alpha_bar_t = 0.9999 (the linear schedule's t = 0: sqrt(1 - 0.9999) = 0.01) on an image [1, 1, 2, 2]", rtol=1e-06, atol=1e-07, precision_hint=True)

@test_case(points=0, hidden=False)
def test_shape_and_dtype(guided_eps):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.schedules import get_schedule
    ab = get_schedule('linear', 1000).alpha_bar
    eps = guided_eps(torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8), ab[torch.tensor([0, 10, 500, 999])], 2.0)
    assert_tensor(eps, 'guided_eps on images [4, 1, 8, 8]', (4, 1, 8, 8))
    assert eps.dtype == torch.float32, f"guided_eps should return eps's dtype (float32), got {eps.dtype}."

