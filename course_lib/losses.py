"""Training losses for diffusion models.

``l_simple`` is DDPM's simplified objective (Ho et al. 2020, Eq. 14 and Algorithm 1): the expected squared
error of the noise prediction, with t drawn uniformly. ``l_hybrid`` adds a small multiple of the variational
bound so that a learned variance is trained (Nichol & Dhariwal 2021, Sec. 3.1), and ``ImportanceSampler`` draws
t in proportion to the size of each term of the bound (their Eq. 18). Index convention t = 0 ... T-1 (see
``schedules``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ._checks import check_float
from .forward_process import q_sample
from .likelihood import vlb_terms_from_prediction
from .schedules import Schedule
from .variance import split_output


def l_simple(
    model: Callable[..., Tensor],
    x0: Tensor,
    schedule: Schedule,
    *,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    **model_kwargs,
) -> Tensor:
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
        raise ValueError(
            f"model returned shape {tuple(eps.shape)}, expected the input's shape {tuple(x0.shape)}; "
            "an eps-prediction model outputs one value per input value."
        )
    return torch.mean((noise - eps.float()) ** 2)


def diffusion_loss_fn(schedule: Schedule, generator: torch.Generator | None = None) -> Callable:
    """A ``loss_fn(model, batch)`` for ``trainer.train``: L_simple on ``batch[0]`` (labels are ignored)."""

    def loss_fn(model, batch):
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        return l_simple(model, x0, schedule, generator=generator)

    return loss_fn


# --- Improved DDPM: the hybrid loss and importance-sampled t -------------------------------------------


def l_hybrid(
    model: Callable[..., Tensor],
    x0: Tensor,
    schedule: Schedule,
    *,
    lam: float = 0.001,
    t: Tensor | None = None,
    weights: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    num_bins: int = 256,
    **model_kwargs,
) -> Tensor:
    """L_hybrid = L_simple + lambda L_vlb, Nichol & Dhariwal 2021 Sec. 3.1, for a model returning eps and v.

    The model returns [B, 2C, ...] (eps, then v; ``variance.learned_log_variance``). In the L_vlb term the mean
    is a stop-gradient (eps detached), so L_simple alone trains the mean and L_vlb trains the variance.
    L_vlb is estimated from one t per example as T * L_t in bits per dimension (as improved-diffusion's code
    with lambda = 0.001 does); x0 must lie on the levels of ``distributions.quantize`` (the decoder term at t = 0).

    Args:
        t, weights: the timesteps and per-example weights of the L_vlb estimate (``ImportanceSampler.sample``);
            uniform t with weight 1 if None. The weights multiply the L_vlb term only; improved-diffusion's training
            loop multiplies each example's whole loss (L_simple + L_vlb) by them. The two agree for weights of 1;
            the course uses ``ImportanceSampler`` with L_vlb alone, never with L_hybrid.
    Returns:
        The scalar loss (``likelihood.vlb_terms_from_prediction`` gives the terms themselves, e.g. to log them).
    """
    check_float("x0", x0)
    B, T = x0.shape[0], schedule.num_timesteps
    if t is None:
        t = torch.randint(0, T, (B,), generator=generator).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    xt = q_sample(x0, t, schedule, noise)
    eps, v = split_output(model(xt, t, **model_kwargs).float(), x0, "learned_range")
    mse = torch.mean((noise - eps) ** 2)
    terms = vlb_terms_from_prediction(
        x0, xt, t, eps.detach(), schedule, variance="learned_range", v=v, num_bins=num_bins
    )  # nats per example, [B]
    vlb_bpd = T * terms / (x0[0].numel() * math.log(2.0))
    if weights is not None:
        vlb_bpd = vlb_bpd * weights.to(vlb_bpd)
    return mse + lam * vlb_bpd.mean()


class ImportanceSampler:
    """Draws t with p_t proportional to sqrt(E[L_t^2]), Nichol & Dhariwal 2021 Eq. 18, to lower the variance of
    the L_vlb estimate (most of the bound sits in the first few t).

    E[L_t^2] is the mean of the last ``history`` values of L_t seen (``update``); until every t has that many,
    t is uniform (as the paper does). A small ``uniform_mix`` of the uniform distribution keeps every p_t > 0,
    as improved-diffusion's code does. ``sample`` returns weights 1 / (T p_t), so that the weighted mean of
    L_t estimates the same quantity as the plain mean under uniform t: sum_t L_t / T.
    """

    def __init__(self, num_timesteps: int, history: int = 10, uniform_mix: float = 0.001):
        if num_timesteps < 1 or history < 1 or not 0 <= uniform_mix <= 1:
            raise ValueError(
                f"need num_timesteps >= 1, history >= 1 and uniform_mix in [0, 1]; got "
                f"{num_timesteps}, {history}, {uniform_mix}."
            )
        self.num_timesteps, self.history, self.uniform_mix = num_timesteps, history, uniform_mix
        self._values = torch.zeros(num_timesteps, history, dtype=torch.float64)
        self._counts = torch.zeros(num_timesteps, dtype=torch.long)

    @property
    def warm(self) -> bool:
        """True once every t has ``history`` values of L_t."""
        return bool((self._counts >= self.history).all())

    def probabilities(self) -> Tensor:
        """p_t, float64 [T]."""
        T = self.num_timesteps
        if not self.warm:
            return torch.full((T,), 1.0 / T, dtype=torch.float64)
        p = (self._values**2).mean(dim=1).sqrt()
        p = p / p.sum()
        return (1 - self.uniform_mix) * p + self.uniform_mix / T

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(t int64 [B], weights float32 [B] = 1 / (T p_t))."""
        p = self.probabilities()
        t = torch.multinomial(p, batch_size, replacement=True, generator=generator)
        return t, (1.0 / (self.num_timesteps * p[t])).float()

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Record L_t (any unit, e.g. nats per example) for each example's t; the oldest value of a t is dropped."""
        if t.shape != losses.shape or t.ndim != 1:
            raise ValueError(f"t and losses must both have shape [B], got {tuple(t.shape)} and {tuple(losses.shape)}.")
        for ti, li in zip(t.tolist(), losses.detach().cpu().double().tolist()):
            self._values[ti] = torch.roll(self._values[ti], -1)
            self._values[ti, -1] = li
            self._counts[ti] += 1
