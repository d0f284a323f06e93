"""Readable checks for the question tests: a wrong answer becomes a message a student can act on.

``assert_tensor`` (type, dtype, shape, finite values), ``assert_close`` (elementwise agreement, saying where
and by how much), ``assert_quality`` (a measured report against a threshold) and ``assert_settings`` (a measured
question's settings dict has exactly its keys). Answers must be plain
``torch.Tensor`` objects: a subclass can redefine every operation (``__torch_function__``), comparisons
included, so it is refused rather than compared.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _plain_tensor(x, name: str) -> None:
    if not isinstance(x, Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor but is {type(x).__name__} ({x!r:.80}).")
    if type(x) is not Tensor:  # noqa: E721 -- exactly Tensor: a subclass can override the comparison itself
        raise AssertionError(
            f"{name} should be a plain torch.Tensor, not the subclass {type(x).__name__}; "
            "return the result of torch operations (e.g. x.as_subclass(torch.Tensor))."
        )


def assert_tensor(x, name: str, shape: tuple[int, ...] | None = None, *, finite: bool = True) -> None:
    """Fail unless ``x`` is a plain floating tensor (with ``shape`` if given, and finite values if ``finite``)."""
    _plain_tensor(x, name)
    if not x.is_floating_point():
        raise AssertionError(f"{name} should hold floats but has dtype {x.dtype}.")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(x.shape)}, expected {tuple(shape)}.")
    if finite and not bool(torch.isfinite(x).all()):
        raise AssertionError(f"{name} contains NaN or inf values.")


PRECISION_HINT = (
    " Differences this small are float32 rounding: do the schedule arithmetic in float64 (e.g. "
    "betas.double(), torch.arange(..., dtype=torch.float64)) and cast only the result."
)


def assert_close(
    actual, expected: Tensor, name: str, *, rtol: float = 1e-5, atol: float = 1e-6, precision_hint: bool = False
) -> None:
    """Fail unless ``actual`` matches ``expected`` elementwise (|a - e| <= atol + rtol |e|), saying where not.

    With ``precision_hint``, a miss of at most 1e-3 (relative to max(1, |expected|)), the size of float32
    rounding in a schedule's products and ratios, says so and names the fix.
    """
    _plain_tensor(expected, f"the value {name} is compared with")
    assert_tensor(actual, name, tuple(expected.shape), finite=False)
    a, e = actual.detach().cpu().double(), expected.detach().cpu().double()  # MPS has no float64
    bad = ~((a - e).abs() <= atol + rtol * e.abs())
    if bool(bad.any()):
        i = tuple(int(v) for v in bad.nonzero()[0])
        worst = (a - e).abs().max().item()
        tiny = precision_hint and worst <= 1e-3 * max(1.0, e.abs().max().item())
        digits = ".9g" if tiny else ".6g"  # enough digits to see where the two differ
        raise AssertionError(
            f"{name} differs from the reference at {int(bad.sum())} of {bad.numel()} entries; "
            f"e.g. at index {i}: got {a[i].item():{digits}}, expected {e[i].item():{digits}} "
            f"(max abs diff {worst:.3g})." + (PRECISION_HINT if tiny else "")
        )


def assert_quality(report: dict, key: str, at_least: float | None = None, *, below: float | None = None) -> None:
    """Fail unless ``report[key] >= at_least`` (or ``< below``); always passes in quick mode (CI plumbing check)."""
    if (at_least is None) == (below is None):
        raise ValueError("give exactly one of at_least= and below=.")
    if report.get("quick"):
        return
    ok = report[key] >= at_least if at_least is not None else report[key] < below
    if not ok:
        need = f">= {at_least}" if at_least is not None else f"< {below}"
        if "final_loss" in report:  # a trained model
            run = f" (train {report['train_s']} s, final loss {report['final_loss']:.4f})"
        elif "nfe" in report:  # a sampler (the DDIM set)
            run = f" ({report['nfe']} network evaluations per sample, sampled in {report['sample_s']} s)"
        else:
            run = ""
        raise AssertionError(f"{key} = {report[key]:.3f}, needs {need} for this test{run}.")


def assert_settings(settings, name: str, keys: tuple[str, ...], example: str | None = None) -> None:
    """Fail unless ``settings`` (the student's ``name``, e.g. "SAMPLER") is a dict with exactly ``keys``; the message
    names what is missing or unknown, the keys in the order given, and ``example`` (a dict literal) if given."""
    if not isinstance(settings, dict):
        raise AssertionError(f"{name} should be a dict, it is {type(settings).__name__}.")
    unknown, missing = set(settings) - set(keys), set(keys) - set(settings)
    if missing or unknown:
        wrong = ([f"is missing {sorted(missing)}"] if missing else []) + (
            [f"has unknown keys {sorted(unknown)}"] if unknown else []
        )
        listed = ", ".join(keys[:-1]) + " and " + keys[-1] if len(keys) > 1 else keys[0]
        raise AssertionError(
            f"{name} {' and '.join(wrong)}; it needs exactly the keys {listed}"
            + (f", e.g. {example}." if example else ".")
        )
