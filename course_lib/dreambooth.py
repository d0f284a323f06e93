"""DreamBooth (Ruiz et al. 2023): bind a rare identifier to a subject shown in a few images, keeping the class prior.

The subject's images are captioned "a [V] [class noun]" (here ``INSTANCE_PROMPT`` = "a sks shape"); images the
*base* model generates for the class prompt ("a shape") are the prior-preservation data. The loss (Ruiz et al.,
Eq. 2, in epsilon form as diffusers' ``train_dreambooth_lora.py`` writes it) is

    E ||eps_theta(z_t, t, c_subject) - eps||^2 + lambda E ||eps_theta(z'_t, t', c_class) - eps'||^2,

the first term on the subject's latents, the second on the prior images' latents: without it the model drifts,
and every "shape" becomes the subject (language drift) with less variety (Ruiz et al., Sec. 4.3, Table 3).
The course's subject is the shape its text-to-image model never saw (``text_to_image.HELD_OUT_SHAPE``), in one
colour; the judge, trained on every shape, tells whether it was learned.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

INSTANCE_PROMPT = "a sks shape"  # "sks": a rare word the tokenizer splits into s, k, s (as SD's does)
CLASS_PROMPT = "a shape"
SUBJECT_COLOUR = "red"


def subject_captions(n: int, colour: str = SUBJECT_COLOUR, seed: int = 0) -> list[str]:
    """Captions of ``n`` pictures of the subject: the held-out shape in one colour, sizes and positions drawn from
    ``seed`` (a subject photographed in different poses)."""
    from .data import POSITIONS, SIZES
    from .text_to_image import HELD_OUT_SHAPE

    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(len(SIZES), (n,), generator=g)
    positions = torch.randperm(len(POSITIONS) * ((n + len(POSITIONS) - 1) // len(POSITIONS)), generator=g)[:n]
    return [f"a {SIZES[z]} {colour} {HELD_OUT_SHAPE} at the {POSITIONS[p % len(POSITIONS)]}"
            for z, p in zip(sizes.tolist(), positions.tolist())]


def dreambooth_loss_fn(alphas_cumprod: Tensor, prior_weight: float = 1.0, generator: torch.Generator | None = None):
    """``loss_fn(unet, (z_subject, c_subject, z_prior, c_prior))`` for ``trainer.train``: the subject's L_simple plus
    ``prior_weight`` (lambda) times the prior images' L_simple, each term a mean over its half of the batch.

    Latents ``[B, 4, h, w]`` (scaled), text states ``[B, L, D]``; each half draws its own t and noise. With
    ``prior_weight = 0`` the prior half is not run at all (plain DreamBooth without prior preservation)."""
    if prior_weight < 0:
        raise ValueError(f"prior_weight (lambda) must be >= 0, got {prior_weight}.")

    def simple(unet, z0: Tensor, cond: Tensor) -> Tensor:
        b = len(z0)
        t = torch.randint(0, len(alphas_cumprod), (b,), generator=generator).to(z0.device)
        noise = torch.randn(z0.shape, generator=generator).to(z0)
        ab = alphas_cumprod.to(z0)[t].view(b, 1, 1, 1)
        return F.mse_loss(unet(ab.sqrt() * z0 + (1 - ab).sqrt() * noise, t, encoder_hidden_states=cond).sample, noise)

    def loss_fn(unet, batch) -> Tensor:
        z_subject, c_subject, z_prior, c_prior = batch
        loss = simple(unet, z_subject, c_subject)
        return loss + prior_weight * simple(unet, z_prior, c_prior) if prior_weight > 0 else loss

    return loss_fn


def dreambooth_data(pipe, subject_images: Tensor, prior_images: Tensor, instance_prompt: str = INSTANCE_PROMPT,
                    class_prompt: str = CLASS_PROMPT) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four tensors ``dreambooth_loss_fn`` reads, one row per prior image: the subject's latents (its few images
    repeated to the prior set's length), the instance prompt's states, the prior images' latents, the class prompt's
    states. Images ``[N, 3, S, S]`` in [-1, 1]; latents are the autoencoder's scaled means (``latent.encode``)."""
    from .latent import encode
    from .text_to_image import encode_prompts

    if len(subject_images) == 0 or len(prior_images) == 0:
        raise ValueError(f"need at least one subject image and one prior image, got {len(subject_images)} and "
                         f"{len(prior_images)}.")
    n = len(prior_images)
    z_subject = encode(pipe.vae, subject_images)[torch.arange(n) % len(subject_images)]
    z_prior = encode(pipe.vae, prior_images)
    states = encode_prompts(pipe.text_encoder, pipe.tokenizer, [instance_prompt, class_prompt])
    return z_subject, states[:1].expand(n, -1, -1), z_prior, states[1:].expand(n, -1, -1)


def subject_scores(judge, images: Tensor, prompts: Sequence[str]) -> dict[str, float]:
    """What DreamBooth's subject prompts ask, judged: ``shape`` = fraction judged the held-out shape, and for every
    attribute a prompt names besides the identifier (colour, size, position), the fraction that obeys it."""
    from .data import ATTRIBUTES
    from .text_to_image import HELD_OUT_SHAPE

    predicted = {name: index.cpu() for name, index in judge.predict(images.float().clamp(-1, 1)).items()}
    scores = {"shape": (predicted["shape"] == ATTRIBUTES["shape"].index(HELD_OUT_SHAPE)).float().mean().item()}
    for name, values in ATTRIBUTES.items():
        if name == "shape":
            continue
        asked = [next((i for i, v in enumerate(values) if f" {v} " in f" {p} "), None) for p in prompts]
        rows = [i for i, a in enumerate(asked) if a is not None]
        if rows:
            scores[name] = (predicted[name][rows] == torch.tensor([asked[i] for i in rows])).float().mean().item()
    return scores
