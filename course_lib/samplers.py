"""Samplers that run the learned reverse process p_theta(x_{t-1} | x_t).

DDPM ancestral sampling: Ho et al. 2020, Algorithm 2, with a fixed variance (their Sec. 3.2) or a learned one
(Nichol & Dhariwal 2021, Eq. 15; ``variance``), on the full schedule or a respaced one. Index convention t = T-1 ... 0 (diffusers'), so the
last step (t = 0) adds no noise. The model is any callable ``model(xt, t, **model_kwargs) -> eps``.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import check_float, check_same_shape
from .forward_process import predict_x0_from_eps
from .schedules import Schedule
from .variance import VARIANCES, Variance, learned_log_variance, split_output  # noqa: F401 (also served from here)


class SampleStep(NamedTuple):
    """One reverse step: the index t just denoised, x_{t-1} (called ``x``) and the model's x0 estimate."""

    t: int
    x: Tensor
    x0_hat: Tensor


def ddpm_step(
    eps: Tensor,
    xt: Tensor,
    t: int,
    schedule: Schedule,
    *,
    variance: Variance = "fixed_small",
    clip_x0: bool = False,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    v: Tensor | None = None,
) -> SampleStep:
    """One step of Algorithm 2: x_{t-1} = mu_theta(x_t, t) + sigma_t z.

    mu_theta is the posterior mean of q(x_{t-1} | x_t, x0_hat) with x0_hat = (x_t - sqrt(1-ab_t) eps)/sqrt(ab_t),
    which equals 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - ab_t) eps) (line 4) when ``clip_x0`` is False.

    Args:
        eps: the model's noise prediction [B, ...].
        xt: the current sample [B, ...].
        t: the integer index being denoised, 0 ... T-1.
        variance: sigma_t^2 = beta_tilde_t ("fixed_small") or beta_t ("fixed_large"), Ho et al. Sec. 3.2; or
            "learned_range": Sigma_theta from the model's ``v`` (``learned_log_variance``, Nichol & Dhariwal).
        clip_x0: clamp x0_hat to [-1, 1] before forming the mean (diffusers' ``clip_sample``).
        noise: z [B, ...]; drawn from N(0, I) with ``generator`` if None. Unused at t = 0.
        v: the model's variance output [B, ...], required with "learned_range".
    Returns:
        SampleStep(t, x_{t-1}, x0_hat).
    """
    check_float("xt", xt)
    check_same_shape("eps", eps, "xt", xt)
    T = schedule.num_timesteps
    if not 0 <= int(t) < T:
        raise ValueError(f"t must be an integer index in 0 ... {T - 1}, got {t}.")
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}.")
    if (variance == "learned_range") != (v is not None):
        raise ValueError(
            "pass v (the model's variance output) exactly when variance='learned_range'; "
            f"got variance={variance!r} and v {'given' if v is not None else 'missing'}."
        )
    t = int(t)
    tt = torch.full((xt.shape[0],), t, dtype=torch.long)
    x0_hat = predict_x0_from_eps(xt, tt, eps, schedule)
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
    c1, c2 = schedule.posterior_mean_coef1[t].item(), schedule.posterior_mean_coef2[t].item()
    mean = c1 * x0_hat + c2 * xt  # Eq. 7
    if t == 0:  # line 3: z = 0 on the last step
        return SampleStep(t, mean, x0_hat)
    if noise is None:
        noise = torch.randn(xt.shape, generator=generator, dtype=xt.dtype).to(xt.device)
    check_same_shape("noise", noise, "xt", xt)
    if variance == "learned_range":
        check_same_shape("v", v, "xt", xt)
        std = torch.exp(0.5 * learned_log_variance(v, tt.to(v.device), schedule))
    else:
        std = (schedule.posterior_variance if variance == "fixed_small" else schedule.betas)[t].item() ** 0.5
    return SampleStep(t, mean + std * noise, x0_hat)


def ddpm_sample_loop(
    model: Callable[..., Tensor],
    shape: tuple[int, ...],
    schedule: Schedule,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    x_T: Tensor | None = None,
    variance: Variance = "fixed_small",
    clip_x0: bool = False,
    model_timesteps: Sequence[int] | None = None,
    progress: bool = True,
    **model_kwargs,
) -> Iterator[SampleStep]:
    """Algorithm 2, yielding every step so callers can plot the trajectory.

    Args:
        model: eps_theta, called as ``model(xt, t, **model_kwargs)`` with t int64 [B].
        shape: [B, ...] of the samples.
        generator: a CPU ``torch.Generator`` for x_T and every z, so a seed fixes the whole trajectory.
        x_T: start from this noise instead of drawing it (line 1).
        variance: see ``ddpm_step``; with "learned_range" the model returns [B, 2C, ...]: eps, then v.
        model_timesteps: for a respaced schedule (``schedules.respace``), the original index of each of its
            steps: the model is called with ``model_timesteps[t]``, the step uses the respaced constants at t.
    Yields:
        SampleStep(t, x_{t-1}, x0_hat) for t = T-1 ... 0; the last ``x`` is the sample.
    """
    device = torch.device(device)
    x = torch.randn(shape, generator=generator).to(device) if x_T is None else x_T.to(device)
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x.shape)}, expected {tuple(shape)}.")
    T = schedule.num_timesteps
    if model_timesteps is not None and len(model_timesteps) != T:
        raise ValueError(
            f"model_timesteps must give one original index per step of the schedule ({T}), "
            f"got {len(model_timesteps)}; pass the timesteps you gave schedules.respace."
        )
    for t in tqdm(range(T - 1, -1, -1), desc="DDPM sampling", disable=not progress, leave=False):
        t_model = t if model_timesteps is None else int(model_timesteps[t])
        tt = torch.full((shape[0],), t_model, dtype=torch.long, device=device)
        with torch.no_grad():
            out = model(x, tt, **model_kwargs).float()
        eps, v = split_output(out, x, variance)
        noise = torch.randn(shape, generator=generator).to(device) if t > 0 else None
        step = ddpm_step(eps, x, t, schedule, variance=variance, clip_x0=clip_x0, noise=noise, v=v)
        x = step.x
        yield step


def ddpm_sample(
    model: Callable[..., Tensor],
    shape: tuple[int, ...],
    schedule: Schedule,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    x_T: Tensor | None = None,
    variance: Variance = "fixed_small",
    clip_x0: bool = False,
    callback: Callable[[SampleStep], None] | None = None,
    progress: bool = True,
    model_timesteps: Sequence[int] | None = None,
    **model_kwargs,
) -> Tensor:
    """Algorithm 2 of Ho et al.: start from x_T ~ N(0, I) and apply ``ddpm_step`` for t = T-1 ... 0.

    ``callback(step)`` is called after every step (e.g. to keep a few frames for a trajectory strip).
    Returns the samples x_0, [B, ...] (unclamped; clamp to [-1, 1] before display).
    """
    x = None
    for step in ddpm_sample_loop(
        model,
        shape,
        schedule,
        generator=generator,
        device=device,
        x_T=x_T,
        variance=variance,
        clip_x0=clip_x0,
        model_timesteps=model_timesteps,
        progress=progress,
        **model_kwargs,
    ):
        if callback is not None:
            callback(step)
        x = step.x
    return x


def keep_frames(every: int = 100) -> tuple[list[SampleStep], Callable[[SampleStep], None]]:
    """A (frames, callback) pair: the callback stores every ``every``-th step and the final one (t = 0)."""
    frames: list[SampleStep] = []

    def callback(step: SampleStep) -> None:
        if step.t % every == 0:
            frames.append(SampleStep(step.t, step.x.detach().cpu(), step.x0_hat.detach().cpu()))

    return frames, callback
