"""The shapes world's judge: an attribute classifier that measures how well an image follows its prompt.

Text-to-image models are usually judged by people or by CLIP scores. The shapes world has exact prompts ("a large
red circle at the top left", ``data.caption``), so a small classifier trained on clean renders of *every* shape
(the held-out one included) reads back the four attributes of an image, and prompt adherence is exact: the fraction
of images whose predicted shape, colour, size and position match the prompt, per attribute and all four together
(chapters 6-8). On real renders it is near 100 %; on images paired with the wrong captions it is at chance, which is
what ``tests/test_judge.py`` checks before any generated image is judged.

    judge = ShapesJudge.from_pretrained()
    adherence(judge, images, captions)  # {"shape": 0.97, "colour": 1.0, "size": 0.99, "position": 1.0, "all": 0.96}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import ATTRIBUTES, parse_caption


@dataclass(frozen=True)
class JudgeConfig:
    image_size: int = 32
    width: int = 16
    feature_dim: int = 128

    def to_dict(self) -> dict:
        return asdict(self)


class ShapesJudge(nn.Module):
    """conv(w) -> conv(2w, /2) -> conv(2w, /2) -> conv(4w, /2) -> features -> one linear head per attribute.

    The heads share the features; position needs where the shape is, so the body keeps a 4x4 map (no global pooling).
    """

    def __init__(self, config: JudgeConfig = JudgeConfig()):
        super().__init__()
        self.config, w = config, config.width
        side = config.image_size // 8
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),
            nn.Flatten(), nn.Linear(4 * w * side * side, config.feature_dim), nn.SiLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(config.feature_dim, len(values))
                                    for name, values in ATTRIBUTES.items()})

    def features(self, x: Tensor) -> Tensor:
        """Shared features ``[B, feature_dim]`` of images ``[B, 3, S, S]`` in [-1, 1]."""
        s = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"the judge reads RGB images [B, 3, {s}, {s}] in [-1, 1], got {tuple(x.shape)}; "
                             "resize with F.interpolate (and decode latents to images) first.")
        return self.body(x)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits per attribute: ``{"shape": [B, 6], "colour": [B, 6], "size": [B, 2], "position": [B, 5]}``."""
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 512) -> dict[str, Tensor]:
        """Predicted attribute indices, int64 ``[B]`` each (into ``data.SHAPES``, ``COLOURS``, ...)."""
        outs = [self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return {name: torch.cat([o[name] for o in outs]).argmax(1) for name in ATTRIBUTES}

    @classmethod
    def from_pretrained(cls, name: str = "shapes_judge") -> ShapesJudge:
        from .checkpoints import load_verified

        state, entry = load_verified(name, expected_model="shapes_judge")
        model = cls(JudgeConfig(**entry["config"]))
        model.load_state_dict(state)
        return model.eval()


def judge_loss_fn(noise_std: float = 0.1, generator: torch.Generator | None = None):
    """``loss_fn(model, (images, shape, colour, size, position))`` for ``trainer.train``: the sum of the four
    cross-entropies. Each image gets Gaussian pixel noise of a standard deviation drawn in [0, ``noise_std``], so
    that a generated image with a little grain is judged on its content, not its grain."""
    def loss_fn(model: ShapesJudge, batch) -> Tensor:
        x, *labels = batch
        sigma = noise_std * torch.rand(len(x), 1, 1, 1, generator=generator).to(x)
        logits = model(x + sigma * torch.randn(x.shape, generator=generator).to(x))
        return sum(F.cross_entropy(logits[name], y) for name, y in zip(ATTRIBUTES, labels))

    return loss_fn


def prompt_attributes(captions: Sequence[str]) -> dict[str, Tensor]:
    """The attribute indices each caption asks for, int64 ``[N]`` per attribute (``data.parse_caption``)."""
    if isinstance(captions, str):
        raise ValueError(f"captions must be a list of strings, got one string {captions!r}; wrap it: [caption].")
    parsed = [parse_caption(c) for c in captions]
    return {name: torch.tensor([p[name] for p in parsed], dtype=torch.int64) for name in ATTRIBUTES}


@torch.no_grad()
def adherence(judge: ShapesJudge, images: Tensor, captions: Sequence[str]) -> dict[str, float]:
    """Prompt adherence: the fraction of images whose judged attributes match their caption.

    Args:
        images: float ``[N, 3, S, S]`` in [-1, 1] (generated or real).
        captions: N captions of the shapes world, "a <size> <colour> <shape> at the <position>".

    Returns:
        ``{"shape", "colour", "size", "position"}``: per-attribute agreement, and ``"all"``: all four at once.
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions; pass one caption per image.")
    if len(images) == 0:
        raise ValueError("no images to judge; pass at least one image and its caption.")
    want, got = prompt_attributes(captions), judge.predict(images.float().clamp(-1, 1))
    hits = {name: got[name].cpu() == want[name] for name in ATTRIBUTES}
    report = {name: hit.float().mean().item() for name, hit in hits.items()}
    report["all"] = torch.stack(list(hits.values())).all(0).float().mean().item()
    return report
