"""The shapes world's judge: an attribute classifier that measures how well an image follows its prompt.

Text-to-image models are usually judged by people or by CLIP scores. The shapes world has exact prompts ("a large
red circle at the top left", ``data.caption``), so a small classifier trained on clean renders of *every* shape
(the held-out one included) reads back the four attributes of an image, and prompt adherence is exact: the fraction
of images whose predicted shape, colour, size and position match the prompt, per attribute and all four together
(chapters 6-8). On real renders it is near 100 %; on images paired with the wrong captions it is at chance, which is
what ``tests/test_judge.py`` checks before any generated image is judged.

The heads are named in the config (``JudgeConfig.attributes``: each attribute and its values, default the 2-D world's
``data.ATTRIBUTES``), so the same class judges chapter 7's 3-D renders (``judge3d``: shape, colour, view).

    judge = ShapesJudge.from_pretrained()
    adherence(judge, images, captions)  # {"shape": 0.97, "colour": 1.0, "size": 0.99, "position": 1.0, "all": 0.96}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import ATTRIBUTES, parse_caption


@dataclass(frozen=True)
class JudgeConfig:
    """Sizes, and the attributes the judge reads: ``(name, values)`` pairs in head order, one head of
    ``len(values)`` logits each (pairs, not a dict, so the order survives a JSON manifest written with sorted keys)."""

    image_size: int = 32
    width: int = 16
    feature_dim: int = 128
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = tuple(ATTRIBUTES.items())

    def __post_init__(self):
        try:  # a manifest gives lists of [name, [values]]; store them as tuples so the config stays hashable
            pairs = tuple((name, tuple(values)) for name, values in self.attributes)
        except (TypeError, ValueError):
            pairs = ()
        names = [name for name, _ in pairs]
        if (
            not pairs
            or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
            or any(len(values) < 2 for _, values in pairs)
        ):
            raise ValueError(
                f"attributes must be (name, values) pairs with distinct names and >= 2 values each, got "
                f"{self.attributes!r}; e.g. tuple(data.ATTRIBUTES.items())."
            )
        object.__setattr__(self, "attributes", pairs)

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
            nn.Conv2d(3, w, 3, padding=1),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.GroupNorm(8, 4 * w),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(4 * w * side * side, config.feature_dim),
            nn.SiLU(),
        )
        self.attributes = dict(config.attributes)  # name -> the values its head's logits index, in head order
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.feature_dim, len(values)) for name, values in config.attributes}
        )

    def features(self, x: Tensor) -> Tensor:
        """Shared features ``[B, feature_dim]`` of images ``[B, 3, S, S]`` in [-1, 1]."""
        s = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(
                f"the judge reads RGB images [B, 3, {s}, {s}] in [-1, 1], got {tuple(x.shape)}; "
                "resize with F.interpolate (and decode latents to images) first."
            )
        return self.body(x)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits per attribute, in head order; for the 2-D world
        ``{"shape": [B, 6], "colour": [B, 6], "size": [B, 2], "position": [B, 5]}``."""
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 512) -> dict[str, Tensor]:
        """Predicted attribute indices, int64 ``[B]`` each (into ``self.attributes[name]``: ``data.SHAPES``, ...)."""
        outs = [self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return {name: torch.cat([o[name] for o in outs]).argmax(1) for name in self.heads}

    @classmethod
    def from_pretrained(cls, name: str = "shapes_judge", directory: str | Path | None = None) -> ShapesJudge:
        """A shipped judge (SHA-256 checked), or one in ``directory`` (a test's or an experiment's own folder)."""
        from .checkpoints import CHECKPOINT_DIR, load_verified

        state, entry = load_verified(name, expected_model="shapes_judge", directory=directory or CHECKPOINT_DIR)
        model = cls(JudgeConfig(**entry["config"]))  # a config without attributes is a 2-D judge
        model.load_state_dict(state)
        return model.eval()


def judge_loss_fn(noise_std: float = 0.1, generator: torch.Generator | None = None):
    """``loss_fn(model, (images, *labels))`` for ``trainer.train``: the sum of one cross-entropy per head, the labels
    int64 ``[B]`` in the judge's head order (2-D: shape, colour, size, position). Each image gets Gaussian pixel
    noise of a standard deviation drawn in [0, ``noise_std``], so that a generated image with a little grain is judged
    on its content, not its grain."""

    def loss_fn(model: ShapesJudge, batch) -> Tensor:
        x, *labels = batch
        sigma = noise_std * torch.rand(len(x), 1, 1, 1, generator=generator).to(x)
        logits = model(x + sigma * torch.randn(x.shape, generator=generator).to(x))
        if len(labels) != len(logits):
            raise ValueError(
                f"the judge has {len(logits)} heads ({', '.join(logits)}) but the batch has {len(labels)} "
                "label tensors; pass (images, *labels) with one label tensor per head, in head order."
            )
        return sum(F.cross_entropy(z, y) for z, y in zip(logits.values(), labels))

    return loss_fn


def prompt_attributes(
    captions: Sequence[str], parse: Callable[[str], dict[str, int]] = parse_caption
) -> dict[str, Tensor]:
    """The attribute indices each caption asks for, int64 ``[N]`` per attribute (``parse``: ``data.parse_caption``
    for the 2-D world, ``shapes3d.parse_caption3d`` for the 3-D one)."""
    if isinstance(captions, str):
        raise ValueError(f"captions must be a list of strings, got one string {captions!r}; wrap it: [caption].")
    parsed = [parse(c) for c in captions]
    names = parsed[0] if parsed else {}
    return {name: torch.tensor([p[name] for p in parsed], dtype=torch.int64) for name in names}


@torch.no_grad()
def adherence(
    judge: ShapesJudge, images: Tensor, captions: Sequence[str], parse: Callable[[str], dict[str, int]] = parse_caption
) -> dict[str, float]:
    """Prompt adherence: the fraction of images whose judged attributes match their caption.

    Args:
        images: float ``[N, 3, S, S]`` in [-1, 1] (generated or real).
        captions: N captions of the shapes world, "a <size> <colour> <shape> at the <position>" (or of the world
            ``parse`` reads: ``judge3d.adherence3d`` passes ``shapes3d.parse_caption3d``).
        parse: caption -> attribute indices; its attributes must be the judge's heads.

    Returns:
        per-attribute agreement (2-D: ``"shape", "colour", "size", "position"``), and ``"all"``: all at once.
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions; pass one caption per image.")
    if len(images) == 0:
        raise ValueError("no images to judge; pass at least one image and its caption.")
    want = prompt_attributes(captions, parse)
    if set(want) != set(judge.heads):
        raise ValueError(
            f"the captions give {sorted(want)} but this judge reads {sorted(judge.heads)}; judge 3-D "
            "captions with judge3d.adherence3d and the shapes3d_judge, 2-D ones with the shapes_judge."
        )
    got = judge.predict(images.float().clamp(-1, 1))
    hits = {name: got[name].cpu() == want[name] for name in judge.heads}
    report = {name: hit.float().mean().item() for name, hit in hits.items()}
    report["all"] = torch.stack(list(hits.values())).all(0).float().mean().item()
    return report
