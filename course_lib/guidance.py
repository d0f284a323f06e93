"""Guidance as model wrappers: each returns a new eps-model with the base model's signature.

    guided = ClassifierFreeGuidance(model, w=1.0)          # then any sampler, unchanged:
    x0 = ddim_sample(guided, shape, schedule, taus, y=labels)

Papers: Dhariwal & Nichol 2021, Algorithms 1 and 2 (classifier guidance); Ho & Salimans 2022, Algorithms 1
and 2 (classifier-free guidance); Kynkaanniemi et al. 2024 (guidance in a limited interval of noise levels); and
loss guidance, the gradient of any differentiable loss on the predicted x0_hat. Because guidance lives in the
model, the samplers need no guidance options.

The one identity behind all three: eps and the score are the same thing up to a factor,
    grad_x log p_t(x) = -eps(x, t) / sqrt(1 - ab_t),
so adding s * grad log p(y | x_t) to the score subtracts sqrt(1 - ab_t) * s * grad log p(y | x_t) from eps.

Shapes: x [B, ...]; t int64 [B]; y int64 [B] labels (a null label means "no condition"); eps like x.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .forward_process import q_sample
from .schedules import Schedule

EpsModel = Callable[..., Tensor]


def _check_scale(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (0 = no guidance), got {value!r}.")
    return float(value)


def _check_labels(y: Tensor | None, num_classes: int, what: str) -> Tensor:
    if y is None:
        raise ValueError(f"{what} needs labels: call the guided model as model(x, t, y=labels), labels int64 [B].")
    if not isinstance(y, Tensor) or y.dtype != torch.long or y.ndim != 1:
        raise ValueError(
            f"y must be an int64 tensor [B] of labels, got {getattr(y, 'dtype', type(y))} "
            f"{tuple(getattr(y, 'shape', ()))}."
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in 0 ... {num_classes - 1}, got values from {int(y.min())} to {int(y.max())}."
        )
    return y


def _ab(schedule: Schedule, t: Tensor, x: Tensor) -> Tensor:
    """alpha_bar_t broadcast to x's shape, x's dtype."""
    return schedule.alpha_bar.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def _null_label(model: EpsModel, null_label: int | None) -> int:
    """The label index that means "no condition": the UNet's ``num_classes`` unless given."""
    if null_label is not None:
        return int(null_label)
    config = getattr(model, "config", None)
    num_classes = getattr(config, "num_classes", None)
    if num_classes is None:
        raise ValueError(
            "classifier-free guidance needs a model trained with a null label: a course_lib UNet with "
            "UNetConfig(num_classes=K) (label K is the null label), or pass null_label=<index> for "
            "another model. This model has none (unconditional, or not a course_lib UNet)."
        )
    return int(num_classes)


# --- classifier-free guidance ---------------------------------------------------------------------------


def drop_labels(y: Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None) -> Tensor:
    """Ho & Salimans Algorithm 1, line 3: each label is replaced by the null label with probability p_uncond."""
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must be a probability in [0, 1], got {p_uncond!r}; the paper uses 0.1-0.2.")
    drop = torch.rand(y.shape, generator=generator).to(y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, null_label), y)


def cfg_loss_fn(schedule: Schedule, p_uncond: float, null_label: int, generator: torch.Generator | None = None):
    """A ``loss_fn(model, (x0, y))`` for ``trainer.train``: L_simple of eps(x_t, t, y) with labels dropped.

    One network learns both eps(x_t, t, c) and eps(x_t, t) = eps(x_t, t, null): Algorithm 1 of Ho & Salimans.
    """

    def loss_fn(model, batch):
        x0, y = batch
        t = torch.randint(0, schedule.num_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        y = drop_labels(y, p_uncond, null_label, generator)
        return F.mse_loss(model(q_sample(x0, t, schedule, noise), t, y=y).float(), noise)

    return loss_fn


class ClassifierFreeGuidance:
    """eps~(x, t, y) = (1 + w) eps(x, t, y) - w eps(x, t, null): Ho & Salimans Algorithm 2.

    w = 0 is the conditional model itself (and returns ``model(x, t, y=y)`` without the second pass). diffusers'
    ``guidance_scale`` is g = 1 + w: eps_u + g (eps_c - eps_u) is the same combination, and g = 1 means no
    guidance. Both halves run as one batch of 2B in diffusers' order, [unconditional, conditional].

    Args:
        model: eps(x, t, y=labels) trained with a null label (``cfg_loss_fn``).
        w: the guidance weight, >= 0.
        null_label: the index meaning "no condition"; defaults to the UNet's ``config.num_classes``.
    """

    def __init__(self, model: EpsModel, w: float, null_label: int | None = None):
        self.model, self.w = model, _check_scale("w", w)
        self.null_label = _null_label(model, null_label)

    def __call__(self, x: Tensor, t: Tensor, y: Tensor | None = None, **kwargs) -> Tensor:
        y = _check_labels(y, self.null_label, "classifier-free guidance")
        if self.w == 0:
            return self.model(x, t, y=y, **kwargs)
        null = torch.full_like(y, self.null_label)
        eps_u, eps_c = self.model(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([null, y]), **kwargs).chunk(2)
        return (1 + self.w) * eps_c - self.w * eps_u


# --- classifier guidance --------------------------------------------------------------------------------


def classifier_log_prob_grad(classifier: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, y: Tensor) -> Tensor:
    """grad_x log p_phi(y | x_t, t), one gradient per example [B, ...], through the classifier only.

    ``torch.autograd.grad`` of sum_i log p_phi(y_i | x_i): examples do not interact, so row i of the result is
    example i's gradient. Works inside a sampler's ``torch.no_grad()``; no parameter gradients accumulate.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = classifier(x, t)
        y = _check_labels(y, logits.shape[1], "classifier guidance")
        log_p = (
            F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
            .gather(1, y[:, None])
            .sum()
        )
        (grad,) = torch.autograd.grad(log_p, x)
    return grad


class ClassifierGuidance:
    """Guide an (unconditional) eps-model with a noise-aware classifier p_phi(y | x_t, t).

    algorithm="ddim" (Dhariwal & Nichol Algorithm 2): eps^ = eps - sqrt(1 - ab_t) s grad log p_phi(y | x_t).
    algorithm="ddpm" (Algorithm 1): the DDPM mean moves to mu + s Sigma grad log p_phi. As a wrapper that is the
    eps whose mean is the shifted one: eps' = eps - s Sigma sqrt(alpha_t) sqrt(1 - ab_t) / beta_t grad log p_phi
    (mu = (x - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t)); exact when ``ddpm_step`` runs with
    ``clip_x0=False`` and the same ``variance`` (Sigma = beta_tilde_t for "fixed_small", beta_t for "fixed_large").
    For small beta_t and Sigma = beta_t the two coincide (sqrt(alpha_t) ~ 1).

    Args:
        model: eps(x, t, **kwargs); ``y`` is used by the classifier and not passed on.
        classifier: logits = classifier(x_t, t) [B, K].
        schedule: the schedule the sampler runs (a respaced one for respaced DDPM).
        scale: s >= 0; s = 0 returns the base model's eps.
        model_timesteps: with a respaced ``schedule``, the original index of each of its steps (as given to
            ``ddpm_sample``): the wrapper is then called with original indices and looks up its step's constants.
    """

    def __init__(
        self,
        model: EpsModel,
        classifier: Callable[[Tensor, Tensor], Tensor],
        schedule: Schedule,
        scale: float,
        algorithm: str = "ddim",
        variance: str = "fixed_small",
        model_timesteps: "list[int] | None" = None,
    ):
        if algorithm not in ("ddim", "ddpm"):
            raise ValueError(f"algorithm must be 'ddim' (Algorithm 2) or 'ddpm' (Algorithm 1), got {algorithm!r}.")
        if variance not in ("fixed_small", "fixed_large"):
            raise ValueError(f"variance must be 'fixed_small' or 'fixed_large' (the DDPM sampler's), got {variance!r}.")
        self.model, self.classifier, self.schedule = model, classifier, schedule
        self.scale, self.algorithm, self.variance = _check_scale("scale", scale), algorithm, variance
        self.num_classes = getattr(getattr(classifier, "config", None), "num_classes", None)
        self.index = None
        if model_timesteps is not None:
            if len(model_timesteps) != schedule.num_timesteps:
                raise ValueError(
                    f"model_timesteps must give one original index per step of the schedule "
                    f"({schedule.num_timesteps}), got {len(model_timesteps)}."
                )
            self.index = {int(o): i for i, o in enumerate(model_timesteps)}

    def eps_coefficient(self, t: Tensor) -> Tensor:
        """c_t in eps^ = eps - s c_t grad log p_phi: sqrt(1 - ab_t) (DDIM) or Sigma sqrt(alpha_t) sqrt(1-ab_t)/beta_t."""
        sched, t = self.schedule, t.cpu()
        if self.index is not None:  # original indices -> the respaced schedule's
            t = torch.tensor([self.index[int(v)] for v in t])
        c = sched.sqrt_one_minus_alpha_bar[t]
        if self.algorithm == "ddpm":
            sigma2 = (sched.posterior_variance if self.variance == "fixed_small" else sched.betas)[t]
            c = sigma2 * sched.alphas[t].sqrt() * c / sched.betas[t]
        return c

    def __call__(self, x: Tensor, t: Tensor, y: Tensor | None = None, **kwargs) -> Tensor:
        if self.num_classes is not None:
            _check_labels(y, self.num_classes, "classifier guidance")
        eps = self.model(x, t, **kwargs)
        if self.scale == 0:
            return eps
        grad = classifier_log_prob_grad(self.classifier, x, t, y)
        c = self.eps_coefficient(t).to(eps.device, eps.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return eps - self.scale * c * grad


# --- guidance in a limited interval of noise levels -------------------------------------------------------


class GuidanceInterval:
    """Use the guided model only for code indices t_min <= t <= t_max, the unguided one elsewhere.

    Kynkaanniemi et al. 2024 ("Applying guidance in a limited interval improves sample and distribution quality
    in diffusion models") find guidance harmful at high noise, largely unnecessary at low noise and useful in
    between, and switch it off outside an interval of noise levels. Off means the plain conditional model
    (their guidance weight 1): pass ``ClassifierGuidance(..., scale=1)`` or ``ClassifierFreeGuidance(..., w=0)``
    as ``unguided``. The interval is in the schedule's code indices t = 0 ... T-1 (0: nearly clean), both ends
    included. A batch whose rows straddle the interval gets each row from its own model.

    Args:
        guided, unguided: eps-models with the same signature, eps(x, t, **kwargs) -> like x.
        t_min, t_max: ints, 0 <= t_min <= t_max.
    """

    def __init__(self, guided: EpsModel, unguided: EpsModel, t_min: int, t_max: int):
        if not (isinstance(t_min, int) and isinstance(t_max, int) and 0 <= t_min <= t_max):
            raise ValueError(
                f"the interval must be two ints 0 <= t_min <= t_max (code indices, both included), "
                f"got t_min={t_min!r}, t_max={t_max!r}."
            )
        self.guided, self.unguided, self.t_min, self.t_max = guided, unguided, t_min, t_max

    def __call__(self, x: Tensor, t: Tensor, **kwargs) -> Tensor:
        inside = (t >= self.t_min) & (t <= self.t_max)  # [B] bool
        if bool(inside.all()):
            return self.guided(x, t, **kwargs)
        if not bool(inside.any()):
            return self.unguided(x, t, **kwargs)
        rows = inside.to(x.device).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(rows, self.guided(x, t, **kwargs), self.unguided(x, t, **kwargs))


# --- loss guidance --------------------------------------------------------------------------------------


class LossGuidance:
    """Steer any eps-model with a differentiable loss on the predicted clean image x0_hat.

    x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), and log p(y | x_t) is taken as -loss(x0_hat), so as in
    Algorithm 2: eps^ = eps + sqrt(1 - ab_t) s_t grad_x loss(x0_hat(x_t)), with a scale s_t set by ``weighting``:

    - "constant": s_t = s, Algorithm 2 as written. The gradient through x0_hat carries 1 / sqrt(ab_t), and the
      DDIM step turns the change of eps into a change of x0_hat of another sqrt(1 - ab_t) / sqrt(ab_t): with
      variant 1, x0_hat moves by -s grad_{x0_hat} loss / SNR(t), from 1e-4 s at t = 0 to 2.5e4 s at t = T for
      the linear schedule (SNR(t) = ab_t / (1 - ab_t)).
    - "snr" (default): s_t = s ab_t / (1 - ab_t) = s SNR(t), i.e. eps^ = eps + s ab_t / sqrt(1 - ab_t) grad_x loss.
      With variant 1 the DDIM step's x0_hat then moves by exactly -s grad_{x0_hat} loss: every step is one
      gradient step of size s on the predicted clean image, whatever the noise level.

    through_model=False (variant 1): eps is computed without a graph and held constant, so the gradient passes
    through the scheduler's formula only: grad_x = grad_x0hat / sqrt(ab_t); one forward pass, no U-Net backward.
    through_model=True (variant 2): the gradient also flows back through the U-Net (d eps / d x_t): one forward
    and one backward pass, and the activations of the forward pass are kept for it.

    Args:
        loss_fn: loss_fn(x0_hat) -> per-example losses [B] (or a scalar: the sum over the batch is used).
        scale: s >= 0.
        weighting: "snr" or "constant", see above.
    """

    def __init__(
        self,
        model: EpsModel,
        schedule: Schedule,
        loss_fn: Callable[[Tensor], Tensor],
        scale: float,
        through_model: bool = False,
        weighting: str = "snr",
    ):
        if weighting not in ("snr", "constant"):
            raise ValueError(
                f"weighting must be 'snr' (s_t = s * SNR(t)) or 'constant' (s_t = s, Algorithm 2 as "
                f"written), got {weighting!r}."
            )
        self.model, self.schedule, self.loss_fn = model, schedule, loss_fn
        self.scale, self.through_model = _check_scale("scale", scale), bool(through_model)
        self.weighting = weighting

    def step_scale(self, ab: Tensor) -> Tensor:
        """s_t for alpha_bar_t = ab: s, or s * ab / (1 - ab)."""
        return self.scale * (ab / (1 - ab) if self.weighting == "snr" else torch.ones_like(ab))

    def __call__(self, x: Tensor, t: Tensor, **kwargs) -> Tensor:
        if self.scale == 0:
            return self.model(x, t, **kwargs)
        ab = _ab(self.schedule, t, x)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            if self.through_model:
                eps = self.model(x_in, t, **kwargs)
            else:
                with torch.no_grad():
                    eps = self.model(x_in, t, **kwargs)
            x0_hat = (x_in - (1 - ab).sqrt() * eps) / ab.sqrt()
            (grad,) = torch.autograd.grad(self.loss_fn(x0_hat).sum(), x_in)
        return eps.detach() + self.step_scale(ab) * (1 - ab).sqrt() * grad


# --- a loss to guide with: the colour of an RGB image's foreground (chapter 5, loss guidance) ---------------


def foreground_weights(images: Tensor) -> Tensor:
    """Soft foreground mask of images on a black background: [B, 3, H, W] in [-1, 1] -> [B, 1, H, W] in [0, 1].

    A pixel's weight is its brightest channel mapped from [-1, 1] to [0, 1] (black background -> 0, a saturated
    shape pixel -> about 1), to the 4th power so that the dim anti-aliased edge pixels count little (the mean
    colour of a real shape is then within about 5/255 of its palette colour). No gradient flows through them.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images [B, 3, H, W] in [-1, 1], got shape {tuple(images.shape)}.")
    return ((images.detach().amax(1, keepdim=True) + 1) / 2).clamp(0, 1) ** 4


def foreground_colour(images: Tensor) -> Tensor:
    """Mean colour of each image's foreground, weighted by ``foreground_weights``: [B, 3, H, W] -> [B, 3] in [-1, 1]."""
    w = foreground_weights(images)
    return (w * images).sum((2, 3)) / w.sum((2, 3)).clamp_min(1e-6)


def colour_error(images: Tensor, colours: Sequence[str]) -> Tensor:
    """Distance between each image's foreground colour and a named palette colour (``data.COLOUR_RGB``), in RGB
    units 0..255: [B, 3, H, W] in [-1, 1] and B colour names -> [B]. A render of the shapes world is within about 15
    units of its palette colour (small shapes blend at their edges); orange drawn for "red" is about 100 away."""
    from .data import COLOUR_RGB

    if len(colours) != len(images):
        raise ValueError(f"{len(images)} images but {len(colours)} colour names; pass one per image.")
    unknown = sorted(set(colours) - set(COLOUR_RGB))
    if unknown:
        raise ValueError(f"unknown colour names {unknown}; choose from {list(COLOUR_RGB)}.")
    target = torch.tensor([COLOUR_RGB[c] for c in colours], dtype=torch.float32)
    return ((foreground_colour(images.float()) + 1) * 127.5 - target).norm(dim=1)


def colour_loss(target_rgb: tuple[float, float, float]) -> Callable[[Tensor], Tensor]:
    """loss_fn(x0_hat) -> [B]: the foreground-weighted mean squared distance of the pixels to a target colour.

    Args:
        target_rgb: the colour in 0..255 per channel, e.g. (255, 140, 0) for orange.
    The weights are ``foreground_weights`` (held constant), so the loss recolours the shape and leaves its
    outline to the model; the black background carries almost no weight.
    """
    if len(target_rgb) != 3 or not all(isinstance(c, (int, float)) and 0 <= c <= 255 for c in target_rgb):
        raise ValueError(f"target_rgb must be three numbers in 0..255 (R, G, B), got {target_rgb!r}.")
    target = torch.tensor(target_rgb, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1

    def loss_fn(x0_hat: Tensor) -> Tensor:
        w = foreground_weights(x0_hat)
        sq = (x0_hat - target.to(x0_hat)).pow(2).sum(1, keepdim=True)
        return (w * sq).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp_min(1e-6)

    return loss_fn
