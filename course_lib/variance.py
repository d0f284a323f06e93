"""The variance of p_theta(x_{t-1} | x_t): fixed (Ho et al. 2020, Sec. 3.2) or learned (Nichol & Dhariwal 2021, Eq. 15).

A fixed variance is sigma_t^2 = beta_tilde_t ("fixed_small") or beta_t ("fixed_large"). A learned one comes from a
model that returns [B, 2C, ...]: eps in the first C channels, then v, an interpolation weight between the two in
the log domain (``learned_log_variance``). ``split_output`` separates the halves; samplers, the variational bound
(``likelihood``) and the hybrid loss (``losses``) all read the model's output through it.
Index convention t = 0 ... T-1 (see ``schedules``); variances are per element, log-variances in nats.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ._checks import check_float
from .schedules import Schedule, extract

Variance = Literal["fixed_small", "fixed_large", "learned_range"]
VARIANCES = ("fixed_small", "fixed_large", "learned_range")


def learned_log_variance(v: Tensor, t: Tensor, schedule: Schedule) -> Tensor:
    """log Sigma_theta = frac log beta_t + (1 - frac) log beta_tilde_t, frac = (v + 1) / 2. Nichol & Dhariwal Eq. 15.

    v is the model's second output [B, ...] (v = -1: beta_tilde, v = 1: beta; Eq. 15's v is frac), as in
    improved-diffusion and diffusers' ``variance_type="learned_range"``; t: int64 [B]. log beta_tilde_0 = -inf is
    replaced by log beta_tilde_1 (``posterior_log_variance_clipped``); it only matters for the decoder term.
    Returns: log Sigma_theta [B, ...], v's dtype.
    """
    check_float("v", v)
    frac = (v + 1) / 2
    log_beta = extract(torch.log(schedule.betas), t, v)
    log_beta_tilde = extract(schedule.posterior_log_variance_clipped, t, v)
    return frac * log_beta + (1 - frac) * log_beta_tilde  # Eq. 15


def split_output(out: Tensor, x: Tensor, variance: Variance) -> tuple[Tensor, Tensor | None]:
    """(eps, v) from a model's output: [B, 2C, ...] -> two [B, C, ...] halves for "learned_range", else (out, None)."""
    if variance == "learned_range":
        if out.ndim < 2 or out.shape[1] != 2 * x.shape[1]:
            raise ValueError(
                f"variance='learned_range' needs a model with 2C = {2 * x.shape[1]} output channels "
                f"(eps, then v), got shape {tuple(out.shape)}; e.g. UNetConfig(out_channels=2 * C)."
            )
        return out[:, : x.shape[1]], out[:, x.shape[1] :]
    if out.shape != x.shape and out.ndim >= 2 and out.shape[1] == 2 * x.shape[1]:
        raise ValueError(
            f"the model returns {out.shape[1]} channels (eps, then v: a learned-variance model) but "
            f"variance={variance!r} is fixed; sample it with variance='learned_range', or fix its "
            f"variance on purpose by keeping eps only: lambda x, t: model(x, t)[:, :{x.shape[1]}]."
        )
    return out, None
