"""Wall time of ddpm_digits' training steps in one process and under ``accelerate launch`` (docs/SCALE_OUT.md).

Trains the ddpm_digits U-Net with ddpm_digits' settings (global batch 64) for ``--steps`` steps through
``trainer.train`` and prints one JSON line from process 0; it writes no checkpoint. Run it both ways on one machine:

    OMP_NUM_THREADS=2 python benchmarks/scale_out.py --steps 40
    ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 \\
        benchmarks/scale_out.py --steps 40
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace

import torch

from course_lib.data import digits
from course_lib.losses import diffusion_loss_fn
from course_lib.recipes import DDPM_DIGITS
from course_lib.schedules import get_schedule
from course_lib.trainer import process_generator, train
from course_lib.unet import UNet, UNetConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    start = time.perf_counter()
    settings = replace(DDPM_DIGITS, steps=args.steps)
    torch.manual_seed(settings.seed)
    x, _ = digits("train", image_size=16)
    loss_fn = diffusion_loss_fn(get_schedule("linear", 1000), process_generator(settings.seed + 1))
    result = train(UNet(UNetConfig()), loss_fn, (x,), device="cpu", progress=False, **settings.train_kwargs())
    if result.is_main_process:
        print(
            json.dumps(
                {
                    "processes": result.num_processes,
                    "threads_per_process": torch.get_num_threads(),
                    "steps": args.steps,
                    "global_batch": settings.batch_size,
                    "train_wall_s": round(result.wall_time_s, 2),
                    "s_per_step": round(result.wall_time_s / max(args.steps, 1), 4),
                    "script_wall_s": round(time.perf_counter() - start, 2),
                    "mean_loss_last_10": sum(result.losses[-10:]) / len(result.losses[-10:]),
                    "cpu": platform.processor() or platform.machine(),
                }
            )
        )


if __name__ == "__main__":
    main()
