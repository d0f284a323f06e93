"""Benchmarks of course_lib against diffusers on the CPU: a Markdown table on stdout, the same results as JSON.

Rows (see benchmarks/README.md for what each one means):
  sampler      one full DDPM sampling run: course_lib.samplers.ddpm_sample vs diffusers' DDPMPipeline,
               both driving the same UNet2DModel with the same linear schedule, seed and batch
  train        training steps/s with L_simple and AdamW: our UNet(UNetConfig()) vs a UNet2DModel of ~equal size
  convergence  CPU minutes of training (the ddpm_digits recipe) until >= 90 % of samples are recognised digits

Usage (from the repository root):
  .venv/bin/python benchmarks/run.py                      # sampler + train (a few minutes)
  .venv/bin/python benchmarks/run.py --quick              # seconds-long smoke run of sampler + train
  .venv/bin/python benchmarks/run.py --only convergence --max-minutes 60
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import diffusers
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from torch import Tensor, nn

from course_lib.data import digits
from course_lib.losses import diffusion_loss_fn
from course_lib.samplers import ddpm_sample
from course_lib.schedules import get_schedule
from course_lib.trainer import train
from course_lib.unet import UNet, UNetConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
IMAGE_SHAPE = (1, 16, 16)
BENCHMARKS = ("sampler", "train", "convergence")

# Full-size and --quick settings of each benchmark.
SIZES = {
    "full": {"sample_steps": 250, "sample_batch": 32, "sample_repeats": 3,
             "train_steps": 20, "train_batch": 128, "train_rounds": 3,
             "eval_every": 250, "eval_samples": 128},
    "quick": {"sample_steps": 10, "sample_batch": 4, "sample_repeats": 1,
              "train_steps": 3, "train_batch": 16, "train_rounds": 1,
              "eval_every": 5, "eval_samples": 8},
}


# --- models ---------------------------------------------------------------------------------------------

class EpsModel(nn.Module):
    """Gives a diffusers UNet2DModel the course's model signature: model(xt, t) -> eps [B, C, H, W]."""

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        self.unet = unet

    def forward(self, xt: Tensor, t: Tensor) -> Tensor:
        return self.unet(xt, t).sample


def diffusers_unet(seed: int = 0) -> UNet2DModel:
    """A UNet2DModel shaped like UNetConfig(): one ResBlock per level (diffusers adds one on the way up),
    attention (4 heads) at the 4x4 level and in the middle, 128-wide time embedding. Widths 32-56-56 instead
    of our 32-64-64 bring the parameter count to within 1 % of ours (32-64-64 would be 26 % larger)."""
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=IMAGE_SHAPE[1], in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(32, 56, 56), attention_head_dim=14, norm_num_groups=8,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- 1. sampling ----------------------------------------------------------------------------------------

def bench_sampler(size: dict) -> list[dict]:
    """Seconds per full sampling run, both samplers interleaved, with identical seeds (so identical noise)."""
    T, B, repeats = size["sample_steps"], size["sample_batch"], size["sample_repeats"]
    unet = diffusers_unet().eval()
    model, schedule = EpsModel(unet), get_schedule("linear", T)
    # diffusers' defaults (clip_sample=True, variance "fixed_small") spelled out, and matched on our side.
    pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=T, beta_schedule="linear",
                                                          clip_sample=True, variance_type="fixed_small"))
    pipe.set_progress_bar_config(disable=True)

    def ours() -> Tensor:
        x0 = ddpm_sample(model, (B, *IMAGE_SHAPE), schedule, generator=torch.Generator().manual_seed(0),
                         variance="fixed_small", clip_x0=True, progress=False)
        return (x0 / 2 + 0.5).clamp(0, 1)  # the pipeline's own output mapping to [0, 1]

    def theirs() -> Tensor:
        return pipe(batch_size=B, generator=torch.Generator().manual_seed(0), num_inference_steps=T,
                    output_type="pt").images

    runs, times, samples = {"ours": ours, "diffusers": theirs}, {"ours": [], "diffusers": []}, {}
    # Alternate the order so a load change on the shared machine hits both; the median drops the first run,
    # which pays for one-time allocations (one step out of T, so no separate warm-up).
    for r in range(repeats):
        for name in (("ours", "diffusers") if r % 2 == 0 else ("diffusers", "ours")):
            start = time.perf_counter()
            samples[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
    ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["diffusers"])
    diff = (samples["ours"] - samples["diffusers"]).abs().max().item()
    setting = f"T={T}, batch {B}, UNet2DModel {num_params(unet) / 1e6:.3f} M, median of {repeats}"
    return [
        {"benchmark": "sampler", "metric": "DDPM sampling, s per run (lower is better)", "setting": setting,
         "ours": ours_s, "diffusers": theirs_s, "ratio": ours_s / theirs_s, "raw": times},
        {"benchmark": "sampler", "metric": "same seed -> same samples: max abs difference in [0, 1]",
         "setting": "clip_x0=True / clip_sample=True, fixed_small", "ours": diff, "diffusers": None,
         "ratio": None, "agree": diff < 1e-4},
    ]


# --- 2. training throughput -----------------------------------------------------------------------------

def bench_train(size: dict) -> list[dict]:
    """Optimiser steps per second through course_lib.trainer.train (AdamW, EMA, grad clipping) for both nets."""
    steps, B, rounds = size["train_steps"], size["train_batch"], size["train_rounds"]
    x, _ = digits("train", image_size=IMAGE_SHAPE[1])
    schedule = get_schedule("linear", 1000)
    torch.manual_seed(0)
    models = {"ours": UNet(UNetConfig()), "diffusers": EpsModel(diffusers_unet())}

    def run(name: str, n: int) -> float:
        loss_fn = diffusion_loss_fn(schedule, torch.Generator().manual_seed(1))
        result = train(models[name], loss_fn, (x,), steps=n, batch_size=B, lr=1e-3, device="cpu", progress=False)
        return n / result.wall_time_s

    run("ours", 2), run("diffusers", 2)  # warm-up
    rates = {"ours": [], "diffusers": []}
    for r in range(rounds):
        for name in (("ours", "diffusers") if r % 2 == 0 else ("diffusers", "ours")):
            rates[name].append(run(name, steps))
    ours, theirs = statistics.median(rates["ours"]), statistics.median(rates["diffusers"])
    params = {name: num_params(m) for name, m in models.items()}
    setting = (f"batch {B} of 16x16x1, {rounds} x {steps} steps (median); params ours {params['ours']:,} "
               f"(UNet), diffusers {params['diffusers']:,} (UNet2DModel 32-56-56)")
    return [{"benchmark": "train", "metric": "training steps/s (higher is better)", "setting": setting,
             "ours": ours, "diffusers": theirs, "ratio": ours / theirs, "params": params, "raw": rates}]


# --- 3. convergence -------------------------------------------------------------------------------------

class Stop(Exception):
    """Raised from the training callback to end the run (target reached or budget spent)."""


def bench_convergence(size: dict, max_minutes: float, target: float = 0.9) -> list[dict]:
    """The ddpm_digits recipe (linear T=1000, batch 128, lr 1e-3, warm-up 200, EMA 0.999, seed 0), evaluated
    every ``eval_every`` steps on the EMA model: ``sample_report(...)["recognized"]`` of a fixed-seed batch."""
    from course_lib.metrics import DigitClassifier, sample_report

    classifier = DigitClassifier.from_pretrained()  # fails with a clear message if the checkpoint is missing
    every, n = size["eval_every"], size["eval_samples"]
    x, _ = digits("train", image_size=IMAGE_SHAPE[1])
    schedule = get_schedule("linear", 1000)
    torch.manual_seed(0)
    model = UNet(UNetConfig())
    ema = UNet(UNetConfig())
    ema.load_state_dict(model.state_dict())
    history, clock = [], {"eval_s": 0.0}

    def callback(step: int, loss: float) -> None:
        if (step + 1) % every:
            return
        now = time.perf_counter()
        train_s = now - clock["start"] - clock["eval_s"]
        samples = ddpm_sample(ema, (n, *IMAGE_SHAPE), schedule, generator=torch.Generator().manual_seed(0),
                              progress=False)
        report = sample_report(samples, classifier)
        clock["eval_s"] += time.perf_counter() - now
        history.append({"step": step + 1, "train_minutes": train_s / 60, "loss": loss,
                        "recognized": report["recognized"], "frechet": report["frechet"]})
        print(f"  step {step + 1:6d}  {train_s / 60:6.2f} min  recognized {report['recognized']:.3f}  "
              f"frechet {report['frechet']:.2f}", flush=True)
        if report["recognized"] >= target or train_s >= 60 * max_minutes:
            raise Stop

    clock["start"] = time.perf_counter()
    try:
        train(model, diffusion_loss_fn(schedule, torch.Generator().manual_seed(1)), (x,), steps=10**9,
              batch_size=128, lr=1e-3, warmup_steps=200, ema_decay=0.999, seed=0, device="cpu",
              progress=False, callback=callback, ema_model=ema)
    except Stop:
        pass
    last = history[-1]
    reached = last["recognized"] >= target
    result = (f"{last['train_minutes']:.1f} min, {last['step']} steps" if reached else
              f"not reached in {last['train_minutes']:.1f} min / {last['step']} steps "
              f"(recognized {last['recognized']:.2f})")
    setting = (f"ddpm_digits recipe, eval every {every} steps on {n} EMA samples, "
               f"budget {max_minutes:g} min, evaluation time excluded")
    return [{"benchmark": "convergence", "metric": f"CPU training to >= {target:.0%} recognised",
             "setting": setting, "ours": result, "diffusers": None, "ratio": None, "reached": reached,
             "history": history, "eval_minutes": clock["eval_s"] / 60}]


# --- report ---------------------------------------------------------------------------------------------

def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.3f}"
    return str(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| benchmark | metric | setting | ours | diffusers | ours / diffusers |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['metric']} | {r['setting']} | {fmt(r['ours'])} | "
                     f"{fmt(r['diffusers'])} | {fmt(r['ratio'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    parser.add_argument("--only", default="sampler,train",
                        help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: sampler,train)")
    parser.add_argument("--max-minutes", type=float, default=60.0,
                        help="training budget of the convergence run, evaluation excluded (default 60)")
    parser.add_argument("--eval-every", type=int, default=None, help="convergence: steps between evaluations")
    parser.add_argument("--eval-samples", type=int, default=None, help="convergence: samples per evaluation")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); use 1 on a machine busy with other jobs")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    if not chosen or any(b not in BENCHMARKS for b in chosen):
        parser.error(f"--only takes a comma-separated subset of {BENCHMARKS}, got {args.only!r}")
    size = dict(SIZES["quick" if args.quick else "full"])
    size |= {k: v for k, v in (("eval_every", args.eval_every), ("eval_samples", args.eval_samples)) if v}

    meta = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
            "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()}
    rows = []
    for name in chosen:
        print(f"running {name} ...", flush=True)
        if name == "sampler":
            rows += bench_sampler(size)
        elif name == "train":
            rows += bench_train(size)
        else:
            rows += bench_convergence(size, 0.0 if args.quick else args.max_minutes)
    meta["load_avg_end"] = os.getloadavg()

    print()
    print(markdown(rows))
    print(f"\ntorch {meta['torch']}, diffusers {meta['diffusers']}, {meta['torch_threads']} threads, "
          f"load average {meta['load_avg_start'][0]:.1f} -> {meta['load_avg_end'][0]:.1f}"
          + (" (--quick: sizes too small to mean anything)" if args.quick else ""))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}-{'-'.join(chosen)}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
