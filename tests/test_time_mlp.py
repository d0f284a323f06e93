"""course_lib.time_mlp: the small time-conditioned MLP of the 2-D pages, equal to chapter 2's written-out network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.time_mlp import TimeMLP
from course_lib.unet import timestep_embedding


class _Block(nn.Module):  # chapter 2, page 3 (02_ddpm/03_ddpm_2d), as written there
    def __init__(self, width):
        super().__init__()
        self.time = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h, emb):
        return h + self.mlp(h + self.time(emb))


class _NoiseMLP(nn.Module):
    def __init__(self, width=128, depth=2, emb_dim=32, out=2):
        super().__init__()
        self.emb_dim = emb_dim
        self.inp = nn.Linear(2, width)
        self.time = nn.Sequential(nn.Linear(emb_dim, width), nn.SiLU())
        self.blocks = nn.ModuleList([_Block(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out))

    def forward(self, x, t):
        h, emb = self.inp(x), self.time(timestep_embedding(t, self.emb_dim))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)


@pytest.mark.parametrize("width, out_dim", [(128, 2), (64, 4)])
def test_same_seed_same_network_as_chapter_2(width, out_dim):
    torch.manual_seed(0)
    ours = TimeMLP(out_dim=out_dim, width=width)
    torch.manual_seed(0)
    theirs = _NoiseMLP(width=width, out=out_dim)
    x, t = torch.randn(7, 2), torch.tensor([0, 1, 10, 100, 500, 998, 999])
    torch.testing.assert_close(ours(x, t), theirs(x, t), rtol=0, atol=0)
    assert ours(x, t).shape == (7, out_dim)
    assert not torch.allclose(ours(x, t), ours(x, t.flip(0)))  # the time is heard


def test_bad_input_is_explained():
    net = TimeMLP()
    with pytest.raises(ValueError, match=r"x \[B, 2\]"):
        net(torch.randn(3, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="t \\[B\\]"):
        net(torch.randn(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="even emb_dim"):
        TimeMLP(emb_dim=31)
