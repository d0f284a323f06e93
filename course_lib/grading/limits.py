"""Time limits and the output cap of the grading kernel (one bad answer must not cost the others).

``time_limit`` raises ``GradingTimeout`` after a wall-clock limit (SIGALRM, Unix only); ``_CappedStream``
wraps ``sys.stdout`` / ``sys.stderr`` so that a test case printing in a loop cannot flood the grader.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from typing import Iterator

CELL_TIMEOUT_S = 300.0  # one notebook cell (students' own experiments included)
TEST_TIMEOUT_S = 60.0  # one test case, unless the question has its own limit
MAX_OUTPUT_CHARS = 20_000  # printed per cell, and per test case before the case fails


class GradingTimeout(BaseException):
    """Raised by the timer; a BaseException so that a student's ``except Exception`` cannot swallow it."""


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
