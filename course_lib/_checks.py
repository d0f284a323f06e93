"""Input checks shared by the public functions: each raises a ValueError that says how to fix the call."""

from __future__ import annotations

import torch
from torch import Tensor


def check_float(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; call `.float()` first.")


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")


def check_timesteps(t: Tensor, batch_size: int, num_timesteps: int) -> Tensor:
    """Validate integer timesteps of shape [B] in 0 ... T-1 and return them as int64."""
    if not isinstance(t, Tensor):
        raise ValueError(
            f"t must be an int64 tensor of shape [B], got {type(t).__name__}; "
            "use torch.full((B,), t) for a single step."
        )
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"t must hold integer timesteps, got dtype {t.dtype}; use `t.long()`.")
    if t.ndim != 1 or t.shape[0] != batch_size:
        raise ValueError(f"t must have shape [B] = [{batch_size}], got {tuple(t.shape)}.")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_timesteps):
        raise ValueError(
            f"timesteps must lie in 0 ... T-1 = 0 ... {num_timesteps - 1} (diffusers' convention), "
            f"got min {int(t.min())}, max {int(t.max())}. The paper's t = 1 ... T is index t - 1 here."
        )
    return t.long()
