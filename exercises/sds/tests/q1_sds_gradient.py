from otter.test_files import test_case

OK_FORMAT = False

name = "q1_sds_gradient"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(sds_grad):
    import torch
    from course_lib.grading import assert_close
    alphas_cumprod, t = (torch.tensor([0.64, 0.36]), torch.tensor([0, 1]))

    def cond(z_t, t):
        return z_t.clone()

    def uncond(z_t, t):
        return torch.zeros_like(z_t)
    got = sds_grad(cond, uncond, torch.ones(2, 1), t, torch.zeros(2, 1), alphas_cumprod, 2.0)
    assert_close(got, torch.tensor([[0.576], [0.768]]), 'sds_grad with ab = (0.64, 0.36), t = (0, 1), z = 1, eps = 0, eps_c(z_t) = z_t, eps_u = 0, omega = 2 (w(t) = 1 - ab_t)', atol=1e-05)
    got = sds_grad(cond, uncond, torch.ones(2, 1), t, torch.tensor([[1.0], [-1.0]]), alphas_cumprod, 1.0)
    assert_close(got, torch.tensor([[0.144], [0.512]]), 'sds_grad with ab = (0.64, 0.36), t = (0, 1), z = 1, eps = (1, -1), eps_c(z_t) = z_t, omega = 1 (subtract the noise that was added)', atol=1e-05)

@test_case(points=0, hidden=False)
def test_shape(sds_grad):
    import torch
    from course_lib.grading import assert_tensor
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 4, 8, 8, generator=g)
    got = sds_grad(lambda z_t, t: 0.5 * z_t, lambda z_t, t: torch.zeros_like(z_t), z, torch.tensor([10, 500, 900]), torch.randn_like(z), torch.linspace(0.999, 0.01, 1000), 7.5)
    assert_tensor(got, 'sds_grad of latents [3, 4, 8, 8]', (3, 4, 8, 8))

