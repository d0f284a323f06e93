"""Latent diffusion's autoencoder: a tiny ``diffusers.AutoencoderKL`` for the shapes world, and its latent scale.

Rombach et al. (2022) train the diffusion model not on pixels but on the latents of an autoencoder that compresses an
image by a factor f per side (Stable Diffusion: f = 8, 512 x 512 x 3 -> 64 x 64 x 4). Their autoencoder is a VAE with
a very small KL weight: the KL term keeps the latents near a standard Gaussian in scale without blurring the
reconstructions, which is chapter 1's lesson on the KL weight at the other end of the dial. Before the diffusion model
sees them, latents are multiplied by a constant, SD's ``vae.config.scaling_factor`` = 0.18215, so that they have unit
variance like the noise the forward process adds; that number is 1 / (standard deviation of the latents).

The course's twin is the same class, f = 4 (32 x 32 x 3 -> 8 x 8 x 4), trained here (``recipes.shapes_autoencoder``),
with its own ``scaling_factor`` measured the same way (``latent_scaling_factor``).

    vae = load_autoencoder()
    z = encode(vae, images)          # [N, 4, 8, 8], scaled: about unit variance
    x = decode(vae, z)               # [N, 3, 32, 32] in [-1, 1]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TINY_AUTOENCODER = dict(  # diffusers.AutoencoderKL keyword arguments; three levels: f = 2 ** (3 - 1) = 4
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 32),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
)
KL_WEIGHT = 1e-4  # per latent element against a per-pixel squared error: small, as in latent diffusion


def tiny_autoencoder(**overrides):
    """A new ``diffusers.AutoencoderKL`` with ``TINY_AUTOENCODER``'s sizes (and any ``overrides``)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**{**TINY_AUTOENCODER, **overrides})


def autoencoder_loss_fn(kl_weight: float = KL_WEIGHT, generator: torch.Generator | None = None):
    """``loss_fn(vae, (images,))`` for ``trainer.train``: mean squared error per pixel of a reconstruction from a
    sampled latent, plus ``kl_weight`` times the KL divergence to N(0, I) per latent element (Kingma & Welling's
    negative ELBO with a reweighted KL term)."""

    def loss_fn(vae, batch) -> Tensor:
        (x,) = batch
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(x)
        reconstruction = vae.decode(z).sample
        kl = 0.5 * (posterior.mean**2 + posterior.var - 1.0 - posterior.logvar)
        return F.mse_loss(reconstruction, x) + kl_weight * kl.mean()

    return loss_fn


@torch.no_grad()
def latent_scaling_factor(
    vae, images: Tensor, batch_size: int = 256, generator: torch.Generator | None = None
) -> float:
    """1 / (standard deviation of sampled latents of ``images``): what ``vae.config.scaling_factor`` should be, as
    Stable Diffusion's 0.18215 was measured on its training images."""
    zs = []
    for i in range(0, len(images), batch_size):
        posterior = vae.encode(images[i : i + batch_size]).latent_dist
        zs.append(posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator))
    return 1.0 / torch.cat(zs).std().item()


@torch.no_grad()
def encode(vae, images: Tensor, batch_size: int = 256) -> Tensor:
    """Scaled latents (the posterior means times ``vae.config.scaling_factor``) of images ``[N, 3, 32, 32]``."""
    size = vae.config.sample_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (vae.config.in_channels, size, size):
        raise ValueError(
            f"the autoencoder takes images [N, {vae.config.in_channels}, {size}, {size}] in [-1, 1], got "
            f"{tuple(images.shape)}; resize them first (F.interpolate)."
        )
    means = [vae.encode(images[i : i + batch_size]).latent_dist.mean for i in range(0, len(images), batch_size)]
    return torch.cat(means) * vae.config.scaling_factor


@torch.no_grad()
def decode(vae, latents: Tensor, batch_size: int = 256) -> Tensor:
    """Images in [-1, 1] from scaled latents (divided by ``vae.config.scaling_factor`` first, as SD's pipeline does)."""
    if latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
        raise ValueError(f"latents must be [N, {vae.config.latent_channels}, h, w], got {tuple(latents.shape)}.")
    z = latents / vae.config.scaling_factor
    return torch.cat([vae.decode(z[i : i + batch_size]).sample for i in range(0, len(z), batch_size)]).clamp(-1, 1)


def psnr(images: Tensor, reference: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, for images in [-1, 1] (peak-to-peak 2): 10 log10(4 / MSE)."""
    mse = (images.float() - reference.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def load_autoencoder(name: str = "shapes_autoencoder", directory=None):
    """The shipped tiny ``AutoencoderKL`` (SHA-256 checked), with its measured ``scaling_factor``, in eval mode; from
    ``directory`` instead of the package's checkpoints when given (a recipe's own output folder)."""
    from .checkpoints import CHECKPOINT_DIR, load_verified

    state, entry = load_verified(name, expected_model="autoencoder_kl", directory=directory or CHECKPOINT_DIR)
    vae = tiny_autoencoder(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["config"].items()})
    vae.load_state_dict(state)
    return vae.eval()
