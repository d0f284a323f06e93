from otter.test_files import test_case

OK_FORMAT = False

name = "q1_cosine"
points = 2

@test_case(points=None, hidden=False)
def test_shape_and_dtype(cosine_betas):
    import torch
    from course_lib.grading import assert_tensor
    betas = cosine_betas(10)
    assert_tensor(betas, 'cosine_betas(10)', (10,))
    assert betas.dtype == torch.float64, f'cosine_betas should return float64, got {betas.dtype}.'

@test_case(points=None, hidden=False)
def test_betas_are_valid(cosine_betas):
    betas = cosine_betas(50)
    assert bool(((betas > 0) & (betas <= 0.999)).all()), 'every beta must lie in (0, 0.999].'
    assert bool((betas[1:] >= betas[:-1]).all()), 'cosine betas should not decrease with t.'

