"""Training losses for diffusion models.

``l_simple`` is DDPM's simplified objective (Ho et al. 2020, Eq. 14 and Algorithm 1): the expected squared
error of the noise prediction, with t drawn uniformly. Index convention t = 0 ... T-1 (see ``schedules``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ._checks import check_float
from .forward_process import q_sample
from .schedules import Schedule


def l_simple(model: Callable[..., Tensor], x0: Tensor, schedule: Schedule, *, t: Tensor | None = None,
             noise: Tensor | None = None, generator: torch.Generator | None = None, **model_kwargs) -> Tensor:
    """Algorithm 1 of Ho et al.: E_{t, x0, eps} || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2.

    Args:
        model: eps_theta, called as ``model(xt, t, **model_kwargs)`` and returning [B, ...] like ``x0``.
        x0: a batch of clean data [B, ...] in [-1, 1].
        t: int64 [B] indices; drawn uniformly from 0 ... T-1 with ``generator`` if None.
        noise: eps [B, ...]; drawn from N(0, I) if None.
    Returns:
        The scalar loss: mean over batch and dimensions of the squared error.
    """
    check_float("x0", x0)
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.num_timesteps, (B,), generator=generator).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    xt = q_sample(x0, t, schedule, noise)  # line 5: the noisy input
    eps = model(xt, t, **model_kwargs)
    if eps.shape != x0.shape:
        raise ValueError(f"model returned shape {tuple(eps.shape)}, expected the input's shape {tuple(x0.shape)}; "
                         "an eps-prediction model outputs one value per input value.")
    return torch.mean((noise - eps.float()) ** 2)


def diffusion_loss_fn(schedule: Schedule, generator: torch.Generator | None = None) -> Callable:
    """A ``loss_fn(model, batch)`` for ``trainer.train``: L_simple on ``batch[0]`` (labels are ignored)."""

    def loss_fn(model, batch):
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        return l_simple(model, x0, schedule, generator=generator)

    return loss_fn
