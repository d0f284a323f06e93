from otter.test_files import test_case

OK_FORMAT = False

name = "q2_merge"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(merged_weight):
    import torch
    from course_lib.grading import assert_close
    eye = torch.eye(2)
    assert_close(merged_weight(eye, eye, torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 1.0), torch.tensor([[1.5, 0.0], [0.0, 1.0]]), 'merged_weight with W = I, A = I (rank 2), B = [[1, 0], [0, 0]], alpha = 1 (scaled by alpha / r = 1/2)')
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    got = merged_weight(w, torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0], [-1.0]]), 2.0)
    assert_close(got, torch.tensor([[3.0, 4.0, 6.0], [-2.0, -3.0, -6.0]]), 'merged_weight with W [2, 3], A = [[1, 2, 3]] (rank 1), B = [[1], [-1]], alpha = 2')
    assert_close(w, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 'the weight after merged_weight (changed in place)')

