"""A small time-conditioned MLP for points: the noise predictor of the 2-D pages.

eps_theta(x_t, t) for points x_t [B, D] (D = 2 on the toy pages) and code indices t int64 [B] in 0 ... T-1 (see
``schedules``): a linear input layer, ``depth`` residual blocks h + MLP(LayerNorm(h + W emb)) that are told the time
through a sinusoidal embedding (``unet.timestep_embedding``, the one of the U-Net), then LayerNorm and a
linear layer with ``out_dim`` outputs per point. Chapter 2 writes this network out from scratch; chapter 3 uses it
with out_dim = 2 D: eps, then the v of Nichol & Dhariwal 2021, Eq. 15 (``variance.split_output`` separates them).
Read bottom-up: the block, then the network.
"""

from __future__ import annotations

from torch import Tensor, nn

from .unet import timestep_embedding


class TimeBlock(nn.Module):
    """h + MLP(LayerNorm(h + W emb)): a residual block that is told the time. h, emb: [B, width] -> [B, width]."""

    def __init__(self, width: int):
        super().__init__()
        self.time = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.mlp(h + self.time(emb))


class TimeMLP(nn.Module):
    """(x_t [B, in_dim], t int64 [B]) -> [B, out_dim]: eps_theta (out_dim = in_dim), or eps then v (2 in_dim).

    Args:
        in_dim: numbers per point; out_dim: outputs per point; width: hidden size; depth: residual blocks;
        emb_dim: size of the sinusoidal time embedding (even).
    """

    def __init__(self, in_dim: int = 2, out_dim: int = 2, width: int = 128, depth: int = 2, emb_dim: int = 32):
        super().__init__()
        if min(in_dim, out_dim, width, emb_dim) < 1 or depth < 0 or emb_dim % 2:
            raise ValueError(
                f"need positive in_dim, out_dim, width, an even emb_dim and depth >= 0; got in_dim="
                f"{in_dim}, out_dim={out_dim}, width={width}, depth={depth}, emb_dim={emb_dim}."
            )
        self.in_dim, self.emb_dim = in_dim, emb_dim
        self.inp = nn.Linear(in_dim, width)
        self.time = nn.Sequential(nn.Linear(emb_dim, width), nn.SiLU())
        self.blocks = nn.ModuleList([TimeBlock(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out_dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim or t.shape != (x.shape[0],):
            raise ValueError(f"expected x [B, {self.in_dim}] and t [B], got x {tuple(x.shape)} and t {tuple(t.shape)}.")
        h, emb = self.inp(x), self.time(timestep_embedding(t, self.emb_dim))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)
