"""course_lib.vae: shapes, the ELBO's identities, and the AutoencoderKL-like interface."""

import math

import pytest
import torch

from course_lib.distributions import gaussian_log_likelihood, quantize, sum_except_batch
from course_lib.vae import (
    VAE,
    DiagonalGaussian,
    VAEConfig,
    elbo,
    elbo_loss_fn,
    evaluate,
    importance_weighted_bound,
    train_vae,
)


def _images(n=6, c=1, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return quantize(torch.rand(n, c, size, size, generator=g) * 2 - 1)


def _tiny(**kwargs):
    torch.manual_seed(0)
    return VAE(VAEConfig(**{"channels": (8, 16), **kwargs}))


# --- shapes and configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config,latent_shape",
    [
        (VAEConfig(channels=(8, 16)), (4, 8, 8)),
        (VAEConfig(channels=(8, 16, 16), latent_dim=2), (2,)),
        (VAEConfig(image_size=28, channels=(8, 16, 16), latent_channels=3), (3, 7, 7)),
        (VAEConfig(in_channels=3, image_size=32, channels=(8, 16, 16), likelihood="gaussian"), (4, 8, 8)),
    ],
)
def test_shapes(config, latent_shape):
    model = VAE(config)
    x = _images(3, config.in_channels, config.image_size)
    posterior = model.encode(x).latent_dist
    assert posterior.mean.shape == (3, *latent_shape) == posterior.sample().shape
    assert config.latent_shape == latent_shape
    assert model.decode(posterior.mode()).sample.shape == x.shape
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, *x.shape[1:])
    assert elbo(model, x).neg_elbo.shape == (3,)


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="divisible"):
        VAEConfig(image_size=28, channels=(8, 16, 16, 16))
    model = _tiny()
    with pytest.raises(ValueError, match=r"\[B, 1, 16, 16\]"):
        model.encode(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="z must be"):
        model.decode(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="quantize"):
        elbo(model, torch.full((2, 1, 16, 16), 0.1234))


def test_config_round_trips_through_a_dict():
    config = VAEConfig(channels=(8, 16, 16), latent_dim=2, likelihood="bernoulli", scaling_factor=0.5)
    assert VAEConfig.from_dict(config.to_dict()) == config


# --- the posterior agrees with diffusers' DiagonalGaussianDistribution ---------------------------------


def test_diagonal_gaussian_agrees_with_diffusers():
    pytest.importorskip("diffusers")
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    g = torch.Generator().manual_seed(1)
    params, other_params = torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 8, 4, 4, generator=g)
    ours, theirs = DiagonalGaussian(params), DiagonalGaussianDistribution(params)
    other, other_theirs = DiagonalGaussian(other_params), DiagonalGaussianDistribution(other_params)
    assert torch.equal(ours.mode(), theirs.mode())
    torch.testing.assert_close(
        ours.sample(torch.Generator().manual_seed(5)), theirs.sample(torch.Generator().manual_seed(5))
    )
    torch.testing.assert_close(ours.kl(), theirs.kl())
    torch.testing.assert_close(ours.kl(other), theirs.kl(other_theirs))
    z = torch.randn(2, 4, 4, 4, generator=g)
    torch.testing.assert_close(ours.nll(z), theirs.nll(z))
    assert torch.allclose(ours.kl(ours), torch.zeros(2), atol=1e-6)


def test_same_code_runs_on_diffusers_autoencoder_kl():
    """The one-line switch of the latent diffusion chapter: identical calls work on both autoencoders."""
    pytest.importorskip("diffusers")
    from diffusers import AutoencoderKL

    def reconstruct(vae, x, generator):
        latents = vae.encode(x).latent_dist.sample(generator=generator) * vae.config.scaling_factor
        return vae.decode(latents / vae.config.scaling_factor).sample

    theirs = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )
    x = _images(2)
    for vae in (_tiny(), theirs):
        assert reconstruct(vae, x, torch.Generator().manual_seed(0)).shape == x.shape
        assert vae.encode(x).latent_dist.kl().shape == (2,)


# --- the ELBO ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["discretized_gaussian", "gaussian", "bernoulli"])
def test_elbo_terms(likelihood):
    model, x = _tiny(likelihood=likelihood), _images()
    terms = elbo(model, x, beta=0.25, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(terms.neg_elbo, terms.recon + terms.kl)
    torch.testing.assert_close(terms.loss, (terms.recon + 0.25 * terms.kl).mean())
    assert (terms.kl >= 0).all()
    if likelihood != "gaussian":  # probabilities (not densities) give -log p >= 0
        assert (terms.recon >= 0).all()
    # recon is -log p(x|z) at the reparameterized z drawn with the same generator
    posterior = model.encode(x).latent_dist
    z = posterior.sample(torch.Generator().manual_seed(2))
    torch.testing.assert_close(terms.recon, -model.log_prob_x_given_z(x, z))


def test_closed_form_kl_matches_monte_carlo_in_the_model():
    """KL(q(z|x) || p(z)) = E_q[log q(z|x) - log p(z)]; checks the sign conventions of nll and the prior."""
    model, x = _tiny(latent_dim=3, channels=(8, 16, 16)), _images(2)
    posterior = model.encode(x).latent_dist
    n = 50_000
    with torch.no_grad():  # n copies of each posterior in one batch: [n * B, ...]
        copies = DiagonalGaussian(posterior.parameters.repeat(n, 1))
        z = copies.sample(torch.Generator().manual_seed(3))
        log_ratio = -copies.nll(z) - sum_except_batch(gaussian_log_likelihood(z, 0 * z, 0 * z))
        mc = log_ratio.view(n, -1).mean(0)
    torch.testing.assert_close(mc, posterior.kl().detach(), atol=0.05, rtol=0.02)


def test_importance_weighted_bound_is_at_least_the_average_single_sample_bound():
    """Jensen: log mean_k w_k >= mean_k log w_k for the same K samples (Burda et al. 2016, Thm. 1)."""
    model, x, k = _tiny(), _images(4), 16
    iw = importance_weighted_bound(model, x, k, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        posterior = model.encode(x).latent_dist
        log_w = []
        for _ in range(k):
            z = posterior.sample(g)
            log_pz = sum_except_batch(gaussian_log_likelihood(z, 0 * z, 0 * z))
            log_w.append(model.log_prob_x_given_z(x, z) + log_pz + posterior.nll(z))
        log_w = torch.stack(log_w)
    torch.testing.assert_close(iw, torch.logsumexp(log_w, 0) - math.log(k))
    assert (iw >= log_w.mean(0)).all()


def test_training_lowers_the_negative_elbo():
    model, x = _tiny(), _images(16, seed=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = elbo_loss_fn(beta=1.0, generator=torch.Generator().manual_seed(6))
    before = evaluate(model, x, generator=torch.Generator().manual_seed(7)).neg_elbo
    for _ in range(40):
        optimizer.zero_grad()
        loss_fn(model, (x, torch.zeros(16, dtype=torch.long))).backward()
        optimizer.step()
    report = evaluate(model, x, generator=torch.Generator().manual_seed(7))
    assert report.neg_elbo < before
    assert report.bits_per_dim == pytest.approx(report.neg_elbo / (256 * math.log(2)))
    assert report.neg_elbo == pytest.approx(report.recon + report.kl)


def test_train_vae_records_both_terms_and_returns_an_ema_model():
    x, history = _images(16, seed=8), []
    torch.manual_seed(0)
    result = train_vae(_tiny(), x, steps=5, batch_size=8, seed=0, device="cpu", history=history, progress=False)
    assert len(history) == 5 and set(history[0]) == {"recon", "kl"}
    assert isinstance(result.ema_model, VAE) and len(result.losses) == 5


# --- the shipped checkpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vae_digits", "vae_digits_2d", "vae_digits_ldm"])
def test_shipped_checkpoints_load_and_scaling_factor_gives_unit_variance(name):
    from course_lib.data import digits

    model = VAE.from_pretrained(name)
    x = quantize(digits("train", image_size=16)[0])
    with torch.no_grad():
        latents = model.encode(x).latent_dist.sample(torch.Generator().manual_seed(0))
        assert model.decode(latents[:4]).sample.shape == (4, 1, 16, 16)
    # the recipe stores scaling_factor = 1 / std of the training latents (diffusers' convention)
    assert (latents * model.config.scaling_factor).std().item() == pytest.approx(1.0, abs=0.05)
