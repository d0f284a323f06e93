from otter.test_files import test_case

OK_FORMAT = False

name = "q4_invert_step"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(ddim_invert_step):
    import math
    import torch
    from course_lib.grading import assert_close
    alpha_bar, one = (torch.tensor([0.5, 0.25], dtype=torch.float64), torch.ones(2, 3))
    assert_close(ddim_invert_step(one, one, -1, 0, alpha_bar), torch.full((2, 3), math.sqrt(2)), 'the first step, from the data x = 1 (t = -1, alpha_bar = 1) to index 0 with eps = 1, for alpha_bar = (0.5, 0.25): sqrt(0.5) x + sqrt(0.5) eps')
    assert_close(ddim_invert_step(one, one, 0, 1, alpha_bar), torch.full((2, 3), 0.5 * (math.sqrt(2) - 1) + math.sqrt(0.75)), 'the step from index 0 to 1 with x = 1, eps = 1, for alpha_bar = (0.5, 0.25): x0_hat = sqrt(2) - 1, then 0.5 x0_hat + sqrt(0.75) eps')
    alpha_bar = torch.tensor([0.64, 0.5, 0.25], dtype=torch.float64)
    x, eps = (torch.full((2, 3), 2.0), torch.full((2, 3), -1.0))
    x0_hat = (2 - math.sqrt(1 - 0.64) * -1) / math.sqrt(0.64)
    expected = math.sqrt(0.25) * x0_hat + math.sqrt(1 - 0.25) * -1
    assert_close(ddim_invert_step(eps, x, 0, 2, alpha_bar), torch.full((2, 3), expected), 'the step from index 0 to 2 (it skips index 1) with x = 2, eps = -1, for alpha_bar = (0.64, 0.5, 0.25): x0_hat = (2 + sqrt(0.36)) / 0.8 = 3.25, then sqrt(0.25) x0_hat + sqrt(0.75) eps')

@test_case(points=0, hidden=False)
def test_shape_and_dtype(ddim_invert_step):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.schedules import get_schedule
    x = torch.zeros(2, 1, 8, 8)
    out = ddim_invert_step(x, x, 100, 200, get_schedule('linear', 1000).alpha_bar)
    assert_tensor(out, 'ddim_invert_step on images [2, 1, 8, 8]', (2, 1, 8, 8))
    assert out.dtype == torch.float32, f"ddim_invert_step should keep x's dtype (float32), got {out.dtype}."

