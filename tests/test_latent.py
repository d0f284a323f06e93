"""Latent diffusion's autoencoder: the KL term against diffusers' own, the scaling factor as an identity, the shipped
model's latents at unit scale and reconstructions the judge still reads, and clear errors for bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.data import shapes
from course_lib.latent import (
    autoencoder_loss_fn,
    decode,
    encode,
    latent_scaling_factor,
    load_autoencoder,
    psnr,
    tiny_autoencoder,
)


@pytest.fixture(scope="module")
def vae():
    return load_autoencoder()


@pytest.fixture(scope="module")
def held_out():
    return shapes(300, seed=999)


def test_loss_is_reconstruction_plus_weighted_kl_as_diffusers_computes_it():
    torch.manual_seed(0)
    model = tiny_autoencoder()
    x = shapes(4, seed=1).images
    loss = autoencoder_loss_fn(0.5, torch.Generator().manual_seed(3))(model, (x,))
    posterior = model.encode(x).latent_dist
    eps = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(3))
    reconstruction = model.decode(posterior.mean + posterior.std * eps).sample
    per_element_kl = posterior.kl().mean() / posterior.mean[0].numel()  # diffusers sums over C, h, w
    torch.testing.assert_close(loss, F.mse_loss(reconstruction, x) + 0.5 * per_element_kl, rtol=1e-5, atol=1e-6)


def test_psnr_of_a_known_error():
    x = torch.zeros(2, 3, 4, 4)
    torch.testing.assert_close(psnr(x + 0.1, x), torch.full((2,), 10 * torch.log10(torch.tensor(400.0)).item()))


def test_shipped_scaling_factor_is_one_over_the_latent_std(vae):
    """The factor in the config is what latent_scaling_factor measures on the recipe's 2 000 training renders, and
    it brings held-out latents to about unit standard deviation (what the forward process assumes)."""
    train = shapes(20_000, seed=20).images[:2000]
    measured = latent_scaling_factor(vae, train, generator=torch.Generator().manual_seed(2))
    assert measured == pytest.approx(vae.config.scaling_factor, rel=1e-4)
    std = encode(vae, shapes(500, seed=4321).images).std().item()
    assert 0.85 < std < 1.15, std


def test_reconstructions_keep_what_the_prompt_says(vae, held_out):
    from course_lib.judge import ShapesJudge, adherence

    recon = decode(vae, encode(vae, held_out.images))
    assert recon.shape == held_out.images.shape
    assert adherence(ShapesJudge.from_pretrained(), recon, list(held_out.captions))["all"] >= 0.95
    assert psnr(recon, held_out.images).mean() > 20  # dB


def test_bad_input_says_what_is_expected(vae, held_out):
    with pytest.raises(ValueError, match=r"images \[N, 3, 32, 32\]"):
        encode(vae, held_out.images[:, :, :16, :16])
    with pytest.raises(ValueError, match=r"latents must be \[N, 4, h, w\]"):
        decode(vae, torch.zeros(2, 3, 8, 8))
