"""Variational score distillation (course_lib.sds.vsd_gradient, particles_eps): identities with exact models.

One particle makes VSD exactly SDS; particles distributed as the model's data make its gradient zero; the exact
particle model agrees with the noised Gaussian mixture of chapter 5; the extra term is a repulsion between particles;
on a Gaussian, VSD's particles spread like the data where SDS's collapse; bad input is refused."""

from __future__ import annotations

import pytest
import torch

from course_lib.mixture import NoisedGaussianMixture
from course_lib.schedules import get_schedule
from course_lib.sds import particles_eps, sds_gradient, sds_surrogate, sds_weight, vsd_gradient

SCHEDULE = get_schedule("linear", 1000)
AB = SCHEDULE.alpha_bar.double()
T = torch.tensor([20, 150, 400, 700, 980])


def target_eps(means: torch.Tensor, std: float):
    """The exact eps-model of an equal-weight Gaussian mixture, unconditional (the null label)."""
    mixture = NoisedGaussianMixture(means, std, SCHEDULE)
    return lambda z_t, t: mixture.eps(z_t, t, torch.full((len(z_t),), len(means)))


def test_one_particle_makes_vsd_exactly_sds():
    # The noised distribution of a single particle x is q(z_t | x) itself, so eps_phi(z_t) = eps for every t.
    z, noise = torch.randn(1, 2, dtype=torch.float64).expand(5, 2), torch.randn(5, 2, dtype=torch.float64)
    target = target_eps(torch.tensor([[1.0, 0.0], [-1.0, 0.5]]), 0.3)
    for row in range(5):  # each row is one particle with its own t
        zi, ti, ni = z[row : row + 1], T[row : row + 1], noise[row : row + 1]
        vsd = vsd_gradient(target, particles_eps(zi, AB), zi, AB, t=ti, noise=ni)
        torch.testing.assert_close(vsd, sds_gradient(target, zi, AB, t=ti, noise=ni), rtol=1e-9, atol=1e-9)


def test_particles_distributed_as_the_data_get_zero_gradient():
    # Data = the particles themselves (a mixture of zero-width components): eps_phi = eps_pretrained everywhere.
    particles = torch.randn(7, 2, dtype=torch.float64)
    z, t = particles[torch.tensor([0, 3, 6, 2, 5])], T
    noise = 3 * torch.randn(5, 2, dtype=torch.float64)  # far from the particles too
    g = vsd_gradient(target_eps(particles, 0.0), particles_eps(particles, AB), z, AB, t=t, noise=noise)
    torch.testing.assert_close(g, torch.zeros_like(g), rtol=0, atol=1e-9)
    # ... while SDS still pushes every particle (towards the mode of the noised data)
    assert sds_gradient(target_eps(particles, 0.0), z, AB, t=t, noise=noise).abs().max() > 0.01


def test_particles_eps_agrees_with_the_noised_mixture_and_takes_any_shape():
    particles, z_t = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(particles_eps(particles, AB)(z_t, T), target_eps(particles, 0.0)(z_t, T))
    images = torch.randn(3, 2, 4, 4, dtype=torch.float64)  # particles of any shape: flattened inside
    flat = particles_eps(images.flatten(1), AB)(torch.ones(2, 32, dtype=torch.float64), T[:2])
    assert torch.allclose(
        particles_eps(images, AB)(torch.ones(2, 2, 4, 4, dtype=torch.float64), T[:2]).flatten(1), flat
    )


def test_the_extra_term_pushes_a_particle_away_from_the_particles_posterior_mean():
    # eps_phi - eps = sqrt(ab) (x_i - x_hat) / sigma with x_hat = sum_j p(j | z_t) x_j, sigma = sqrt(1 - ab):
    # VSD = SDS - w(t) sqrt(ab) (x_i - x_hat) / sigma
    particles = torch.tensor([[0.0, 0.0], [0.3, 0.0]], dtype=torch.float64)
    target = target_eps(torch.tensor([[0.0, 0.0]]), 0.5)
    t, noise = torch.tensor([300, 300]), torch.randn(2, 2, dtype=torch.float64)
    ab = AB[t][:, None]
    z_t = ab.sqrt() * particles + (1 - ab).sqrt() * noise
    weights = torch.softmax(
        -((z_t[:, None] - ab.sqrt()[:, :, None] * particles[None]) ** 2).sum(-1) / (2 * (1 - ab)), dim=1
    )
    x_hat = weights @ particles
    difference = vsd_gradient(target, particles_eps(particles, AB), particles, AB, t=t, noise=noise) - sds_gradient(
        target, particles, AB, t=t, noise=noise
    )
    torch.testing.assert_close(difference, -sds_weight(ab) * ab.sqrt() * (particles - x_hat) / (1 - ab).sqrt())
    assert (difference[:, 0] * (particles[:, 0] - x_hat[:, 0]) < 0).all()  # descent moves them apart


def run(kind: str, target, n: int = 64, steps: int = 1500) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=generator).requires_grad_()
    opt = torch.optim.Adam([x], lr=0.02)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
    for _ in range(steps):
        if kind == "sds":
            g = sds_gradient(target, x, AB.float(), generator=generator)
        else:
            g = vsd_gradient(target, particles_eps(x, AB), x, AB.float(), generator=generator)
        opt.zero_grad()
        sds_surrogate(x, g).backward()
        opt.step()
        decay.step()
    return x.detach()


def test_vsd_particles_spread_like_the_data_where_sds_collapses():
    mu, s = torch.tensor([[1.0, -0.5]]), 0.4
    sds, vsd = run("sds", target_eps(mu, s)), run("vsd", target_eps(mu, s))
    assert (sds - mu).norm(dim=1).median() < 0.1 * s  # one point: the mode
    torch.testing.assert_close(vsd.mean(0), mu[0], atol=0.1, rtol=0)
    assert ((vsd.std(0) - s).abs() < 0.2 * s).all(), vsd.std(0)  # the data's spread, within 20 %


def test_bad_input_is_refused():
    z, particles = torch.zeros(2, 2), torch.zeros(3, 2)
    eps = particles_eps(particles, AB)
    with pytest.raises(ValueError, match="like z"):
        vsd_gradient(lambda z_t, t: z_t, lambda z_t, t: z_t[:, :1], z, AB)
    with pytest.raises(ValueError, match="noise"):
        vsd_gradient(lambda z_t, t: z_t, eps, z, AB, noise=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="eps-models"):
        vsd_gradient(lambda z_t, t: z_t, particles, z, AB)
    with pytest.raises(ValueError, match="alphas_cumprod"):
        vsd_gradient(lambda z_t, t: z_t, eps, z, AB[None])
    with pytest.raises(ValueError, match="like one particle"):
        eps(torch.zeros(2, 3), torch.tensor([10, 20]))
    with pytest.raises(ValueError, match="N >= 1"):
        particles_eps(torch.zeros(0, 2), AB)
    with pytest.raises(ValueError, match="below 1"):
        particles_eps(particles, torch.ones(1000))
