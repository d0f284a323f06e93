"""The guards installed in the grading kernel: limits per cell and per test case, tamper checks, reports.

``install_guards`` runs in the cell that ``plugin.GradingGuard`` inserts before the student's cells. It arms a
wall-clock limit per cell and per test case and the output cap (``limits``), replaces otter's test runner by
``_guarded_run`` (a test case that raises anything, hangs or prints too much fails alone, with a one-line
reason), imports what the tests rely on and takes the ``integrity`` snapshot. From then on the guards check
for tampering after every cell, before and after every question's tests and after every measured run; a
finding sticks. A tampered submission's tests all fail with ``integrity.tamper_reason``.

After every cell the guards publish a report (``integrity.HEARTBEAT_MIME``): the cell's number, what was found
so far, and for otter's final cell the results otter recorded, signed with a key that the grader process made
for this run. Outputs reach the grader process as the cell runs and cannot be taken back, so the grader
(``plugin.GradingGuard.after_grading``) can hold a later cover-up against an earlier report, and a missing or
unsigned report against the notebook. That raises the bar; it is not a sandbox (see ``integrity``).
"""

from __future__ import annotations

import importlib
import json
import linecache
import os
import pkgutil
import signal
import sys

from . import integrity, measured
from .limits import (CELL_TIMEOUT_S, MAX_OUTPUT_CHARS, TEST_TIMEOUT_S, GradingTimeout, _CappedStream,
                     _can_use_alarm, _printed_too_much, _streams, time_limit)

EXPORT_CELL_MARK = "GradingResults(Checker.get_results())"  # otter's final cell: runs every remaining test
_SETTINGS: dict = {}
_RUNS: dict = {}  # id(test file) -> (test file, digest) for every test file the guarded runner ran


def _failure(message: str, limit: int = 2000) -> str:
    message = message if len(message) <= limit else message[:limit] + " ... [cut]"
    return "❌ Test case failed\n" + message


def _digest(test_file) -> tuple:
    """What a test file's result consists of: cases, their points, whether each passed, any score override."""
    cases = tuple((r.test_case.name, r.test_case.points, r.test_case.hidden, bool(r.passed))
                  for r in test_file.test_case_results)
    return test_file.name, test_file.all_or_nothing, test_file._score, cases


def _fail_all(test_file, reason: str) -> None:
    from otter.test_files.abstract_test import TestCaseResult

    test_file.test_case_results = [TestCaseResult(test_case=tc, passed=False, message=_failure(reason))
                                   for tc in test_file.test_cases]


def _guarded_run(self, global_environment: dict) -> None:
    """Replacement for otter's ``ExceptionTestFile.run``: the same loop, with a limit and a cap per test case,
    and a tamper check before and after (all cases fail once the notebook has modified the grader)."""
    from otter.test_files.abstract_test import TestCaseResult

    limit = float(_SETTINGS.get("question_timeouts", {}).get(self.name, _SETTINGS.get("test_timeout",
                                                                                      TEST_TIMEOUT_S)))
    self.test_case_results, timed_out = [], False
    found = integrity.checkpoint()
    for tc in [] if found else self.test_cases:
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
    found = integrity.checkpoint()  # the student's code ran inside the tests
    if found:
        _fail_all(self, integrity.tamper_reason(found))
    _RUNS[id(self)] = (self, _digest(self))


def _recorded_results() -> tuple[list[str], dict]:
    """Otter's recorded results as the guarded runner produced them: (problems, {question: [[case, passed]]})."""
    from otter.execute import Checker

    problems, final = [], {}
    for tf in Checker.get_results():
        run = _RUNS.get(id(tf))
        if run is None or run[0] is not tf or run[1] != _digest(tf):
            problems = ["otter's recorded test results"]
        final[tf.name] = [[r.test_case.name, bool(r.passed)] for r in tf.test_case_results]
    return problems, final


def _hooks_check(ip, events: dict):
    """A check that the guards' IPython hooks still run, first among those registered after them."""
    manager = ip.events

    def check() -> list[str]:
        if ip.events is not manager or "trigger" in vars(manager):
            return ["IPython's event manager"]
        return [f"the grader's {name} hook" for name, before in events.items()
                if not all(map(lambda a, b: a is b, manager.callbacks.get(name, [])[:len(before)], before))
                or len(manager.callbacks.get(name, [])) < len(before)]
    return check


def _import_protected(names: list[str]) -> list[str]:
    """Import, before the snapshot, every course_lib module (the measured runs import theirs lazily), what torch
    would load later on its own, and each dotted name the tests import (a module, or an attribute of one);
    return the top-level packages of those names."""
    import course_lib

    # torch._dynamo: torch loads it lazily (an optimizer's first step does) and it rebinds torch.manual_seed & co.
    names = [m.name for m in pkgutil.walk_packages(course_lib.__path__, "course_lib.")] + ["torch._dynamo", *names]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            parent, _, attr = name.rpartition(".")
            try:
                getattr(importlib.import_module(parent), attr)  # resolves lazy attributes (diffusers)
            except (ImportError, AttributeError, ValueError):
                pass  # the test will fail on its own, with its own message
    return sorted({name.split(".")[0] for name in names})


def _scrub(ip, key: str) -> None:
    """Take the run's key out of the places a notebook reads its own history from (In, _i*, linecache)."""
    hm = ip.history_manager
    for hist in (hm.input_hist_parsed, hm.input_hist_raw):
        hist[:] = [h.replace(key, "<key>") if isinstance(h, str) else h for h in hist]
    for name, value in list(ip.user_ns.items()):
        if name.startswith("_i") and isinstance(value, str) and key in value:
            ip.user_ns[name] = value.replace(key, "<key>")
    for filename, entry in list(linecache.cache.items()):
        if len(entry) > 2 and any(key in line for line in entry[2]):
            linecache.cache.pop(filename, None)


def install_guards(*, cell_timeout: float = CELL_TIMEOUT_S, test_timeout: float = TEST_TIMEOUT_S,
                   question_timeouts: dict[str, float] | None = None, max_output_chars: int = MAX_OUTPUT_CHARS,
                   protect: list[str] | tuple[str, ...] = (), key: str | None = None) -> None:
    """Arm the grading kernel: time limits, the output cap, guarded test execution, tamper checks, reports.

    Called once, by the cell that ``GradingGuard`` inserts (later calls do nothing). ``protect``: the dotted
    names the tests import (added to the snapshot); ``key``: signs the per-cell reports. Requires IPython.
    """
    from IPython import get_ipython
    from otter.test_files.exception_test import ExceptionTestFile

    if integrity.installed():
        return
    cell_timeout = float(os.environ.get("COURSE_GRADING_CELL_TIMEOUT", cell_timeout))  # overrides for the
    test_timeout = float(os.environ.get("COURSE_GRADING_TEST_TIMEOUT", test_timeout))  # grader's own tests
    _SETTINGS.update(cell_timeout=float(cell_timeout), test_timeout=float(test_timeout),
                     question_timeouts=dict(question_timeouts or {}), max_output_chars=int(max_output_chars))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # grading never downloads
    measured.freeze_quick_mode()
    ExceptionTestFile.run = _guarded_run
    if not isinstance(sys.stdout, _CappedStream):
        sys.stdout = _CappedStream(sys.stdout, max_output_chars)
        sys.stderr = _CappedStream(sys.stderr, max_output_chars)
    ip = get_ipython()
    if ip is None:
        raise RuntimeError("install_guards needs an IPython kernel: it is meant for otter's grading run.")
    if key:
        _scrub(ip, key)
    ip.ask_exit = lambda: print("[grader: exit() ignored, the notebook keeps running]")  # else the kernel dies

    def on_alarm(signum, frame):
        raise GradingTimeout(f"this cell ran longer than {_SETTINGS['cell_timeout']:g} s and was stopped by "
                             "the grader (infinite loop, or too much work?)")

    def pre_run_cell(info) -> None:
        for s in _streams():
            s.reset()
        if EXPORT_CELL_MARK in (info.raw_cell or ""):
            integrity.flag(_recorded_results()[0])
            if integrity.checkpoint():  # the final tests must run on the real grader, and fail
                integrity.restore()
                from otter.execute import Checker
                Checker.get_results().clear()  # so every question runs again, in the guarded runner
        elif _can_use_alarm():
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, _SETTINGS["cell_timeout"])

    def post_run_cell(result) -> None:
        if _can_use_alarm():
            signal.setitimer(signal.ITIMER_REAL, 0)
        found = integrity.checkpoint()
        report = {"cell": getattr(result, "execution_count", None), "found": found}
        if EXPORT_CELL_MARK in (getattr(getattr(result, "info", None), "raw_cell", "") or ""):
            problems, report["results"] = _recorded_results()
            report["found"] = sorted(set(found) | set(problems))
        text = json.dumps(report, sort_keys=True)
        ip.display_pub.publish(data={integrity.HEARTBEAT_MIME: {"report": text,
                                                                 "mac": integrity.sign(key or "", text)}},
                               metadata={})

    ip.events.register("pre_run_cell", pre_run_cell)
    ip.events.register("post_run_cell", post_run_cell)
    roots = _import_protected(list(protect))
    integrity.install(roots=tuple(sorted(set(integrity.PROTECTED_ROOTS) | set(roots))),
                      modules=integrity.PROTECTED_MODULES + tuple(protect))
    measured.watch_inputs()
    integrity.add_check(_hooks_check(ip, {name: list(ip.events.callbacks[name])
                                          for name in ("pre_run_cell", "post_run_cell")}))
