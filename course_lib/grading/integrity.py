"""Tamper detection: snapshot what the tests rely on before any student code runs, then find what changed.

A submission runs in the same Python process as the tests that grade it, so it can rebind anything they use:
replace ``course_lib.grading.assert_close`` or ``torch.allclose`` by a no-op, swap a function's ``__code__``,
make otter's test runner report passes, set ``COURSE_GRADING_QUICK=1``, pre-fill the measured runs' cache.
``install`` (called by ``install_guards`` in the cell ``GradingGuard`` inserts before the student's
cells) records, by identity:

- every entry of the namespaces of the protected modules (all loaded submodules of ``torch``, ``course_lib``,
  ``otter``, the packages the tests import, plus ``builtins``, ``math``, ``pickle``, ``inspect``, ``signal``),
  and of every class defined there (an added class attribute counts too: it would shadow an inherited one);
- the ``__code__``, ``__defaults__``, ``__kwdefaults__`` and closure cells of every Python function found there;
- the ``COURSE_GRADING_*`` environment variables and the ``sys.modules`` entries of the protected modules;
- fingerprints of mutable state registered with ``watch`` (the measured runs' cache after each genuine
  run, the digits they train on).

``checkpoint`` compares with the snapshot (``snapshot.Snapshot.changes``) and keeps every finding, as dotted
names (``torch.allclose``, ``os.environ['COURSE_GRADING_QUICK']``): restoring a patch later does not undo it.
Importing more modules, defining functions, seeding, setting threads or ``torch.set_grad_enabled`` change none
of these. The limit, stated plainly: this catches monkeypatching that is still in place when a check runs (the
guards check after every cell, before and after each question's tests, around every measured run), it is not a
sandbox. Code that reads the snapshot and rewrites it, or that patches and restores between two checks (for
instance inside a measured run, where the student's model runs), is out of its reach; only running each
submission in its own container (otter's Docker grading, Gradescope) bounds what a submission can do.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable, Iterable

from .snapshot import ENV_PREFIX, Snapshot, _safe_call, take_snapshot

TAMPER_PREFIX = "the notebook modified the grader ("
PROTECTED_ROOTS = ("course_lib", "otter", "torch")  # every loaded submodule of these
PROTECTED_MODULES = ("builtins", "math", "pickle", "inspect", "signal", "IPython.core.events")
HEARTBEAT_MIME = "application/vnd.course-lib.grading+json"  # the guards' per-cell report (see plugin.py)
__all__ = ["ENV_PREFIX", "HEARTBEAT_MIME", "PROTECTED_MODULES", "PROTECTED_ROOTS", "TAMPER_PREFIX", "add_check",
           "checkpoint", "flag", "install", "installed", "restore", "sign", "tamper_reason", "watch"]


def tamper_reason(labels: Iterable[str], limit: int = 6) -> str:
    """The one-line reason a tampered submission gets: ``the notebook modified the grader (a, b and 3 more)``."""
    labels = sorted(set(labels))
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return TAMPER_PREFIX + ", ".join(labels[:limit]) + more + ")"


def sign(key: str, message: str) -> str:
    """HMAC-SHA256 of ``message``: the guards sign each cell's report with a key only the grader process made."""
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


# --- the grading kernel's record ---------------------------------------------------------------------

_KERNEL: dict = {"snapshot": None, "found": set()}  # one grading kernel grades one submission


def install(roots: Iterable[str] = PROTECTED_ROOTS, modules: Iterable[str] = PROTECTED_MODULES) -> Snapshot:
    """Take the kernel's snapshot (``install_guards`` does, before the first student cell); forget old findings."""
    _KERNEL["snapshot"], _KERNEL["found"] = take_snapshot(roots, modules), set()
    return _KERNEL["snapshot"]


def installed() -> bool:
    return _KERNEL["snapshot"] is not None


def checkpoint() -> list[str]:
    """Compare with the snapshot now; return everything found so far (findings stick: restoring a patch later
    does not undo them). A no-op returning [] outside the grading kernel."""
    if _KERNEL["snapshot"] is not None:
        _KERNEL["found"].update(_KERNEL["snapshot"].changes())
    return sorted(_KERNEL["found"])


def watch(label: str, fingerprint: Callable[[], str], genuine: str | None = None) -> None:
    """Record the genuine state of something mutable (a cache, cached data): ``genuine``, or ``fingerprint()`` now.
    Later, a ``fingerprint()`` that differs is a change; calling ``watch`` again records a new genuine state."""
    if _KERNEL["snapshot"] is not None:
        _KERNEL["snapshot"].watched[label] = (fingerprint, _safe_call(fingerprint) if genuine is None else genuine)


def flag(labels: Iterable[str]) -> None:
    """Add findings made elsewhere (otter's recorded results that the guarded runner did not produce)."""
    _KERNEL["found"].update(labels)


def add_check(check: Callable[[], list[str]]) -> None:
    """Add a check of state the snapshot cannot hold (the guards' IPython hooks, otter's recorded results)."""
    if _KERNEL["snapshot"] is not None:
        _KERNEL["snapshot"].extra.append(check)


def restore() -> None:
    if _KERNEL["snapshot"] is not None:
        _KERNEL["snapshot"].restore()
