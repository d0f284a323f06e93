"""Shared by the exercise tests: the exercise tools, the sets, parsing a master's questions and secrets, and
editing a solution into a test case. Each set's cases live in ``set_<name>.py``; ``test_sets.py`` runs what every set
shares from those tables, ``test_grader.py`` tests the grader itself.

Grading a case is a real ``otter run``. ``make test`` runs them in quick grading mode (``COURSE_GRADING_QUICK=1``, the
default here: a measured question runs its real code path at a tiny size and only its plumbing is graded);
``make test-grading`` runs the same cases at full size, where a measured question's expected score is checked too.
Every case's grading time goes to ``_build/grading-times.json`` (CI's projection reads it).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("exercise_tools", REPO / "exercises" / "tools.py")
tools = sys.modules["exercise_tools"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tools)

SETS = tools.exercise_sets()
TIMES = REPO / "_build" / "grading-times.json"
TEXT_SUFFIXES = {".html", ".js", ".json", ".ipynb", ".txt", ".py", ".md", ".xml", ".css", ".svg"}


def master(name: str) -> nbformat.NotebookNode:
    return nbformat.read(tools.SOURCE / name / f"{name}.ipynb", as_version=4)


def raw_config(cell) -> dict:
    return yaml.safe_load("\n".join(cell.source.splitlines()[1:])) or {}


def parse_questions(nb) -> list[dict]:
    """[{name, points, prompt, public, hidden}] parsed from a master's BEGIN/END blocks."""
    questions, current, block = [], None, None
    for cell in nb.cells:
        head = cell.source.splitlines()[0].strip().upper() if cell.source.strip() else ""
        if cell.cell_type == "raw" and head == "# BEGIN QUESTION":
            current = {**raw_config(cell), "prompt": "", "public": [], "hidden": []}
            questions.append(current)
        elif cell.cell_type == "raw" and head.startswith("# BEGIN "):
            block = head.split()[-1]
        elif cell.cell_type == "raw" and head.startswith("# END "):
            block = None if head != "# END QUESTION" else block
            current = None if head == "# END QUESTION" else current
        elif current is not None and block == "TESTS":
            hidden = head.startswith("# HIDDEN") or bool(re.search(r"^hidden:\s*true", cell.source, re.M))
            current["hidden" if hidden else "public"].append(cell.source)
        elif current is not None and block is None and cell.cell_type == "markdown":
            current["prompt"] += cell.source
    return questions


@functools.lru_cache(maxsize=1)
def _public_course_text() -> str:
    """The chapters' cells and the library's source (not the grader): public, so no line of them is a secret (a
    seeded generator a chapter shows, a line of library source a page prints)."""
    chapters = [
        "".join(c["source"])
        for p in sorted((REPO / "chapters").glob("*/*.ipynb"))
        for c in json.loads(p.read_text())["cells"]
    ]
    library = [p.read_text() for p in sorted((REPO / "course_lib").rglob("*.py")) if "grading" not in p.parts]
    return "\n".join([*chapters, *library])


def secret_lines(nb) -> set[str]:
    """Distinctive lines of solutions and hidden tests that appear nowhere in the master's public parts."""
    secret, public, block = set(), set(), None
    for cell in nb.cells:
        head = cell.source.splitlines()[0].strip().upper() if cell.source.strip() else ""
        if cell.cell_type == "raw" and re.match(r"# (BEGIN|END) ", head):
            block = head.split()[-1] if head.startswith("# BEGIN") and "QUESTION" not in head else None
            continue
        lines = [line.strip() for line in cell.source.splitlines()]
        if block == "TESTS" and (head.startswith("# HIDDEN") or re.search(r"^hidden:\s*true", cell.source, re.M)):
            secret.update(lines)  # as written, and as otter writes test files (ast.unparse normalises quotes)
            secret.update(line.strip() for line in ast.unparse(ast.parse(cell.source).body[-1]).splitlines())
        elif block == "SOLUTION" and cell.cell_type == "markdown":  # a written answer's model answer and rubric
            secret.update(line.lstrip("- ").strip() for line in lines)
        elif block == "SOLUTION" and cell.cell_type == "code":
            inside = False
            for line in lines:
                if line.startswith("# BEGIN SOLUTION"):
                    inside = True
                elif line.startswith("# END SOLUTION"):
                    inside = False
                elif inside or line.endswith("# SOLUTION"):
                    secret.add(line.removesuffix("# SOLUTION").strip())
                else:
                    public.add(line)
        elif block == "TESTS":
            public.update([cell.source, ast.unparse(ast.parse(cell.source).body[-1])])
        elif cell.cell_type != "raw":
            public.add(cell.source)
    public_text = "\n".join([*public, _public_course_text()])
    return {line for line in secret if len(line) >= 25 and line not in public_text}


def leaks(secrets: set[str], root: Path) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES):
        text = path.read_text(errors="ignore")
        text += json.dumps(text)  # also catch lines stored with JSON escapes inside .ipynb / .js files
        found += [
            f"{path.relative_to(root)}: {line}" for line in secrets if line in text or json.dumps(line)[1:-1] in text
        ]
    return found


def with_answers(nb: nbformat.NotebookNode, answers: dict, extra: dict[int, str] | None = None):
    """A copy of ``nb``: the code cell defining ``def name(`` (or, for an answer that is no function, assigning
    ``name = ``) gets the new source (a str, or a function of the old source); ``extra`` inserts cells at the
    given indices."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        for name, source in answers.items():
            if cell.cell_type == "code" and re.search(rf"^(def {name}\(|{name} = )", cell.source, re.M):
                cell.source = source(cell.source) if callable(source) else source
    for index, source in sorted((extra or {}).items(), reverse=True):
        nb.cells.insert(index, nbformat.v4.new_code_cell(source))
    return nb


def partial_notebook(name: str, answers: dict) -> nbformat.NotebookNode:
    """The untouched student notebook of ``name`` with ``answers`` put in (as ``with_answers``; a callable gets the
    solution's cell, e.g. to change one number of the model answer): the other questions stay blank."""
    sol = solution(name)
    resolved = {}
    for key, answer in answers.items():
        if callable(answer):
            cell = next(
                c for c in sol.cells if c.cell_type == "code" and re.search(rf"^(def {key}\(|{key} = )", c.source, re.M)
            )
            answer = answer(cell.source)
        resolved[key] = answer
    return with_answers(nbformat.read(tools.ROOT / name / f"{name}.ipynb", as_version=4), resolved)


def solution(name: str = "ddpm") -> nbformat.NotebookNode:
    return nbformat.read(tools.DIST / name / f"{name}-solution.ipynb", as_version=4)


def quick() -> bool:
    """Whether the grading runs of this session are in quick mode (``make test``) or at full size."""
    return os.environ.get("COURSE_GRADING_QUICK") == "1"


def grade_case(path: Path, name: str, case: str):
    """``tools.grade`` one test case's notebook; print its table and record its time under ``<set>/<case>``."""
    from filelock import FileLock

    result = tools.grade(path, name)
    print(f"\n{name} {case} graded in {result.seconds:.0f} s\n" + tools.format_table(result))
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TIMES) + ".lock"):
        times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
        times[f"{name}/{case}"] = round(result.seconds, 1)
        TIMES.write_text(json.dumps(times, indent=1, sort_keys=True))
    return result


def build_fresh(root: Path) -> Path:
    """Every set built from its master into ``root/exercises`` (student files) and exercises/dist (bundles); a set
    is rebuilt only when its master changed. Safe with several pytest-xdist workers, which share the work: each
    set has its own lock and each worker goes through the sets in its own order, so two workers build two sets
    at once and then reuse each other's."""
    from filelock import FileLock

    out = root / "exercises"
    out.mkdir(exist_ok=True)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    order = SETS[worker % len(SETS) :] + SETS[: worker % len(SETS)] if worker % 2 == 0 else SETS[::-1]
    for name in order:
        stamp = root / f"exercises.{name}.master"
        digest = hashlib.sha256((tools.SOURCE / name / f"{name}.ipynb").read_bytes()).hexdigest()
        with FileLock(str(root / f"exercises.{name}.lock")):
            if not (stamp.exists() and stamp.read_text() == digest and tools.bundle_is_current(name)):
                shutil.rmtree(out / name, ignore_errors=True)
                tools.build(name, out, tools.DIST)
                stamp.write_text(digest)
    return out
