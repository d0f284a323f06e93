"""Grade one submission: its cells run in a ``Sandbox``; the tests run here and call across the boundary.

1. The notebook's code cells (minus ``otter_ignore`` cells and ``grader.check`` lines) run in the submission's
   process, each with the cell time limit; a cell that fails is reported and the next one runs.
2. Each question's test cases (public and hidden, read from the autograder bundle in a folder only the grader can
   read) run in *this* process. A test's arguments are the notebook's globals: plain data (a dict of settings, a
   number, a tensor) arrives as a copy, anything else (a function, a model) as a ``Remote`` whose calls cross the
   boundary. Inputs are chosen here, expected values are computed here and never sent, answers arrive as plain
   data, and this process alone writes the scores.
3. Measured questions train in the submission's process (``course_lib.grading`` functions run there by name, under
   its CPU limit) and are evaluated here.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .sandbox import Sandbox, SubmissionError

CHECK_LINE = re.compile(r"^\s*(grader\.(check|check_all|export)\(.*\)|#.*)?\s*$")


@dataclass
class Graded:
    """One graded submission: points per question, why a question lost points, and how the run went."""

    file: str
    scores: dict[str, float]
    possible: dict[str, float]
    reasons: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    isolation: str = ""
    cell_errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU seconds of the submission's process, read from /proc by the grader

    @property
    def total(self) -> float:
        return sum(self.scores.values())


class _TestTimeout(BaseException):
    """This process's own limit on a test (a BaseException: the test's ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise _TestTimeout(f"timed out: the test ran past its limit of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def submission_cells(nb) -> list[str]:
    """The code the submission's process runs: every code cell but ``otter_ignore`` ones and ``grader.check``
    lines (the grader runs the tests itself)."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "otter_ignore" in cell.metadata.get("tags", []):
            continue
        if all(CHECK_LINE.match(line) for line in cell.source.splitlines()):
            continue
        cells.append(cell.source)
    return cells


class SubmissionEnv(dict):
    """What otter's test cases read their arguments from: the submission's globals, fetched on first use."""

    def __init__(self, box: Sandbox):
        super().__init__()
        self.box = box

    def get(self, name, default=None):
        if name not in self:
            self[name] = self.box.get(name)
        value = dict.get(self, name)
        return default if value is None else value


def load_tests(bundle: Path, tmp: Path) -> tuple[list, dict]:
    """The bundle's test files (``ExceptionTestFile``, natural order) and the plugin's limits. ``bundle``: the
    autograder zip, or the folder it was unpacked in (Gradescope's ``/autograder/source``)."""
    from otter.test_files import ExceptionTestFile

    if Path(bundle).is_dir():
        tmp = Path(bundle)
    else:
        with zipfile.ZipFile(bundle) as zf:
            zf.extractall(tmp)
    tests = [ExceptionTestFile.from_file(str(p)) for p in (tmp / "tests").glob("*.py")]
    tests.sort(key=lambda t: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", t.name)])
    config = json.loads((tmp / "otter_config.json").read_text())
    limits = {}
    for plugin in config.get("plugins", []):
        if isinstance(plugin, dict):
            for value in plugin.values():
                limits.update(value or {})
    return tests, limits


def _message(e: BaseException) -> str:
    text = str(e).strip() if isinstance(e, AssertionError) and str(e).strip() else f"{type(e).__name__}: {e}"
    return " ".join(text.split())[:400]


def grade_notebook(
    notebook: Path,
    bundle: Path,
    *,
    cell_timeout: float | None = None,
    test_timeout: float | None = None,
    total_timeout: float = 1800.0,
    refused: list[str] = (),
) -> Graded:
    """Grade ``notebook`` with the tests of ``bundle``; never raises for a bad submission.

    Limits (seconds of wall clock): each cell ``cell_timeout`` and each test ``test_timeout`` (default: the bundle's
    plugin config, with its ``question_timeouts``), the whole run ``total_timeout``; the submission's process also
    has ``Sandbox``'s CPU-time limit. ``refused``: ``course_lib`` functions the notebook's code may not call
    (``policy.REFERENCE_ANSWERS`` of the set).
    """
    from course_lib.grading import measured

    start = time.perf_counter()
    deadline = time.monotonic() + total_timeout
    with tempfile.TemporaryDirectory(prefix="grader-tests-") as tmp:  # 0700: hidden tests only the grader reads
        tests, limits = load_tests(bundle, Path(tmp))
        possible = {t.name: round(t.possible, 6) for t in tests}
        zeros = {q: 0.0 for q in possible}
        try:
            nb = nbformat.read(notebook, as_version=4)
            cells = submission_cells(nb)
        except Exception as e:  # noqa: BLE001 -- not a notebook at all
            return Graded(notebook.name, zeros, possible, error=f"could not read the notebook: {e}")
        cell_timeout = cell_timeout or float(limits.get("cell_timeout", 300))
        test_timeout = test_timeout or float(limits.get("test_timeout", 60))
        question_timeouts = limits.get("question_timeouts", {}) or {}
        measured.clear_cache()
        scores, reasons = dict(zeros), {}
        with Sandbox(cpu_s=total_timeout) as box:
            graded = Graded(notebook.name, scores, possible, reasons, isolation=box.isolation)
            try:
                missing = box.refuse(refused)
                if missing:
                    raise RuntimeError(f"policy names functions that do not exist: {missing}")
                graded.cell_errors = box.run_cells(cells, cell_timeout, total=deadline - time.monotonic())
            except SubmissionError as e:
                graded.error = f"the notebook's process ended while its cells ran, so every question scores 0 ({e})"
            env = SubmissionEnv(box)
            for test in tests:
                left = deadline - time.monotonic()
                if left <= 1:
                    reasons[test.name] = f"not graded: the whole run passed its limit of {total_timeout:g} s"
                    graded.error = (
                        graded.error or f"grading stopped after {total_timeout:g} s (the whole notebook's limit)"
                    )
                    continue
                limit = min(float(question_timeouts.get(test.name, test_timeout)), left)
                earned, why = 0.0, ""
                for case in test.test_cases:
                    box.deadline = time.monotonic() + limit  # the submission's side stops itself at the limit,
                    try:  # this side 10 s later (then the process is killed)
                        with time_limit(limit + 10):
                            case.body.call_func(env)
                        earned += case.points or 0.0
                    except (Exception, _TestTimeout) as e:  # noqa: BLE001 -- a failing test is the message
                        why = why or _message(e)
                scores[test.name] = round(earned, 6)
                if why:
                    reasons[test.name] = why
            graded.cpu_s = box.cpu_seconds()
        graded.seconds = time.perf_counter() - start
        return graded
