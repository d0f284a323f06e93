"""DDIM: sampling a model trained with L_simple by a shorter, possibly deterministic, process. Song et al. 2021.

The non-Markovian forward process q_sigma (Eq. 7) has the marginals q(x_t | x_0) of DDPM, so an eps-model trained
with L_simple serves every member of the family. Its generative step (Eq. 12) from index t to an earlier index s:

    x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_theta(x_t, t) + sigma z,
    x0_hat = (x_t - sqrt(1 - ab_t) eps_theta) / sqrt(ab_t),
    sigma(eta) = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)                      (Eq. 16)

eta = 1 with s = t - 1 is DDPM with sigma^2 = beta_tilde; eta = 0 is deterministic (Euler's method on the ODE
d xbar = eps_theta d sigma with xbar = x / sqrt(ab), sigma = sqrt((1 - ab) / ab), Eq. 14), and so can be run
backwards: inversion. "sigma hat" of Table 1 is sqrt(1 - ab_t / ab_s) itself (DDPM with sigma^2 = beta), not eta = 1.

Index convention as in ``schedules`` (t = 0 ... T-1, diffusers'); ab = alpha_bar. A sampling schedule tau is a
strictly decreasing list of indices; after its last index comes the clean data, index -1, whose ab is
``alpha_bar_final``: 1.0 (diffusers' ``set_alpha_to_one=True``, our default: the last step returns x0_hat) or
``schedule.alpha_bar[0]`` (``set_alpha_to_one=False``). The model is any ``model(xt, t, **kw) -> eps``.

Besides DDIM's own tau, ``karras_sigmas`` gives the noise levels of Karras et al. 2022 ("Elucidating the Design
Space of Diffusion-Based Generative Models", Eq. 5), and ``timesteps_for_sigmas`` the trained indices nearest to them.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import check_float, check_same_shape
from .samplers import SampleStep
from .schedules import Schedule

Spacing = Literal["leading", "trailing", "linspace", "quadratic"]


# --- the step (Eqs. 12 and 16) -------------------------------------------------------------------------


def _alpha_bar(schedule: Schedule, t: int, alpha_bar_final: float) -> float:
    return alpha_bar_final if t < 0 else schedule.alpha_bar[t].item()


def ddim_sigma(alpha_bar_t: float, alpha_bar_prev: float, eta: float) -> float:
    """sigma_t(eta) of Eq. 16 for a step from noise level ab_t to the less noisy ab_prev (ab_prev >= ab_t)."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM's beta_tilde), got {eta}.")
    if not 0 < alpha_bar_t <= alpha_bar_prev <= 1:
        raise ValueError(
            f"need 0 < alpha_bar_t <= alpha_bar_prev <= 1 (a step towards the data), got "
            f"alpha_bar_t={alpha_bar_t:.6g}, alpha_bar_prev={alpha_bar_prev:.6g}."
        )
    return eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev))


def ddim_step(
    eps: Tensor,
    xt: Tensor,
    t: int,
    t_prev: int,
    schedule: Schedule,
    *,
    eta: float = 0.0,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
    alpha_bar_final: float = 1.0,
) -> SampleStep:
    """One DDIM step (Eq. 12) from index t to index t_prev.

    Args:
        eps: eps_theta(x_t, t) [B, ...]; xt: x_t [B, ...].
        t: the index of xt, 0 ... T-1.
        t_prev: the index to step to: earlier than t when sampling, -1 for the clean data (ab = alpha_bar_final);
            later than t for an inversion step (eta must then be 0: only the deterministic process runs backwards).
        eta: 0 (deterministic) ... 1 (DDPM's posterior variance when t_prev = t - 1); larger adds more noise.
        noise: z [B, ...]; drawn with ``generator`` when sigma > 0 and None.
        clip_x0: clamp x0_hat to [-1, 1] (diffusers' ``clip_sample``); eps is kept as predicted.
    Returns:
        SampleStep(t, x_{t_prev}, x0_hat).
    """
    check_float("xt", xt)
    check_same_shape("eps", eps, "xt", xt)
    T = schedule.num_timesteps
    t, t_prev = int(t), int(t_prev)
    if not 0 <= t < T or not -1 <= t_prev < T or t_prev == t:
        raise ValueError(
            f"need t in 0 ... {T - 1} and t_prev in -1 ... {T - 1}, t_prev != t; got t={t}, t_prev={t_prev}."
        )
    if t_prev > t and eta != 0:
        raise ValueError(f"an inversion step (t_prev={t_prev} > t={t}) needs eta = 0, got eta={eta}.")
    ab_t, ab_prev = _alpha_bar(schedule, t, alpha_bar_final), _alpha_bar(schedule, t_prev, alpha_bar_final)
    x0_hat = (xt - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)  # Eq. 12, "predicted x0"
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
    sigma = ddim_sigma(ab_t, ab_prev, eta) if t_prev < t else 0.0  # Eq. 16
    x = math.sqrt(ab_prev) * x0_hat + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps  # Eq. 12, "direction to x_t"
    if sigma > 0:
        if noise is None:
            noise = torch.randn(xt.shape, generator=generator, dtype=xt.dtype).to(xt.device)
        check_same_shape("noise", noise, "xt", xt)
        x = x + sigma * noise  # Eq. 12, random noise
    return SampleStep(t, x, x0_hat)


# --- which steps: tau ----------------------------------------------------------------------------------


def ddim_timesteps(num_timesteps: int, num_steps: int, spacing: Spacing = "leading") -> list[int]:
    """A sampling schedule tau: ``num_steps`` strictly decreasing indices in 0 ... T-1.

    "leading": 0, k, 2k, ... with k = T // S (DDIM's "linear" tau; diffusers' "leading"; never visits T-1).
    "trailing": round(T - i T/S) - 1 for i = 0 ... S-1 (starts at T-1; Lin et al. 2024, Table 2).
    "linspace": round(linspace(0, T-1, S)) (diffusers' "linspace").
    "quadratic": floor(c i^2) up to 0.8 T (DDIM Sec. 4.2's quadratic tau), pushed apart where rounding collides.

    Why "leading" is the default although it is not the best choice at few steps: it is the tau of DDIM's code
    (``range(0, T, T // S)``) and the default ``timestep_spacing`` of diffusers' ``DDIMScheduler``, so a call
    without ``spacing`` reproduces both, and the measured results that used this default stay comparable. Its cost:
    the first index is T - T/S, so x_T ~ N(0, I) is handed to the model at a step where the noised data still
    carry signal (sqrt(alpha_bar) = 0.15 at index 900 of the cosine schedule of T = 1000, 5e-5 at 999), the
    start-index problem of Lin et al. 2024. For few steps pass ``spacing="trailing"``, which starts at T - 1.
    """
    T, S = num_timesteps, num_steps
    if not isinstance(S, int) or not 1 <= S <= T:
        raise ValueError(f"num_steps must be an int in 1 ... T = {T}, got {S!r}.")
    if spacing == "leading":
        taus = [i * (T // S) for i in range(S)]
    elif spacing == "trailing":
        taus = sorted(round(T - i * T / S) - 1 for i in range(S))
    elif spacing == "linspace":
        taus = [round(v) for v in torch.linspace(0, T - 1, S, dtype=torch.float64).tolist()]
    elif spacing == "quadratic":
        taus = [int(v) for v in (torch.linspace(0, math.sqrt(0.8 * T), S, dtype=torch.float64) ** 2).tolist()]
        for i in range(1, S):
            taus[i] = max(taus[i], taus[i - 1] + 1)
        if taus[-1] >= T:
            raise ValueError(f"{S} quadratic steps do not fit in T = {T}; use fewer steps or another spacing.")
    else:
        raise ValueError(f"spacing must be 'leading', 'trailing', 'linspace' or 'quadratic', got {spacing!r}.")
    return taus[::-1]


def karras_sigmas(num_steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022's noise levels for sampling (their Eq. 5; rho = 7 is their choice):

        sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i = 0 ... N-1.

    sigma is the noise of xbar = x / sqrt(ab), sigma = sqrt((1 - ab) / ab) (the ODE page's variable). rho = 1 is
    uniform in sigma; a larger rho shortens the steps near sigma_min and lengthens those near sigma_max. The paper
    appends sigma_N = 0 (the data); here that is index -1, after the last step, as in every sampler of this module.
    Args: num_steps N >= 2; 0 < sigma_min < sigma_max; rho > 0.
    Returns: [N] float64, strictly decreasing, from sigma_max (i = 0) to sigma_min (i = N-1).
    """
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an int >= 2 (the two ends sigma_max and sigma_min), got {num_steps!r}.")
    if not 0 < sigma_min < sigma_max or rho <= 0:
        raise ValueError(
            f"need 0 < sigma_min < sigma_max and rho > 0, got sigma_min={sigma_min}, sigma_max={sigma_max}, rho={rho}."
        )
    ramp = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho  # Eq. 5 of Karras et al.


def timesteps_for_sigmas(sigmas: Tensor | Sequence[float], schedule: Schedule) -> list[int]:
    """The trained indices nearest to noise levels ``sigmas`` (a tau for the samplers of this module).

    A model trained at T discrete indices is only evaluated where it was trained, so each sigma is rounded to the
    index whose sigma_t = sqrt((1 - ab_t) / ab_t) is nearest, as Karras et al.'s code (``round_sigma``) does for
    discrete-time models. Args: sigmas [N], strictly decreasing, within [sigma_0, sigma_{T-1}] of ``schedule``.
    Returns: N strictly decreasing indices in 0 ... T-1. Raises ValueError where two sigmas round to one index.
    """
    s = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    ab = schedule.alpha_bar.double()
    grid = ((1 - ab) / ab).sqrt()  # [T], increasing with t
    if s.numel() == 0 or bool((s[1:] >= s[:-1]).any()):
        raise ValueError(f"sigmas must be a non-empty, strictly decreasing list, got {s.tolist()[:5]}.")
    if float(s.max()) > float(grid[-1]) * (1 + 1e-9) or float(s.min()) < float(grid[0]) * (1 - 1e-9):
        raise ValueError(
            f"sigmas must lie in [{grid[0].item():.4g}, {grid[-1].item():.4g}], the range of the "
            f"schedule's sigma_t, got [{s.min().item():.4g}, {s.max().item():.4g}]."
        )
    taus = (s[:, None] - grid[None]).abs().argmin(1).tolist()
    if len(set(taus)) < len(taus):
        raise ValueError(
            f"{len(taus)} noise levels round to only {len(set(taus))} distinct indices of T = "
            f"{len(grid)}; use fewer steps."
        )
    return taus


def _check_tau(timesteps: Sequence[int], T: int) -> list[int]:
    taus = [int(t) for t in timesteps]
    if not taus or any(a <= b for a, b in zip(taus, taus[1:])) or taus[0] >= T or taus[-1] < 0:
        raise ValueError(
            f"timesteps must be a non-empty, strictly decreasing list of indices in 0 ... {T - 1}, "
            f"got {taus[:5]}{'...' if len(taus) > 5 else ''}; build one with ddim_timesteps(T, S)."
        )
    return taus


# --- the samplers --------------------------------------------------------------------------------------


def ddim_sample_loop(
    model: Callable[..., Tensor],
    shape: tuple[int, ...],
    schedule: Schedule,
    timesteps: Sequence[int],
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    x_T: Tensor | None = None,
    clip_x0: bool = False,
    alpha_bar_final: float = 1.0,
    progress: bool = True,
    **model_kwargs,
) -> Iterator[SampleStep]:
    """DDIM sampling (Song et al. Eq. 12 over tau), yielding every step.

    Starts from x_T ~ N(0, I) (or ``x_T``) at index timesteps[0]; step i goes from timesteps[i] to timesteps[i+1],
    the last to the data (index -1). The noise z is drawn with ``generator`` only where sigma > 0, so eta = 0 is
    deterministic given x_T. Yields SampleStep(t, x_{t_prev}, x0_hat); the last ``x`` is the sample.
    """
    taus = _check_tau(timesteps, schedule.num_timesteps)
    device = torch.device(device)
    x = torch.randn(shape, generator=generator).to(device) if x_T is None else x_T.to(device)
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x.shape)}, expected {tuple(shape)}.")
    for t, t_prev in tqdm(
        list(zip(taus, taus[1:] + [-1])), desc=f"DDIM sampling ({len(taus)} steps)", disable=not progress, leave=False
    ):
        with torch.no_grad():
            eps = model(x, torch.full((shape[0],), t, dtype=torch.long, device=device), **model_kwargs).float()
        step = ddim_step(
            eps, x, t, t_prev, schedule, eta=eta, generator=generator, clip_x0=clip_x0, alpha_bar_final=alpha_bar_final
        )
        x = step.x
        yield step


def ddim_sample(
    model: Callable[..., Tensor],
    shape: tuple[int, ...],
    schedule: Schedule,
    timesteps: Sequence[int],
    *,
    callback: Callable[[SampleStep], None] | None = None,
    **kwargs,
) -> Tensor:
    """``ddim_sample_loop`` run to the end: returns x_0 [B, ...] (unclamped). ``callback(step)`` after every step."""
    x = None
    for step in ddim_sample_loop(model, shape, schedule, timesteps, **kwargs):
        if callback is not None:
            callback(step)
        x = step.x
    return x


def ddim_invert(
    model: Callable[..., Tensor],
    x0: Tensor,
    schedule: Schedule,
    timesteps: Sequence[int],
    *,
    progress: bool = True,
    callback: Callable[[SampleStep], None] | None = None,
    **model_kwargs,
) -> Tensor:
    """Run the deterministic DDIM process backwards, data -> noise: the x_T that ``ddim_sample`` (eta = 0, same
    timesteps) maps back to about ``x0``. Up to discretisation: the error falls as the steps get finer.

    Step i goes from index taus[i] to taus[i-1] (tau reversed; the first from the data, index -1, with ab = 1),
    with eps_theta evaluated where the step starts (explicit Euler on Eq. 14). diffusers' DDIMInverseScheduler,
    in its pipelines, evaluates eps at the index the step goes to instead; both are first-order.
    Returns x at index timesteps[0], [B, ...].
    """
    check_float("x0", x0)
    taus = _check_tau(timesteps, schedule.num_timesteps)[::-1]  # increasing
    x = x0
    for t_from, t_to in tqdm(
        list(zip([-1] + taus[:-1], taus)), desc="DDIM inversion", disable=not progress, leave=False
    ):
        if t_from < 0:  # at the data eps is undefined; the first step is x_t = sqrt(ab) x0 + sqrt(1 - ab) eps(x0, t)
            with torch.no_grad():
                eps = model(x, torch.full((x.shape[0],), t_to, dtype=torch.long, device=x.device), **model_kwargs)
            ab = schedule.alpha_bar[t_to].item()
            x = math.sqrt(ab) * x + math.sqrt(1 - ab) * eps.float()
            step = SampleStep(t_to, x, x0)
        else:
            with torch.no_grad():
                eps = model(x, torch.full((x.shape[0],), t_from, dtype=torch.long, device=x.device), **model_kwargs)
            step = ddim_step(eps.float(), x, t_from, t_to, schedule, eta=0.0)
            x = step.x
        if callback is not None:
            callback(step)
    return x


# --- between two noises --------------------------------------------------------------------------------


def slerp(x_a: Tensor, x_b: Tensor, alpha: float | Tensor) -> Tensor:
    """Spherical interpolation per example: sin((1-a) theta)/sin(theta) x_a + sin(a theta)/sin(theta) x_b.

    Gaussian noise lives near a sphere of radius sqrt(D); a straight line between two samples passes inside it
    (its midpoint has norm ~ sqrt(D/2)), where the model never saw inputs. DDIM Sec. 5.3, Fig. 6.
    Args: x_a, x_b [B, ...]; alpha in [0, 1], a float or a [K] tensor (then the result is [K, B, ...]).
    """
    check_float("x_a", x_a)
    check_same_shape("x_a", x_a, "x_b", x_b)
    a = torch.as_tensor(alpha, dtype=torch.float64)
    if bool(((a < 0) | (a > 1)).any()):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}.")
    fa, fb = x_a.reshape(x_a.shape[0], -1).double(), x_b.reshape(x_b.shape[0], -1).double()
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1))
    theta = torch.arccos(cos.clamp(-1, 1))  # [B]
    aa = a.reshape(-1, 1, 1) if a.ndim else a.reshape(1, 1, 1)
    th = theta.reshape(1, -1, 1)
    small = th < 1e-6  # nearly parallel: the straight line is the limit
    wa = torch.where(small, 1 - aa, torch.sin((1 - aa) * th) / torch.sin(th).clamp_min(1e-12))
    wb = torch.where(small, aa, torch.sin(aa * th) / torch.sin(th).clamp_min(1e-12))
    out = (wa * fa + wb * fb).to(x_a.dtype).reshape(-1, *x_a.shape)
    return out if a.ndim else out[0]
