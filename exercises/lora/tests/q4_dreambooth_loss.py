from otter.test_files import test_case

OK_FORMAT = False

name = "q4_dreambooth_loss"
points = 3

@test_case(points=None, hidden=False)
def test_by_hand(dreambooth_loss):
    import torch
    from course_lib.grading import assert_close
    calls = []

    def zero_model(z_t, t, c):
        calls.append(len(z_t))
        return torch.zeros_like(z_t)
    z_s, z_p = (torch.ones(2, 4, 2, 2), -torch.ones(3, 4, 2, 2))
    c_s, c_p = (torch.zeros(2, 5, 8), torch.zeros(3, 5, 8))
    alphas_cumprod = torch.linspace(0.99, 0.01, 10)
    replay = torch.Generator().manual_seed(5)
    torch.randint(0, 10, (2,), generator=replay)
    eps_s = torch.randn(2, 4, 2, 2, generator=replay)
    torch.randint(0, 10, (3,), generator=replay)
    eps_p = torch.randn(3, 4, 2, 2, generator=replay)
    got = dreambooth_loss(zero_model, (z_s, c_s, z_p, c_p), alphas_cumprod, 0.5, 5)
    assert_close(got, (eps_s ** 2).mean() + 0.5 * (eps_p ** 2).mean(), "dreambooth_loss with a model that predicts zeros, prior_weight 0.5, 2 subject and 3 prior rows (the subject's mean of eps^2 plus 0.5 times the prior's)")
    assert calls == [2, 3], f"dreambooth_loss called the model on batches of {calls}; expected the subject's 2 rows, then the prior's 3."
    calls.clear()
    got = dreambooth_loss(zero_model, (z_s, c_s, z_p, c_p), alphas_cumprod, 0.0, 5)
    assert_close(got, (eps_s ** 2).mean(), "dreambooth_loss with prior_weight 0 (the subject's term alone)")
    assert calls == [2], f"with prior_weight 0 the model should run once, on the subject's rows; it ran on {calls}."

