"""A tiny CLIP for the shapes world: ``transformers.CLIPModel`` with a small config, trained contrastively here.

CLIP (Radford et al. 2021) embeds images and texts in one space and is trained so that, in a batch of N pairs, each
image is closer to its own caption than to the N - 1 others: a symmetric cross-entropy over the N x N matrix of
cosine similarities scaled by a learned temperature (``contrastive_loss``; ``CLIPModel`` computes the same with
``return_loss=True``, which the tests check). Stable Diffusion uses CLIP's text tower to condition its U-Net;
the course's tiny twin uses the same class, so its text encoder plugs into the same pipeline (chapter 6).

What it is measured on: retrieval (does an image find its caption among others?) and zero-shot attributes (does the
caption that names the right colour, with the other words kept, score highest?), beside the judge's exact reading.

    model, tokenizer = load_clip(), text.load_tokenizer()
    clip_score(model, tokenizer, images, captions)  # cosine similarity of each image with its caption, [N]
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .text import MAX_LENGTH, tokenize

TINY_CLIP = dict(  # about 0.3 M parameters per tower; 32x32 images in 4x4 patches (64 patches + CLS)
    text=dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_LENGTH,
    ),
    vision=dict(
        image_size=32,
        patch_size=4,
        num_channels=3,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
    ),
    projection_dim=64,
)


def tiny_clip_config(tokenizer, sizes: dict = TINY_CLIP):
    """A ``CLIPConfig`` for ``tokenizer``'s vocabulary: its BOS, EOS (the pooled token) and padding ids."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPConfig(
        text_config=CLIPTextConfig(**sizes["text"], **ids).to_dict(),
        vision_config=CLIPVisionConfig(**sizes["vision"]).to_dict(),
        projection_dim=sizes["projection_dim"],
    )


def embed(
    model, tokenizer=None, images: Tensor | None = None, prompts: Sequence[str] | None = None, batch_size: int = 512
) -> tuple[Tensor | None, Tensor | None]:
    """Unit-length embeddings ``[N, projection_dim]`` of images (``[N, 3, 32, 32]`` in [-1, 1]) and/or prompts."""
    image_emb = text_emb = None
    with torch.no_grad():
        if images is not None:
            image_emb = torch.cat(
                [
                    _as_tensor(model.get_image_features(pixel_values=images[i : i + batch_size]))
                    for i in range(0, len(images), batch_size)
                ]
            )
            image_emb = F.normalize(image_emb, dim=-1)
        if prompts is not None:
            tokens = tokenize(tokenizer, list(prompts))
            text_emb = F.normalize(_as_tensor(model.get_text_features(**tokens)), dim=-1)
    return image_emb, text_emb


def _as_tensor(out) -> Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output with ``pooler_output`` (5)."""
    return out if isinstance(out, Tensor) else out.pooler_output


def contrastive_loss(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor) -> Tensor:
    """CLIP's loss on N matching pairs: cross-entropy of each image over the N texts and of each text over the N
    images, averaged. Embeddings ``[N, D]`` (normalised here); ``logit_scale`` is log(1 / temperature)."""
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp() * image_emb @ text_emb.T  # [N images, N texts]
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_loss_fn():
    """``loss_fn(model, (input_ids, attention_mask, images))`` for ``trainer.train``."""

    def loss_fn(model, batch) -> Tensor:
        input_ids, attention_mask, images = batch
        image_emb = _as_tensor(model.get_image_features(pixel_values=images))
        text_emb = _as_tensor(model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        return contrastive_loss(image_emb, text_emb, model.logit_scale)

    return loss_fn


def clip_score(model, tokenizer, images: Tensor, prompts: Sequence[str]) -> Tensor:
    """Cosine similarity of each image with its own prompt, ``[N]`` (Hessel et al.'s CLIPScore is 2.5 max(cos, 0))."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts; pass one prompt per image.")
    image_emb, text_emb = embed(model, tokenizer, images, prompts)
    return (image_emb * text_emb).sum(-1)


def retrieval_accuracy(model, tokenizer, images: Tensor, prompts: Sequence[str]) -> float:
    """Fraction of images whose own prompt is the most similar among all N prompts (top-1 image -> text).
    Prompts that repeat (two images of the same caption) count as correct: the text cannot tell them apart."""
    image_emb, text_emb = embed(model, tokenizer, images, prompts)
    best = (image_emb @ text_emb.T).argmax(1)
    return sum(prompts[int(j)] == prompts[i] for i, j in enumerate(best)) / len(prompts)


def zero_shot_attributes(model, tokenizer, images: Tensor, captions: Sequence[str]) -> dict[str, float]:
    """Zero-shot accuracy per attribute: for each image, the caption is rewritten with every value of one attribute
    (the other three kept) and CLIP's most similar version must be the true one."""
    from .data import ATTRIBUTES, caption, parse_caption

    image_emb, _ = embed(model, images=images)
    parsed = [parse_caption(c) for c in captions]
    report = {}
    for name, options in ATTRIBUTES.items():
        versions = [caption(**{**attrs, name: k}) for attrs in parsed for k in range(len(options))]
        _, text_emb = embed(model, tokenizer, prompts=versions)
        scores = (text_emb.view(len(parsed), len(options), -1) @ image_emb[:, :, None])[..., 0]  # [N, K]
        truth = torch.tensor([attrs[name] for attrs in parsed])
        report[name] = (scores.argmax(1) == truth).float().mean().item()
    return report


def prompt_diversity(model, images: Tensor, prompts: Sequence[str]) -> float:
    """Diversity within a prompt: the mean cosine distance (1 - cos) between CLIP image embeddings of two images of
    the same prompt, over every pair and prompt (prompts with one image are skipped). Real renders of a caption
    differ only by jitter, so theirs (``data.render_captions``) is the floor a faithful model should not fall below
    by much; guidance pushes samples of a prompt together (chapter 5's trade-off)."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts; pass one prompt per image.")
    image_emb, _ = embed(model, images=images)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p, []).append(i)
    distances = []
    for idx in groups.values():
        if len(idx) > 1:
            e = image_emb[idx]
            cos = e @ e.T
            off = ~torch.eye(len(idx), dtype=torch.bool)
            distances.append((1 - cos[off]).mean())
    if not distances:
        raise ValueError("every prompt has one image; diversity needs at least two images of some prompt.")
    return torch.stack(distances).mean().item()


def load_clip(name: str = "tiny_clip"):
    """The shipped tiny ``CLIPModel`` (SHA-256 checked), in eval mode."""
    from transformers import CLIPConfig, CLIPModel

    from .checkpoints import load_verified

    state, entry = load_verified(name, expected_model="clip")
    model = CLIPModel(CLIPConfig.from_dict(entry["config"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise ValueError(
            f"{name}: the checkpoint does not fit CLIPModel ({missing[:3]} missing, {unexpected[:3]} "
            "unexpected); re-create it with `python -m course_lib.train tiny_clip`."
        )
    return model.eval()
