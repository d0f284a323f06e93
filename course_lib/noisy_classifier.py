"""A noise-aware classifier p_phi(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, Sec. 4).

A classifier trained on clean images has never seen x_t: at large t its gradient points nowhere useful. This
one is the U-Net's encoder half (the same ResBlocks with the time embedding as scale and shift), then the
middle block, global average pooling and a linear layer, trained with cross-entropy on ``q_sample``d images at
t drawn uniformly from 0 ... T-1 (Dhariwal & Nichol use attention pooling; average pooling is enough here).

Shapes: x [B, C, H, W] in the units of x_t; t int64 [B] in 0 ... T-1; logits [B, num_classes].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .forward_process import q_sample
from .schedules import Schedule
from .unet import ResBlock, _norm, timestep_embedding


@dataclass(frozen=True)
class NoisyClassifierConfig:
    in_channels: int = 1
    num_classes: int = 10
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NoisyClassifierConfig":
        return cls(**{**d, "channel_mults": tuple(d["channel_mults"])})


class NoisyClassifier(nn.Module):
    """logits of p_phi(y | x_t, t): conv_in, ResBlocks + downsampling per level, a middle ResBlock, pool, linear."""

    def __init__(self, config: NoisyClassifierConfig = NoisyClassifierConfig()):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        ch = [c.base_channels * m for m in c.channel_mults]
        self.conv_in = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.res, self.down, prev = nn.ModuleList(), nn.ModuleList(), ch[0]
        for i, cur in enumerate(ch):
            self.res.append(
                nn.ModuleList(ResBlock(prev if j == 0 else cur, cur, emb_dim) for j in range(c.num_res_blocks))
            )
            self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1) if i < len(ch) - 1 else nn.Identity())
            prev = cur
        self.mid = ResBlock(prev, prev, emb_dim)
        self.norm_out, self.head = _norm(prev), nn.Linear(prev, c.num_classes)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"x must be [B, {c.in_channels}, H, W], got {tuple(x.shape)}.")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, c.base_channels).to(x.dtype))
        h = self.conv_in(x)
        for blocks, down in zip(self.res, self.down):
            for block in blocks:
                h = block(h, emb)
            h = down(h)
        h = F.silu(self.norm_out(self.mid(h, emb)))
        return self.head(h.mean(dim=(2, 3)))

    @classmethod
    def from_pretrained(cls, name: str = "noisy_digit_classifier") -> "NoisyClassifier":
        """Load a shipped checkpoint after verifying its SHA-256 (see ``checkpoints``)."""
        from .checkpoints import load_verified

        state, entry = load_verified(name, expected_model="noisy_classifier")
        model = cls(NoisyClassifierConfig.from_dict(entry["config"]))
        model.load_state_dict(state)
        return model.eval()


def noisy_classifier_loss_fn(schedule: Schedule, generator: torch.Generator | None = None):
    """A ``loss_fn(model, (x0, y))`` for ``trainer.train``: cross-entropy of p_phi(y | x_t, t), t ~ U{0..T-1}."""

    def loss_fn(model, batch):
        x0, y = batch
        t = torch.randint(0, schedule.num_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        return F.cross_entropy(model(q_sample(x0, t, schedule, noise), t), y)

    return loss_fn


@torch.no_grad()
def _takes_t(classifier) -> bool:
    """Whether ``classifier`` is called as f(x, t) (True) or f(x) (False), read from its signature."""
    import inspect

    fn = classifier.forward if isinstance(classifier, nn.Module) else classifier
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = None
    if params is None or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        raise ValueError(
            "cannot tell from the classifier's signature whether it takes t (a wrapper with *args?); "
            "pass takes_t=True for classifier(x_t, t) or takes_t=False for classifier(x_t)."
        )
    positional = [
        p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return sum(p.default is inspect.Parameter.empty for p in positional) >= 2


def accuracy_by_t(
    classifier,
    x0: Tensor,
    y: Tensor,
    schedule: Schedule,
    timesteps: Sequence[int],
    *,
    num_classes: int = 10,
    seed: int = 0,
    takes_t: bool | None = None,
) -> list[float]:
    """Accuracy of ``classifier(x_t, t)`` (or ``classifier(x_t)``) on ``q_sample``d ``x0``.

    Args:
        classifier: a module or function returning logits [N, >= num_classes].
        x0: clean images [N, C, H, W]; y: their labels int64 [N].
        timesteps: the t at which to noise and classify; the same noise (from ``seed``) at every t.
        num_classes: the prediction is the argmax over the first ``num_classes`` logits (the digits classifier of
            ``metrics`` has an 11th, "not a digit", that a forced choice among the digits leaves out).
        takes_t: whether to call ``classifier(x_t, t)``; None reads it from the signature (two required
            positional arguments: yes), and asks for the flag where the signature does not tell (``*args``).
    Returns:
        One accuracy in [0, 1] per t.
    """
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    takes_t = _takes_t(classifier) if takes_t is None else bool(takes_t)
    out = []
    for t in timesteps:
        tt = torch.full((x0.shape[0],), int(t), dtype=torch.long)
        xt = q_sample(x0, tt, schedule, noise)
        logits = classifier(xt, tt) if takes_t else classifier(xt)
        out.append((logits[:, :num_classes].argmax(1) == y).float().mean().item())
    return out
