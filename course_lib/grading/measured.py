"""The scaffold shared by the measured runs ("train to a measured quality" questions): cache, budget helpers.

Each exercise set's measured run (``ddpm.ddpm_digits_quality``, ``vae.vae_digits_elbo``) is a fixed-seed
procedure that a student calls to try a design and the hidden tests call to grade it; ``_measured`` runs it
once per submission and configuration. ``COURSE_GRADING_QUICK=1`` (CI only) shrinks the runs to a plumbing
check. In the grading kernel that flag is fixed by ``freeze_quick_mode`` before any student code runs, and the
cache is recorded with ``integrity`` after every genuine run, so a notebook can neither switch quick mode on
nor pre-fill the cache with a report of its own.
"""

from __future__ import annotations

import copy
import hashlib
import os
from typing import Callable

import torch

from . import integrity

QUICK_ENV = "COURSE_GRADING_QUICK"
_MEASURED: dict = {}  # key -> report (a dict), or the message of the run's failure (a str)
_GENUINE: dict = {}  # what _measured wrote into _MEASURED, copied
_CACHE_LABEL = f"{__name__}._MEASURED"
_frozen_quick: bool | None = None  # set once in the grading kernel, before the student's cells


def freeze_quick_mode() -> None:
    """Fix ``quick_mode()`` to the grader's own environment (called by ``install_guards``, before student code)."""
    global _frozen_quick
    _frozen_quick = os.environ.get(QUICK_ENV, "") == "1"


def _cache_fingerprint() -> str:
    return repr(_MEASURED)


def _digits_fingerprint() -> str:
    """SHA-256 of the cached digit arrays every measured run trains and scores on (mutable numpy arrays)."""
    from ..data import _digits_arrays

    images, labels = _digits_arrays()
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


def watch_inputs() -> None:
    """Register the cache and the cached digits with ``integrity`` (``install_guards`` calls this)."""
    integrity.watch(_CACHE_LABEL, _cache_fingerprint, genuine=repr(_GENUINE))
    integrity.watch("course_lib.data._digits_arrays()", _digits_fingerprint)


def clear_cache() -> None:
    """Forget every measured run (the grader calls this before each submission)."""
    _MEASURED.clear()
    _GENUINE.clear()


def quick_mode() -> bool:
    """True when ``COURSE_GRADING_QUICK=1``: CI checks that measured questions run, not how well.

    In the grading kernel the value read when the guards were installed; elsewhere (a student's session, the
    course's tests) the environment at call time.
    """
    if _frozen_quick is not None:
        return _frozen_quick
    return os.environ.get(QUICK_ENV, "") == "1"


def _measured(key: tuple, run: Callable[[], dict]) -> dict:
    """``run()`` once per key, on one CPU thread (the same arithmetic on every grader, no thread thrashing on a
    busy CPU); later calls return a copy of the cached report, or re-raise the first run's failure as an
    AssertionError. The caller gets a copy, so editing it (say, to print percentages) cannot change the grade.

    ``_GENUINE`` mirrors what this function wrote: in the grading kernel any other entry of the cache is a finding.
    """
    integrity.checkpoint()
    if key in _MEASURED:
        if isinstance(_MEASURED[key], str):
            raise AssertionError(f"the measured run failed earlier: {_MEASURED[key]}")
        return dict(_MEASURED[key])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _MEASURED[key] = run()
    except BaseException as e:
        _MEASURED[key] = f"{type(e).__name__}: {e}"
        raise
    finally:
        torch.set_num_threads(threads)
        _GENUINE[key] = copy.deepcopy(_MEASURED[key])
        integrity.watch(_CACHE_LABEL, _cache_fingerprint, genuine=repr(_GENUINE))
        integrity.checkpoint()  # was the grader modified while the student's model trained?
    return dict(_MEASURED[key])


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


def _fresh_models(make_model: Callable[[], torch.nn.Module],
                  check: Callable[[object], None]) -> list[torch.nn.Module]:
    """Two calls of ``make_model()`` after seeds 1 and 2, each passed to ``check`` (which raises for a wrong
    kind of model); their weights must differ: a new, randomly initialised model, not loaded weights."""
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(make_model())
        check(models[-1])
    if all(torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters())):
        raise AssertionError("make_model() returned the same weights for two seeds: it must build a new, "
                             "randomly initialised model (no loaded checkpoints).")
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
