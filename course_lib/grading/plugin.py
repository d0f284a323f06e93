"""The otter plugin: arms the grading kernel before a submission runs, audits the run in the grader process.

``GradingGuard`` is listed in every master's ASSIGNMENT CONFIG. Otter calls it in the grader process
(``otter run``), never in the kernel that executes the submission, so nothing here depends on the kernel
telling the truth:

- ``before_execution`` scans the submission's cells (``source_scan``), makes a key for this run and inserts a
  first cell that calls ``guards.install_guards`` with the plugin's limits, the names the tests import and the key;
- ``after_grading`` reads the guards' signed report of every cell from the executed notebook (outputs reach this
  process while a cell runs; a later cell cannot take them back), checks the results otter read from the kernel
  against the report of otter's final cell and against the test files, and if anything says that the notebook
  modified the grader, fails every test case of every question with the reason (``integrity.tamper_reason``).

Otter reads two things the kernel writes with ``pickle`` (the results file, the log socket): unpickling runs
code, so this plugin restricts both, in this process, to the classes that grading results and log records
consist of. What the plugin cannot do: see what a submission does outside Python objects (files, other
processes); only a container per submission bounds that (see ``integrity``).
"""

from __future__ import annotations

import ast
import glob
import hmac
import io
import json
import os
import pickle
import secrets
import types

from .guards import EXPORT_CELL_MARK, _failure
from .integrity import HEARTBEAT_MIME, sign, tamper_reason
from .source_scan import find_writes

try:  # only grading needs otter; course_lib itself does not depend on it
    from otter.plugins import AbstractOtterPlugin
except ImportError:  # pragma: no cover
    AbstractOtterPlugin = object  # type: ignore[misc,assignment]

_CONFIG_KEYS = ("cell_timeout", "test_timeout", "question_timeouts", "max_output_chars")
_RESULT_CLASSES = frozenset({("otter.test_files", "GradingResults"),
                             ("otter.test_files.exception_test", "ExceptionTestFile"),
                             ("otter.test_files.exception_test", "test_case"),
                             ("otter.test_files.abstract_test", "TestCase"),
                             ("otter.test_files.abstract_test", "TestCaseResult")})


class RefusedPickle(pickle.UnpicklingError):
    """A file or message from the kernel named a class that grading results never contain."""


class _Unpickler(pickle.Unpickler):
    allowed: frozenset = frozenset()

    def find_class(self, module, name):
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise RefusedPickle(f"data from the notebook's kernel names {module}.{name}, which grading results never "
                            "contain (unpickling it would run code in the grader)")


class _ResultsUnpickler(_Unpickler):
    allowed = _RESULT_CLASSES


def _harden_unpicklers() -> None:
    """Make otter's results file and log socket unpickle only plain data and otter's result classes."""
    import otter.execute
    from otter.execute import logging as otter_logging

    if getattr(otter.execute.pickle, "_course_restricted", False):
        return
    shim = types.ModuleType("pickle")
    shim.__dict__.update(vars(pickle))
    shim.load = lambda file, **kwargs: _ResultsUnpickler(file).load()
    shim._course_restricted = True
    otter.execute.pickle = shim
    otter_logging.LogRecordStreamHandler.unpickle = lambda self, data: _Unpickler(io.BytesIO(data)).load()


def imported_names(test_paths: list[str]) -> list[str]:
    """Dotted names that test files import (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = set()
    for path in test_paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
    return sorted(names)


def read_reports(nb, key: str) -> tuple[set[str], dict | None]:
    """What the guards reported, from the executed notebook: (findings, results of otter's final cell).

    Every code cell from the guards' set-up cell on must carry a report signed with ``key`` for its own execution
    count; a missing one is a finding (the notebook switched the guards off, or hid their output).
    """
    cells = [c for c in nb.cells if c.cell_type == "code"]
    start = next((i for i, c in enumerate(cells) if "install_guards(" in c.source), None)
    if start is None:
        return {"the grader's set-up cell"}, None
    found, final, silent = set(), None, []
    for cell in cells[start:]:
        if not cell.source.strip():  # never sent to the kernel
            continue
        reports = []
        for out in cell.get("outputs", []):
            signed = out.get("data", {}).get(HEARTBEAT_MIME) if out.get("output_type") == "display_data" else None
            if isinstance(signed, dict) and isinstance(signed.get("report"), str) and \
                    hmac.compare_digest(str(signed.get("mac", "")), sign(key, signed["report"])):
                report = json.loads(signed["report"])
                if report.get("cell") == cell.get("execution_count"):
                    reports.append(report)
        if not reports:
            silent.append(str(cell.get("execution_count")))
            continue
        found.update(str(label) for report in reports for label in report.get("found", []))
        if EXPORT_CELL_MARK in cell.source:
            final = reports[-1].get("results")
    if silent:
        more = ", ..." if len(silent) > 3 else ""
        found.add(f"the guards: no signed report from cell{'s' * (len(silent) > 1)} {', '.join(silent[:3])}{more}")
    return found, final


def _test_files() -> dict:
    """The bundle's test files (the grader's working directory is the submission folder, tests in ./tests)."""
    from otter.test_files import ExceptionTestFile

    files = [ExceptionTestFile.from_file(p) for p in sorted(glob.glob(os.path.join("tests", "*.py")))]
    return {tf.name: tf for tf in files}


def _cases(test_cases) -> list:
    return [(tc.name, tc.points, tc.hidden) for tc in test_cases]


def audit(results, key: str) -> set[str]:
    """Findings about a finished run: the guards' reports, and results that differ from what they reported."""
    found, final = read_reports(results.notebook, key)
    got = {name: [[r.test_case.name, bool(r.passed)] for r in tf.test_case_results]
           for name, tf in results.results.items()}
    files = _test_files()
    consistent = final is not None and got == final and set(got) == set(files) and all(
        tf._score is None and tf.all_or_nothing == files[name].all_or_nothing
        and _cases(tf.test_cases) == _cases(files[name].test_cases)
        and _cases(r.test_case for r in tf.test_case_results) == _cases(files[name].test_cases)
        for name, tf in results.results.items())
    return found if consistent else found | {"otter's results file"}


def fail_everything(results, reason: str) -> None:
    """Replace the results by the bundle's questions with every test case failed for ``reason``."""
    from otter.test_files.abstract_test import TestCaseResult

    files = _test_files() or results.results
    for tf in files.values():
        tf.test_case_results = [TestCaseResult(test_case=tc, passed=False, message=_failure(reason))
                                for tc in tf.test_cases]
        tf._score = None
    results.results, results._catastrophic_error = dict(files), None
    results.set_output(reason)


class GradingGuard(AbstractOtterPlugin):
    """Otter plugin: guards the grading kernel and audits the run (see the module docstring).

    In the ASSIGNMENT CONFIG::

        plugins:
          - course_lib.grading.GradingGuard:
              cell_timeout: 300        # seconds per notebook cell
              test_timeout: 60         # seconds per test case
              question_timeouts: {q7: 900}
              max_output_chars: 20000
    """

    def __init__(self, submission_path, submission_metadata, plugin_config):
        super().__init__(submission_path, submission_metadata, plugin_config)
        _harden_unpicklers()
        self._key = secrets.token_hex(16)
        self._static: list[str] = []

    def before_execution(self, submission):
        import nbformat

        config = {k: v for k, v in (self.plugin_config or {}).items() if k in _CONFIG_KEYS}
        protect = imported_names(sorted(glob.glob(os.path.join("tests", "*.py"))))
        source = ("import course_lib.grading\ncourse_lib.grading.install_guards("
                  f"**{json.dumps(config)}, protect={json.dumps(protect)}, key={json.dumps(self._key)})")
        if isinstance(submission, str):  # a .py submission
            self._static = find_writes([submission])
            return source + "\n" + submission
        self._static = find_writes([c.source for c in submission.cells if c.cell_type == "code"
                                    and "otter_ignore" not in c.get("metadata", {}).get("tags", [])])
        submission.cells.insert(0, nbformat.v4.new_code_cell(source))
        return submission

    def after_grading(self, results):
        found = set(self._static)
        if results.has_catastrophic_failure():
            if not isinstance(results._catastrophic_error, RefusedPickle):
                return  # otter's own failure: it already reports it, and the score is 0
            found.add("otter's results file")
        else:
            found |= audit(results, self._key)
        if found:
            fail_everything(results, tamper_reason(found))
