from otter.test_files import test_case

OK_FORMAT = False

name = "q2_learned_variance"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(learned_log_variance):
    import math
    import torch
    from course_lib.grading import assert_close
    betas = torch.tensor([0.5, 0.5], dtype=torch.float64)
    out = learned_log_variance(torch.tensor([[1.0, -1.0, 0.0]]), torch.tensor([1]), betas)
    expected = torch.tensor([[math.log(1 / 2), math.log(1 / 3), 0.5 * (math.log(1 / 2) + math.log(1 / 3))]])
    assert_close(out, expected, 'log Sigma at t = 1 for betas (0.5, 0.5) and v = (1, -1, 0): log beta_1 = log 1/2, log beta_tilde_1 = log 1/3, and their average', rtol=1e-05, atol=1e-06)
    betas = torch.tensor([0.5, 0.2, 0.25], dtype=torch.float64)
    beta_tilde_1, beta_tilde_2 = ((1 - 0.5) / (1 - 0.4) * 0.2, (1 - 0.4) / (1 - 0.3) * 0.25)
    out = learned_log_variance(torch.tensor([[1.0, -1.0], [1.0, -1.0]]), torch.tensor([2, 1]), betas)
    expected = torch.tensor([[math.log(0.25), math.log(beta_tilde_2)], [math.log(0.2), math.log(beta_tilde_1)]])
    assert_close(out, expected, 'log Sigma at t = 2 (first row) and t = 1 (second row) for betas (0.5, 0.2, 0.25) and v = (1, -1): log beta_t and log beta_tilde_t, with alpha_bar = (0.5, 0.4, 0.3), beta_tilde_2 = (0.6 / 0.7) 0.25 = 3/14 and beta_tilde_1 = (0.5 / 0.6) 0.2 = 1/6', rtol=1e-05, atol=1e-06)

@test_case(points=None, hidden=False)
def test_first_index(learned_log_variance):
    import math
    import torch
    from course_lib.grading import assert_close
    betas = torch.tensor([0.5, 0.5], dtype=torch.float64)
    out = learned_log_variance(torch.tensor([[-1.0, 1.0]]), torch.tensor([0]), betas)
    assert_close(out, torch.tensor([[math.log(1 / 3), math.log(1 / 2)]]), 'log Sigma at t = 0 for betas (0.5, 0.5) and v = (-1, 1): log beta_tilde_1 = log 1/3 stands in for log beta_tilde_0 = -inf, and log beta_0 = log 1/2', rtol=1e-05, atol=1e-06)

@test_case(points=0, hidden=False)
def test_shape_and_dtype(learned_log_variance):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.schedules import get_schedule
    out = learned_log_variance(torch.zeros(2, 1, 4, 4), torch.tensor([3, 900]), get_schedule('cosine').betas)
    assert_tensor(out, 'learned_log_variance(v [2, 1, 4, 4], ...)', (2, 1, 4, 4))
    assert out.dtype == torch.float32, f"learned_log_variance should keep v's dtype (float32), got {out.dtype}."

