"""Support for the graded exercises (otter-grader 7.0): guards, readable checks, measured runs.

The autograder runs a submission top to bottom in a Jupyter kernel, then the question tests
(``exercises/README.md`` explains the whole pipeline). This module keeps one bad answer from costing
the others and lives in the package because both the grading kernel and a student's Colab session
import it.

- ``GradingGuard`` is an otter plugin, listed in every master's ASSIGNMENT CONFIG. Before execution
  it adds one cell that calls ``install_guards``: each notebook cell gets a wall-clock limit, each test
  case a limit of its own (per question), and printed output is capped. A test case that raises
  anything (even ``SystemExit``), runs past its limit or prints too much fails with a one-line reason;
  the other test cases and questions are still graded.
- ``assert_tensor`` and ``assert_close`` turn a wrong answer into a message a student can act on.
- ``ddpm_digits_quality`` (DDPM set) and ``vae_digits_elbo`` (VAE set) are the fixed-seed measured
  runs behind the "train to a measured quality" questions; students call them to try a configuration,
  the hidden tests call them to grade (each run once per submission, cached). ``COURSE_GRADING_QUICK=1``
  shrinks them to a plumbing check for CI only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator

import torch
from torch import Tensor

CELL_TIMEOUT_S = 300.0  # one notebook cell (students' own experiments included)
TEST_TIMEOUT_S = 60.0  # one test case, unless the question has its own limit
MAX_OUTPUT_CHARS = 20_000  # printed per cell, and per test case before the case fails
QUICK_ENV = "COURSE_GRADING_QUICK"
_EXPORT_CELL_MARK = "GradingResults(Checker.get_results())"  # otter's final cell: runs every remaining test


class GradingTimeout(BaseException):
    """Raised by the timer; a BaseException so that a student's ``except Exception`` cannot swallow it."""


# --- timers and the output cap -------------------------------------------------------------------

def _can_use_alarm() -> bool:
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "this code") -> Iterator[None]:
    """Raise ``GradingTimeout`` inside the block after ``seconds`` of wall-clock time (SIGALRM, Unix only).

    An enclosing limit is paused and resumes with its remaining time afterwards. Without SIGALRM (Windows,
    or off the main thread) the block runs unlimited.
    """
    if not _can_use_alarm():
        yield
        return

    def on_alarm(signum, frame):
        raise GradingTimeout(f"{what} ran longer than {seconds:g} s (infinite loop, or too much work?)")

    outer_handler = signal.signal(signal.SIGALRM, on_alarm)
    outer_remaining, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_remaining > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer_remaining - (time.monotonic() - start), 1e-3))


class _CappedStream:
    """Wraps sys.stdout / sys.stderr: passes the first ``limit`` characters since ``reset``, drops the rest."""

    def __init__(self, stream, limit: int):
        self._stream, self.limit, self.count, self.overflowed = stream, limit, 0, False

    def reset(self) -> None:
        self.count, self.overflowed = 0, False

    def write(self, text: str) -> int:
        room = self.limit - self.count
        self.count += len(text)
        if len(text) <= room:
            return self._stream.write(text)
        if not self.overflowed:
            self.overflowed = True
            self._stream.write(text[:max(room, 0)] + f"\n[grader: output cut after {self.limit} characters]\n")
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _streams() -> list[_CappedStream]:
    return [s for s in (sys.stdout, sys.stderr) if isinstance(s, _CappedStream)]


def _printed_too_much() -> bool:
    return any(s.overflowed for s in _streams())


# --- the guards installed in the grading kernel --------------------------------------------------

_SETTINGS: dict = {}


def _failure(message: str, limit: int = 2000) -> str:
    message = message if len(message) <= limit else message[:limit] + " ... [cut]"
    return "❌ Test case failed\n" + message


def _guarded_run(self, global_environment: dict) -> None:
    """Replacement for otter's ``ExceptionTestFile.run``: the same loop, with a limit and a cap per test case."""
    from otter.test_files.abstract_test import TestCaseResult

    limit = float(_SETTINGS.get("question_timeouts", {}).get(self.name, _SETTINGS.get("test_timeout",
                                                                                      TEST_TIMEOUT_S)))
    self.test_case_results, timed_out = [], False
    for tc in self.test_cases:
        passed, message = True, "✅ Test case passed"
        for s in _streams():
            s.reset()
        if timed_out:  # the same code would hang again: do not spend the limit once per test case
            self.test_case_results.append(TestCaseResult(test_case=tc, passed=False, message=_failure(
                "Not run: an earlier test of this question timed out.")))
            continue
        detail = ""
        try:
            with time_limit(limit, f"test {tc.name}"):
                tc.body.call_func(global_environment)
        except GradingTimeout as e:
            detail, timed_out = f"Timed out: {e}", True
        except BaseException as e:  # noqa: BLE001 -- SystemExit or KeyboardInterrupt from student code too
            try:
                detail = self._generate_error_message(e)
            except Exception:  # noqa: BLE001 -- traceback not in the expected shape
                detail = f"{type(e).__name__}: {e}"
        if _printed_too_much():  # last line: it is the reason the grade table shows
            detail = detail[:1500] + (f"\nYour code printed more than {_SETTINGS.get('max_output_chars')} "
                                      "characters during this test; remove print statements from loops.")
        if detail:
            passed, message = False, _failure(detail.strip())
        self.test_case_results.append(TestCaseResult(test_case=tc, message=message, passed=passed))


def install_guards(*, cell_timeout: float = CELL_TIMEOUT_S, test_timeout: float = TEST_TIMEOUT_S,
                   question_timeouts: dict[str, float] | None = None,
                   max_output_chars: int = MAX_OUTPUT_CHARS) -> None:
    """Arm the grading kernel: per-cell and per-test time limits, an output cap, guarded test execution.

    Called by the cell that ``GradingGuard`` inserts; idempotent. Requires IPython (a notebook kernel).
    """
    from IPython import get_ipython
    from otter.test_files.exception_test import ExceptionTestFile

    cell_timeout = float(os.environ.get("COURSE_GRADING_CELL_TIMEOUT", cell_timeout))  # overrides for the
    test_timeout = float(os.environ.get("COURSE_GRADING_TEST_TIMEOUT", test_timeout))  # grader's own tests
    _SETTINGS.update(cell_timeout=float(cell_timeout), test_timeout=float(test_timeout),
                     question_timeouts=dict(question_timeouts or {}), max_output_chars=int(max_output_chars))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # grading never downloads
    ExceptionTestFile.run = _guarded_run
    if not isinstance(sys.stdout, _CappedStream):
        sys.stdout = _CappedStream(sys.stdout, max_output_chars)
        sys.stderr = _CappedStream(sys.stderr, max_output_chars)
    ip = get_ipython()
    if ip is None or getattr(ip, "_course_guards", False):
        return
    ip._course_guards = True
    ip.ask_exit = lambda: print("[grader: exit() ignored, the notebook keeps running]")  # else the kernel dies

    def on_alarm(signum, frame):
        raise GradingTimeout(f"this cell ran longer than {_SETTINGS['cell_timeout']:g} s and was stopped by "
                             "the grader (infinite loop, or too much work?)")

    def pre_run_cell(info) -> None:
        for s in _streams():
            s.reset()
        if _can_use_alarm() and _EXPORT_CELL_MARK not in (info.raw_cell or ""):
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, _SETTINGS["cell_timeout"])

    def post_run_cell(result) -> None:
        if _can_use_alarm():
            signal.setitimer(signal.ITIMER_REAL, 0)

    ip.events.register("pre_run_cell", pre_run_cell)
    ip.events.register("post_run_cell", post_run_cell)


try:  # only grading needs otter; course_lib itself does not depend on it
    from otter.plugins import AbstractOtterPlugin
except ImportError:  # pragma: no cover
    AbstractOtterPlugin = object  # type: ignore[misc,assignment]


class GradingGuard(AbstractOtterPlugin):
    """Otter plugin: inserts a first cell that calls ``install_guards`` with this plugin's configuration.

    In the ASSIGNMENT CONFIG::

        plugins:
          - course_lib.grading.GradingGuard:
              cell_timeout: 300        # seconds per notebook cell
              test_timeout: 60         # seconds per test case
              question_timeouts: {q7: 900}
              max_output_chars: 20000
    """

    def before_execution(self, submission):
        import nbformat

        config = {k: v for k, v in (self.plugin_config or {}).items()
                  if k in ("cell_timeout", "test_timeout", "question_timeouts", "max_output_chars")}
        source = f"import course_lib.grading\ncourse_lib.grading.install_guards(**{json.dumps(config)})"
        if isinstance(submission, str):  # a .py submission
            return source + "\n" + submission
        submission.cells.insert(0, nbformat.v4.new_code_cell(source))
        return submission


# --- checks with messages a student can act on ---------------------------------------------------

def assert_tensor(x, name: str, shape: tuple[int, ...] | None = None, *, finite: bool = True) -> None:
    """Fail unless ``x`` is a floating tensor (with ``shape`` if given, and finite values if ``finite``)."""
    if not isinstance(x, Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor but is {type(x).__name__} ({x!r:.80}).")
    if not x.is_floating_point():
        raise AssertionError(f"{name} should hold floats but has dtype {x.dtype}.")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(x.shape)}, expected {tuple(shape)}.")
    if finite and not bool(torch.isfinite(x).all()):
        raise AssertionError(f"{name} contains NaN or inf values.")


def assert_close(actual, expected: Tensor, name: str, *, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Fail unless ``actual`` matches ``expected`` elementwise (|a - e| <= atol + rtol |e|), saying where not."""
    assert_tensor(actual, name, tuple(expected.shape), finite=False)
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    bad = ~((a - e).abs() <= atol + rtol * e.abs())
    if bool(bad.any()):
        i = tuple(int(v) for v in bad.nonzero()[0])
        raise AssertionError(f"{name} differs from the reference at {int(bad.sum())} of {bad.numel()} entries; "
                             f"e.g. at index {i}: got {a[i].item():.6g}, expected {e[i].item():.6g} "
                             f"(max abs diff {(a - e).abs().max().item():.3g}).")


# --- measured runs --------------------------------------------------------------------------------

DDPM_BUDGET = {"max_steps": 2000, "max_batch_size": 256, "max_timesteps": 1000, "max_parameters": 1_000_000}
_MEASURED: dict = {}


def quick_mode() -> bool:
    """True when ``COURSE_GRADING_QUICK=1``: CI checks that measured questions run, not how well."""
    return os.environ.get(QUICK_ENV, "") == "1"


def _measured(key: tuple, run: Callable[[], dict]) -> dict:
    """``run()`` once per key, on one CPU thread (the same arithmetic on every grader, no thread thrashing on a
    busy CPU); later calls return the cached report, or re-raise the first run's failure as an AssertionError."""
    if key in _MEASURED:
        if isinstance(_MEASURED[key], str):
            raise AssertionError(f"the measured run failed earlier: {_MEASURED[key]}")
        return _MEASURED[key]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _MEASURED[key] = run()
    except BaseException as e:
        _MEASURED[key] = f"{type(e).__name__}: {e}"
        raise
    finally:
        torch.set_num_threads(threads)
    return _MEASURED[key]


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


def _final_loss(result) -> float:
    """Mean training loss over the last 50 steps of a ``TrainResult``."""
    tail = result.losses[-50:]
    return sum(tail) / len(tail)


def check_ddpm_config(make_model: Callable[[], torch.nn.Module], config: dict) -> dict:
    """Validate a student's ``make_model`` and training config against ``DDPM_BUDGET``; return the config.

    Keys: schedule (a ``get_schedule`` name), num_timesteps, steps, batch_size, lr, and optionally ema_decay.
    """
    from .schedules import SCHEDULE_NAMES

    if not callable(make_model):
        raise AssertionError("make_model should be a function that returns a new model; it is "
                             f"{type(make_model).__name__}.")
    if not isinstance(config, dict):
        raise AssertionError(f"TRAIN_CONFIG should be a dict, it is {type(config).__name__}.")
    required = {"schedule", "num_timesteps", "steps", "batch_size", "lr"}
    unknown, missing = set(config) - required - {"ema_decay"}, required - set(config)
    if missing or unknown:
        raise AssertionError(f"TRAIN_CONFIG is missing {sorted(missing)} / has unknown keys {sorted(unknown)}.")
    b = DDPM_BUDGET
    checks = [(config["schedule"] in SCHEDULE_NAMES, f"schedule must be one of {SCHEDULE_NAMES}"),
              (isinstance(config["num_timesteps"], int) and 1 <= config["num_timesteps"] <= b["max_timesteps"],
               f"num_timesteps must be an int in 1 ... {b['max_timesteps']}"),
              (isinstance(config["steps"], int) and 1 <= config["steps"] <= b["max_steps"],
               f"steps must be an int in 1 ... {b['max_steps']}"),
              (isinstance(config["batch_size"], int) and 1 <= config["batch_size"] <= b["max_batch_size"],
               f"batch_size must be an int in 1 ... {b['max_batch_size']}"),
              (isinstance(config["lr"], float) and 0 < config["lr"] <= 0.1, "lr must be a float in (0, 0.1]"),
              (0 <= config.get("ema_decay", 0.999) < 1, "ema_decay must be in [0, 1)")]
    _require(checks)

    def is_module(model):
        if not isinstance(model, torch.nn.Module):
            raise AssertionError(f"make_model() should return a torch.nn.Module, it returned {type(model).__name__}.")

    n = sum(p.numel() for p in _fresh_models(make_model, is_module)[0].parameters())
    if not 0 < n <= b["max_parameters"]:
        raise AssertionError(f"the model has {n} parameters; the budget is 1 ... {b['max_parameters']}.")
    return dict(config)


def ddpm_digits_quality(make_model: Callable[[], torch.nn.Module], config: dict, *, seed: int = 0,
                        num_samples: int = 256) -> dict:
    """Train ``make_model()`` on 16x16 digits with L_simple, sample with DDPM, classify the samples.

    Fixed procedure (the grader's): ``trainer.train`` on the CPU with ``seed``, ``losses.diffusion_loss_fn``,
    the EMA weights sampled by ``samplers.ddpm_sample`` from ``torch.Generator().manual_seed(seed)``, and
    ``metrics.sample_report`` (``recognized`` = fraction classified as a digit with confidence >= 0.5).
    Repeated calls with the same model function, config and seed return the cached report.

    Returns:
        the sample report plus ``params``, ``train_s``, ``sample_s``, ``final_loss`` and ``quick``.
    """
    from .data import digits
    from .losses import diffusion_loss_fn
    from .metrics import sample_report
    from .samplers import ddpm_sample
    from .schedules import get_schedule
    from .trainer import train

    def run() -> dict:
        cfg = check_ddpm_config(make_model, config)
        steps = min(cfg["steps"], 10) if quick_mode() else cfg["steps"]
        n = min(num_samples, 16) if quick_mode() else num_samples
        schedule = get_schedule(cfg["schedule"], cfg["num_timesteps"])
        torch.manual_seed(seed)
        model = make_model()
        x, _ = digits("train", image_size=16)
        result = train(model, diffusion_loss_fn(schedule, torch.Generator().manual_seed(seed + 1)), (x,),
                       steps=steps, batch_size=cfg["batch_size"], lr=cfg["lr"],
                       ema_decay=cfg.get("ema_decay", 0.999), seed=seed, device="cpu", progress=False)
        start = time.perf_counter()
        samples = ddpm_sample(result.ema_model, (n, 1, 16, 16), schedule,
                              generator=torch.Generator().manual_seed(seed), progress=False)
        sample_s = time.perf_counter() - start
        assert_tensor(samples, "the samples", (n, 1, 16, 16))
        report = sample_report(samples.clamp(-1, 1))
        report.update(params=sum(p.numel() for p in model.parameters()), train_s=round(result.wall_time_s, 1),
                      sample_s=round(sample_s, 1), final_loss=_final_loss(result), quick=quick_mode())
        return report

    key = (id(make_model), json.dumps(config, sort_keys=True, default=str), seed, num_samples, quick_mode())
    return _measured(key, run)


def assert_quality(report: dict, key: str, at_least: float | None = None, *, below: float | None = None) -> None:
    """Fail unless ``report[key] >= at_least`` (or ``< below``); always passes in quick mode (CI plumbing check)."""
    if (at_least is None) == (below is None):
        raise ValueError("give exactly one of at_least= and below=.")
    if report.get("quick"):
        return
    ok = report[key] >= at_least if at_least is not None else report[key] < below
    if not ok:
        need = f">= {at_least}" if at_least is not None else f"< {below}"
        raise AssertionError(f"{key} = {report[key]:.3f}, needs {need} for this test "
                             f"(train {report['train_s']} s, final loss {report['final_loss']:.4f}).")


VAE_BUDGET = {"max_steps": 1500, "max_batch_size": 256, "max_parameters": 300_000}


def check_vae_config(make_model: Callable[[], torch.nn.Module], config: dict) -> dict:
    """Validate a student's ``make_model`` and ``TRAIN_CONFIG`` (steps, batch_size, lr) against ``VAE_BUDGET``.

    ``make_model()`` must build a new, randomly initialised ``course_lib.vae.VAE`` for 1-channel 16x16 images
    with the discretized Gaussian likelihood (so that its ELBO is a code length of 8-bit images).
    """
    from .vae import VAE

    if not callable(make_model):
        raise AssertionError("make_model should be a function that returns a new VAE; it is "
                             f"{type(make_model).__name__}.")
    if not isinstance(config, dict) or set(config) != {"steps", "batch_size", "lr"}:
        raise AssertionError("TRAIN_CONFIG should be a dict with exactly the keys steps, batch_size and lr; it is "
                             f"{config!r}.")
    b = VAE_BUDGET
    _require([(isinstance(config["steps"], int) and 1 <= config["steps"] <= b["max_steps"],
               f"steps must be an int in 1 ... {b['max_steps']}"),
              (isinstance(config["batch_size"], int) and 1 <= config["batch_size"] <= b["max_batch_size"],
               f"batch_size must be an int in 1 ... {b['max_batch_size']}"),
              (isinstance(config["lr"], float) and 0 < config["lr"] <= 0.1, "lr must be a float in (0, 0.1]")])

    def is_vae(model):
        if type(model) is not VAE:
            raise AssertionError(f"make_model() must return a course_lib.vae.VAE, not {type(model).__name__}.")
        c = model.config
        if (c.in_channels, c.image_size, c.likelihood) != (1, 16, "discretized_gaussian"):
            raise AssertionError("the VAE must take 1-channel 16x16 images and keep "
                                 f"likelihood='discretized_gaussian'; it has in_channels={c.in_channels}, "
                                 f"image_size={c.image_size}, likelihood={c.likelihood!r}.")

    n = sum(p.numel() for p in _fresh_models(make_model, is_vae)[0].parameters())
    if n > b["max_parameters"]:
        raise AssertionError(f"the model has {n} parameters; the budget is {b['max_parameters']}.")
    return dict(config)


def vae_digits_elbo(make_model: Callable[[], torch.nn.Module], config: dict, *, seed: int = 0) -> dict:
    """Train ``make_model()`` on the 16x16 training digits and bound the held-out likelihood.

    Fixed procedure (the grader's): ``vae.train_vae`` with beta = 1 on the 1437 training digits rounded to 256
    grey levels, on the CPU with one thread and ``seed``; then ``vae.evaluate`` of the EMA model on the 360
    held-out digits with ``torch.Generator().manual_seed(seed)``. Repeated calls return the cached report.

    Returns:
        ``bits_per_dim`` (held-out -ELBO / (256 ln 2)), ``neg_elbo``, ``recon``, ``kl`` (nats per image),
        ``params``, ``train_s``, ``final_loss`` and ``quick``.
    """
    from .data import digits
    from .distributions import quantize
    from .vae import evaluate, train_vae

    def run() -> dict:
        cfg = check_vae_config(make_model, config)
        steps = min(cfg["steps"], 10) if quick_mode() else cfg["steps"]
        torch.manual_seed(seed)
        model = make_model()
        x_train, x_test = (quantize(digits(split, image_size=16)[0]) for split in ("train", "test"))
        result = train_vae(model, x_train, steps=steps, batch_size=cfg["batch_size"], lr=cfg["lr"],
                           seed=seed, device="cpu", progress=False)
        ev = evaluate(result.ema_model, x_test, generator=torch.Generator().manual_seed(seed))
        return dict(bits_per_dim=ev.bits_per_dim, neg_elbo=ev.neg_elbo, recon=ev.recon, kl=ev.kl,
                    params=sum(p.numel() for p in model.parameters()), train_s=round(result.wall_time_s, 1),
                    final_loss=_final_loss(result), quick=quick_mode())

    key = ("vae_digits_elbo", id(make_model), json.dumps(config, sort_keys=True, default=str), seed, quick_mode())
    return _measured(key, run)
