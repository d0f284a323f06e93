from otter.test_files import test_case

OK_FORMAT = False

name = "q3_negative_elbo"
points = 2

@test_case(points=None, hidden=False)
def test_shapes_and_the_prior_case(negative_elbo):
    import math
    import torch
    from course_lib.grading import assert_close, assert_tensor
    x = torch.rand(3, 1, 4, 4) * 2 - 1
    decode = lambda z: (x.clone(), torch.zeros_like(x))
    recon, kl = negative_elbo(x, torch.zeros(3, 2), torch.zeros(3, 2), decode, torch.randn(3, 2))
    assert_tensor(recon, 'recon', (3,))
    assert_tensor(kl, 'kl', (3,))
    assert_close(kl, torch.zeros(3), 'kl when q(z|x) is the prior N(0, I)', atol=1e-06)
    assert_close(recon, torch.full((3,), 16 * 0.5 * math.log(2 * math.pi)), 'recon for a perfect mean and unit variance on 16 pixels (16 * log(2 pi) / 2)', rtol=1e-05)

@test_case(points=None, hidden=False)
def test_by_hand(negative_elbo):
    import math
    import torch
    from course_lib.grading import assert_close
    x = torch.zeros(1, 1, 1, 2)
    decode = lambda z: (z.view(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))
    mean, logvar, noise = (torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]]), torch.tensor([[0.0, 1.0]]))
    recon, kl = negative_elbo(x, mean, logvar, decode, noise)
    assert_close(recon, torch.tensor([math.log(2 * math.pi) + 0.5 * (1.0 + 4.0)]), 'recon with z = (1, 2)')
    assert_close(kl, torch.tensor([0.5 + 0.5 * (4.0 - 1.0 - math.log(4.0))]), 'kl for N((1, 0), diag(1, 4))')

