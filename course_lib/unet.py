"""A small U-Net noise predictor eps_theta(x_t, t [, y]) sized for a CPU.

Papers: Ronneberger et al. 2015 (U-Net); Ho et al. 2020, Appendix B (ResBlocks with GroupNorm, sinusoidal
time embedding, self-attention at low resolution); Nichol & Dhariwal 2021 / Dhariwal & Nichol 2021
(time injected by scale-shift: GroupNorm(h) * (1 + scale) + shift; class embedding added to the time embedding).

Read bottom-up: the embedding, the blocks, then the network. Shapes: x [B, C, H, W] with H, W divisible by
2 ** (len(channel_mults) - 1); t int64 [B] in 0 ... T-1; y int64 [B] class labels (the index
``num_classes`` means "no label", used by classifier-free guidance).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding [cos(t w_0), ..., cos(t w_{n-1}), sin(t w_0), ..., sin(t w_{n-1})], n = dim / 2.

    w_i = exp(-ln(max_period) i / n), i = 0 ... n-1: frequencies from 1 down to ~1/max_period
    (Vaswani et al. 2017, Sec. 3.5; the cos-first layout of improved-diffusion).

    Args:
        t: timesteps [B] (int or float).
        dim: an even embedding width.
    Returns:
        float32 [B, dim].
    """
    if dim % 2 != 0 or dim <= 0:
        raise ValueError(f"dim must be a positive even number, got {dim}.")
    if not isinstance(t, Tensor) or t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor [B], got {getattr(t, 'shape', type(t))}.")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, then the time embedding as scale and shift of the second GroupNorm."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2, self.conv2 = _norm(out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, ch: int, num_heads: int = 4):
        super().__init__()
        self.norm, self.num_heads = _norm(ch), num_heads
        self.qkv, self.proj = nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


@dataclass(frozen=True)
class UNetConfig:
    """Sizes of the U-Net. ``attention_levels`` index ``channel_mults`` (0 = full resolution)."""

    in_channels: int = 1
    out_channels: int | None = None  # defaults to in_channels (eps has the image's shape)
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    num_heads: int = 4
    dropout: float = 0.0
    num_classes: int | None = None  # None: unconditional; else labels 0 ... num_classes-1, plus a null label

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("channel_mults", "attention_levels"):
            d[key] = tuple(d[key])
        return cls(**d)


class UNet(nn.Module):
    """eps_theta(x_t, t, y=None): encoder (ResBlocks, downsampling), middle (Res, Attn, Res), decoder with skips."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = c = config
        ch = [c.base_channels * m for m in c.channel_mults]
        self.emb_dim = emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(c.num_classes + 1, emb_dim) if c.num_classes else None
        self.conv_in = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)

        self.down, prev = nn.ModuleList(), ch[0]
        for i, cur in enumerate(ch):
            level = nn.ModuleDict({"res": nn.ModuleList(), "attn": nn.ModuleList()})
            for _ in range(c.num_res_blocks):
                level["res"].append(ResBlock(prev, cur, emb_dim, c.dropout))
                level["attn"].append(SelfAttention(cur, c.num_heads) if i in c.attention_levels else nn.Identity())
                prev = cur
            level["down"] = nn.Conv2d(cur, cur, 3, stride=2, padding=1) if i < len(ch) - 1 else nn.Identity()
            self.down.append(level)

        self.mid1 = ResBlock(prev, prev, emb_dim, c.dropout)
        self.mid_attn = SelfAttention(prev, c.num_heads)
        self.mid2 = ResBlock(prev, prev, emb_dim, c.dropout)

        self.up = nn.ModuleList()
        for i, cur in reversed(list(enumerate(ch))):
            level = nn.ModuleDict({"res": nn.ModuleList(), "attn": nn.ModuleList()})
            for j in range(c.num_res_blocks):
                level["res"].append(ResBlock(prev + cur if j == 0 else cur, cur, emb_dim, c.dropout))
                level["attn"].append(SelfAttention(cur, c.num_heads) if i in c.attention_levels else nn.Identity())
                prev = cur
            level["up"] = nn.Conv2d(cur, cur, 3, padding=1) if i > 0 else nn.Identity()
            self.up.append(level)

        self.norm_out = _norm(prev)
        self.conv_out = nn.Conv2d(prev, c.out_channels or c.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.config
        factor = 2 ** (len(c.channel_mults) - 1)
        if x.ndim != 4 or x.shape[1] != c.in_channels or x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"x must be [B, {c.in_channels}, H, W] with H and W divisible by {factor}, got {tuple(x.shape)}."
            )
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, c.base_channels))
        if self.class_emb is not None:
            if y is None:  # no label given: the null class
                y = torch.full((x.shape[0],), c.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.class_emb(y)
        elif y is not None:
            raise ValueError("this UNet is unconditional (num_classes=None) but a label y was given.")

        h, skips = self.conv_in(x), []
        for level in self.down:
            for res, attn in zip(level["res"], level["attn"]):
                h = attn(res(h, emb))
            skips.append(h)
            h = level["down"](h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            for res, attn in zip(level["res"], level["attn"]):
                h = attn(res(h, emb))
            if not isinstance(level["up"], nn.Identity):
                h = level["up"](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))

    @classmethod
    def from_pretrained(cls, name: str) -> "UNet":
        """Load a shipped checkpoint after verifying its SHA-256 (see ``checkpoints``)."""
        from .checkpoints import load_verified

        state, entry = load_verified(name, expected_model="unet")
        model = cls(UNetConfig.from_dict(entry["config"]))
        model.load_state_dict(state)
        return model.eval()


# --- inspection -----------------------------------------------------------------------------------------


@torch.no_grad()
def stage_shapes(model: UNet, x: Tensor, t: Tensor, y: Tensor | None = None) -> list[dict]:
    """Run ``model(x, t, y)`` once and record every stage's output shape and parameter count, in execution order.

    The stages: ``conv_in``; per encoder level i (0 = full resolution) its ResBlocks, attention layers and
    downsampling; the middle (``mid1``, ``mid_attn``, ``mid2``); per decoder level, from the lowest resolution
    up, its ResBlocks (the first takes in the skip connection, hence its extra input channels), attention
    layers and upsampling; ``conv_out``. The time MLP, the class embedding and the last GroupNorm are not
    stages: their parameters are the rest of the model's.

    Args:
        model: a ``UNet``.
        x: images [B, C, H, W] the model accepts, on its device.
        t: int64 [B] code indices in 0 ... T-1; y: optional labels, as for ``UNet.forward``.
    Returns:
        One dict per stage, {"stage": "down 1: ResBlock 0", "output shape": (B, C, H, W), "parameters": int};
        the model is left without hooks, also when the forward pass raises.
    """
    if not isinstance(model, UNet):
        raise ValueError(f"model must be a course_lib UNet, got {type(model).__name__}.")
    modules = [("conv_in", model.conv_in)]
    for i, level in enumerate(model.down):
        for j, (res, attn) in enumerate(zip(level["res"], level["attn"])):
            modules += [(f"down {i}: ResBlock {j}", res), (f"down {i}: attention {j}", attn)]
        modules.append((f"down {i}: downsample", level["down"]))
    modules += [(f"middle: {name}", getattr(model, name)) for name in ("mid1", "mid_attn", "mid2")]
    for i, level in zip(reversed(range(len(model.up))), model.up):  # the decoder runs from the lowest level up
        for j, (res, attn) in enumerate(zip(level["res"], level["attn"])):
            modules += [(f"up {i}: ResBlock {j}", res), (f"up {i}: attention {j}", attn)]
        modules.append((f"up {i}: upsample", level["up"]))
    modules.append(("conv_out", model.conv_out))

    stages: list[dict] = []

    def record(name: str):
        def hook(module, inputs, output):
            stages.append(
                {
                    "stage": name,
                    "output shape": tuple(output.shape),
                    "parameters": sum(p.numel() for p in module.parameters()),
                }
            )

        return hook

    handles = [
        module.register_forward_hook(record(name)) for name, module in modules if not isinstance(module, nn.Identity)
    ]  # absent attention / resampling
    try:
        model(x, t, y)
    finally:
        for handle in handles:
            handle.remove()
    return stages
