"""Re-create a shipped checkpoint: ``python -m course_lib.train <recipe> [--steps N]``; ``--list`` lists them.

The same command runs on several GPUs or machines as ``accelerate launch -m course_lib.train <recipe>``
(docs/SCALE_OUT.md): every process trains its share of each batch, process 0 writes the checkpoint and prints.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys

from .recipes import RECIPES
from .trainer import process_index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__)
    parser.add_argument("recipe", nargs="?", help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's number of steps")
    parser.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="override the global batch of one optimiser step, over all processes (recipes that "
        "take one: ddpm_digits, ddpm_shapes)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the shipped checkpoint for --steps more steps (recipes that support it)",
    )
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    if args.list or args.recipe is None:
        for name, fn in RECIPES.items():
            print(f"{name:24s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.recipe not in RECIPES:
        parser.error(f"unknown recipe {args.recipe!r}; choose one of {sorted(RECIPES)}")
    kwargs = {
        k: v for k, v in (("seed", args.seed), ("steps", args.steps), ("batch_size", args.batch_size)) if v is not None
    }
    params = inspect.signature(RECIPES[args.recipe]).parameters
    if "batch_size" in kwargs and "batch_size" not in params:
        parser.error(
            f"recipe {args.recipe!r} has a fixed batch size; drop --batch-size (recipes that take one: "
            f"{sorted(n for n, fn in RECIPES.items() if 'batch_size' in inspect.signature(fn).parameters)})."
        )
    if args.resume:
        if "resume" not in params:
            parser.error(f"recipe {args.recipe!r} cannot resume; drop --resume to train it from scratch.")
        kwargs["resume"] = True
    metrics = RECIPES[args.recipe](**kwargs)
    if process_index() == 0:
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
