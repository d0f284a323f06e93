from otter.test_files import test_case

OK_FORMAT = False

name = "q1_cosine"
points = 2

@test_case(points=0, hidden=False)
def test_shape_and_dtype(cosine_betas):
    import torch
    from course_lib.grading import assert_tensor
    betas = cosine_betas(10)
    assert_tensor(betas, 'cosine_betas(10)', (10,))
    assert betas.dtype == torch.float64, f'cosine_betas should return float64, got {betas.dtype}.'

@test_case(points=None, hidden=False)
def test_by_hand(cosine_betas):
    import torch
    from course_lib.grading import assert_close
    assert_close(cosine_betas(3, s=0.0), torch.tensor([0.25, 2 / 3, 0.999], dtype=torch.float64), 'cosine_betas(3, s=0): f = 1, 3/4, 1/4, 0 gives betas 1/4, 2/3 and 1 clipped to 0.999', rtol=1e-09, atol=1e-12, precision_hint=True)
    assert_close(cosine_betas(1000)[:1], torch.tensor([4.128422482196914e-05], dtype=torch.float64), 'cosine_betas(1000)[0] = 1 - f(1/1000) / f(0) with s = 0.008', rtol=1e-06, atol=0.0, precision_hint=True)

@test_case(points=0, hidden=False)
def test_betas_are_valid(cosine_betas):
    import torch
    betas = cosine_betas(50)
    top = float(torch.tensor(0.999, dtype=torch.float32))
    assert not bool((betas.double() == top).any()), f"the largest beta is {top:.10f}, float32's nearest value to 0.999: compute the schedule in float64 from the start (torch.arange(..., dtype=torch.float64)), not in float32 converted at the end."
    assert bool(((betas > 0) & (betas <= 0.999)).all()), 'every beta must lie in (0, 0.999].'
    assert bool((betas[1:] >= betas[:-1]).all()), 'cosine betas should not decrease with t.'

