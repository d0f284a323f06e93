"""A model-agnostic training loop (in the spirit of minGPT's Trainer), in one process or several.

It knows nothing about diffusion: it takes ``loss_fn(model, batch) -> scalar`` and data, and handles the
optimiser (AdamW), gradient clipping, gradient accumulation, an exponential moving average (EMA) of the weights,
mixed precision on CUDA, a tqdm bar and the loss history.

Run by plain ``python``, ``train`` is plain PyTorch on one device. Started by ``accelerate launch`` (or torchrun),
it hands the processes to Hugging Face accelerate: the loss bound to the model is wrapped in DistributedDataParallel
(one process per GPU, or gloo between CPU processes), accelerate averages the gradients, and each process takes its
share of the same global batch. Nothing here talks to other processes by itself. How to launch: docs/SCALE_OUT.md.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .profiles import default_device

# Where launchers put the process count and rank: torchrun / accelerate launch, then the MPI launchers (the names
# accelerate's own PartialState reads).
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
PROCESS_SEED_STRIDE = 1_000_000  # process r seeds its noise with seed + r * stride, far from a recipe's seed + 1


@dataclass
class TrainResult:
    model: nn.Module  # the trained weights
    ema_model: nn.Module | None  # their moving average, usually the better sampler (None on processes other than 0)
    losses: list[float] = field(default_factory=list)  # one value per optimiser step: the global batch's mean loss
    steps: int = 0
    wall_time_s: float = 0.0
    num_processes: int = 1
    is_main_process: bool = True  # process 0: the one that keeps the EMA, logs and writes checkpoints


def _env_int(names: tuple[str, ...], default: int) -> int:
    return next((int(os.environ[n]) for n in names if n in os.environ), default)


def launched() -> bool:
    """True in a process started by ``accelerate launch`` (which sets ``ACCELERATE_MIXED_PRECISION``) or by another
    launcher of several processes (torchrun, mpirun); ``train`` then runs through an ``accelerate.Accelerator``."""
    return "ACCELERATE_MIXED_PRECISION" in os.environ or _env_int(_WORLD_SIZE_VARIABLES, 1) > 1


def process_index() -> int:
    """This process's rank, 0 ... N-1, in a launched run (0 is the main process); 0 in a plain Python process."""
    return _env_int(_RANK_VARIABLES, 0)


def process_generator(seed: int) -> torch.Generator:
    """A CPU generator for the noise a loss draws: seeded with ``seed + PROCESS_SEED_STRIDE * process_index()``.

    In one process that is ``seed`` itself (runs are unchanged); in process r of a launched run the stream differs
    from the other processes', so they do not pair their different examples with the same (t, eps) draws.
    """
    return torch.Generator().manual_seed(seed + PROCESS_SEED_STRIDE * process_index())


def tensor_batches(
    tensors: tuple[Tensor, ...],
    batch_size: int,
    generator: torch.Generator,
    *,
    num_processes: int = 1,
    process_index: int = 0,
    micro_batches: int = 1,
) -> Iterator:
    """Endless shuffled mini-batches (tuples) from in-memory tensors that share their first dimension.

    Each epoch is a permutation drawn from ``generator``, cut into global batches of ``batch_size`` rows (an
    incomplete last batch is dropped). A global batch is cut into ``micro_batches`` consecutive micro-batches
    (gradient accumulation) and each of those into ``num_processes`` consecutive shards of
    b = batch_size / (micro_batches * num_processes) rows; this process yields its shard of every micro-batch in turn.
    Seeded alike in every process, the processes together see exactly the rows one process would see in one global
    batch. With the defaults it yields whole global batches.
    """
    n, parts = tensors[0].shape[0], micro_batches * num_processes
    if any(x.shape[0] != n for x in tensors):
        raise ValueError(f"all data tensors need the same first dimension, got {[tuple(x.shape) for x in tensors]}.")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the dataset ({n} examples).")
    if not 0 <= process_index < num_processes or micro_batches < 1:
        raise ValueError(
            f"need 0 <= process_index < num_processes and micro_batches >= 1, got process_index="
            f"{process_index}, num_processes={num_processes}, micro_batches={micro_batches}."
        )
    if batch_size % parts:
        raise ValueError(
            f"batch_size={batch_size} is the global batch of one optimiser step, split over "
            f"{num_processes} process(es) x {micro_batches} accumulation step(s), so it must be a "
            f"multiple of {parts}. Use batch_size={max(parts, batch_size // parts * parts)}, or a process "
            "count and gradient_accumulation_steps whose product divides it."
        )
    size = batch_size // parts
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            for j in range(micro_batches):
                start = i + (j * num_processes + process_index) * size
                yield tuple(x[perm[start : start + size]] for x in tensors)


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


class _BoundLoss(nn.Module):
    """``loss_fn`` bound to ``model`` as one module, so that DDP wraps the whole loss: ``loss_fn`` gets the model
    itself and may call any of its methods (a VAE's ``encode``), and DDP still sees every gradient it produces."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, object], Tensor]):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch) -> Tensor:
        return self.loss_fn(self.model, batch)


def _accelerator(mixed_precision: bool | None, accumulation: int):
    """The ``accelerate.Accelerator`` of a launched run: DDP over the launched processes, ``accumulation`` micro-steps
    per optimiser step, DataLoader batches split over the processes, and the precision ``train`` picks in one
    process."""
    try:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin, parse_flag_from_env
    except ImportError as err:
        raise ImportError(
            "this process was started by a launcher (accelerate launch / torchrun), and train then "
            "needs Hugging Face accelerate: pip install 'course_lib[chapters]' (or accelerate), or run "
            "the script with plain python for one process."
        ) from err
    cuda = torch.cuda.is_available() and not parse_flag_from_env("ACCELERATE_USE_CPU")
    amp = cuda if mixed_precision is None else mixed_precision and cuda
    precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if amp else "no"
    return Accelerator(
        mixed_precision=precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=accumulation, sync_with_dataloader=False),
    )


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, object], Tensor],
    data,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-4,
    weight_decay: float = 0.0,
    ema_decay: float = 0.999,
    grad_clip: float | None = 1.0,
    warmup_steps: int = 0,
    gradient_accumulation_steps: int = 1,
    device: torch.device | str | None = None,
    seed: int = 0,
    mixed_precision: bool | None = None,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    ema_model: nn.Module | None = None,
) -> TrainResult:
    """Train ``model`` for ``steps`` optimiser steps and return the trained and EMA models with the losses.

    Args:
        loss_fn: ``loss_fn(model, batch)`` returning a scalar tensor, a mean over the batch's examples.
        data: a tuple of tensors [N, ...] (shuffled in memory with ``seed``) or any re-iterable of batches (a
            DataLoader: each micro-step takes one of its batches; launched, each batch is split over the processes).
        batch_size: examples per optimiser step for tensor data, over all processes and accumulation steps together
            (the global batch; see ``tensor_batches``). It must be a multiple of processes x accumulation steps.
        ema_decay: the EMA's decay; it is warmed up as min(decay, (1 + step) / (10 + step)) so that short runs
            still get a useful average.
        warmup_steps: linear learning-rate warm-up from 0.
        gradient_accumulation_steps: k micro-batches of batch_size / k (per process count) per optimiser step, each
            loss divided by k before its backward pass, so that a step's gradient is that of the global batch.
        device: where to train in one process (default: ``profiles.default_device()``). Launched, each process uses
            the device accelerate gives it (its GPU, or the CPU with ``ACCELERATE_USE_CPU=1``).
        mixed_precision: autocast to bfloat16 (float16 with a gradient scaler where bf16 is unsupported) on CUDA;
            None means "on when CUDA is used". Launched, it is passed to the Accelerator and overrides accelerate
            config's ``mixed_precision``.
        callback: called as ``callback(step, loss)`` after every step (on the main process only).
        ema_model: continue an existing EMA (e.g. the shipped checkpoint's) instead of starting from ``model``.

    Several processes: under ``accelerate launch`` the loss bound to the model (``_BoundLoss``) and the optimiser go
    through ``Accelerator.prepare`` (DistributedDataParallel), and backward, accumulation (``no_sync`` on the first
    k - 1 micro-steps) and clipping through the Accelerator. Process r of N takes the
    rows r*b ... (r+1)*b - 1 of each micro-batch of the one global permutation (b = batch_size / (N k)); for a mean
    loss, DDP's average of the N shard gradients is the one-process gradient of the global batch, so one process
    and N processes take the same steps up to float rounding. The recorded loss is the mean over processes. Only
    process 0 keeps the EMA, shows the bar and calls ``callback``; the others return ``ema_model=None``.

    Reproducibility: the data order comes from ``seed`` alone, the same in every process, so every optimiser step
    sees the same examples whatever N. Torch's global RNG (dropout, noise drawn without a generator) is seeded with
    seed + PROCESS_SEED_STRIDE * r (``process_generator`` seeds a loss's own generator the same way): a run is
    repeatable for a given N, and equal to the one-process run up to rounding only if the loss draws no noise.
    In one process this is exactly the plain-PyTorch loop of earlier versions (same numbers, bit for bit).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}.")
    k = gradient_accumulation_steps
    if k < 1:
        raise ValueError(f"gradient_accumulation_steps must be >= 1, got {k}.")
    acc = _accelerator(mixed_precision, k) if launched() else None
    world, rank = (acc.num_processes, acc.process_index) if acc is not None else (1, 0)
    device = acc.device if acc is not None else torch.device(device) if device is not None else default_device()
    model.to(device).train()
    ema = None
    if rank == 0:
        ema = (ema_model if ema_model is not None else copy.deepcopy(model)).to(device).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)  # the one permutation every process shards
    torch.manual_seed(seed + PROCESS_SEED_STRIDE * rank)  # dropout, and noise drawn in loss_fn without a generator
    if isinstance(data, (tuple, list)):
        batches = tensor_batches(
            tuple(data), batch_size, generator, num_processes=world, process_index=rank, micro_batches=k
        )
    else:
        batches = _cycle(acc.prepare(data) if acc is not None else data)
    raw_opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    if acc is None:
        amp = device.type == "cuda" if mixed_precision is None else mixed_precision and device.type == "cuda"
        amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
        opt, accumulate = raw_opt, contextlib.nullcontext

        def compute_loss(batch):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                return loss_fn(model, batch)

        def backward(loss):
            scaler.scale(loss / k).backward()

        def clip_and_step():
            if grad_clip is not None:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(opt)
            scaler.update()

        def mean_over_processes(x):
            return x
    else:
        net, opt = acc.prepare(_BoundLoss(model, loss_fn), raw_opt)  # DDP around the loss; AdamW over model's weights
        accumulate, backward = (lambda: acc.accumulate(net)), acc.backward

        def compute_loss(batch):
            with acc.autocast():
                return net(batch)

        def clip_and_step():  # after the k-th micro-step accelerate has averaged the gradients over the processes
            if grad_clip is not None:
                acc.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()

        def mean_over_processes(x):
            return acc.reduce(x, "mean")

    losses, start = [], time.perf_counter()
    bar = tqdm(range(steps), desc="training", disable=not progress or rank != 0, leave=False)
    for step in bar:
        for group in raw_opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else lr
        opt.zero_grad(set_to_none=True)
        micro_losses = []
        for _ in range(k):
            with accumulate():
                loss = compute_loss(_to(next(batches), device))
                mean_loss = mean_over_processes(loss.detach())  # every process gets it: all stop together on NaN
                if not torch.isfinite(mean_loss):
                    raise FloatingPointError(
                        f"loss became {mean_loss.item()} at step {step}; lower lr or check the data range."
                    )
                backward(loss)
            micro_losses.append(mean_loss.item())
        clip_and_step()
        if ema is not None:
            ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
        losses.append(sum(micro_losses) / k)
        if step % 25 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-25:]) / len(losses[-25:]):.4f}")
        if callback is not None and rank == 0:
            callback(step, losses[-1])
    if acc is not None:
        acc.wait_for_everyone()
    model.eval()
    return TrainResult(model, ema, losses, steps, time.perf_counter() - start, world, rank == 0)
