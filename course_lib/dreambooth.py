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
    return [
        f"a {SIZES[z]} {colour} {HELD_OUT_SHAPE} at the {POSITIONS[p % len(POSITIONS)]}"
        for z, p in zip(sizes.tolist(), positions.tolist())
    ]


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


def dreambooth_data(
    pipe,
    subject_images: Tensor,
    prior_images: Tensor,
    instance_prompt: str = INSTANCE_PROMPT,
    class_prompts: str | Sequence[str] = CLASS_PROMPT,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four tensors ``dreambooth_loss_fn`` reads, one row per prior image: the subject's latents (its few images
    repeated to the prior set's length), the instance prompt's states, the prior images' latents, their prompts'
    states. ``class_prompts``: the class prompt of every prior image (Ruiz et al.), or one prompt per prior image
    (e.g. the ordinary prompts the base model drew them for). Images ``[N, 3, S, S]`` in [-1, 1]; latents are the
    autoencoder's scaled means (``latent.encode``)."""
    from .latent import encode
    from .text_to_image import encode_prompts

    n = len(prior_images)
    if len(subject_images) == 0 or n == 0:
        raise ValueError(f"need at least one subject image and one prior image, got {len(subject_images)} and {n}.")
    prompts = [class_prompts] * n if isinstance(class_prompts, str) else list(class_prompts)
    if len(prompts) != n:
        raise ValueError(f"{n} prior images but {len(prompts)} class prompts; pass one prompt, or one per image.")
    z_subject = encode(pipe.vae, subject_images)[torch.arange(n) % len(subject_images)]
    z_prior = encode(pipe.vae, prior_images)
    instance = encode_prompts(pipe.text_encoder, pipe.tokenizer, [instance_prompt])
    return z_subject, instance.expand(n, -1, -1), z_prior, encode_prompts(pipe.text_encoder, pipe.tokenizer, prompts)


def subject_scores(judge, images: Tensor, prompts: Sequence[str]) -> dict[str, float]:
    """What DreamBooth's subject prompts ask, judged: ``shape`` = fraction judged the held-out shape; for every
    attribute the prompts name besides the identifier (colour, size, position), the fraction that obeys it; ``all``
    = the fraction that is the held-out shape and obeys every attribute its prompt names."""
    from .data import ATTRIBUTES
    from .text_to_image import HELD_OUT_SHAPE

    if len(images) != len(prompts) or len(images) == 0:
        raise ValueError(f"pass one prompt per image (at least one), got {len(images)} images, {len(prompts)} prompts.")
    predicted = {name: index.cpu() for name, index in judge.predict(images.float().clamp(-1, 1)).items()}
    hits = predicted["shape"] == ATTRIBUTES["shape"].index(HELD_OUT_SHAPE)
    scores = {"shape": hits.float().mean().item()}
    for name, values in ATTRIBUTES.items():
        asked = [next((i for i, v in enumerate(values) if f" {v} " in f" {p} "), None) for p in prompts]
        named = torch.tensor([a is not None for a in asked])
        if name == "shape" or not named.any():
            continue
        obeyed = predicted[name] == torch.tensor([-1 if a is None else a for a in asked])
        scores[name] = obeyed[named].float().mean().item()
        hits &= obeyed | ~named
    scores["all"] = hits.float().mean().item()
    return scores


def train_dreambooth(
    pipe,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    prior_weight: float = 1.0,
    rank: int = 4,
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 8,
    targets: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = False,
):
    """LoRA-DreamBooth on ``pipe.unet`` in place (as diffusers' ``train_dreambooth_lora.py``): inject rank-``rank``
    LoRA layers into the attention projections (or ``targets``), freeze the rest, and train them on
    ``dreambooth_data``'s tensors with ``dreambooth_loss_fn`` (``batch_size`` subject and as many prior rows per
    step). Returns the ``trainer.TrainResult`` (losses, wall time); the pipeline then generates with the LoRA."""
    from .lora import ATTENTION_TARGETS, inject_lora
    from .trainer import train

    inject_lora(pipe.unet, targets=ATTENTION_TARGETS if targets is None else targets, rank=rank)
    loss_fn = dreambooth_loss_fn(pipe.scheduler.alphas_cumprod, prior_weight, torch.Generator().manual_seed(seed + 1))
    return train(pipe.unet, loss_fn, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress)


def subject_and_prior(pipe, n_subject: int = 5, n_prior: int = 64) -> tuple[Tensor, Tensor]:
    """The course's DreamBooth inputs, regenerated rather than shipped: ``n_subject`` renders of the held-out shape in
    ``SUBJECT_COLOUR`` (``subject_captions(n_subject, seed=0)`` rendered with seed 3) and ``n_prior`` images the
    *base* ``pipe`` draws for ``CLASS_PROMPT`` (20 DDIM steps, unguided, generator seed 1). Both [N, 3, 32, 32] in
    [-1, 1]. Call it before any LoRA is injected: the prior images must come from the base model."""
    from .data import render_captions
    from .text_to_image import generate

    subject = render_captions(subject_captions(n_subject, seed=0), seed=3)
    prior = generate(
        pipe,
        [CLASS_PROMPT] * n_prior,
        guidance_scale=1.0,
        num_inference_steps=20,
        generator=torch.Generator().manual_seed(1),
    )
    return subject, prior


def mean_pairwise_distance(images: Tensor) -> float:
    """Diversity of a set of images ``[N, 3, S, S]``: the mean Euclidean distance between two different images (in
    pixel units of [-1, 1]); DreamBooth's DIV uses LPIPS instead, which the shapes world does not need."""
    if len(images) < 2:
        raise ValueError(f"diversity needs at least two images, got {len(images)}.")
    return torch.pdist(images.flatten(1).float()).mean().item()


def evaluate_dreambooth(
    pipe,
    judge,
    ordinary_prompts: Sequence[str],
    samples: int = 32,
    guidance_scale: float = 4.0,
    num_inference_steps: int = 20,
    seed: int = 7,
) -> tuple[dict[str, float], dict[str, Tensor]]:
    """DreamBooth's questions, answered by the judge (``samples`` images per subject prompt, same seeds for every
    model):

    - ``fidelity``: "a sks shape" is judged the held-out shape;
    - ``recontext``: "a sks shape at the bottom right" is the shape, at that position;
    - ``property``: "a blue sks shape" is the shape, in blue;
    - ``class_to_subject``: "a shape" is judged the held-out shape (the class taken over by the subject: lower is
      better; DreamBooth's PRES asks the same of class-prompt samples);
    - ``diversity``: ``mean_pairwise_distance`` of the "a sks shape" samples (DreamBooth's DIV, in pixels);
    - ``ordinary``: judge adherence, all four attributes, on ``ordinary_prompts`` (language drift beyond the class).

    Returns the scores and the images of the subject and class prompts."""
    from .judge import adherence
    from .text_to_image import generate

    def draw(prompts):
        return generate(
            pipe, list(prompts), guidance_scale, num_inference_steps, generator=torch.Generator().manual_seed(seed)
        )

    position, blue = f"{INSTANCE_PROMPT} at the bottom right", f"a blue {INSTANCE_PROMPT.removeprefix('a ')}"
    images = {p: draw([p] * samples) for p in (INSTANCE_PROMPT, position, blue, CLASS_PROMPT)}
    recontext = subject_scores(judge, images[position], [position] * samples)
    prop = subject_scores(judge, images[blue], [blue] * samples)
    scores = {
        "fidelity": subject_scores(judge, images[INSTANCE_PROMPT], [INSTANCE_PROMPT] * samples)["shape"],
        "recontext": recontext["all"],
        "property": prop["all"],
        "class_to_subject": subject_scores(judge, images[CLASS_PROMPT], [CLASS_PROMPT] * samples)["shape"],
        "diversity": mean_pairwise_distance(images[INSTANCE_PROMPT]),
        "ordinary": adherence(judge, draw(ordinary_prompts), list(ordinary_prompts))["all"],
    }
    return scores, images
