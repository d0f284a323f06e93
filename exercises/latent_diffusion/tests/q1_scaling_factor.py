from otter.test_files import test_case

OK_FORMAT = False

name = "q1_scaling_factor"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(scaling_factor):
    import torch
    signs = (torch.arange(8 * 4 * 8 * 8) % 2 * 2 - 1).float().view(8, 4, 8, 8)
    images = torch.zeros(8, 3, 32, 32)
    got = scaling_factor(lambda x: (2 * signs, torch.zeros_like(signs)), images, 0)
    assert isinstance(got, float), f'scaling_factor should return a Python float, not {type(got).__name__}.'
    expected = 1 / (2 * signs).std().item()
    assert abs(got - expected) < 1e-05, f'scaling_factor for means of +2 and -2 (half each) and std 0: {got:.5f}, expected {expected:.5f} (the latents are the means, of standard deviation 2).'
    got = scaling_factor(lambda x: (signs, torch.full_like(signs, 3.0)), images, 0)
    assert abs(got - 10 ** (-0.5)) < 0.015, f'scaling_factor for means of +1 and -1 and std 3 everywhere: {got:.5f}, expected about 1 / sqrt(1 + 9) = 0.316 (2048 latents mean + 3 eps): the latents are sampled from q(z | x), not just its means.'

