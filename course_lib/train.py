"""Re-create a shipped checkpoint: ``python -m course_lib.train <recipe> [--steps N]``; ``--list`` lists them."""

from __future__ import annotations

import argparse
import json
import sys

from .recipes import RECIPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__)
    parser.add_argument("recipe", nargs="?", help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's number of steps")
    parser.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    parser.add_argument("--resume", action="store_true",
                        help="continue the shipped checkpoint for --steps more steps (recipes that support it)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    if args.list or args.recipe is None:
        for name, fn in RECIPES.items():
            print(f"{name:24s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.recipe not in RECIPES:
        parser.error(f"unknown recipe {args.recipe!r}; choose one of {sorted(RECIPES)}")
    kwargs = {k: v for k, v in (("seed", args.seed), ("steps", args.steps)) if v is not None}
    if args.resume:
        import inspect
        if "resume" not in inspect.signature(RECIPES[args.recipe]).parameters:
            parser.error(f"recipe {args.recipe!r} cannot resume; drop --resume to train it from scratch.")
        kwargs["resume"] = True
    metrics = RECIPES[args.recipe](**kwargs)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
