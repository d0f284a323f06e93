"""Build and grade the course's exercise sets (otter-grader 7.0, no Docker needed).

    python exercises/tools.py build [SET ...]            # = make exercises
    python exercises/tools.py build --check [SET ...]    # fail if a committed student notebook is stale
    python exercises/tools.py grade NOTEBOOK [--set SET]  # = make grade NB=...: per-question table
    python exercises/tools.py grade-all FOLDER [--csv F]  # = make grade-all DIR=...: one CSV row per file

Layout (see exercises/INSTRUCTORS.md): the master of set S is ``exercises/source/S/S.ipynb``; ``build`` runs
``otter assign`` on it and writes the student notebook and its public tests to ``exercises/S/`` (committed,
so Colab links work) and the autograder bundle with the hidden tests to ``exercises/dist/S/`` (ignored by git).
Grading uses the isolated grader (``exercises/grader``): the submission runs in its own unprivileged process with
process-wide limits, the tests run in the grading process and call across; a submission that kills its process or
hangs still gets a row (zeros, with the reason).
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the isolated grader, exercises/grader
from grader.runner import Graded as Result  # noqa: E402 (after the path): one graded submission

SOURCE, DIST = ROOT / "source", ROOT / "dist"
GRADE_TIMEOUT_S = 1800  # a whole submission; questions and cells have their own, smaller limits
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def exercise_sets() -> list[str]:
    """Every set with a master notebook ``source/<set>/<set>.ipynb``."""
    return sorted(p.parent.name for p in SOURCE.glob("*/*.ipynb") if p.stem == p.parent.name)


def bundle_path(name: str) -> Path:
    return DIST / name / f"{name}-autograder.zip"


def _env() -> dict:
    return {**os.environ, **OFFLINE_ENV}


# --- build ------------------------------------------------------------------------------------------


def _normalise(nb_path: Path, name: str) -> None:
    """Give cells stable ids (otter's new cells get random ones) so that rebuilding an unchanged master is a no-op."""
    nb = nbformat.read(nb_path, as_version=4)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i:03d}"
    nbformat.write(nb, nb_path)


def _bundle_lock(dist: Path, name: str):
    """A lock file per set and bundle folder: two processes (pytest-xdist workers, two `make` runs) building or
    reading the same bundle take turns."""
    from filelock import FileLock

    dist.mkdir(parents=True, exist_ok=True)
    return FileLock(str(dist / f".{name}.lock"), is_singleton=True)  # re-entrant: build() inside _ensure_bundle


def _replace(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically: a grader opening ``target`` sees the old file or the new one."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copy(source, partial)
    os.replace(partial, target)


def build(name: str, out_root: Path = ROOT, dist: Path = DIST) -> None:
    """Run ``otter assign`` on set ``name``: student files to ``out_root/name``, the bundle to ``dist/name``."""
    master = SOURCE / name / f"{name}.ipynb"
    if not master.exists():
        raise SystemExit(f"no master notebook at {master}; sets found: {exercise_sets()}")
    with _bundle_lock(dist, name), tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "otter", "assign", "--no-run-tests", "--no-pdfs", str(master), tmp]
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"otter assign failed for {name}:\n{proc.stdout}\n{proc.stderr}")
        student, autograder = Path(tmp) / "student", Path(tmp) / "autograder"
        target = out_root / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(student, target)
        _normalise(target / f"{name}.ipynb", name)
        (dist / name).mkdir(parents=True, exist_ok=True)
        bundle = Path(tmp) / f"{name}-autograder.zip"
        _with_isolated_grader(next(autograder.glob(f"{name}-autograder_*.zip")), bundle, name)
        _replace(bundle, dist / name / f"{name}-autograder.zip")
        _replace(autograder / f"{name}.ipynb", dist / name / f"{name}-solution.ipynb")


RUN_AUTOGRADER = """#!/bin/bash
# The course's isolated grader (exercises/grader) in otter's environment, instead of otter's in-kernel run.
export PATH=/root/miniforge3/bin:$PATH
eval "$(mamba shell hook --shell bash)"
mamba activate otter-env
cd /autograder/source && python -m grader.gradescope --root /autograder
"""


def _with_isolated_grader(otter_zip: Path, target: Path, name: str) -> None:
    """Otter's bundle with ``exercises/grader`` added and a ``run_autograder`` that runs it (Gradescope)."""
    import zipfile

    with zipfile.ZipFile(otter_zip) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != "run_autograder":
                dst.writestr(item, src.read(item.filename))

        def add(arcname: str, data, mode: int = 0o644) -> None:  # the submission's uid must read grader/*.py
            info = zipfile.ZipInfo(arcname, (2024, 1, 1, 0, 0, 0))
            info.external_attr = mode << 16
            dst.writestr(info, data)

        for path in sorted((ROOT / "grader").glob("*.py")):
            add(f"grader/{path.name}", path.read_bytes())
        add("course_set.json", json.dumps({"set": name}))
        add("run_autograder", RUN_AUTOGRADER, 0o755)


def compare_trees(fresh: Path, committed: Path) -> list[str]:
    """Relative paths of files that differ between two student folders (missing on either side counts)."""

    def files(root: Path) -> set[Path]:
        return (
            {
                p.relative_to(root)
                for p in root.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts
            }
            if root.exists()
            else set()
        )

    return sorted(
        str(p)
        for p in files(fresh) | files(committed)
        if not (
            (fresh / p).exists() and (committed / p).exists() and filecmp.cmp(fresh / p, committed / p, shallow=False)
        )
    )


def stale_files(name: str) -> list[str]:
    """Files under ``exercises/<name>/`` that differ from a fresh build of the master (empty if up to date)."""
    with tempfile.TemporaryDirectory() as tmp:
        build(name, Path(tmp), Path(tmp) / "dist")
        return compare_trees(Path(tmp) / name, ROOT / name)


# --- grade ------------------------------------------------------------------------------------------


def question_points(name: str) -> dict[str, float]:
    """{question: points possible} read from the bundle's test files (hidden tests included)."""
    import zipfile

    from otter.test_files import ExceptionTestFile

    points = {}
    with zipfile.ZipFile(bundle_path(name)) as zf, tempfile.TemporaryDirectory() as tmp:
        for member in zf.namelist():
            if member.startswith("tests/") and member.endswith(".py"):
                test = ExceptionTestFile.from_file(zf.extract(member, tmp))
                points[test.name] = round(test.possible, 6)  # otter sums float shares: 6 x 1/3 = 1.9999999999999998
    return dict(sorted(points.items(), key=lambda kv: _natural(kv[0])))


def _natural(s: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def guess_set(notebook: Path) -> str:
    """The exercise set of a submission: the only set, else the one whose name starts the file name."""
    sets = exercise_sets()
    if len(sets) == 1:
        return sets[0]
    matches = [s for s in sets if notebook.stem.lower().startswith(s.lower())]
    if len(matches) == 1:
        return matches[0]
    raise SystemExit(f"cannot tell which exercise set {notebook.name} belongs to; pass --set (one of {sets}).")


def bundle_is_current(name: str) -> bool:
    """Whether ``exercises/dist/<name>`` holds a bundle and a solutions notebook newer than the master."""
    master, bundle = SOURCE / name / f"{name}.ipynb", bundle_path(name)
    solution = DIST / name / f"{name}-solution.ipynb"
    return all(p.exists() and p.stat().st_mtime >= master.stat().st_mtime for p in (bundle, solution))


def _ensure_bundle(name: str) -> None:
    """Build the bundle if it is missing or older than the master (the student files go to a scratch folder:
    grading never rewrites the committed ``exercises/<name>/``). Safe with several graders at once."""
    with _bundle_lock(DIST, name):
        if bundle_is_current(name):
            return
        print(f"building the autograder bundle for {name} ...", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            build(name, Path(tmp))


def grade(notebook: str | Path, name: str | None = None, timeout: float = GRADE_TIMEOUT_S) -> Result:
    """Grade one filled notebook with the isolated grader (``exercises/grader``); never raises for a bad submission.

    The submission's cells run in their own unprivileged process; the tests of the set's autograder bundle run in
    this process and call the submission's functions across the boundary (``grader.runner``). ``timeout`` bounds
    the whole run (seconds of wall clock), on top of the per-cell and per-test limits.
    """
    from grader.policy import REFERENCE_ANSWERS
    from grader.runner import grade_notebook

    notebook = Path(notebook)
    name = name or guess_set(notebook)
    _ensure_bundle(name)
    protect_secrets()
    possible = question_points(name)
    env_cell, env_test = os.environ.get("COURSE_GRADING_CELL_TIMEOUT"), os.environ.get("COURSE_GRADING_TEST_TIMEOUT")
    g = grade_notebook(
        notebook,
        bundle_path(name),
        cell_timeout=float(env_cell) if env_cell else None,
        test_timeout=float(env_test) if env_test else None,
        total_timeout=timeout,
        refused=REFERENCE_ANSWERS.get(name, []),
    )
    error = g.error
    if not error and len(g.cell_errors) > 1 and all(g.cell_errors):
        error = f"every cell failed; the first: {g.cell_errors[0]}"
    g.scores, g.possible, g.error = {q: g.scores.get(q, 0.0) for q in possible}, possible, error
    return g


def protect_secrets() -> list[str]:
    """Make what a submission must not read (masters with solutions, bundles with hidden tests, the course's own
    grading tests with their answers, the git history that holds every master) readable by their owner only; the
    folders others can still read."""
    from grader.sandbox import protect

    return protect([SOURCE, DIST, ROOT.parent / "tests", ROOT.parent / ".git"])  # .git: every master's history


def format_table(result: Result) -> str:
    w = max([len("question"), *map(len, result.possible)]) + 2
    rows = [f"{'question':<{w}}{'score':>6}{'max':>6}  result"]
    for q, possible in result.possible.items():
        score = result.scores.get(q, 0.0)
        why = "passed" if score >= possible else (result.reasons.get(q) or result.error or "failed")
        rows.append(f"{q:<{w}}{score:>6g}{possible:>6g}  {why[:110]}")
    rows.append(
        f"{'total':<{w}}{result.total:>6g}{sum(result.possible.values()):>6g}  graded in {result.seconds:.0f} s"
    )
    if result.error:
        rows.append(f"error: {result.error}")
    if result.isolation.startswith("NOT ISOLATED"):
        rows.append(result.isolation)
    if os.environ.get("COURSE_GRADING_QUICK") == "1":
        rows.append("QUICK MODE (COURSE_GRADING_QUICK=1): measured questions were only checked to run.")
    return "\n".join(rows)


def grade_all(
    folder: str | Path, name: str | None = None, csv_path: str | Path | None = None, timeout: float = GRADE_TIMEOUT_S
) -> list[Result]:
    """Grade every ``*.ipynb`` in ``folder`` and write one CSV row per file (default: folder/scores.csv)."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not files:
        raise SystemExit(f"no .ipynb files in {folder}")
    results = []
    for path in files:
        result = grade(path, name, timeout)
        print(
            f"{path.name}: {result.total:g} / {sum(result.possible.values()):g} ({result.seconds:.0f} s)"
            + (f"  [{result.error}]" if result.error else ""),
            flush=True,
        )
        results.append(result)
    questions = list(results[0].possible)
    csv_path = Path(csv_path) if csv_path else folder / "scores.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", *questions, "total", "possible", "seconds", "error"])
        for r in results:
            writer.writerow(
                [
                    r.file,
                    *(f"{r.scores.get(q, 0.0):g}" for q in questions),
                    f"{r.total:g}",
                    f"{sum(r.possible.values()):g}",
                    f"{r.seconds:.0f}",
                    r.error,
                ]
            )
    print(f"wrote {csv_path}")
    return results


# --- command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="student notebooks + autograder bundles from exercises/source")
    p.add_argument("sets", nargs="*")
    p.add_argument("--check", action="store_true", help="only report committed files that are out of date")
    p = sub.add_parser("grade", help="grade one notebook and print a per-question table")
    p.add_argument("notebook")
    p.add_argument("--set", dest="name")
    p.add_argument("--timeout", type=float, default=GRADE_TIMEOUT_S)
    p.add_argument("--json", help="also write the scores as JSON to this path")
    p = sub.add_parser("grade-all", help="grade every notebook in a folder and write a CSV")
    p.add_argument("folder")
    p.add_argument("--set", dest="name")
    p.add_argument("--csv")
    p.add_argument("--timeout", type=float, default=GRADE_TIMEOUT_S)
    args = parser.parse_args(argv)

    if args.command == "build":
        sets = args.sets or exercise_sets()
        if args.check:
            stale = {s: stale_files(s) for s in sets}
            for s, files in stale.items():
                for f in files:
                    print(f"out of date: exercises/{s}/{f} (run `make exercises` and commit)")
            return 1 if any(stale.values()) else 0
        for s in sets:
            build(s)
            print(f"built exercises/{s}/ and {bundle_path(s).relative_to(ROOT.parent)}")
        return 0
    if args.command == "grade":
        result = grade(args.notebook, args.name, args.timeout)
        print(format_table(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result.__dict__ | {"total": result.total}, indent=2))
        return 0
    grade_all(args.folder, args.name, args.csv, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
