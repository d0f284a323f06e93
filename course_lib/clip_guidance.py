"""CLIP guidance: steer a text-to-image sampler towards a caption with CLIP, as chapter 5's loss guidance.

The loss is a CLIP distance between the *predicted clean image* and a text: at each step the latent's x0_hat is decoded
to pixels, embedded by CLIP's image tower, and compared with the caption's embedding,
    loss(x0_hat) = 1 - cos(f_img(D(x0_hat / scaling_factor)), f_txt(caption)),
and ``guidance.LossGuidance`` turns its gradient w.r.t. the latent into a change of eps (variant 1, SNR weighting):
    eps^ = eps + s SNR(t) sqrt(1 - ab_t) grad_{z_t} loss,
so each sampler step also moves x0_hat one gradient step of size s down the loss. This is the CLIP guidance of
Crowson's CLIP-guided diffusion notebooks and of the diffusers class in the course's sources (there on 32 x 32
butterflies with OpenAI's ViT-B/32); here the CLIP is the course's tiny one (``clip.load_clip``).

Random shifts of the decoded image (``augmentations``), averaged over copies, are the usual remedy for CLIP's
adversarial pixel gradients (Crowson's "cutouts"). Images are [B, 3, 32, 32] in [-1, 1], CLIP's training range;
latents are the pipeline's scaled ones, [B, 4, 8, 8]; t is diffusers' timestep index 0 ... 999.

    images = clip_guided_generate(pipe, clip, [""] * 8, ["a large red circle at the center"] * 8, clip_scale=30.0,
                                  generator=torch.Generator().manual_seed(0))  # [8, 3, 32, 32] in [-1, 1]
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .clip import _as_tensor, embed
from .guidance import LossGuidance
from .schedules import Schedule
from .text_to_image import TextEps


def shifted_copies(images: Tensor, copies: int, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """``copies`` randomly shifted versions of each image, [copies * B, 3, H, W] (copy-major): each copy moves the
    batch by (dx, dy), uniform in -max_shift ... max_shift pixels, and pads with black (-1), the shapes' background."""
    pad = F.pad(images, (max_shift,) * 4, value=-1.0)
    h, w = images.shape[-2:]
    out = []
    for _ in range(copies):
        dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
        out.append(pad[..., dy : dy + h, dx : dx + w])
    return torch.cat(out)


def clip_distance(clip, images: Tensor, text_emb: Tensor) -> Tensor:
    """1 - cos(CLIP image embedding, text embedding) per image, [B] in [0, 2], differentiable w.r.t. ``images``
    ([B, 3, 32, 32] in [-1, 1], CLIP's training range). ``text_emb``: unit length, [D] or [B, D] (``clip.embed``)."""
    if text_emb.ndim not in (1, 2):
        raise ValueError(f"text_emb must be [D] or [B, D] (clip.embed's output), got shape {tuple(text_emb.shape)}.")
    emb = F.normalize(_as_tensor(clip.get_image_features(pixel_values=images)), dim=-1)
    return 1 - (emb * text_emb.to(emb)).sum(-1)


def clip_latent_loss(
    clip, vae, text_emb: Tensor, augmentations: int = 0, max_shift: int = 2, generator: torch.Generator | None = None
):
    """``loss_fn(x0_hat) -> [B]`` for ``LossGuidance``: 1 - cos(CLIP image embedding of the decoded x0_hat, text).

    Args:
        clip: a ``transformers.CLIPModel`` trained on images in [-1, 1] (the tiny one), frozen.
        vae: the pipeline's ``AutoencoderKL``; x0_hat (scaled latents [B, 4, h, w]) is divided by its scaling factor
            and decoded to [B, 3, H, W] (not clamped: a clamp would zero the gradient where pixels overshoot).
        text_emb: unit-length text embedding [D] or one per example [B, D] (``clip.embed``).
        augmentations: 0 scores the image itself; k > 0 averages the loss over k randomly shifted copies.
    Returns a loss per example in [0, 2] (0: the image points exactly where the text does).
    """
    if text_emb.ndim not in (1, 2):
        raise ValueError(f"text_emb must be [D] or [B, D] (clip.embed's output), got shape {tuple(text_emb.shape)}.")
    if augmentations < 0 or max_shift < 0:
        raise ValueError(f"augmentations and max_shift must be >= 0, got {augmentations} and {max_shift}.")

    def loss_fn(x0_hat: Tensor) -> Tensor:
        images = vae.decode(x0_hat / vae.config.scaling_factor).sample
        b = len(images)
        if augmentations:
            images = shifted_copies(images, augmentations, max_shift, generator)
        text = text_emb.repeat(len(images) // b, 1) if text_emb.ndim == 2 else text_emb
        return clip_distance(clip, images, text).view(-1, b).mean(0)  # [copies, B] -> [B]

    return loss_fn


def clip_guided_generate(
    pipe,
    clip,
    prompts: Sequence[str],
    clip_prompts: Sequence[str],
    clip_scale: float,
    guidance_scale: float = 1.0,
    num_inference_steps: int = 20,
    augmentations: int = 0,
    generator: torch.Generator | None = None,
    latents: Tensor | None = None,
) -> Tensor:
    """Sample ``prompts`` with the pipeline's scheduler, each steered towards its ``clip_prompts`` by CLIP guidance.

    The U-Net is conditioned on ``prompts`` (``""`` for the unconditional model; a partial prompt such as
    "a large circle at the center" leaves the rest to CLIP), with classifier-free ``guidance_scale`` g; its eps is
    then shifted by ``LossGuidance(..., clip_latent_loss, clip_scale)``. clip_scale = 0 is ``generate``'s sampler
    (the same images for the same latents). Needs a scheduler with ``init_noise_sigma`` 1 (DDPM, DDIM), whose
    eps-model input is z_t itself. Returns images [N, 3, H, W] in [-1, 1].
    """
    from .text_to_image import encode_prompts

    scheduler, unet, vae = pipe.scheduler, pipe.unet, pipe.vae
    if float(scheduler.init_noise_sigma) != 1.0:
        raise ValueError(
            f"CLIP guidance here needs a scheduler whose model input is z_t (DDPM or DDIM); "
            f"{type(scheduler).__name__} scales it. Use text_to_image.make_scheduler('ddim')."
        )
    if len(prompts) == 0:
        raise ValueError("no prompts given; pass a list of at least one prompt ('' is the unconditional model).")
    if isinstance(clip_prompts, str) or len(clip_prompts) != len(prompts):
        raise ValueError(f"pass one CLIP prompt per prompt ({len(prompts)}), as a list, got {clip_prompts!r:.80}.")
    cond = encode_prompts(pipe.text_encoder, pipe.tokenizer, list(prompts))
    uncond = encode_prompts(pipe.text_encoder, pipe.tokenizer, [""] * len(prompts)) if guidance_scale > 1 else None
    base = TextEps(unet, cond, uncond, guidance_scale)
    _, text_emb = embed(clip, pipe.tokenizer, prompts=list(clip_prompts))
    schedule = Schedule.from_betas("scheduler", scheduler.betas)
    loss_fn = clip_latent_loss(clip, vae, text_emb, augmentations, generator=generator)
    model = LossGuidance(base, schedule, loss_fn, clip_scale)
    scheduler.set_timesteps(num_inference_steps)
    size = unet.config.sample_size
    if latents is None:
        latents = torch.randn((len(prompts), unet.config.in_channels, size, size), generator=generator)
    z = latents.to(unet.device)
    for t in scheduler.timesteps:
        with torch.no_grad():  # LossGuidance switches the gradient on for its own pass
            eps = model(z, t.repeat(len(z)).to(z.device))
            z = scheduler.step(eps, t, z, generator=generator).prev_sample
    with torch.no_grad():
        return vae.decode(z / vae.config.scaling_factor).sample.clamp(-1, 1)
