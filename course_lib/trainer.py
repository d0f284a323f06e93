"""A model-agnostic training loop (in the spirit of minGPT's Trainer).

It knows nothing about diffusion: it takes ``loss_fn(model, batch) -> scalar`` and data, and handles the
optimiser (AdamW), gradient clipping, an exponential moving average (EMA) of the weights, mixed precision
on CUDA, a tqdm bar and the loss history.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .profiles import default_device


@dataclass
class TrainResult:
    model: nn.Module  # the trained weights
    ema_model: nn.Module  # their moving average: usually the better sampler
    losses: list[float] = field(default_factory=list)  # one value per step
    steps: int = 0
    wall_time_s: float = 0.0


def tensor_batches(tensors: tuple[Tensor, ...], batch_size: int, generator: torch.Generator) -> Iterator:
    """Endless shuffled mini-batches (tuples) from in-memory tensors that share their first dimension."""
    n = tensors[0].shape[0]
    if any(x.shape[0] != n for x in tensors):
        raise ValueError(f"all data tensors need the same first dimension, got {[tuple(x.shape) for x in tensors]}.")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the dataset ({n} examples).")
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield tuple(x[perm[i:i + batch_size]] for x in tensors)


def _cycle(loader: Iterable) -> Iterator:
    while True:
        yield from loader


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, for parameters; buffers are copied."""
    for p_ema, p in zip(ema_model.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema_model.buffers(), model.buffers()):
        b_ema.copy_(b)


def _to(batch, device):
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    return type(batch)(_to(b, device) for b in batch)


def train(model: nn.Module, loss_fn: Callable[[nn.Module, object], Tensor], data, *, steps: int,
          batch_size: int = 128, lr: float = 2e-4, weight_decay: float = 0.0, ema_decay: float = 0.999,
          grad_clip: float | None = 1.0, warmup_steps: int = 0, device: torch.device | str | None = None,
          seed: int = 0, mixed_precision: bool | None = None, progress: bool = True,
          callback: Callable[[int, float], None] | None = None, ema_model: nn.Module | None = None) -> TrainResult:
    """Train ``model`` for ``steps`` optimiser steps and return the trained and EMA models with the losses.

    Args:
        loss_fn: ``loss_fn(model, batch)`` returning a scalar tensor.
        data: a tuple of tensors (shuffled in memory with ``seed``) or any re-iterable of batches (a DataLoader).
        ema_decay: the EMA's decay; it is warmed up as min(decay, (1 + step) / (10 + step)) so that short runs
            still get a useful average.
        warmup_steps: linear learning-rate warm-up from 0.
        mixed_precision: autocast to bfloat16/float16 on CUDA; None means "on when CUDA is used".
        callback: called as ``callback(step, loss)`` after every step.
        ema_model: continue an existing EMA (e.g. the shipped checkpoint's) instead of starting from ``model``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}.")
    device = torch.device(device) if device is not None else default_device()
    model.to(device).train()
    ema = (ema_model if ema_model is not None else copy.deepcopy(model)).to(device).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout and any noise drawn inside loss_fn without a generator
    batches = tensor_batches(tuple(data), batch_size, generator) if isinstance(data, (tuple, list)) else _cycle(data)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    amp = device.type == "cuda" if mixed_precision is None else mixed_precision and device.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)

    losses, start = [], time.perf_counter()
    bar = tqdm(range(steps), desc="training", disable=not progress, leave=False)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else lr
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            loss = loss_fn(model, _to(next(batches), device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or check the data range.")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(opt)
        scaler.update()
        ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        if step % 25 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-25:]) / len(losses[-25:]):.4f}")
        if callback is not None:
            callback(step, losses[-1])
    model.eval()
    return TrainResult(model, ema, losses, steps, time.perf_counter() - start)
