"""Noise schedules for the forward process q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I).

Papers: Ho et al. 2020 (DDPM, linear), Nichol & Dhariwal 2021 (improved DDPM, cosine),
Rombach et al. 2022 (latent diffusion / Stable Diffusion, "scaled_linear").

Notation and index convention
    t is an integer index 0 ... T-1, as in diffusers. Index t holds the paper's step t+1, so
    ``alpha_bar[0]`` is the paper's alpha_bar_1 and ``alpha_bar[T-1]`` is alpha_bar_T.
    alpha_t = 1 - beta_t,  alpha_bar_t = prod_{s<=t} alpha_s,  SNR(t) = alpha_bar_t / (1 - alpha_bar_t).
    ``alpha_bar_prev[t]`` is alpha_bar_{t-1}, with ``alpha_bar_prev[0] = 1`` (x_{-1} is the clean image).

A schedule is a frozen dataclass of float64 tensors of shape [T]; everything else in the library reads
from it and keeps no other state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SCHEDULE_NAMES = ("linear", "quadratic", "cosine", "scaled_linear")


@dataclass(frozen=True)
class Schedule:
    """All per-timestep constants of a discrete diffusion process. Every field is float64, shape [T]."""

    name: str
    betas: Tensor
    alphas: Tensor
    alpha_bar: Tensor
    alpha_bar_prev: Tensor
    sqrt_alpha_bar: Tensor
    sqrt_one_minus_alpha_bar: Tensor
    snr: Tensor
    posterior_variance: Tensor  # beta_tilde_t, Eq. 7 of Ho et al. (0 at t = 0)
    posterior_log_variance_clipped: Tensor  # log beta_tilde_t with t = 0 replaced by t = 1 (finite)
    posterior_mean_coef1: Tensor  # multiplies x0 in mu_tilde_t, Eq. 7
    posterior_mean_coef2: Tensor  # multiplies xt in mu_tilde_t, Eq. 7

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    @classmethod
    def from_betas(cls, name: str, betas: Tensor) -> "Schedule":
        """Derive every constant from a 1-D tensor of betas in (0, 1]."""
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}.")
        if not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError(
                f"betas must lie in (0, 1]; got min {betas.min().item():.3g}, max {betas.max().item():.3g}."
            )
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        posterior_variance = betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        log_var = (
            torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]]))
            if len(betas) > 1
            else torch.log(betas)
        )
        return cls(
            name=name,
            betas=betas,
            alphas=alphas,
            alpha_bar=alpha_bar,
            alpha_bar_prev=alpha_bar_prev,
            sqrt_alpha_bar=alpha_bar.sqrt(),
            sqrt_one_minus_alpha_bar=(1.0 - alpha_bar).sqrt(),
            snr=alpha_bar / (1.0 - alpha_bar),
            posterior_variance=posterior_variance,
            posterior_log_variance_clipped=log_var,
            posterior_mean_coef1=betas * alpha_bar_prev.sqrt() / (1.0 - alpha_bar),
            posterior_mean_coef2=(1.0 - alpha_bar_prev) * alphas.sqrt() / (1.0 - alpha_bar),
        )


# --- beta recipes (pure functions of T) ---


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's schedule: beta_t = beta_1 + (t-1)/(T-1) (beta_T - beta_1). Ho et al. 2020, Sec. 4."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def quadratic_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """beta_t = (sqrt(beta_1) + (t-1)/(T-1) (sqrt(beta_T) - sqrt(beta_1)))^2: linear in sqrt(beta)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2


def scaled_linear_betas(num_timesteps: int, beta_start: float = 0.00085, beta_end: float = 0.012) -> Tensor:
    """Stable Diffusion's schedule: the quadratic recipe with beta from 0.00085 to 0.012."""
    return quadratic_betas(num_timesteps, beta_start, beta_end)


def cosine_alpha_bar(u: Tensor, s: float = 0.008) -> Tensor:
    """f(u) = cos^2((u + s) / (1 + s) * pi / 2) for u = t/T in [0, 1]. Eq. 17 of Nichol & Dhariwal 2021."""
    return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """beta_t = min(1 - alpha_bar(t+1)/alpha_bar(t), 0.999). Nichol & Dhariwal 2021, Sec. 3.2.

    The clip at 0.999 stops the last step from being a division by ~0 (singularity at t = T).
    """
    u = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = cosine_alpha_bar(u, s)
    return torch.clamp(1.0 - f[1:] / f[:-1], max=max_beta)


_RECIPES = {
    "linear": linear_betas,
    "quadratic": quadratic_betas,
    "cosine": cosine_betas,
    "scaled_linear": scaled_linear_betas,
}


def get_schedule(name: str, num_timesteps: int = 1000, **kwargs: float) -> Schedule:
    """Build a named schedule with T = ``num_timesteps`` steps.

    Args:
        name: "linear" (DDPM, 1e-4 -> 0.02), "quadratic" (same ends, linear in sqrt(beta)),
            "cosine" (Nichol & Dhariwal, s = 0.008, betas clipped at 0.999) or
            "scaled_linear" (Stable Diffusion, 0.00085 -> 0.012, linear in sqrt(beta)).
        num_timesteps: T, a positive integer.
        **kwargs: overrides of the recipe's keyword defaults (``beta_start``, ``beta_end``, ``s``, ``max_beta``).
    """
    if name not in _RECIPES:
        raise ValueError(
            f"Unknown schedule {name!r}; expected one of {SCHEDULE_NAMES}. "
            "Check the spelling (diffusers calls the cosine schedule 'squaredcos_cap_v2')."
        )
    if not isinstance(num_timesteps, int) or isinstance(num_timesteps, bool) or num_timesteps < 1:
        raise ValueError(f"num_timesteps must be a positive int, got {num_timesteps!r}.")
    try:
        betas = _RECIPES[name](num_timesteps, **kwargs)
    except TypeError as err:
        raise ValueError(f"Bad keyword for schedule {name!r}: {err}") from None
    return Schedule.from_betas(name, betas)


def extract(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """Gather ``values[t]`` and shape it [B, 1, ..., 1] to broadcast against ``like`` ([B, ...]).

    The result has ``like``'s dtype and device; ``values`` stays float64 on the CPU until indexed.
    """
    return values[t.cpu()].to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


# --- respacing (Nichol & Dhariwal 2021, Sec. 4; DDIM's tau) ---


def respace(schedule: Schedule, timesteps: "list[int] | tuple[int, ...] | Tensor") -> Schedule:
    """The schedule of the sub-process that visits only ``timesteps`` (increasing indices of ``schedule``).

    A schedule is its alpha_bar: the new one keeps alpha_bar at the kept steps, alpha_bar'_i = alpha_bar[tau_i],
    and derives its betas from it, beta'_i = 1 - alpha_bar'_i / alpha_bar'_{i-1} (alpha_bar'_{-1} = 1). Index i of
    the result stands for index tau_i of the original, so a model trained on ``schedule`` must be called with
    tau_i, not i (``samplers.ddpm_sample(..., model_timesteps=timesteps)`` does that). All T steps: the identity.
    """
    taus = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, Tensor) else timesteps)]
    T = schedule.num_timesteps
    if not taus or any(a >= b for a, b in zip(taus, taus[1:])) or taus[0] < 0 or taus[-1] >= T:
        raise ValueError(
            f"timesteps must be a non-empty, strictly increasing list of indices in 0 ... {T - 1}, "
            f"got {taus[:5]}{'...' if len(taus) > 5 else ''} ({len(taus)} values); e.g. "
            "ddim.ddim_timesteps(T, K)[::-1] or list(range(0, T, T // K))."
        )
    alpha_bar = schedule.alpha_bar[taus]
    prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return Schedule.from_betas(f"{schedule.name}[{len(taus)} of {T}]", 1.0 - alpha_bar / prev)
