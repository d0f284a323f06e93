"""Identities of course_lib.distributions and agreement with torch.distributions and diffusers."""

import math

import pytest
import torch

from course_lib.distributions import (
    bernoulli_log_likelihood,
    bits_per_dim_to_nats,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    nats_to_bits_per_dim,
    normal_kl,
    quantize,
    reparameterize,
    standard_normal_kl,
    sum_except_batch,
)


def _random_gaussians(seed: int, shape=(4, 3, 5, 5)):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64) * 2,
    )


# --- KL -----------------------------------------------------------------------------------------------


def test_kl_of_a_distribution_with_itself_is_zero():
    mean, logvar = _random_gaussians(0)
    assert torch.allclose(normal_kl(mean, logvar, mean, logvar), torch.zeros_like(mean), atol=1e-12)
    assert torch.allclose(standard_normal_kl(torch.zeros(7), torch.zeros(7)), torch.zeros(7))


def test_kl_is_non_negative():
    m1, lv1 = _random_gaussians(1, (10_000,))
    m2, lv2 = _random_gaussians(2, (10_000,))
    assert normal_kl(m1, lv1, m2, lv2).min() >= 0
    assert standard_normal_kl(m1, lv1).min() >= 0


def test_kl_matches_torch_distributions():
    m1, lv1 = _random_gaussians(3)
    m2, lv2 = _random_gaussians(4)
    p = torch.distributions.Normal(m1, torch.exp(0.5 * lv1))
    q = torch.distributions.Normal(m2, torch.exp(0.5 * lv2))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), torch.distributions.kl_divergence(p, q))


def test_standard_normal_kl_is_normal_kl_to_zero_mean_unit_variance():
    mean, logvar = _random_gaussians(5)
    zero = torch.zeros((), dtype=torch.float64)
    torch.testing.assert_close(standard_normal_kl(mean, logvar), normal_kl(mean, logvar, zero, zero))


def test_kl_agrees_with_monte_carlo_estimate():
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated with 400k reparameterized samples."""
    m1, lv1 = torch.tensor([0.3, -1.0], dtype=torch.float64), torch.tensor([-0.5, 0.4], dtype=torch.float64)
    m2, lv2 = torch.tensor([0.0, 0.5], dtype=torch.float64), torch.tensor([0.2, -0.3], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    z = reparameterize(m1.expand(400_000, 2), lv1.expand(400_000, 2), generator=g)
    mc = (gaussian_log_likelihood(z, m1, lv1) - gaussian_log_likelihood(z, m2, lv2)).mean(dim=0)
    torch.testing.assert_close(mc, normal_kl(m1, lv1, m2, lv2), atol=0.01, rtol=0.0)


def test_kl_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match="broadcast"):
        normal_kl(torch.zeros(3), torch.zeros(3), torch.zeros(4), torch.zeros(4))


# --- reparameterization ---------------------------------------------------------------------------------


def test_reparameterize_is_mean_plus_std_times_noise():
    mean, logvar = _random_gaussians(6)
    noise = torch.randn_like(mean)
    torch.testing.assert_close(reparameterize(mean, logvar, noise), mean + torch.exp(0.5 * logvar) * noise)


def test_reparameterized_samples_have_the_right_moments():
    mean, logvar = torch.tensor([1.5, -2.0]), torch.tensor([0.0, math.log(0.25)])
    z = reparameterize(mean.expand(200_000, 2), logvar.expand(200_000, 2), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(z.var(0), torch.exp(logvar), atol=0.01, rtol=0)


def test_reparameterized_gradient_is_the_gradient_of_the_expectation():
    """For f(z) = z^2, E[f] = mean^2 + exp(logvar): d/dmean = 2 mean, d/dlogvar = exp(logvar)."""
    mean = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor(-0.4, dtype=torch.float64, requires_grad=True)
    n = 200_000
    z = reparameterize(mean.expand(n), logvar.expand(n), generator=torch.Generator().manual_seed(2))
    (z**2).mean().backward()
    assert abs(mean.grad.item() - 2 * 0.7) < 0.02
    assert abs(logvar.grad.item() - math.exp(-0.4)) < 0.02


def test_reparameterize_is_reproducible_with_a_generator():
    mean, logvar = _random_gaussians(7)
    a = reparameterize(mean, logvar, generator=torch.Generator().manual_seed(3))
    b = reparameterize(mean, logvar, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# --- likelihoods ------------------------------------------------------------------------------------------


def test_gaussian_log_likelihood_matches_torch_distributions():
    mean, logvar = _random_gaussians(8)
    x = torch.randn_like(mean)
    ref = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x)
    torch.testing.assert_close(gaussian_log_likelihood(x, mean, logvar), ref)


def test_bernoulli_log_likelihood_matches_torch_and_binary_cross_entropy():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(2, 1, 4, 4, generator=g) * 3
    binary = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(binary)
    torch.testing.assert_close(bernoulli_log_likelihood(binary, logits), ref)
    grey = torch.rand(2, 1, 4, 4, generator=g)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, grey, reduction="none")
    torch.testing.assert_close(bernoulli_log_likelihood(grey, logits), -bce)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bernoulli_log_likelihood(grey * 2 - 1, logits)


ALL_LEVELS = torch.linspace(-1, 1, 256, dtype=torch.float64)


@pytest.mark.parametrize(
    "mean,std", [(0.0, 0.5), (0.93, 0.01), (-1.7, 0.3), (2.5, 1.0), (0.2, 1e-3), (0.0, 50.0), (-0.99, 0.002)]
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_discretized_gaussian_bin_probabilities_sum_to_one(mean, std, dtype):
    x = ALL_LEVELS.to(dtype)
    log_p = discretized_gaussian_log_likelihood(
        x, torch.tensor(mean, dtype=dtype), torch.tensor(2 * math.log(std), dtype=dtype)
    )
    assert log_p.max() <= 0
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert abs(log_p.exp().sum().item() - 1.0) < tol


def test_discretized_gaussian_matches_cdf_differences():
    mean, std = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    normal = torch.distributions.Normal(mean, std)
    half = 1 / 255
    upper = torch.where(ALL_LEVELS > 1 - half, torch.tensor(1.0, dtype=torch.float64), normal.cdf(ALL_LEVELS + half))
    lower = torch.where(ALL_LEVELS < -1 + half, torch.tensor(0.0, dtype=torch.float64), normal.cdf(ALL_LEVELS - half))
    log_p = discretized_gaussian_log_likelihood(ALL_LEVELS, mean, 2 * torch.log(std))
    torch.testing.assert_close(log_p, torch.log(upper - lower))


def test_discretized_gaussian_tails_are_accurate_and_gradients_finite():
    """A bin 20 standard deviations away keeps an accurate log-probability and a finite gradient."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    x = torch.tensor([0.6, -0.6, 1.0, -1.0])
    mean = torch.zeros(4, requires_grad=True)
    logvar = torch.full((4,), 2 * math.log(0.03), requires_grad=True)
    log_p = discretized_gaussian_log_likelihood(x, mean, logvar)
    ref = float(mpmath.log(mpmath.ncdf(-0.6 + 1 / 255, 0, 0.03) - mpmath.ncdf(-0.6 - 1 / 255, 0, 0.03)))
    assert ref < -150  # far beyond where 1 - Phi(b) - (1 - Phi(a)) cancels to 0 in floating point
    assert log_p[0].item() == pytest.approx(ref, rel=1e-4)
    assert log_p[1].item() == pytest.approx(ref, rel=1e-4)
    log_p.sum().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(logvar.grad).all()


def test_discretized_gaussian_approaches_density_times_bin_width_for_wide_gaussians():
    x = quantize(torch.linspace(-0.8, 0.8, 9))
    mean, logvar = torch.tensor(0.05), torch.tensor(2 * math.log(0.4))
    approx = gaussian_log_likelihood(x, mean, logvar) + math.log(2 / 255)
    torch.testing.assert_close(discretized_gaussian_log_likelihood(x, mean, logvar), approx, atol=1e-4, rtol=0)


def test_discretized_gaussian_rejects_off_grid_data():
    with pytest.raises(ValueError, match="quantize"):
        discretized_gaussian_log_likelihood(torch.tensor([0.1234]), torch.tensor(0.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        discretized_gaussian_log_likelihood(torch.tensor([1.5]), torch.tensor(0.0), torch.tensor(0.0))


def test_quantize_gives_8_bit_levels():
    x = quantize(torch.rand(1000, generator=torch.Generator().manual_seed(4)) * 2 - 1)
    k = (x + 1) * 127.5
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert torch.equal(quantize(torch.tensor([-1.0, 1.0])), torch.tensor([-1.0, 1.0]))


# --- units --------------------------------------------------------------------------------------------


def test_bits_per_dim_conversion():
    d = 256
    assert nats_to_bits_per_dim(d * math.log(2), d) == pytest.approx(1.0)
    assert bits_per_dim_to_nats(nats_to_bits_per_dim(123.4, d), d) == pytest.approx(123.4)
    # a uniform distribution over 256 levels costs exactly 8 bits per value
    assert nats_to_bits_per_dim(d * math.log(256), d) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        nats_to_bits_per_dim(1.0, 0)


def test_sum_except_batch():
    x = torch.ones(3, 2, 4, 4)
    assert torch.equal(sum_except_batch(x), torch.full((3,), 32.0))


# --- agreement with diffusers -------------------------------------------------------------------------


def test_closed_forms_agree_with_diffusers_diagonal_gaussian():
    pytest.importorskip("diffusers")
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    g = torch.Generator().manual_seed(10)
    params1, params2 = torch.randn(3, 8, 4, 4, generator=g), torch.randn(3, 8, 4, 4, generator=g)
    d1, d2 = DiagonalGaussianDistribution(params1), DiagonalGaussianDistribution(params2)
    torch.testing.assert_close(sum_except_batch(standard_normal_kl(d1.mean, d1.logvar)), d1.kl())
    torch.testing.assert_close(sum_except_batch(normal_kl(d1.mean, d1.logvar, d2.mean, d2.logvar)), d1.kl(d2))
    z = torch.randn(3, 4, 4, 4, generator=g)
    torch.testing.assert_close(-sum_except_batch(gaussian_log_likelihood(z, d1.mean, d1.logvar)), d1.nll(z))
