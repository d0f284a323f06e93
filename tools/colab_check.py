"""Run the course the way a student gets it: the built package in a fresh venv of another Python, no lock file.

    python tools/colab_check.py [--python python3.12] [--keep] [--jobs 2]    # = make colab-check

1. Build the sdist and the wheel of ``course_lib`` from this checkout (setuptools' PEP 517 hooks).
2. Make a fresh venv with ``--python`` (default 3.12, as Colab), install the torch Colab has (``TORCH``), then the
   sdist with the extras the set-up cells install (``chapters``, and ``grading`` for the exercises): pip builds it
   in isolation, as it does for the set-up cell's ``pip install course_lib @ git+...``, and installs only the
   package's declared, loosely bounded dependencies, no ``requirements/lock.txt``.
3. Copy every chapter notebook and every exercise set's solution notebook (with its public tests) to a temporary
   folder outside the repository and execute each there in the quick profile, so nothing can be imported from
   the working tree and package data must really be in the wheel.

Prints a table (notebook, seconds, result) and fails if any notebook failed. The venv is kept in
``_build/colab-venv`` between runs (re-created when the Python, torch or the package's dependencies change).

``--venv-only`` stops after step 2: the venv's kernel is installed as ``colab-check``, and CI runs the book's
notebooks in it (``make book PROFILE=quick KERNEL=colab-check``: each chapter notebook is executed once per CI run,
as a student's Colab would run it, and the site is built from those outputs). ``--exercises-only`` then runs just
the exercise solutions here (the chapters already ran).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "_build" / "colab-venv"
TORCH = "torch==2.14.1"  # Colab's torch at the time of writing; the package itself asks only for torch>=2.2
EXTRAS = "chapters,grading"
NOTEBOOK_TIMEOUT_S = 600

_RUNNER = r"""
import json, os, sys, time, traceback
import nbformat
from nbclient import NotebookClient
path, kernel = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
start = time.perf_counter()
try:
    NotebookClient(nb, timeout=600, kernel_name=kernel,
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    error = ""
except Exception as e:  # noqa: BLE001 -- reported
    error = "".join(traceback.format_exception_only(type(e), e))[-3000:]
print(json.dumps({"seconds": time.perf_counter() - start, "error": error}))
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+ " + " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, check=True, **kwargs)


def build_dists(out: Path) -> Path:
    """The sdist and the wheel of this checkout (the wheel must build too); returns the sdist's path."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    hooks = (
        "from setuptools import build_meta as b; import sys; out = sys.argv[1]; "  # (setuptools rewrites argv)
        "print(b.build_sdist(out)); print(b.build_wheel(out))"
    )
    _run([sys.executable, "-c", hooks, str(out)], cwd=ROOT, stdout=subprocess.DEVNULL)
    for leftover in ("build", "course_lib.egg-info", "sdist"):  # setuptools' scratch folders in the checkout
        shutil.rmtree(ROOT / leftover, ignore_errors=True)
    sdists, wheels = list(out.glob("course_lib-*.tar.gz")), list(out.glob("course_lib-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise SystemExit(f"expected one sdist and one wheel in {out}, found {sdists + wheels}")
    return sdists[0]


def _venv_key(python: str) -> str:
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    return hashlib.sha256((version + TORCH + (ROOT / "pyproject.toml").read_text()).encode()).hexdigest()


def make_venv(python: str, sdist: Path) -> Path:
    """A venv with ``python``, ``TORCH`` and the package with its extras; reused when nothing it depends on changed."""
    key, stamp = _venv_key(python), VENV / "colab-check-stamp"
    pip = VENV / "bin" / "pip"
    if not (stamp.exists() and stamp.read_text() == key):
        shutil.rmtree(VENV, ignore_errors=True)
        _run([python, "-m", "venv", str(VENV)])
        _run([str(pip), "install", "-q", "--upgrade", "pip"])
        _run([str(pip), "install", "-q", TORCH])
        _run([str(pip), "install", "-q", "ipykernel", "nbclient"])  # preinstalled in Colab
        stamp.write_text(key)
    # the package itself is always re-installed: it is what is being checked
    _run([str(pip), "install", "-q", "--force-reinstall", "--no-deps", str(sdist)])
    _run([str(pip), "install", "-q", f"course_lib[{EXTRAS}] @ {sdist.as_uri()}"])  # declared dependencies only
    _run(
        [str(VENV / "bin" / "python"), "-m", "ipykernel", "install", "--sys-prefix", "--name", "colab-check"],
        stdout=subprocess.DEVNULL,
    )
    return VENV / "bin" / "python"


def stage(work: Path, chapters: bool = True) -> list[Path]:
    """Copy what a student opens into ``work``: chapter notebooks (if ``chapters``); each set's solution with its
    public tests."""
    staged = []
    for nb in sorted(ROOT.glob("chapters/*/*.ipynb")) if chapters else []:
        target = work / nb.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(nb, target)
        staged.append(target)
    for master in sorted(ROOT.glob("exercises/source/*/*.ipynb")):
        name = master.parent.name
        solution = ROOT / "exercises" / "dist" / name / f"{name}-solution.ipynb"
        if not solution.exists():
            _run([sys.executable, str(ROOT / "exercises" / "tools.py"), "build", name])
        folder = work / "exercises" / name
        shutil.copytree(ROOT / "exercises" / name / "tests", folder / "tests")
        shutil.copy(solution, folder / f"{name}.ipynb")
        staged.append(folder / f"{name}.ipynb")
    return staged


def find_python(version: str) -> str:
    """A working ``python<version>``: on PATH, or one of pyenv's; else stop with how to get one."""
    candidates = [
        shutil.which(f"python{version}"),
        *map(str, sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))),
        f"/usr/bin/python{version}",
    ]
    for python in filter(None, candidates):
        probe = subprocess.run(
            [python, "-c", "import sys, venv; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return python
    raise SystemExit(
        f"no working Python {version} found (tried {[c for c in candidates if c]}); install one "
        f"(`pyenv install {version}`, or your system's python{version} with venv) or pass --python."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=None, help="the interpreter of the fresh venv (default: a Python 3.12)")
    parser.add_argument("--keep", action="store_true", help="keep the staged folder (its path is printed)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="notebooks run at once, each with cores / jobs threads (default 2: most of a quick "
        "notebook is kernel start-up and imports)",
    )
    parser.add_argument(
        "--venv-only",
        action="store_true",
        help="only build the package and the venv with its kernel `colab-check`; run nothing",
    )
    parser.add_argument(
        "--exercises-only",
        action="store_true",
        help="run only the exercise sets' solutions (the chapters ran in the book's kernel)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    args.python = args.python or find_python("3.12")
    start = time.perf_counter()
    sdist = build_dists(ROOT / "_build" / "dist")
    python = make_venv(args.python, sdist)
    install_s = time.perf_counter() - start
    if args.venv_only:
        print(f"colab-check venv ready in {install_s:.0f} s: kernel `colab-check` ({python})")
        return 0
    work = Path(tempfile.mkdtemp(prefix="colab-check-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        COURSE_PROFILE="quick",
        COURSE_GRADING_QUICK="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
        PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",
    )
    env.update(OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // args.jobs)))

    def run_one(nb: Path) -> dict:
        try:
            proc = subprocess.run(
                [str(python), "-c", _RUNNER, str(nb), "colab-check"],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=NOTEBOOK_TIMEOUT_S + 60,
            )
            out = json.loads(proc.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            out = {"seconds": NOTEBOOK_TIMEOUT_S + 60.0, "error": "timed out (the kernel did not finish)"}
        except (IndexError, json.JSONDecodeError):
            out = {"seconds": 0.0, "error": (proc.stderr or proc.stdout)[-2000:]}
        row = {"notebook": str(nb.relative_to(work)), **out}
        print(
            f"{'ok    ' if not out['error'] else 'FAILED'} {row['notebook']} ({out['seconds']:.0f} s)"
            + (f"\n{out['error']}" if out["error"] else ""),
            flush=True,
        )
        return row

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each notebook is its own process
            rows = list(pool.map(run_one, stage(work, chapters=not args.exercises_only)))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    version = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, torch, course_lib; print(sys.version.split()[0], torch.__version__, course_lib.__file__)",
        ],
        cwd=work.parent,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"\ncolab-check: Python/torch/course_lib = {version}")
    width = max(len(r["notebook"]) for r in rows)
    for r in rows:
        print(f"  {r['notebook']:<{width}}  {r['seconds']:>5.0f} s  {'ok' if not r['error'] else 'FAILED'}")
    failed = [r for r in rows if r["error"]]
    print(
        f"{len(rows) - len(failed)} of {len(rows)} notebooks ran; install {install_s:.0f} s, "
        f"total {time.perf_counter() - start:.0f} s" + (f" (kept in {work})" if args.keep else "")
    )
    (ROOT / "_build" / "colab-check.json").write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
