from otter.test_files import test_case

OK_FORMAT = False

name = "q7_x0_and_score"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(predict_x0, score_from_eps):
    import math
    import torch
    from course_lib.grading import assert_close, assert_tensor
    alpha_bar, t, one = (torch.tensor([0.25], dtype=torch.float64), torch.tensor([0, 0]), torch.ones(2, 3))
    x0_hat, score = (predict_x0(one, t, one, alpha_bar), score_from_eps(one, t, alpha_bar))
    assert_tensor(x0_hat, 'predict_x0(xt [2, 3], ...)', (2, 3))
    assert_tensor(score, 'score_from_eps(eps [2, 3], ...)', (2, 3))
    assert_close(x0_hat, torch.full((2, 3), 2 - math.sqrt(3)), 'x0_hat for alpha_bar = 0.25, x_t = 1, eps = 1: (1 - sqrt(0.75)) / 0.5', rtol=1e-05)
    assert_close(score, torch.full((2, 3), -2 / math.sqrt(3)), 'the score for alpha_bar = 0.25 and eps = 1', rtol=1e-05)

