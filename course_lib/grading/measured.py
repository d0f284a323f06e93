"""The scaffold shared by the measured runs ("train to a measured quality" questions): cache, budget helpers.

Each exercise set's measured run (``ddpm.ddpm_digits_quality``, ``vae.vae_digits_elbo``, ...) is a fixed-seed
procedure that a student calls to try a design and the hidden tests call to grade it; ``_measured`` runs it
once per submission and configuration. ``COURSE_GRADING_QUICK=1`` (CI only) shrinks the runs to a plumbing
check; the isolated grader reads it from its own environment, which the submission's process never sees.
``where_it_lives`` splits a run between the submission's process (training) and the grader's (measuring).
"""

from __future__ import annotations

import copy
import os
from typing import Callable

import torch

QUICK_ENV = "COURSE_GRADING_QUICK"
_MEASURED: dict = {}  # key -> report (a dict), or the message of the run's failure (a str)


def clear_cache() -> None:
    """Forget every measured run (the grader calls this before each submission)."""
    _MEASURED.clear()


def quick_mode() -> bool:
    """True when ``COURSE_GRADING_QUICK=1``: CI checks that measured questions run, not how well."""
    return os.environ.get(QUICK_ENV, "") == "1"


def _measured(key: tuple, run: Callable[[], dict]) -> dict:
    """``run()`` once per key, on one CPU thread (the same arithmetic on every grader, no thread thrashing on a
    busy CPU); later calls return a copy of the cached report, or re-raise the first run's failure as an
    AssertionError. The caller gets a copy, so editing it (say, to print percentages) cannot change the grade."""
    if key in _MEASURED:
        if isinstance(_MEASURED[key], str):
            raise AssertionError(f"the measured run failed earlier: {_MEASURED[key]}")
        return copy.deepcopy(_MEASURED[key])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _MEASURED[key] = run()
    except BaseException as e:
        _MEASURED[key] = f"{type(e).__name__}: {e}"
        raise
    finally:
        torch.set_num_threads(threads)
    return copy.deepcopy(_MEASURED[key])


def where_it_lives(fn: Callable, obj, *args, **kwargs):
    """``fn(obj, *args, **kwargs)``, run where ``obj`` lives.

    In a student's notebook that is here. In the isolated grader ``obj`` is the grader's proxy for the submission's
    ``make_model`` (``exercises/grader``): ``fn`` (a function of this package, by name) then runs in the
    submission's process, under its CPU limit, and what it returns comes back as plain data or as proxies (a trained
    model whose calls cross the process boundary). So the training half of a measured run happens in the
    submission's process, and the measuring half (sampling, the bound, the scores) here. One code path for both.
    """
    run = getattr(type(obj), "__run_function__", None)
    if run is not None:
        return run(obj, fn, *args, **kwargs)
    return fn(obj, *args, **kwargs)


def _require(checks: list[tuple[bool, str]]) -> None:
    """Fail with the message of the first check that is False."""
    for ok, message in checks:
        if not ok:
            raise AssertionError(f"TRAIN_CONFIG: {message}.")


def _fresh_models(make_model: Callable[[], torch.nn.Module], check: Callable[[object], None]) -> list[torch.nn.Module]:
    """Two calls of ``make_model()`` after seeds 1 and 2, each passed to ``check`` (which raises for a wrong
    kind of model); their weights must differ: a new, randomly initialised model, not loaded weights."""
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(make_model())
        check(models[-1])
    if all(torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters())):
        raise AssertionError(
            "make_model() returned the same weights for two seeds: it must build a new, "
            "randomly initialised model (no loaded checkpoints)."
        )
    return models


def _fresh_module_within(make_model: Callable[[], torch.nn.Module], max_parameters: int) -> torch.nn.Module:
    """A fresh ``torch.nn.Module`` from ``make_model()`` (``_fresh_models``) with 1 ... ``max_parameters``
    parameters; an AssertionError that says what is wrong otherwise."""

    def is_module(model):
        if not isinstance(model, torch.nn.Module):
            raise AssertionError(f"make_model() should return a torch.nn.Module, it returned {type(model).__name__}.")

    model = _fresh_models(make_model, is_module)[0]
    n = sum(p.numel() for p in model.parameters())
    if not 0 < n <= max_parameters:
        raise AssertionError(f"the model has {n} parameters; the budget is 1 ... {max_parameters}.")
    return model


def _final_loss(result) -> float:
    """Mean training loss over the last 50 steps of a ``TrainResult``."""
    tail = result.losses[-50:]
    return sum(tail) / len(tail)
