"""A tiny Stable Diffusion for the shapes world: a text-conditioned U-Net on the autoencoder's latents, assembled into
diffusers' own ``StableDiffusionPipeline``, and that pipeline's loop written out (``generate``).

Stable Diffusion (Rombach et al. 2022) is four parts: CLIP's text encoder turns the prompt into one vector per token;
a U-Net predicts the noise in a latent, reading the tokens through cross-attention; a scheduler runs the reverse
process; the autoencoder decodes the final latent. The course's twin uses the same classes at a tiny size
(``clip.TINY_CLIP``'s text tower, ``latent.TINY_AUTOENCODER``, ``TINY_UNET`` below), so the same pipeline code runs
it on a CPU and the real model on a GPU. The U-Net is trained without hearts (``HELD_OUT_SHAPE``), for chapter 8 to
teach, and without a fixed set of attribute combinations (``held_out_combination``), to measure whether it composes
attributes it saw only apart.

    pipe = load_pipeline()                                   # the shipped directory, SHA-256 checked
    images = generate(pipe, ["a large red circle at the top left"], guidance_scale=4.0, num_inference_steps=30,
                      generator=torch.Generator().manual_seed(0))   # [1, 3, 32, 32] in [-1, 1]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .checkpoints import CHECKPOINT_DIR, CheckpointError, sha256_file

HELD_OUT_SHAPE = "heart"  # never seen by the U-Net: chapter 8 teaches it with DreamBooth
PIPELINE_NAME = "tiny_sd"  # the shipped pipeline directory, checkpoints/tiny_sd
# The gpu profile's model: an SD 1.5-class checkpoint on the Hugging Face hub (same pipeline class, 512 x 512).
HUB_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"

TINY_UNET = dict(  # diffusers.UNet2DConditionModel keyword arguments: 8 x 8 x 4 latents, three levels (8, 4, 2)
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=64,
    attention_head_dim=8,
    norm_num_groups=16,
)
# Stable Diffusion's noise schedule ("scaled_linear": sqrt(beta) linear from sqrt(0.00085) to sqrt(0.012), T = 1000).
SD_SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)


def tiny_unet(**overrides):
    """A new ``diffusers.UNet2DConditionModel`` with ``TINY_UNET``'s sizes (and any ``overrides``)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**{**TINY_UNET, **overrides})


def pixel_unet(**overrides):
    """``TINY_UNET``'s blocks and widths on 32 x 32 x 3 pixels instead of 8 x 8 x 4 latents (f = 1): the same network
    run on 16 times as many positions, which is what latent diffusion saves (Rombach et al. 2022, Sec. 3)."""
    return tiny_unet(**{"sample_size": 32, "in_channels": 3, "out_channels": 3, **overrides})


def make_scheduler(kind: str = "ddpm"):
    """A diffusers scheduler with SD's schedule: "ddpm" (ancestral, Ho et al.), "ddim" (eta = 0, Song et al.) or
    "euler" (Karras et al.'s Euler steps). Swapping a pipeline's scheduler: ``pipe.scheduler = make_scheduler(..)``."""
    from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

    kinds = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}
    if kind not in kinds:
        raise ValueError(f"unknown scheduler {kind!r}; choose one of {sorted(kinds)}.")
    settings = dict(SD_SCHEDULE)
    if kind == "euler":
        settings = {k: v for k, v in settings.items() if k not in ("clip_sample", "set_alpha_to_one")}
    if kind == "ddpm":
        settings.pop("set_alpha_to_one")
    return kinds[kind](**settings)


def text_encoder_from_clip(clip):
    """The text tower of a ``CLIPModel`` as the ``CLIPTextModel`` a pipeline takes (the same weights, copied)."""
    from transformers import CLIPTextModel

    encoder = CLIPTextModel(clip.config.text_config)
    getattr(encoder, "text_model", encoder).load_state_dict(clip.text_model.state_dict())  # transformers 4 nests it
    return encoder.eval().requires_grad_(False)


# --- which captions the U-Net trains on ---------------------------------------------------------------------------


def held_out_combination(shape: int, colour: int, size: int, position: int) -> bool:
    """True for the attribute combinations the U-Net never sees in training: one in ten of the (shape, colour, size,
    position) tuples, spread so that every single value (and most pairs) still appear in other combinations."""
    return (7 * shape + 3 * colour + 5 * size + position) % 10 == 0


def training_data(n: int, seed: int = 0):
    """``data.shapes`` renders for the U-Net: every shape but ``HELD_OUT_SHAPE``, no held-out combination."""
    from .data import SHAPES, shapes

    data = shapes(n, seed=seed, include_shapes=[s for s in SHAPES if s != HELD_OUT_SHAPE])
    keep = torch.tensor(
        [not held_out_combination(*map(int, a)) for a in zip(data.shape, data.colour, data.size, data.position)]
    )
    return data, keep


def held_out_captions() -> list[str]:
    """The captions of every held-out combination of the trained shapes (the U-Net saw none of them)."""
    from .data import COLOURS, POSITIONS, SHAPES, SIZES, caption

    return [
        caption(s, c, z, p)
        for s in range(len(SHAPES))
        if SHAPES[s] != HELD_OUT_SHAPE
        for c in range(len(COLOURS))
        for z in range(len(SIZES))
        for p in range(len(POSITIONS))
        if held_out_combination(s, c, z, p)
    ]


# --- training ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts: Sequence[str], batch_size: int = 512) -> Tensor:
    """The U-Net's condition, ``[N, max_length, hidden]``: the text encoder's last hidden states of the prompts, padded
    to the tokenizer's maximum and read without an attention mask, exactly as ``StableDiffusionPipeline`` does."""
    from .text import tokenize

    if len(prompts) == 0:
        raise ValueError("no prompts given; pass a list of at least one string ('' is the empty prompt).")
    out = []
    for i in range(0, len(prompts), batch_size):
        ids = tokenize(tokenizer, list(prompts[i : i + batch_size]))["input_ids"]
        out.append(text_encoder(ids.to(text_encoder.device))[0])
    return torch.cat(out)


def caption_pairs(pipe, images: Tensor, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Training pairs for ``latent_diffusion_loss_fn``: the scaled latents ``[N, 4, h, w]`` of images ``[N, 3, S, S]``
    in [-1, 1] and the text states ``[N, L, D]`` of their captions, with the pipeline's autoencoder and text encoder
    (both frozen, as in Stable Diffusion's training: only the U-Net learns)."""
    from .latent import encode

    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions; pass one caption per image.")
    return encode(pipe.vae, images), encode_prompts(pipe.text_encoder, pipe.tokenizer, list(captions))


def latent_diffusion_loss_fn(
    alphas_cumprod: Tensor, null_condition: Tensor, p_uncond: float = 0.1, generator: torch.Generator | None = None
):
    """``loss_fn(unet, (latents, conditions))`` for ``trainer.train``: L_simple on scaled latents ``[B, 4, h, w]``
    with text conditions ``[B, L, D]``; each example's condition is replaced by ``null_condition`` (``[L, D]``, the
    empty prompt's) with probability ``p_uncond``, so the one network also learns the unconditional score that
    classifier-free guidance needs (Ho & Salimans 2022, Algorithm 1, with the empty prompt as the null label)."""
    if not 0.0 <= p_uncond < 1.0:
        raise ValueError(f"p_uncond must be in [0, 1), got {p_uncond}.")

    def loss_fn(unet, batch) -> Tensor:
        z0, cond = batch
        b = len(z0)
        t = torch.randint(0, len(alphas_cumprod), (b,), generator=generator).to(z0.device)
        noise = torch.randn(z0.shape, generator=generator).to(z0)
        drop = (torch.rand(b, generator=generator) < p_uncond).to(z0.device)
        cond = torch.where(drop[:, None, None], null_condition.to(cond), cond)
        ab = alphas_cumprod.to(z0)[t].view(b, 1, 1, 1)
        zt = ab.sqrt() * z0 + (1 - ab).sqrt() * noise
        return F.mse_loss(unet(zt, t, encoder_hidden_states=cond).sample, noise)

    return loss_fn


def fine_tune(
    pipe,
    pairs: tuple[Tensor, Tensor],
    steps: int,
    lr: float,
    batch_size: int = 16,
    p_uncond: float = 0.1,
    seed: int = 0,
):
    """Continue training ``pipe.unet`` in place as it was trained (``latent_diffusion_loss_fn`` with the empty prompt
    dropped in at rate ``p_uncond``) on ``caption_pairs``' (latents, states). Whatever requires grad is trained: the
    whole U-Net for full fine-tuning, only A and B after ``lora.inject_lora``. Returns the ``trainer.TrainResult``
    (losses, ``wall_time_s``)."""
    from .trainer import train

    null = encode_prompts(pipe.text_encoder, pipe.tokenizer, [""])[0]
    loss_fn = latent_diffusion_loss_fn(
        pipe.scheduler.alphas_cumprod, null, p_uncond, generator=torch.Generator().manual_seed(seed + 3)
    )
    return train(pipe.unet, loss_fn, pairs, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=False)


# --- the pipeline: assemble, save with a manifest, load after the SHA check ---------------------------------------


def build_pipeline(vae, text_encoder, tokenizer, unet, scheduler=None):
    """``diffusers.StableDiffusionPipeline`` from the parts, without the safety checker (nothing here to check)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler if scheduler is not None else make_scheduler("ddpm"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pipeline(pipe, directory: str | Path, **record) -> dict:
    """``pipe.save_pretrained`` (safetensors) into ``directory`` plus ``manifest.json``: the SHA-256 of every file,
    and ``record`` (recipe, steps, time, metrics). Returns the manifest.

    The U-Net is stored in float16, which halves its file (shipped files stay under 5 MB); ``load_pipeline`` casts
    every part back to float32. ``pipe`` itself is left in float32."""
    from diffusers.utils import logging

    directory, verbosity = Path(directory), logging.get_verbosity()
    logging.set_verbosity_error()  # casting a whole U-Net with .to() is what we mean; diffusers would warn
    pipe.unet.to(torch.float16)
    try:
        pipe.save_pretrained(directory, safe_serialization=True)
    finally:
        pipe.unet.to(torch.float32)
        logging.set_verbosity(verbosity)
    import datetime

    import diffusers

    from .checkpoints import hardware

    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "manifest.json")
    for p in files:
        p.chmod(0o644)  # safetensors writes 0600; the package installs them for everyone to read
    manifest = {
        "files": {str(p.relative_to(directory)): sha256_file(p) for p in files},
        "hardware": hardware(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **record,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_pipeline(directory: str | Path) -> dict:
    """Check every file of a saved pipeline against its ``manifest.json``; return the manifest or raise
    ``CheckpointError`` naming the file that is missing, changed or not in the manifest."""
    directory = Path(directory)
    path = directory / "manifest.json"
    if not path.exists():
        raise CheckpointError(
            f"{directory} has no manifest.json, so its files cannot be checked; save it with "
            "text_to_image.save_pipeline or re-create it with `python -m course_lib.train tiny_sd`."
        )
    manifest = json.loads(path.read_text())
    for name, digest in manifest["files"].items():
        if not (directory / name).exists():
            raise CheckpointError(f"{directory / name} is missing; reinstall course_lib or re-create the pipeline.")
        if sha256_file(directory / name) != digest:
            raise CheckpointError(
                f"SHA-256 of {directory / name} does not match the manifest; the file was changed or "
                "corrupted. Refusing to load it. Reinstall course_lib or re-create the pipeline."
            )
    extra = [
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.name != "manifest.json" and str(p.relative_to(directory)) not in manifest["files"]
    ]
    if any(p.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl", ".safetensors")) for p in extra):
        raise CheckpointError(f"{directory} holds weight files its manifest does not list: {extra}; refusing to load.")
    return manifest


def load_pipeline(source: str | Path | None = None, scheduler: str = "ddpm", device: str | torch.device = "cpu"):
    """``StableDiffusionPipeline.from_pretrained`` on the shipped tiny pipeline (default; its files' SHA-256 checked
    first, offline) or on another local directory or hub id (the gpu profile passes ``HUB_MODEL_ID``).

    The same line loads both; only the tiny one is checked against a manifest. A hub id that cannot be downloaded
    stops with a message naming the offline alternative."""
    from diffusers import StableDiffusionPipeline

    source = Path(CHECKPOINT_DIR / PIPELINE_NAME) if source is None else source
    local = Path(source).exists()
    if local:
        verify_pipeline(source)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # a page shows no "Loading pipeline components" bars for tiny files
    transformers_logging.disable_progress_bar()
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(source), local_files_only=local, dtype=torch.float32, safety_checker=None, requires_safety_checker=False
        )
    except OSError as error:
        raise OSError(
            f"could not load {source!r} ({error.__class__.__name__}): it is neither a local directory nor "
            "downloadable from here. Offline, use the course's tiny pipeline: load_pipeline() (no "
            "argument)."
        ) from error
    finally:
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()
    pipe.scheduler = make_scheduler(scheduler) if local else pipe.scheduler
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


# --- the pipeline's loop, opened ------------------------------------------------------------------------------------


@torch.no_grad()
def generate(
    pipe,
    prompts: Sequence[str],
    guidance_scale: float = 7.5,
    num_inference_steps: int = 50,
    negative_prompts: Sequence[str] | None = None,
    generator: torch.Generator | None = None,
    latents: Tensor | None = None,
) -> Tensor:
    """``StableDiffusionPipeline.__call__`` written out: the same images for the same seed, ``[N, 3, H, W]`` in [-1, 1].

    Encode the prompts and the empty (or negative) prompts, run the guided reverse process on the latents
    (``denoise``), undo the latent scaling and decode. ``guidance_scale`` is diffusers' g = 1 + w of chapter 5.
    """
    if len(prompts) == 0:
        raise ValueError("no prompts given; pass a list of at least one prompt.")
    negative = [""] * len(prompts) if negative_prompts is None else list(negative_prompts)
    if len(negative) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(negative)} negative prompts; pass one per prompt.")
    cond = encode_prompts(pipe.text_encoder, pipe.tokenizer, list(prompts))
    uncond = encode_prompts(pipe.text_encoder, pipe.tokenizer, negative) if guidance_scale > 1.0 else None
    z = denoise(pipe.unet, pipe.scheduler, cond, uncond, guidance_scale, num_inference_steps, generator, latents)
    return pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)


@torch.no_grad()
def denoise(
    unet,
    scheduler,
    cond: Tensor,
    uncond: Tensor | None,
    guidance_scale: float,
    num_inference_steps: int,
    generator: torch.Generator | None = None,
    latents: Tensor | None = None,
) -> Tensor:
    """The reverse process with classifier-free guidance: from noise ``[N, C, S, S]`` (drawn from ``generator``, or
    ``latents``) to a sample, with ``unet(z, t, encoder_hidden_states)`` and any diffusers ``scheduler``.

    ``cond`` / ``uncond``: text states ``[N, L, D]`` of the prompts and of the empty (negative) prompts. Guided
    (g > 1), each step runs the U-Net on both halves in one batch, unconditional first as diffusers orders it, and
    combines eps = eps_u + g (eps_c - eps_u); at g = 1 that is eps_c, so ``uncond`` is not needed.
    """
    scheduler.set_timesteps(num_inference_steps)
    size = unet.config.sample_size
    if latents is None:
        latents = torch.randn((len(cond), unet.config.in_channels, size, size), generator=generator)
    z = latents.to(unet.device) * scheduler.init_noise_sigma
    return guided_steps(unet, scheduler, z, scheduler.timesteps, cond, uncond, guidance_scale, generator)


def guided_steps(
    unet,
    scheduler,
    z: Tensor,
    timesteps: Tensor,
    cond: Tensor,
    uncond: Tensor | None,
    guidance_scale: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The loop ``denoise`` (all timesteps, from noise) and ``sdedit`` (the last ones, from a noised image) share."""
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0 (1 = no guidance), got {guidance_scale}.")
    guided = guidance_scale > 1.0
    if guided and uncond is None:
        raise ValueError("guidance_scale > 1 needs the unconditional states: pass uncond (the empty prompt's).")
    context = torch.cat([uncond, cond]) if guided else cond
    for t in timesteps:
        z_in = scheduler.scale_model_input(torch.cat([z, z]) if guided else z, t)
        eps = unet(z_in, t, encoder_hidden_states=context).sample
        if guided:
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
        z = scheduler.step(eps, t, z, generator=generator).prev_sample
    return z


class TextEps:
    """The pipeline's U-Net with classifier-free guidance as an eps-model eps(z, t) -> like z, for chapter 5's
    wrappers: eps_u + g (eps_c - eps_u) with the empty prompt's states as eps_u; g = 1 is the conditional model."""

    def __init__(self, unet, cond: Tensor, uncond: Tensor | None, guidance_scale: float):
        if guidance_scale > 1.0 and uncond is None:
            raise ValueError("guidance_scale > 1 needs the unconditional states: pass uncond (the empty prompt's).")
        self.unet, self.cond, self.uncond, self.g = unet, cond, uncond, guidance_scale

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        if self.g <= 1.0:  # diffusers' pipeline also runs the conditional pass alone at g <= 1
            return self.unet(z, t, encoder_hidden_states=self.cond).sample
        eps_u, eps_c = self.unet(
            torch.cat([z, z]), torch.cat([t, t]), encoder_hidden_states=torch.cat([self.uncond, self.cond])
        ).sample.chunk(2)
        return eps_u + self.g * (eps_c - eps_u)


@torch.no_grad()
def sdedit(
    pipe,
    images: Tensor,
    prompts: Sequence[str],
    strength: float,
    guidance_scale: float = 7.5,
    num_inference_steps: int = 50,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SDEdit (Meng et al. 2022), as ``StableDiffusionImg2ImgPipeline`` runs it: encode the images, noise their
    latents to the timestep a fraction ``strength`` of the way to pure noise, then denoise under ``prompts``.

    strength 1 starts from (almost) pure noise and forgets the image; a small strength keeps its layout and colours
    and changes details. Only the last int(strength * num_inference_steps) steps run. Images ``[N, 3, S, S]`` in
    [-1, 1]; returns the edited images, same shape. The same images as the img2img pipeline for the same seed.
    """
    vae, scheduler = pipe.vae, pipe.scheduler
    size = vae.config.sample_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise ValueError(
            f"img2img takes images [N, 3, {size}, {size}] in [-1, 1] (the autoencoder's size), got "
            f"{tuple(images.shape)}; resize them first (F.interpolate)."
        )
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts; pass one prompt per image.")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1] (the fraction of the way to pure noise), got {strength}.")
    scheduler.set_timesteps(num_inference_steps)
    start = num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps)
    if start == num_inference_steps:
        raise ValueError(f"strength {strength} x {num_inference_steps} steps rounds to no step at all; raise either.")
    timesteps = scheduler.timesteps[start * scheduler.order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    cond = encode_prompts(pipe.text_encoder, pipe.tokenizer, list(prompts))
    uncond = encode_prompts(pipe.text_encoder, pipe.tokenizer, [""] * len(prompts)) if guidance_scale > 1 else None
    z0 = vae.encode(images.to(vae.device)).latent_dist.sample(generator) * vae.config.scaling_factor
    noise = torch.randn(z0.shape, generator=generator).to(z0)
    z = scheduler.add_noise(z0, noise, timesteps[:1].repeat(len(z0)))  # q(z_t0 | z_0)
    z = guided_steps(pipe.unet, scheduler, z, timesteps, cond, uncond, guidance_scale, generator)
    return vae.decode(z / vae.config.scaling_factor).sample.clamp(-1, 1)


# --- measuring it ---------------------------------------------------------------------------------------------------


def adherence_of(
    pipe,
    judge,
    prompts: Sequence[str],
    guidance_scale: float,
    samples_per_prompt: int = 4,
    num_inference_steps: int = 30,
    seed: int = 0,
    batch_size: int = 128,
) -> tuple[dict, Tensor]:
    """The judge's prompt adherence (per attribute and ``"all"``) of ``samples_per_prompt`` images per prompt, and the
    images ``[len(prompts) * samples_per_prompt, 3, H, W]`` (prompt-major), made by ``generate`` from ``seed``."""
    from .judge import adherence

    captions = [p for p in prompts for _ in range(samples_per_prompt)]
    generator = torch.Generator().manual_seed(seed)
    images = torch.cat(
        [
            generate(pipe, captions[i : i + batch_size], guidance_scale, num_inference_steps, generator=generator).cpu()
            for i in range(0, len(captions), batch_size)
        ]
    )
    return adherence(judge, images, captions), images
