"""Score distillation sampling: a frozen text-to-image diffusion model as the critic of any differentiable renderer.

Poole et al. 2022 (DreamFusion), Sec. 3. A renderer with parameters theta draws an image x = g(theta); the diffusion
model sees its latent z = E(x) (the autoencoder's scaled latent; z = x for a pixel-space model). Noise it,
    z_t = sqrt(ab_t) z + sqrt(1 - ab_t) eps,        eps ~ N(0, I),   t ~ U(t_min, t_max),
ask the model for the noise under the prompt y (with classifier-free guidance, eps_hat = eps_u + omega (eps_c - eps_u)),
and move theta along
    grad_theta L_SDS = E_{t, eps}[ w(t) (eps_hat(z_t; y, t) - eps) dz/dtheta ],                         (Eq. 3)
which is the gradient of the diffusion training loss with the U-Net's Jacobian d eps_hat / d z_t left out. Only the
renderer (and the encoder in front of the U-Net) is differentiated: the U-Net runs once per step, without a graph.
DreamFusion uses w(t) = 1 - ab_t (= sigma_t^2), t in [0.02, 0.98] of the schedule and a large guidance omega = 100.

In code the gradient is handed to autograd through a surrogate whose gradient it is,
    L(z) = 1/2 || z - sg(z - g) ||^2,        dL/dz = g,
so ``loss.backward()`` carries g into the renderer. The surrogate's *value* is 1/2 ||g||^2, a measure of how hard
the model still pushes, not of how good the image is: it does not go down as the image improves.

Notation: t is diffusers' timestep index 0 ... T - 1 (T = 1000 for Stable Diffusion), ab_t = alphas_cumprod[t];
latents are [B, C, h, w]; images [B, 3, H, W] in [-1, 1]. ``eps_model(z_t, t) -> eps`` is any eps-model with that
signature, e.g. ``text_to_image.TextEps`` (a U-Net with guidance) or an exact one in the tests.

    result = score_distillation(pipe, render, [pixels], prompts=["a large red circle at the center"], steps=200,
                                lr=0.05, guidance_scale=100.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

EpsModel = Callable[[Tensor, Tensor], Tensor]
T_RANGE = (0.02, 0.98)  # DreamFusion Sec. 3: t ~ U(0.02, 0.98)


def _check_t_range(t_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in t_range)
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(
            f"t_range must satisfy 0 < t_min < t_max < 1 (fractions of the schedule), got {t_range}; "
            f"DreamFusion uses {T_RANGE}."
        )
    return lo, hi


def check_guidance_scale(guidance_scale: float) -> float:
    """``guidance_scale`` (omega) as a float, or a ValueError. As in diffusers' pipelines, omega <= 1 runs the
    conditional model alone (``TextEps``); omega > 1 extrapolates eps_u + omega (eps_c - eps_u)."""
    if (
        isinstance(guidance_scale, bool)
        or not isinstance(guidance_scale, (int, float))
        or not math.isfinite(guidance_scale)
        or guidance_scale < 0
    ):
        raise ValueError(
            f"guidance_scale (omega) must be a finite number >= 0 (1 = no guidance; DreamFusion uses "
            f"100), got {guidance_scale!r}."
        )
    return float(guidance_scale)


def sds_weight(alpha_bar: Tensor) -> Tensor:
    """DreamFusion's w(t) = 1 - ab_t = sigma_t^2: small for little noise, where eps_hat - eps is mostly noise."""
    return 1.0 - alpha_bar


def sample_timesteps(
    n: int, num_train_timesteps: int, t_range: tuple[float, float] = T_RANGE, generator: torch.Generator | None = None
) -> Tensor:
    """n timestep indices int64 [n], uniform on the integers in [t_min T, t_max T]."""
    lo, hi = _check_t_range(t_range)
    first, last = int(round(lo * num_train_timesteps)), int(round(hi * num_train_timesteps))
    last = min(last, num_train_timesteps - 1)
    return torch.randint(first, last + 1, (n,), generator=generator)


def _noised(
    z: Tensor,
    alphas_cumprod: Tensor,
    t: Tensor | None,
    noise: Tensor | None,
    t_range: tuple[float, float],
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """z_t = sqrt(ab_t) z + sqrt(1 - ab_t) eps (Ho et al. Eq. 4) with t and eps drawn when None (t first, then eps):
    returns (z_t, t, eps, ab_t shaped to broadcast against z)."""
    if alphas_cumprod.ndim != 1:
        raise ValueError(f"alphas_cumprod must be the schedule's ab_t, shape [T], got {tuple(alphas_cumprod.shape)}.")
    if t is None:
        t = sample_timesteps(len(z), len(alphas_cumprod), t_range, generator)
    if noise is None:
        noise = torch.randn(z.shape, generator=generator).to(z)
    if noise.shape != z.shape or t.shape != (len(z),):
        raise ValueError(
            f"noise must be like z {tuple(z.shape)} and t of shape [{len(z)}]; got noise "
            f"{tuple(noise.shape)}, t {tuple(t.shape)}."
        )
    ab = alphas_cumprod.to(z)[t.to(alphas_cumprod.device)].view(-1, *([1] * (z.ndim - 1)))
    return ab.sqrt() * z + (1 - ab).sqrt() * noise, t.to(z.device), noise, ab


@torch.no_grad()
def sds_gradient(
    eps_model: EpsModel,
    z: Tensor,
    alphas_cumprod: Tensor,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    t_range: tuple[float, float] = T_RANGE,
    generator: torch.Generator | None = None,
    weighting: Callable[[Tensor], Tensor] = sds_weight,
) -> Tensor:
    """The SDS gradient with respect to the latent, w(t) (eps_hat(z_t, t) - eps), like z: Eq. 3 without dz/dtheta.

    Args:
        eps_model: eps_hat(z_t [B, ...], t int64 [B]) -> like z_t, guidance included.
        z: the renderer's latents [B, ...] (detached here: the U-Net is not differentiated).
        alphas_cumprod: ab_t [T] of the model's schedule (``pipe.scheduler.alphas_cumprod``).
        t, noise: the timesteps [B] and noise (like z); drawn from ``generator`` (t in ``t_range``) when None.
    """
    z_t, t, noise, ab = _noised(z.detach(), alphas_cumprod, t, noise, t_range, generator)
    return weighting(ab) * (eps_model(z_t, t) - noise)


def diffusion_loss_gradient(
    eps_model: EpsModel,
    z: Tensor,
    alphas_cumprod: Tensor,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    t_range: tuple[float, float] = T_RANGE,
    generator: torch.Generator | None = None,
    weighting: Callable[[Tensor], Tensor] = sds_weight,
) -> Tensor:
    """The gradient SDS approximates, U-Net Jacobian kept: d/dz of 1/2 w(t) ||eps_hat(z_t, t) - eps||^2, like z.

    By the chain rule it is w(t) (eps_hat - eps) (d eps_hat / d z_t) sqrt(ab_t): ``sds_gradient`` replaces the
    Jacobian d eps_hat / d z_t (and the sqrt(ab_t)) by the identity, which spares the backward pass through the U-Net.
    The same t and noise (or the same ``generator`` state) give the same z_t as ``sds_gradient``."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        z_t, t, noise, ab = _noised(z, alphas_cumprod, t, noise, t_range, generator)
        loss = 0.5 * (weighting(ab) * (eps_model(z_t, t) - noise).pow(2)).sum()
        return torch.autograd.grad(loss, z)[0]


def sds_surrogate(z: Tensor, grad: Tensor) -> Tensor:
    """1/2 ||z - sg(z - grad)||^2, summed: autograd gives d/dz = grad exactly, and no gradient reaches ``grad``.

    Its value is 1/2 ||grad||^2 whatever the image looks like: plot the image, not this number."""
    if grad.shape != z.shape:
        raise ValueError(f"grad must have z's shape {tuple(z.shape)}, got {tuple(grad.shape)}.")
    target = (z - grad).detach()
    return 0.5 * (z - target).pow(2).sum()


# --- the optimisation loop ----------------------------------------------------------------------------------------


@dataclass
class DistillResult:
    """What ``score_distillation`` returns: the last render, the gradient norm per step and the wall time."""

    images: Tensor
    grad_norms: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0


def encode_images(vae, images: Tensor) -> Tensor:
    """The scaled latents of images [B, 3, H, W] in [-1, 1], differentiable: the posterior mean times the scaling
    factor (the mean, not a sample, so the only randomness of a step is SDS's own t and eps)."""
    return vae.encode(images).latent_dist.mean * vae.config.scaling_factor


def score_distillation(
    pipe,
    render: Callable[[int], tuple[Tensor, Sequence[str]]],
    parameters,
    steps: int,
    lr: float,
    guidance_scale: float = 100.0,
    t_range: tuple[float, float] = T_RANGE,
    generator: torch.Generator | None = None,
    space: str = "image",
    keep_unet_jacobian: bool = False,
    callback: Callable[[int, Tensor], None] | None = None,
    progress: bool = True,
) -> DistillResult:
    """Optimise a renderer's ``parameters`` with SDS under a frozen text-to-image ``pipe`` (Stable Diffusion's parts).

    ``render(step)`` returns images [B, 3, H, W] in [-1, 1] (differentiable in ``parameters``; H, W the autoencoder's
    size) and their B prompts; a 3-D renderer draws a random camera and returns view-dependent prompts. With
    ``space="latent"`` it returns scaled latents [B, C, h, w] instead (the parameters are the latents themselves),
    and ``result.images`` are their decodings. Each step: encode the images (``encode_images``), one guided U-Net call
    per image at a random t (``sds_gradient``), backward through ``sds_surrogate`` into the renderer, one Adam step.
    The pipeline's weights get no gradient and do not change. ``callback(step, images)`` sees every render (detached).
    ``keep_unet_jacobian=True`` uses ``diffusion_loss_gradient`` instead (for comparison: a backward through the U-Net).
    """
    from .text_to_image import TextEps, encode_prompts

    omega = check_guidance_scale(guidance_scale)
    _check_t_range(t_range)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}.")
    parameters = list(parameters)
    if not parameters or not all(p.requires_grad for p in parameters):
        raise ValueError("parameters must be a non-empty list of tensors with requires_grad=True (the renderer's).")
    if space not in ("image", "latent"):
        raise ValueError(
            f'space must be "image" (render returns images) or "latent" (it returns latents), got {space!r}.'
        )
    opt = torch.optim.Adam(parameters, lr=lr)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    states: dict[str, Tensor] = {}

    def text(prompts: Sequence[str]) -> Tensor:
        missing = sorted({p for p in prompts if p not in states})
        if missing:
            states.update(zip(missing, encode_prompts(pipe.text_encoder, pipe.tokenizer, missing)))
        return torch.stack([states[p] for p in prompts])

    alphas_cumprod = pipe.scheduler.alphas_cumprod
    result, start = DistillResult(images=torch.empty(0)), time.perf_counter()
    for step in tqdm(range(steps), desc="SDS", disable=not progress, leave=False):
        images, prompts = render(step)
        if len(prompts) != len(images):
            raise ValueError(f"render returned {len(images)} images but {len(prompts)} prompts; one per image.")
        z = images if space == "latent" else encode_images(pipe.vae, images)
        eps_model = TextEps(pipe.unet, text(prompts), text([""] * len(prompts)), omega)
        gradient = diffusion_loss_gradient if keep_unet_jacobian else sds_gradient
        grad = gradient(eps_model, z, alphas_cumprod, t_range=t_range, generator=generator)
        opt.zero_grad(set_to_none=True)
        sds_surrogate(z, grad).backward()
        opt.step()
        result.grad_norms.append(grad.flatten(1).norm(dim=1).mean().item())
        result.images = images.detach()
        if callback is not None:
            callback(step, result.images)
    if space == "latent":
        with torch.no_grad():
            result.images = pipe.vae.decode(result.images / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
    result.wall_time_s = time.perf_counter() - start
    return result


# --- variational score distillation ----------------------------------------------------------------------------------
# Wang et al. 2023 (ProlificDreamer). SDS moves one render to a mode; VSD moves N renders ("particles") so that
# their distribution matches the model's. Its gradient swaps SDS's sampled noise eps for eps_phi(z_t, t), the noise
# predictor of the particles' own noised distribution (a LoRA trained on the particles' renders in the paper):
#     grad_theta L_VSD = E_{t, eps}[ w(t) (eps_pretrained(z_t; y, t) - eps_phi(z_t; y, t)) dz/dtheta ].
# With one particle eps_phi(z_t) = eps exactly and VSD is SDS; when the particles are distributed as the model's
# data, eps_phi = eps_pretrained for every z_t and the gradient is zero.


@torch.no_grad()
def vsd_gradient(
    eps_pretrained: EpsModel,
    eps_particles: EpsModel,
    z: Tensor,
    alphas_cumprod: Tensor,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    t_range: tuple[float, float] = T_RANGE,
    generator: torch.Generator | None = None,
    weighting: Callable[[Tensor], Tensor] = sds_weight,
) -> Tensor:
    """The VSD gradient with respect to the particles' latents, w(t) (eps_pretrained(z_t, t) - eps_phi(z_t, t)), like z.

    ProlificDreamer's update rule (Wang et al. 2023) without dz/dtheta. The same t and noise (or the same
    ``generator`` state) give the same z_t as ``sds_gradient``; only the subtracted term differs (eps there).

    Args:
        eps_pretrained: the frozen model, eps(z_t [B, ...], t int64 [B]) -> like z_t, guidance included.
        eps_particles: eps_phi, a noise predictor of the particles' own noised distribution, same signature
            (``particles_eps`` gives the exact one for a finite set of particles).
        z: the particles' latents [B, ...] (detached here).
        alphas_cumprod: ab_t [T] of the model's schedule.
        t, noise: the timesteps [B] and noise (like z); drawn from ``generator`` (t in ``t_range``) when None.
    """
    if not callable(eps_pretrained) or not callable(eps_particles):
        raise ValueError("eps_pretrained and eps_particles must both be eps-models, callables (z_t, t) -> eps.")
    z_t, t, noise, ab = _noised(z.detach(), alphas_cumprod, t, noise, t_range, generator)
    eps_p, eps_phi = eps_pretrained(z_t, t), eps_particles(z_t, t)
    if eps_p.shape != z.shape or eps_phi.shape != z.shape:
        raise ValueError(
            f"both eps-models must return eps like z {tuple(z.shape)}; got {tuple(eps_p.shape)} "
            f"(pretrained) and {tuple(eps_phi.shape)} (particles)."
        )
    return weighting(ab) * (eps_p - eps_phi)


def particles_eps(particles: Tensor, alphas_cumprod: Tensor) -> EpsModel:
    """The exact noise predictor of N particles' noised distribution: the eps_phi that VSD's LoRA learns, with no error.

    Noising the equal-weight empirical distribution of particles x_1 ... x_N gives the mixture
    q_t(z_t) = 1/N sum_j N(z_t; sqrt(ab_t) x_j, (1 - ab_t) I), whose ideal predictor (Tweedie) is
        eps_phi(z_t, t) = (z_t - sqrt(ab_t) sum_j p(j | z_t) x_j) / sqrt(1 - ab_t),
    p(j | z_t) a softmax of -||z_t - sqrt(ab_t) x_j||^2 / (2 (1 - ab_t)). Computed in float64; the memory is
    B x N x (numel of one particle), for small problems (2-D points, a few latents).

    Args:
        particles: [N, ...], N >= 1 (detached: a snapshot of the particles, as a LoRA fitted to them is).
        alphas_cumprod: ab_t [T], each ab_t < 1.
    Returns:
        eps_phi(z_t [B, ...] like one particle, t int64 [B]) -> like z_t.
    """
    if particles.ndim < 2 or len(particles) < 1:
        raise ValueError(f"particles must be [N, ...] with N >= 1, got shape {tuple(particles.shape)}.")
    if alphas_cumprod.ndim != 1 or not bool((alphas_cumprod < 1).all()):
        raise ValueError("alphas_cumprod must be the schedule's ab_t, shape [T], every value below 1 (noise > 0).")
    flat = particles.detach().flatten(1).double()  # [N, D]
    schedule = alphas_cumprod.detach().double()

    def eps(z_t: Tensor, t: Tensor) -> Tensor:
        if z_t.shape[1:] != particles.shape[1:]:
            raise ValueError(
                f"z_t must be [B, {', '.join(map(str, particles.shape[1:]))}] like one particle, got "
                f"{tuple(z_t.shape)}."
            )
        ab = schedule.to(z_t.device)[t.to(z_t.device)][:, None]  # [B, 1]
        z = z_t.flatten(1).double()  # [B, D]
        centres = ab.sqrt()[:, :, None] * flat.to(z_t.device)[None]  # [B, N, D]
        weights = torch.softmax(-((z[:, None] - centres) ** 2).sum(-1) / (2 * (1 - ab)), dim=1)  # p(j | z_t)
        x0_hat = weights @ flat.to(z_t.device)  # E[x | z_t]: the particles' posterior mean [B, D]
        return ((z - ab.sqrt() * x0_hat) / (1 - ab).sqrt()).view_as(z_t).to(z_t.dtype)

    return eps
