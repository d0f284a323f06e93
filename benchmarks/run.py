"""Benchmarks of course_lib against diffusers on the CPU: a Markdown table on stdout, the same results as JSON.

Rows (benchmarks/README.md says what each one means):
  sampler      one full DDPM sampling run: course_lib.samplers.ddpm_sample vs diffusers' DDPMPipeline,
               both driving the same UNet2DModel with the same linear schedule, seed and batch
  train        training steps/s with L_simple and AdamW: our UNet(UNetConfig()) vs a UNet2DModel of ~equal size
  convergence  CPU minutes of training (the ddpm_digits recipe) until >= 90 % of samples are recognised digits
  ddim         DDIM-50 vs DDPM-1000 on the shipped ddpm_digits model (time ratio and sample quality, same seeds),
               and course_lib.ddim.ddim_sample vs diffusers' DDIMPipeline on the same UNet2DModel
  latent       the same text-conditioned U-Net (text_to_image.TINY_UNET) on 8x8x4 latents vs on 32x32x3 pixels:
               training steps/s and sampling seconds per image (the cost latent diffusion saves)
  pipeline     text_to_image.generate (StableDiffusionPipeline's loop written out) vs the pipeline itself, on the
               same tiny parts (random weights: speed does not depend on them), CFG on, DDIM

How to run it and how to read the numbers: benchmarks/README.md.
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
from typing import Callable

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
BENCHMARKS = ("sampler", "train", "convergence", "ddim", "pipeline", "latent")
SIZES = {  # full size (a few minutes per benchmark on 2 busy cores) and --quick (a smoke test)
    "full": {
        "sample_steps": 250,
        "sample_batch": 32,
        "repeats": 3,
        "train_steps": 20,
        "train_batch": 128,
        "eval_every": 250,
        "eval_samples": 128,
        "ddim_steps": 50,
        "ddim_batch": 64,
        "sd_steps": 30,
        "sd_batch": 16,
    },
    "quick": {
        "sample_steps": 10,
        "sample_batch": 4,
        "repeats": 1,
        "train_steps": 3,
        "train_batch": 16,
        "eval_every": 5,
        "eval_samples": 8,
        "ddim_steps": 5,
        "ddim_batch": 4,
        "sd_steps": 3,
        "sd_batch": 2,
    },
}


# --- models and timing ----------------------------------------------------------------------------------


class EpsModel(nn.Module):
    """Gives a diffusers UNet2DModel the course's model signature: model(xt, t) -> eps [B, C, H, W]."""

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        self.unet = unet

    def forward(self, xt: Tensor, t: Tensor) -> Tensor:
        return self.unet(xt, t).sample


def diffusers_unet(seed: int = 0) -> UNet2DModel:
    """A UNet2DModel shaped like UNetConfig(): one ResBlock per level (diffusers adds one on the way up),
    attention with 4 heads at the 4x4 level and in the middle, a 128-wide time embedding. Widths 32-56-56
    instead of our 32-64-64 bring its parameter count within 1 % of ours (32-64-64 would be 26 % larger)."""
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=IMAGE_SHAPE[1],
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 56, 56),
        attention_head_dim=14,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    )


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def interleaved(runs: dict[str, Callable], repeats: int) -> tuple[dict, dict]:
    """Time each run ``repeats`` times, alternating the order so that a change of load on a shared machine
    hits both. Returns ({name: [(wall s, process CPU s), ...]}, {name: output of its last run})."""
    times, outputs = {name: [] for name in runs}, {}
    for r in range(repeats):
        for name in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            outputs[name] = runs[name]()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times, outputs


def medians(samples: list[tuple[float, float]], per: float = 1.0, invert: bool = False) -> dict:
    """Median wall and CPU seconds divided by ``per``; ``invert`` turns seconds per item into items per second."""
    wall, cpu = (statistics.median(s[i] for s in samples) / per for i in (0, 1))
    return {"wall": 1 / wall, "cpu": 1 / cpu} if invert else {"wall": wall, "cpu": cpu}


# --- 1. sampling ----------------------------------------------------------------------------------------


def bench_sampler(size: dict) -> list[dict]:
    """Seconds per full sampling run; both start from the same seed, so they draw identical noise."""
    T, B, repeats = size["sample_steps"], size["sample_batch"], size["repeats"]
    unet = diffusers_unet().eval()
    model, schedule = EpsModel(unet), get_schedule("linear", T)
    # diffusers' defaults (clip_sample=True, variance "fixed_small") spelled out, and matched on our side.
    pipe = DDPMPipeline(
        unet=unet,
        scheduler=DDPMScheduler(
            num_train_timesteps=T, beta_schedule="linear", clip_sample=True, variance_type="fixed_small"
        ),
    )
    pipe.set_progress_bar_config(disable=True)

    def ours() -> Tensor:
        x0 = ddpm_sample(
            model,
            (B, *IMAGE_SHAPE),
            schedule,
            generator=torch.Generator().manual_seed(0),
            variance="fixed_small",
            clip_x0=True,
            progress=False,
        )
        return (x0 / 2 + 0.5).clamp(0, 1)  # the pipeline's own mapping to [0, 1]

    def theirs() -> Tensor:
        return pipe(
            batch_size=B, generator=torch.Generator().manual_seed(0), num_inference_steps=T, output_type="pt"
        ).images

    # No separate warm-up: one-time allocations cost about one step of T, and the median drops the first run.
    times, samples = interleaved({"ours": ours, "diffusers": theirs}, repeats)
    o, d = medians(times["ours"]), medians(times["diffusers"])
    diff = (samples["ours"] - samples["diffusers"]).abs().max().item()
    setting = f"T={T} steps, batch {B}, UNet2DModel {num_params(unet):,} params, median of {repeats}"
    return [
        {
            "benchmark": "sampler",
            "metric": "s per sampling run (lower is better)",
            "setting": setting,
            "ours": o,
            "diffusers": d,
            "ratio": {k: o[k] / d[k] for k in o},
            "raw": times,
        },
        {
            "benchmark": "sampler",
            "metric": "same seed, same samples? max abs difference in [0, 1]",
            "setting": "clip_x0=True vs clip_sample=True, fixed_small",
            "ours": diff,
            "diffusers": None,
            "ratio": None,
            "agree": diff < 1e-4,
        },
    ]


# --- 2. training throughput -----------------------------------------------------------------------------


def bench_train(size: dict) -> list[dict]:
    """Optimiser steps per second through course_lib.trainer.train (AdamW, EMA, grad clipping) for both nets."""
    steps, B, repeats = size["train_steps"], size["train_batch"], size["repeats"]
    x, _ = digits("train", image_size=IMAGE_SHAPE[1])
    schedule = get_schedule("linear", 1000)
    torch.manual_seed(0)
    models = {"ours": UNet(UNetConfig()), "diffusers": EpsModel(diffusers_unet())}

    def runner(name: str, n: int) -> Callable:
        loss_fn = diffusion_loss_fn(schedule, torch.Generator().manual_seed(1))
        return lambda: train(models[name], loss_fn, (x,), steps=n, batch_size=B, lr=1e-3, device="cpu", progress=False)

    interleaved({name: runner(name, 2) for name in models}, 1)  # warm-up
    times, _ = interleaved({name: runner(name, steps) for name in models}, repeats)
    o, d = (medians(times[name], per=steps, invert=True) for name in models)
    params = {name: num_params(m) for name, m in models.items()}
    setting = (
        f"batch {B} of 16x16x1, median of {repeats} x {steps} steps; params: ours {params['ours']:,} "
        f"(UNet), diffusers {params['diffusers']:,} (UNet2DModel 32-56-56)"
    )
    return [
        {
            "benchmark": "train",
            "metric": "steps/s (higher is better)",
            "setting": setting,
            "ours": o,
            "diffusers": d,
            "ratio": {k: o[k] / d[k] for k in o},
            "params": params,
            "raw": times,
        }
    ]


# --- 3. convergence -------------------------------------------------------------------------------------


class Stop(Exception):
    """Raised from the training callback to end the run (target reached or budget spent)."""


def bench_convergence(size: dict, max_minutes: float, target: float = 0.9) -> list[dict]:
    """The ddpm_digits recipe (linear T=1000, batch 128, lr 1e-3, warm-up 200, EMA 0.999, seed 0), with the
    EMA model's samples (fixed seed) scored by ``sample_report(...)["recognized"]`` every ``eval_every`` steps."""
    from course_lib.metrics import DigitClassifier, sample_report

    classifier = DigitClassifier.from_pretrained()  # says how to create the checkpoint if it is missing
    every, n = size["eval_every"], size["eval_samples"]
    x, _ = digits("train", image_size=IMAGE_SHAPE[1])
    schedule = get_schedule("linear", 1000)
    torch.manual_seed(0)
    model, ema = UNet(UNetConfig()), UNet(UNetConfig())
    ema.load_state_dict(model.state_dict())
    history, clock = [], {"eval_s": 0.0, "eval_cpu_s": 0.0}

    def evaluate(step: int, loss: float) -> None:
        if (step + 1) % every:
            return
        now, now_cpu = time.perf_counter(), time.process_time()
        train_s = now - clock["start"] - clock["eval_s"]
        train_cpu_s = now_cpu - clock["start_cpu"] - clock["eval_cpu_s"]
        samples = ddpm_sample(
            ema, (n, *IMAGE_SHAPE), schedule, generator=torch.Generator().manual_seed(0), progress=False
        )
        report = sample_report(samples, classifier)
        clock["eval_s"] += time.perf_counter() - now
        clock["eval_cpu_s"] += time.process_time() - now_cpu
        history.append(
            {
                "step": step + 1,
                "train_minutes": train_s / 60,
                "train_cpu_minutes": train_cpu_s / 60,
                "loss": loss,
                "recognized": report["recognized"],
                "frechet": report["frechet"],
            }
        )
        print(
            f"  step {step + 1:6d}  {train_s / 60:6.2f} min ({train_cpu_s / 60:.2f} CPU)  "
            f"recognized {report['recognized']:.3f}  frechet {report['frechet']:.2f}",
            flush=True,
        )
        if report["recognized"] >= target or train_s >= 60 * max_minutes:
            raise Stop

    clock["start"], clock["start_cpu"] = time.perf_counter(), time.process_time()
    try:
        train(
            model,
            diffusion_loss_fn(schedule, torch.Generator().manual_seed(1)),
            (x,),
            steps=10**9,
            batch_size=128,
            lr=1e-3,
            warmup_steps=200,
            ema_decay=0.999,
            seed=0,
            device="cpu",
            progress=False,
            callback=evaluate,
            ema_model=ema,
        )
    except Stop:
        pass
    last = history[-1]
    reached = last["recognized"] >= target
    spent = f"{last['train_minutes']:.1f} min ({last['train_cpu_minutes']:.1f} CPU), {last['step']} steps"
    result = spent if reached else f"not reached: {last['recognized']:.2f} after {spent}"
    setting = f"ddpm_digits recipe, {n} EMA samples every {every} steps, budget {max_minutes:g} min"
    return [
        {
            "benchmark": "convergence",
            "metric": f"training minutes to >= {target:.0%} recognised (evaluation excluded)",
            "setting": setting,
            "ours": result,
            "diffusers": None,
            "ratio": None,
            "reached": reached,
            "history": history,
            "eval_minutes": clock["eval_s"] / 60,
        }
    ]


# --- 4. DDIM ------------------------------------------------------------------------------------------


def bench_ddim(size: dict) -> list[dict]:
    """DDIM (eta = 0, "leading" tau) with S steps vs DDPM with all 1000, on the shipped digits model and the same
    x_T; then our DDIM loop vs DDIMPipeline on one UNet2DModel (both clip x0, as the pipeline does by default)."""
    from diffusers import DDIMPipeline, DDIMScheduler

    from course_lib.ddim import ddim_sample, ddim_step, ddim_timesteps
    from course_lib.metrics import sample_report

    S, B, repeats = size["ddim_steps"], size["ddim_batch"], size["repeats"]
    model, schedule = UNet.from_pretrained("ddpm_digits"), get_schedule("linear", 1000)
    x_T = torch.randn(B, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(0))
    runs = {
        "ddim": lambda: ddim_sample(
            model, (B, *IMAGE_SHAPE), schedule, ddim_timesteps(1000, S), x_T=x_T, progress=False
        ),
        "ddpm": lambda: ddpm_sample(
            model, (B, *IMAGE_SHAPE), schedule, x_T=x_T, generator=torch.Generator().manual_seed(1), progress=False
        ),
    }
    times, samples = interleaved(runs, 1)  # one run each: DDPM-1000 is the slow side by ~1000/S
    o, d = medians(times["ddim"]), medians(times["ddpm"])
    quality = {k: sample_report(v.clamp(-1, 1)) for k, v in samples.items()}
    rows = [
        {
            "benchmark": "ddim",
            "metric": f"s per batch: DDIM-{S} (ours) vs DDPM-1000 (diffusers column)",
            "setting": f"shipped ddpm_digits, batch {B}, same x_T, eta=0",
            "ours": o,
            "diffusers": d,
            "ratio": {k: o[k] / d[k] for k in o},
            "expected_ratio": S / 1000,
            "raw": times,
        },
        {
            "benchmark": "ddim",
            "metric": f"recognised / Frechet: DDIM-{S} vs DDPM-1000",
            "setting": f"{B} samples each (Frechet of real vs real on the same sizes: "
            f"{quality['ddim']['frechet_real']:.2f})",
            "ours": f"{quality['ddim']['recognized']:.2f} / {quality['ddim']['frechet']:.2f}",
            "diffusers": f"{quality['ddpm']['recognized']:.2f} / {quality['ddpm']['frechet']:.2f}",
            "ratio": None,
        },
    ]

    unet = diffusers_unet().eval()
    pipe = DDIMPipeline(unet=unet, scheduler=DDIMScheduler(num_train_timesteps=1000, clip_sample=True))
    pipe.set_progress_bar_config(disable=True)

    def ours() -> Tensor:
        x0 = ddim_sample(
            EpsModel(unet),
            (B, *IMAGE_SHAPE),
            schedule,
            ddim_timesteps(1000, S),
            clip_x0=True,
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )
        return (x0 / 2 + 0.5).clamp(0, 1)

    def theirs() -> Tensor:
        return pipe(
            batch_size=B, generator=torch.Generator().manual_seed(0), num_inference_steps=S, eta=0.0, output_type="pt"
        ).images

    times, out = interleaved({"ours": ours, "diffusers": theirs}, repeats)
    o, d = medians(times["ours"]), medians(times["diffusers"])
    diff = (out["ours"] - out["diffusers"]).abs().max().item()
    # Same algorithm? One step from the same x_T must agree to float rounding. Over S steps an untrained network
    # amplifies the ~1e-7 difference between diffusers' float32 alpha_bar and our float64 one, so the final
    # samples can differ visibly; tests/test_ddim.py checks whole runs on a small network.
    x = torch.randn(B, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(0))
    t0 = ddim_timesteps(1000, S)
    with torch.no_grad():
        eps = unet(x, t0[0]).sample
        one = ddim_step(eps, x, t0[0], t0[1], schedule, clip_x0=True).x
        pipe.scheduler.set_timesteps(S)
        one_ref = pipe.scheduler.step(eps, t0[0], x, eta=0.0).prev_sample
    step_diff = (one - one_ref).abs().max().item()
    rows.append(
        {
            "benchmark": "ddim",
            "metric": "s per DDIM sampling run (lower is better)",
            "setting": f"S={S}, batch {B}, UNet2DModel {num_params(unet):,} params, median of {repeats}; "
            f"max abs difference after one step {step_diff:.1e}, after {S} steps {diff:.1e}",
            "ours": o,
            "diffusers": d,
            "ratio": {k: o[k] / d[k] for k in o},
            "agree": step_diff < 1e-5,
            "raw": times,
        }
    )
    return rows


# --- report ---------------------------------------------------------------------------------------------


def bench_pipeline(size: dict) -> list[dict]:
    """Seconds per batch of images: our opened loop vs StableDiffusionPipeline.__call__, same parts, seed and
    settings (the opened loop should cost no more than the pipeline: target ratio <= 1.05)."""
    from transformers import CLIPModel

    from course_lib.clip import tiny_clip_config
    from course_lib.latent import tiny_autoencoder
    from course_lib.text import load_tokenizer
    from course_lib.text_to_image import build_pipeline, generate, make_scheduler, text_encoder_from_clip, tiny_unet

    S, B, repeats = size["sd_steps"], size["sd_batch"], size["repeats"]
    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    pipe = build_pipeline(
        tiny_autoencoder().eval(),
        text_encoder_from_clip(CLIPModel(tiny_clip_config(tokenizer))),
        tokenizer,
        tiny_unet().eval(),
        make_scheduler("ddim"),
    )
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a large red circle at the top left", "a small blue star at the center"] * (B // 2)
    runs = {
        "ours": lambda: generate(pipe, prompts, 4.0, S, generator=torch.Generator().manual_seed(0)),
        "diffusers": lambda: (
            pipe(
                prompts,
                guidance_scale=4.0,
                num_inference_steps=S,
                output_type="pt",
                generator=torch.Generator().manual_seed(0),
            ).images
            * 2
            - 1
        ),
    }
    times, out = interleaved(runs, repeats + 2)
    o, d = medians(times["ours"]), medians(times["diffusers"])
    diff = (out["ours"] - out["diffusers"]).abs().max().item()
    return [
        {
            "benchmark": "pipeline",
            "metric": "s per batch of images (lower is better)",
            "setting": f"tiny SD parts, {B} prompts, DDIM {S} steps, g = 4, median of {repeats + 2}; "
            f"max abs difference {diff:.1e}",
            "ours": o,
            "diffusers": d,
            "ratio": {k: o[k] / d[k] for k in o},
            "target_ratio": 1.05,
            "agree": diff < 1e-4,
            "raw": times,
        }
    ]


def bench_latent(size: dict) -> list[dict]:
    """The same UNet2DConditionModel on latents (ours: f = 4) and on pixels (f = 1, the 'diffusers' column): training
    steps per second at one batch size, and DDIM sampling seconds per image with CFG (decoder included for latents)."""
    from course_lib.latent import tiny_autoencoder
    from course_lib.text_to_image import denoise, make_scheduler, pixel_unet, tiny_unet

    B, S, repeats = size["sd_batch"] * 2, size["sd_steps"], size["repeats"]
    torch.manual_seed(0)
    nets = {"latent": tiny_unet(), "pixel": pixel_unet()}
    vae = tiny_autoencoder().eval()
    cond = torch.randn(B, 16, nets["latent"].config.cross_attention_dim)

    def step_fn(net):
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        c = net.config
        x = torch.randn(B, c.in_channels, c.sample_size, c.sample_size)
        t = torch.randint(0, 1000, (B,))

        def step():
            loss = (net(x, t, encoder_hidden_states=cond).sample - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    steps = {k: step_fn(n) for k, n in nets.items()}
    for fn in steps.values():
        fn()  # warm-up
    times, _ = interleaved(steps, repeats + 2)
    o, d = medians(times["latent"], invert=True), medians(times["pixel"], invert=True)
    rows = [
        {
            "benchmark": "latent",
            "metric": "training steps/s: latents (ours column) vs pixels (diffusers column)",
            "setting": f"UNet2DConditionModel {num_params(nets['latent']):,} / {num_params(nets['pixel']):,} params, "
            f"batch {B}, median of {repeats + 2}",
            "ours": o,
            "diffusers": d,
            "ratio": {k: o[k] / d[k] for k in o},
            "raw": times,
        }
    ]

    def sample(kind):
        net = nets[kind].eval()

        def run():
            with torch.no_grad():
                z = denoise(
                    net, make_scheduler("ddim"), cond[:4], cond[:4] * 0, 4.0, S, torch.Generator().manual_seed(0)
                )
                return vae.decode(z).sample if kind == "latent" else z

        return run

    times, _ = interleaved({"latent": sample("latent"), "pixel": sample("pixel")}, repeats)
    o, d = medians(times["latent"], per=4), medians(times["pixel"], per=4)
    rows.append(
        {
            "benchmark": "latent",
            "metric": "s per image, DDIM with CFG: latents + decoder vs pixels",
            "setting": f"{S} steps, g = 4, 4 images, median of {repeats}",
            "ours": o,
            "diffusers": d,
            "ratio": {k: o[k] / d[k] for k in o},
            "raw": times,
        }
    )
    return rows


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):  # wall clock first, process CPU time in brackets
        return f"{value['wall']:.3g} ({value['cpu']:.3g} CPU)"
    if isinstance(value, float):
        return f"{value:.2g}"
    return str(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| benchmark | metric | setting | ours | diffusers | ours / diffusers |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['benchmark']} | {r['metric']} | {r['setting']} | {fmt(r['ours'])} | {fmt(r['diffusers'])} "
        f"| {fmt(r['ratio'])} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, numbers mean nothing")
    parser.add_argument("--only", default="sampler,train", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="convergence: training budget (default 60)")
    parser.add_argument("--eval-every", type=int, default=None, help="convergence: steps between evaluations")
    parser.add_argument("--eval-samples", type=int, default=None, help="convergence: samples per evaluation")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); use 1 on a machine busy with other jobs",
    )
    args = parser.parse_args()
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    if not chosen or any(b not in BENCHMARKS for b in chosen):
        parser.error(f"--only takes a comma-separated subset of {BENCHMARKS}, got {args.only!r}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    size = dict(SIZES["quick" if args.quick else "full"])
    size |= {k: v for k, v in (("eval_every", args.eval_every), ("eval_samples", args.eval_samples)) if v}

    meta = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "sizes": size,
        "load_avg_start": os.getloadavg(),
    }
    rows = []
    for name in chosen:
        print(f"running {name} ...", flush=True)
        if name == "sampler":
            rows += bench_sampler(size)
        elif name == "train":
            rows += bench_train(size)
        elif name == "ddim":
            rows += bench_ddim(size)
        elif name == "pipeline":
            rows += bench_pipeline(size)
        elif name == "latent":
            rows += bench_latent(size)
        else:
            rows += bench_convergence(size, 0.0 if args.quick else args.max_minutes)
    meta["load_avg_end"] = os.getloadavg()

    print("\n" + markdown(rows))
    print(
        f"\nWall-clock seconds, process CPU seconds in brackets. torch {meta['torch']}, diffusers "
        f"{meta['diffusers']}, {meta['torch_threads']} thread(s), {meta['cpu_count']} cores, load average "
        f"{meta['load_avg_start'][0]:.1f} -> {meta['load_avg_end'][0]:.1f}."
        + (" --quick: sizes too small to mean anything." if args.quick else "")
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}-{'-'.join(chosen)}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
