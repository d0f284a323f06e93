"""Diagonal Gaussians, their KL divergence, the reparameterization trick and per-pixel likelihoods.

Kingma & Welling 2014 ("Auto-Encoding Variational Bayes"): reparameterization, Sec. 2.4, and the
closed-form Gaussian KL, Appendix B. Ho et al. 2020, Sec. 3.3: the discretized Gaussian decoder for
8-bit images. The same functions serve the VAE (chapter 1) and the variational bound of DDPM.

Notation and units:
    mean, logvar   a diagonal Gaussian N(mean, exp(logvar)); every function takes the log-variance.
    x              data; images are [B, C, H, W] in [-1, 1] (Bernoulli targets are mapped to [0, 1]).
    Every log-likelihood and KL is in **nats** (natural log) and **per element**: nothing is summed here.
    Sum over the non-batch dimensions with ``sum_except_batch``; convert with ``nats_to_bits_per_dim``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_float, check_same_shape

LOG_2PI = math.log(2.0 * math.pi)


def _check_broadcast(**tensors: Tensor) -> None:
    for name, value in tensors.items():
        check_float(name, value)
    try:
        torch.broadcast_shapes(*(v.shape for v in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"shapes must broadcast against each other, got {shapes}.") from None


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum a per-element quantity [B, ...] over everything but the batch dimension: returns [B]."""
    check_float("x", x)
    if x.ndim == 0:
        raise ValueError("x must have a batch dimension [B, ...], got a scalar.")
    return x.reshape(x.shape[0], -1).sum(dim=1)


# --- KL divergence --------------------------------------------------------------------------------


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL( N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)) ) per element, in nats.

    KL = 1/2 [ logvar2 - logvar1 + (exp(logvar1) + (mean1 - mean2)^2) / exp(logvar2) - 1 ].
    It is 0 exactly when the two Gaussians are equal and positive otherwise. Arguments broadcast, so
    ``normal_kl(mu, lv, torch.zeros(()), torch.zeros(()))`` is the KL to N(0, 1).

    Returns:
        Tensor of the broadcast shape, nats per element.
    """
    _check_broadcast(mean1=mean1, logvar1=logvar1, mean2=mean2, logvar2=logvar2)
    return 0.5 * (
        logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0
    )  # Kingma & Welling 2014, App. B


def standard_normal_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mean, exp(logvar)) || N(0, 1) ) per element, in nats: 1/2 (mean^2 + exp(logvar) - 1 - logvar).

    This is the VAE's rate term when the prior is p(z) = N(0, I) (Kingma & Welling 2014, App. B).
    """
    _check_broadcast(mean=mean, logvar=logvar)
    return 0.5 * (mean**2 + torch.exp(logvar) - 1.0 - logvar)


# --- sampling ---------------------------------------------------------------------------------------


def randn(
    shape: tuple[int, ...] | torch.Size,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise of ``shape``, drawn on the generator's device and moved to ``device``.

    Drawing where the generator lives (as diffusers' ``randn_tensor`` does) makes a seeded CPU generator
    give the same numbers whether the model runs on the CPU or a GPU.
    """
    draw_on = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=draw_on, dtype=dtype).to(device)


def reparameterize(
    mean: Tensor, logvar: Tensor, noise: Tensor | None = None, *, generator: torch.Generator | None = None
) -> Tensor:
    """Draw z ~ N(mean, exp(logvar)) as z = mean + exp(logvar / 2) * eps with eps ~ N(0, I).

    Kingma & Welling 2014, Sec. 2.4: the randomness sits in eps, which does not depend on (mean, logvar),
    so z is a differentiable function of them and gradients of E[f(z)] flow back into the encoder.

    Args:
        mean, logvar: [B, ...] of the same shape.
        noise: eps with that shape; drawn with ``generator`` if None.
    Returns:
        z with the shape of ``mean``.
    """
    check_float("mean", mean)
    check_same_shape("mean", mean, "logvar", logvar)
    if noise is None:
        noise = randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    check_same_shape("mean", mean, "noise", noise)
    return mean + torch.exp(0.5 * logvar) * noise


# --- likelihoods ------------------------------------------------------------------------------------


def gaussian_log_likelihood(x: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log N(x; mean, exp(logvar)) per element, in nats: -1/2 [log 2 pi + logvar + (x - mean)^2 / exp(logvar)].

    A density, not a probability: it can be positive and is only comparable across models on the same
    continuous scale. For 8-bit images use ``discretized_gaussian_log_likelihood``.
    """
    _check_broadcast(x=x, mean=mean, logvar=logvar)
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))


def bernoulli_log_likelihood(x: Tensor, logits: Tensor) -> Tensor:
    """log Bernoulli(x; sigmoid(logits)) per element, in nats: x log p + (1 - x) log(1 - p).

    Args:
        x: targets in [0, 1] (map images with (x + 1) / 2). For x in {0, 1} this is a log-probability;
            for grey values in between it is the binary cross-entropy, which is not a normalised
            likelihood of continuous data, so its "nats" are not comparable with a Gaussian decoder's.
        logits: decoder outputs, any real value; p = sigmoid(logits).
    """
    _check_broadcast(x=x, logits=logits)
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(
            f"Bernoulli targets must lie in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]; "
            "map images in [-1, 1] with (x + 1) / 2."
        )
    return x * torch.nn.functional.logsigmoid(logits) + (1.0 - x) * torch.nn.functional.logsigmoid(-logits)


def quantize(x: Tensor, num_bins: int = 256) -> Tensor:
    """Round data in [-1, 1] to the nearest of ``num_bins`` evenly spaced levels (256: 8-bit images).

    Level k (k = 0 ... num_bins-1) is -1 + 2k / (num_bins - 1), so -1 and 1 are levels.
    """
    check_float("x", x)
    if x.numel() and (float(x.min()) < -1.0 or float(x.max()) > 1.0):
        raise ValueError(f"x must lie in [-1, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}].")
    half = (num_bins - 1) / 2.0
    return torch.round((x + 1.0) * half) / half - 1.0


def _log_cdf_difference(lower: Tensor, upper: Tensor) -> Tensor:
    """log( Phi(upper) - Phi(lower) ) for lower < upper, accurate in both tails.

    In the right tail both CDFs are close to 1 and their difference cancels; there we use the mirror
    identity Phi(u) - Phi(l) = Phi(-l) - Phi(-u). The ratio is kept below 1 - 1e-6 so that a bin
    much narrower than the Gaussian (std above ~1e3 on the [-1, 1] scale) still has a finite gradient.
    """
    flip = (lower + upper) > 0
    hi = torch.where(flip, -lower, upper)
    lo = torch.where(flip, -upper, lower)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp(torch.clamp(log_lo - log_hi, max=-1e-6)))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, logvar: Tensor, num_bins: int = 256) -> Tensor:
    """log P(x) per element, in nats, for a Gaussian integrated over the bin of each 8-bit level.

    Ho et al. 2020, Eq. 13: the levels of ``quantize`` split [-1, 1] into bins of width 2 / (num_bins - 1)
    centred on the levels; the first bin extends to -inf and the last to +inf, so the probabilities of
    all bins sum to 1 and -log P(x) is a code length for 8-bit data (always >= 0).

    Args:
        x: data [B, ...] on the levels of ``quantize`` (raise otherwise; call ``quantize`` first).
        mean, logvar: the decoder's Gaussian, broadcastable to ``x`` (mean may lie outside [-1, 1]).
    Returns:
        log-probabilities with the broadcast shape, nats per element, all <= 0.
    """
    _check_broadcast(x=x, mean=mean, logvar=logvar)
    if num_bins < 2:
        raise ValueError(f"num_bins must be at least 2, got {num_bins}.")
    if x.numel():
        if float(x.min()) < -1.0 or float(x.max()) > 1.0:
            raise ValueError(f"x must lie in [-1, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}].")
        off_grid = float((quantize(x, num_bins) - x).abs().max())
        if off_grid > 1e-4:
            raise ValueError(
                f"x must lie on the {num_bins} levels of quantize() (off by up to {off_grid:.3g}); "
                "call course_lib.distributions.quantize(x) first."
            )
    half_width = 1.0 / (num_bins - 1)
    inv_std = torch.exp(-0.5 * logvar)
    lower = (x - half_width - mean) * inv_std
    upper = (x + half_width - mean) * inv_std
    interior = _log_cdf_difference(lower, upper)
    first_bin = torch.special.log_ndtr(upper)  # P(X < x + half_width)
    last_bin = torch.special.log_ndtr(-lower)  # P(X > x - half_width)
    return torch.where(x < -1.0 + half_width, first_bin, torch.where(x > 1.0 - half_width, last_bin, interior))


# --- units ------------------------------------------------------------------------------------------


def nats_to_bits_per_dim(nats: Tensor | float, num_dims: int) -> Tensor | float:
    """Convert a total negative log-likelihood in nats (per example) to bits per dimension: nats / (D ln 2).

    ``num_dims`` is D, the number of values per example (C * H * W for images). Bits per dimension of
    8-bit images only mean something when the nats come from a discrete likelihood (or a density with
    the log(bin width) correction), e.g. ``discretized_gaussian_log_likelihood``.
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be a positive count of values per example, got {num_dims}.")
    return nats / (num_dims * math.log(2.0))


def bits_per_dim_to_nats(bits_per_dim: Tensor | float, num_dims: int) -> Tensor | float:
    """Inverse of ``nats_to_bits_per_dim``: bits per dimension times D ln 2."""
    if num_dims <= 0:
        raise ValueError(f"num_dims must be a positive count of values per example, got {num_dims}.")
    return bits_per_dim * num_dims * math.log(2.0)


# NoisedGaussianMixture (an exactly solvable diffusion) lives in ``mixture``; served from here as before.
from .mixture import NoisedGaussianMixture  # noqa: E402, F401
