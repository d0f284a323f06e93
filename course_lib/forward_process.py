"""The forward (noising) process of DDPM and its Gaussian posterior. Ho et al. 2020, Sec. 2.

Notation: x0 is clean data in [-1, 1], xt its noisy version at index t (0 ... T-1, diffusers' convention,
see ``schedules``), eps ~ N(0, I) the noise. Tensors are [B, ...]: images [B, C, H, W] or points [B, D].
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_float, check_same_shape, check_timesteps
from .schedules import Schedule, extract


def q_sample(
    x0: Tensor, t: Tensor, schedule: Schedule, noise: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Draw x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I). Eq. 4 of Ho et al.

    Args:
        x0: clean data [B, ...].
        t: int64 [B], indices in 0 ... T-1.
        noise: eps [B, ...] to use; drawn from N(0, I) with ``generator`` if None.
    Returns:
        x_t with the shape and dtype of ``x0``.
    """
    check_float("x0", x0)
    t = check_timesteps(t, x0.shape[0], schedule.num_timesteps)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    check_same_shape("x0", x0, "noise", noise)
    return extract(schedule.sqrt_alpha_bar, t, x0) * x0 + extract(schedule.sqrt_one_minus_alpha_bar, t, x0) * noise


def q_posterior_mean_variance(x0: Tensor, xt: Tensor, t: Tensor, schedule: Schedule) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x_0). Eqs. 6-7 of Ho et al.

    mu_tilde = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) x_0 + (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t) x_t
    beta_tilde = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t          (0 at t = 0: x_{-1} is x_0 itself)

    Returns:
        mean [B, ...] and variance broadcastable to it ([B, 1, ...]).
    """
    check_float("x0", x0)
    check_same_shape("x0", x0, "xt", xt)
    t = check_timesteps(t, x0.shape[0], schedule.num_timesteps)
    mean = extract(schedule.posterior_mean_coef1, t, xt) * x0 + extract(schedule.posterior_mean_coef2, t, xt) * xt
    return mean, extract(schedule.posterior_variance, t, xt)


def predict_x0_from_eps(xt: Tensor, t: Tensor, eps: Tensor, schedule: Schedule) -> Tensor:
    """Invert Eq. 4: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    check_float("xt", xt)
    check_same_shape("xt", xt, "eps", eps)
    t = check_timesteps(t, xt.shape[0], schedule.num_timesteps)
    return (xt - extract(schedule.sqrt_one_minus_alpha_bar, t, xt) * eps) / extract(schedule.sqrt_alpha_bar, t, xt)


def predict_eps_from_x0(xt: Tensor, t: Tensor, x0: Tensor, schedule: Schedule) -> Tensor:
    """Invert Eq. 4 for the noise: eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
    check_float("xt", xt)
    check_same_shape("xt", xt, "x0", x0)
    t = check_timesteps(t, xt.shape[0], schedule.num_timesteps)
    return (xt - extract(schedule.sqrt_alpha_bar, t, xt) * x0) / extract(schedule.sqrt_one_minus_alpha_bar, t, xt)
