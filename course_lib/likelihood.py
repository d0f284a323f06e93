"""The variational bound of a diffusion model, term by term, in nats and bits per dimension.

Ho et al. 2020, Eq. 5:  L_vlb = L_T + sum_{t>1} L_{t-1} + L_0 with
    L_T     = KL( q(x_T | x_0) || N(0, I) )                         the prior term (no parameters)
    L_{t-1} = KL( q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t) )  Gaussian vs Gaussian, Eq. 8
    L_0     = -log p_theta(x_0 | x_1)                               the discretized decoder, Eq. 13

Index convention (as everywhere in course_lib, see ``schedules``): t = 0 ... T-1, index t holds the paper's step
t+1. So ``vlb_term(t=0)`` is the decoder term L_0 and ``vlb_term(t)`` for t >= 1 is the paper's L_t (the KL at the
paper's step t+1). Units: nats per example unless a name says bits per dimension (nats / (D ln 2)). Data x_0 lie
on the 256 levels of ``distributions.quantize`` in [-1, 1], so -L_vlb bounds the log-probability of 8-bit images
and the bits/dim compare with chapter 1's VAE on the same data.

The model is any ``model(xt, t) -> eps`` (the epsilon-parameterisation, Eq. 11); its Gaussian p_theta has the mean
of ``samplers.ddpm_step`` (without clipping x0_hat) and a fixed variance sigma_t^2, beta_tilde_t ("fixed_small") or
beta_t ("fixed_large"), Ho et al. Sec. 3.2, as in their code (the first step of "fixed_large" uses beta_tilde_1),
or a learned one ("learned_range": the model returns [B, 2C, ...], eps then v; Nichol & Dhariwal 2021, Eq. 15).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import check_float
from .distributions import discretized_gaussian_log_likelihood, normal_kl, sum_except_batch
from .forward_process import predict_x0_from_eps, q_posterior_mean_variance, q_sample
from .schedules import Schedule, extract
from .variance import Variance, learned_log_variance, split_output

Model = Callable[[Tensor, Tensor], Tensor]


# --- the pieces of Eq. 5 ---------------------------------------------------------------------------


def p_log_variance(schedule: Schedule, variance: Variance = "fixed_small") -> Tensor:
    """log sigma_t^2 of p_theta(x_{t-1} | x_t) for every index t, float64 [T].

    "fixed_small": log beta_tilde_t, with index 0 (where beta_tilde is 0) set to index 1's value (finite; it is
    the decoder's variance). "fixed_large": log beta_t, with index 0 set to beta_tilde_1, as Ho et al.'s code.
    """
    if variance == "fixed_small":
        return schedule.posterior_log_variance_clipped
    if variance == "fixed_large":
        first = schedule.posterior_variance[1:2] if schedule.num_timesteps > 1 else schedule.betas[:1]
        return torch.log(torch.cat([first, schedule.betas[1:]]))
    raise ValueError(
        f"variance must be 'fixed_small' or 'fixed_large' (a learned variance comes from the model: "
        f"variance.learned_log_variance), got {variance!r}."
    )


def p_mean_variance(
    eps: Tensor, xt: Tensor, t: Tensor, schedule: Schedule, variance: Variance = "fixed_small", v: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Mean and log-variance of p_theta(x_{t-1} | x_t) from the predicted noise.

    mu_theta = mu_tilde(x0_hat, x_t) with x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), which equals
    1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - ab_t) eps) (Eq. 11).

    Args:
        eps: predicted noise [B, ...]; xt: [B, ...]; t: int64 [B] in 0 ... T-1.
        v: the model's variance output [B, ...] for "learned_range" (``variance.learned_log_variance``).
    Returns:
        mean [B, ...] and log-variance broadcastable to it ([B, 1, ...], or [B, ...] when learned).
    """
    x0_hat = predict_x0_from_eps(xt, t, eps, schedule)
    mean, _ = q_posterior_mean_variance(x0_hat, xt, t, schedule)
    if variance == "learned_range":
        if v is None:
            raise ValueError("variance='learned_range' needs v, the model's variance output.")
        return mean, learned_log_variance(v, t, schedule)
    return mean, extract(p_log_variance(schedule, variance), t, xt)


def prior_kl(x0: Tensor, schedule: Schedule) -> Tensor:
    """L_T = KL( q(x_T | x_0) || N(0, I) ) in nats per example [B]. Zero only if alpha_bar_T = 0."""
    check_float("x0", x0)
    last = torch.full((x0.shape[0],), schedule.num_timesteps - 1, dtype=torch.long)
    mean = extract(schedule.sqrt_alpha_bar, last, x0) * x0
    logvar = extract(torch.log1p(-schedule.alpha_bar), last, x0)
    return sum_except_batch(normal_kl(mean, logvar.expand_as(x0), torch.zeros_like(x0), torch.zeros_like(x0)))


def vlb_terms_from_prediction(
    x0: Tensor,
    xt: Tensor,
    t: Tensor,
    eps: Tensor,
    schedule: Schedule,
    *,
    variance: Variance = "fixed_small",
    v: Tensor | None = None,
    num_bins: int = 256,
) -> Tensor:
    """The Eq. 5 term at each example's t from a prediction already made, in nats [B]; differentiable.

    Where t = 0: L_0 = -log p_theta(x_0 | x_1), the discretized Gaussian decoder (Eq. 13). Where t >= 1:
    KL( q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t) ) between two Gaussians (Eq. 8). Computed in the inputs'
    dtype and device (``vlb_term`` evaluates in float64; ``losses.l_hybrid`` trains through this).

    Args:
        x0: data [B, ...] on the ``num_bins`` levels of ``quantize``; xt: the x_t it was noised to; t: int64 [B].
        eps: eps_theta(x_t, t) [B, ...]; v: the variance output for "learned_range".
    """
    mean, logvar = p_mean_variance(eps, xt, t, schedule, variance, v=v)
    q_mean, _ = q_posterior_mean_variance(x0, xt, t, schedule)
    q_logvar = extract(schedule.posterior_log_variance_clipped, t, xt)  # exact for t >= 1; t = 0 is not a KL
    kl = sum_except_batch(normal_kl(q_mean, q_logvar.expand_as(x0), mean, logvar.expand_as(x0)))
    decoder_nll = -sum_except_batch(discretized_gaussian_log_likelihood(x0, mean, logvar.expand_as(x0), num_bins))
    return torch.where(t.to(kl.device) == 0, decoder_nll, kl)


def vlb_term(
    model: Model,
    x0: Tensor,
    t: Tensor,
    schedule: Schedule,
    *,
    variance: Variance = "fixed_small",
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    num_bins: int = 256,
) -> Tensor:
    """One term of Eq. 5 per example, in nats [B], at a single draw x_t ~ q(x_t | x_0).

    t = 0: the decoder term L_0; t >= 1: the KL at that step (``vlb_terms_from_prediction``); ``prior_kl`` is
    the remaining term L_T.

    Args:
        model: ``model(xt, t) -> eps`` ([B, 2C, ...]: eps then v, for "learned_range"); called once on the batch.
        x0: data [B, ...] on the ``num_bins`` levels of ``quantize`` in [-1, 1].
        t: int64 [B], indices in 0 ... T-1 (may differ per example).
        noise: the eps of x_t = sqrt(ab) x0 + sqrt(1 - ab) eps; drawn with ``generator`` if None.
    Returns:
        float32 [B] on the CPU.
    """
    # The KL of two close Gaussians cancels digits: the arithmetic is float64 on the CPU (MPS has no float64);
    # only the model runs on x0's device, in x0's dtype.
    device, dtype = x0.device, x0.dtype
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    x0, t = x0.detach().cpu().double(), t.cpu()
    xt = q_sample(x0, t, schedule, noise=noise.detach().cpu().double())
    out = model(xt.to(device=device, dtype=dtype), t.to(device)).detach().cpu().double()
    eps, v = split_output(out, xt, variance)
    return vlb_terms_from_prediction(x0, xt, t, eps, schedule, variance=variance, v=v, num_bins=num_bins).float()


def vlb_terms_by_variance(
    model: Model,
    x0: Tensor,
    t: Tensor,
    noise: Tensor,
    schedule: Schedule,
    *,
    variances: Sequence[Variance] = ("learned_range", "fixed_small", "fixed_large"),
    num_bins: int = 256,
) -> tuple[dict[str, Tensor], Tensor]:
    """The Eq. 5 term at each example's t under several variances, with one model call and the same mean.

    ``vlb_term`` for each variance in ``variances``, sharing x_t and the model's output: the model returns eps and
    the raw v ([B, 2C, ...]); the fixed variances use its eps and ignore its v. Evaluated in float64 on the CPU.

    Args:
        model: ``model(xt, t) -> [B, 2C, ...]``, eps then the raw v in [-1, 1] ("learned_range"); runs on the
            device of its parameters, in float32.
        x0: data [B, C, ...] on the ``num_bins`` levels of ``quantize`` in [-1, 1]; t: int64 [B] in 0 ... T-1.
        noise: the eps of x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, [B, C, ...].
    Returns:
        ({variance: float64 [B] in nats}, Eq. 15's v = (raw + 1) / 2 per pixel, float64 [B, C, ...]).
    """
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}.")
    x0, noise, t = x0.detach().double().cpu(), noise.detach().double().cpu(), t.cpu()
    xt = q_sample(x0, t, schedule, noise=noise)
    at = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    with torch.no_grad():
        out = model(xt.to(device=at, dtype=torch.float32), t.to(at)).double().cpu()
    eps, v = split_output(out, xt, "learned_range")
    terms = {
        var: vlb_terms_from_prediction(
            x0, xt, t, eps, schedule, variance=var, v=v if var == "learned_range" else None, num_bins=num_bins
        )
        for var in variances
    }
    return terms, (v + 1) / 2


# --- the whole bound: a stratified estimate over t ---------------------------------------------------


def timestep_strata(num_timesteps: int, num_strata: int, dense: int = 0, tail: int = 0) -> list[tuple[int, int]]:
    """Split the indices 0 ... T-1 into ``num_strata`` contiguous ranges [start, stop).

    The first ``dense`` indices get a range each (the bound changes fastest there), and so do the last ``tail``
    ones (under the cosine schedule the last beta is clipped to 0.999, and that one term, about 40 nats on the
    digits, would otherwise be sampled once in a wide range: an unbiased but very noisy estimate). The rest are
    split into ranges whose sizes grow geometrically with t, because the terms shrink with t (where the room runs
    out, ranges are merged, so there may be slightly fewer than asked). With ``num_strata = num_timesteps`` every
    index is its own range and the estimate below is exact up to the one x_t drawn per term.
    """
    T = num_timesteps
    if not 1 <= num_strata <= T:
        raise ValueError(f"num_strata must be in 1 ... {T} (the number of timesteps), got {num_strata}.")
    if num_strata == T:
        return [(t, t + 1) for t in range(T)]
    if dense < 0 or tail < 0 or dense + tail >= num_strata:
        raise ValueError(
            f"dense and tail must be >= 0 with dense + tail <= num_strata - 1 = {num_strata - 1} (at "
            f"least one range must be left for the other indices), got dense={dense}, tail={tail}."
        )
    rest, stop = num_strata - dense - tail, T - tail
    # geometric boundaries from `dense` to `stop`, made strictly increasing
    edges = torch.logspace(math.log10(dense + 1), math.log10(stop + 1), rest + 1, dtype=torch.float64) - 1
    bounds = [dense]
    for e in edges[1:].round().long().tolist():
        bounds.append(max(e, bounds[-1] + 1))
    bounds[-1] = stop
    while len(bounds) > 2 and bounds[-2] >= stop:  # too many ranges for the room left: merge the overflow
        bounds.pop(-2)
    return (
        [(t, t + 1) for t in range(dense)] + list(zip(bounds[:-1], bounds[1:])) + [(t, t + 1) for t in range(stop, T)]
    )


@dataclass(frozen=True)
class VLBEstimate:
    """-L_vlb of a data set, in bits per dimension, and where it sits in t.

    bits_per_dim: the total, prior + decoder + sum of the KL terms (an upper bound on -log2 p per dimension
        of the 8-bit data, estimated: one x_t, and for a range of t one t, per example and term).
    stderr_bits_per_dim: its standard error over examples.
    prior_bits_per_dim, decoder_bits_per_dim: L_T and L_0.
    strata: the ranges [start, stop) of indices; ``terms_bits_per_dim[j]`` is range j's share of the total,
        ``per_step_bits_per_dim[j]`` the same divided by the range's size (the average L_t in it).
    per_example_bits_per_dim: each example's estimate [N], float64. Two models estimated with the same
        generator seed on the same data see the same t and noise, so their per-example difference is a paired
        comparison, with a much smaller standard error than either estimate.
    """

    bits_per_dim: float
    stderr_bits_per_dim: float
    prior_bits_per_dim: float
    decoder_bits_per_dim: float
    strata: list[tuple[int, int]]
    terms_bits_per_dim: list[float]
    per_step_bits_per_dim: list[float]
    num_examples: int
    per_example_bits_per_dim: Tensor | None = None


@torch.no_grad()
def vlb_bits_per_dim(
    model: Model,
    x0: Tensor,
    schedule: Schedule,
    *,
    strata: Sequence[tuple[int, int]] | None = None,
    variance: Variance = "fixed_small",
    batch_size: int = 256,
    num_bins: int = 256,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> VLBEstimate:
    """Estimate L_vlb (Eq. 5) of ``model`` on the data ``x0``, in bits per dimension.

    Stratified over t: for each range [a, b) of ``strata`` (default: every index, exact but T model calls per
    batch) and each example, one t is drawn uniformly in [a, b) and (b - a) L_t stands for the range's sum.
    That is unbiased for sum_t L_t; ranges of size 1 are exact.

    Args:
        model: ``model(xt, t) -> eps``, in eval mode, on ``device``.
        x0: data [N, ...] on the ``num_bins`` levels of ``quantize`` in [-1, 1] (e.g. ``quantize(test_images)``).
        variance: sigma_t^2 of p_theta, "fixed_small" (beta_tilde_t, the samplers' default) or "fixed_large".
        generator: the source of t and of the noise (CPU generator), for a reproducible estimate.
    """
    check_float("x0", x0)
    T = schedule.num_timesteps
    strata = [(t, t + 1) for t in range(T)] if strata is None else [(int(a), int(b)) for a, b in strata]
    covered = [t for a, b in strata for t in range(a, b)]
    if sorted(covered) != list(range(T)):
        raise ValueError(
            f"strata must cover every index 0 ... {T - 1} exactly once (got {len(covered)} indices "
            f"from {len(strata)} ranges); build them with timestep_strata(T, num_strata)."
        )
    if device is None:
        try:
            device = next(model.parameters()).device  # type: ignore[attr-defined]
        except (AttributeError, StopIteration):
            device = x0.device
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    num_dims = x0[0].numel()
    to_bpd = 1.0 / (num_dims * math.log(2.0))
    per_example = torch.zeros(x0.shape[0], len(strata), dtype=torch.float64)
    prior = torch.zeros(x0.shape[0], dtype=torch.float64)
    batches = list(range(0, x0.shape[0], batch_size))
    bar = tqdm(total=len(batches) * len(strata), desc="L_vlb terms", disable=not progress)
    for start in batches:
        x = x0[start : start + batch_size]
        prior[start : start + len(x)] = prior_kl(x.double(), schedule).cpu()
        x = x.to(device)
        for j, (a, b) in enumerate(strata):
            t = torch.randint(a, b, (len(x),), generator=generator)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(device)
            term = vlb_term(model, x, t, schedule, variance=variance, noise=noise, num_bins=num_bins)
            per_example[start : start + len(x), j] = (b - a) * term.double().cpu()
            bar.update()
    bar.close()
    total = (prior + per_example.sum(dim=1)) * to_bpd  # [N]
    terms = (per_example.mean(dim=0) * to_bpd).tolist()
    sizes = [b - a for a, b in strata]
    decoder = next((terms[j] for j, (a, b) in enumerate(strata) if (a, b) == (0, 1)), float("nan"))
    return VLBEstimate(
        bits_per_dim=float(total.mean()),
        stderr_bits_per_dim=float(total.std() / math.sqrt(len(total))) if len(total) > 1 else float("nan"),
        prior_bits_per_dim=float(prior.mean() * to_bpd),
        decoder_bits_per_dim=decoder,
        strata=list(strata),
        terms_bits_per_dim=terms,
        per_step_bits_per_dim=[v / n for v, n in zip(terms, sizes)],
        num_examples=int(x0.shape[0]),
        per_example_bits_per_dim=total,
    )


# --- Eq. 12: the weight that L_simple drops -----------------------------------------------------------


def vlb_weight(schedule: Schedule, variance: Variance = "fixed_small") -> Tensor:
    """lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)) for every index t, float64 [T].

    With the epsilon-parameterisation, L_{t-1} = lambda_t E||eps - eps_theta(x_t, t)||^2 + C (Eq. 12), C = 0 for
    sigma_t^2 = beta_tilde_t. L_simple sets lambda_t = 1: relative to the bound it down-weights the indices where
    lambda_t is large, the small t (Ho et al. Sec. 3.4). At index 0 the true term is the decoder L_0, not a
    KL; the value returned there is the same formula (with sigma_1^2 of ``p_log_variance``), for plotting.
    """
    sigma2 = torch.exp(p_log_variance(schedule, variance))
    return schedule.betas**2 / (2 * sigma2 * schedule.alphas * (1 - schedule.alpha_bar))
