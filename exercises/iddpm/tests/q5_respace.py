from otter.test_files import test_case

OK_FORMAT = False

name = "q5_respace"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(respace_betas):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    alpha_bar = torch.tensor([0.9, 0.6, 0.3, 0.1], dtype=torch.float64)
    betas = respace_betas(alpha_bar, [0, 2, 3])
    assert_tensor(betas, 'respace_betas(alpha_bar [4], [0, 2, 3])', (3,))
    assert betas.dtype == torch.float64, f'respace_betas should return float64, got {betas.dtype}.'
    assert_close(betas, torch.tensor([0.1, 2 / 3, 2 / 3], dtype=torch.float64), 'respace_betas((0.9, 0.6, 0.3, 0.1), [0, 2, 3]): 1 - 0.9, 1 - 0.3 / 0.9, 1 - 0.1 / 0.3', rtol=1e-09, atol=1e-12, precision_hint=True)
    assert_close(respace_betas(alpha_bar, [1, 3]), torch.tensor([0.4, 5 / 6], dtype=torch.float64), 'respace_betas((0.9, 0.6, 0.3, 0.1), [1, 3]): 1 - 0.6 / 1, 1 - 0.1 / 0.6', rtol=1e-09, atol=1e-12, precision_hint=True)

