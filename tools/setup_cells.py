"""Write (or check) the set-up cell of every chapter notebook and exercise master from one source of truth.

    python tools/setup_cells.py           # rewrite the set-up cells (then `make exercises` for the student copies)
    python tools/setup_cells.py --check   # fail if any set-up cell differs from what this file would write

The repository URL comes from ``_config.yml`` (``repository.url``, the same value the launch buttons use) and the
version from ``course_lib.__version__``. In Colab the cell installs exactly that release (the git tag
``v<version>``) with the ``chapters`` extra, leaving Colab's torch in place; anywhere, it stops with a message
saying what to do when the installed ``course_lib`` is not the version the page was written for, and prints the
versions it found.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
MARK = "# Set-up:"  # the first line of every set-up cell starts so
HIDE = "hide-input"  # on the website the cell is folded (its output, the versions, shows); in Colab it is not


def repository() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def version() -> str:
    """``course_lib.__version__``, read from the source (no import: this runs before the package is installed)."""
    tree = ast.parse((ROOT / "course_lib" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return node.value.value
    raise RuntimeError("course_lib/__init__.py defines no __version__")


_CHECK = """import course_lib

if course_lib.__version__ != VERSION:
    raise RuntimeError(
        f"This page was written for course_lib {VERSION}, but "
        f"{course_lib.__version__} is installed. Install the matching release, then "
        f"restart the kernel: pip install '{SPEC}'"
    )
import importlib.metadata

names = ("course_lib", "torch", "diffusers")
found = [
    f"{n} {importlib.metadata.version(n)}" for n in names if importlib.util.find_spec(n)
]"""

# Both templates are what `ruff format` (88 columns, chapters/ruff.toml) leaves unchanged: a test formats them.
CHAPTER = """# Set-up: in Colab this installs the course library this page was written for;
# anywhere, it checks the version.
import importlib.util, subprocess, sys

REPO, VERSION = "{repo}", "{version}"
SPEC = f"course_lib[chapters] @ git+{{REPO}}@v{{VERSION}}"
if "google.colab" in sys.modules and importlib.util.find_spec("course_lib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", SPEC], check=True)
{check}
from course_lib.profiles import get_profile, pick

print(" | ".join(found), "| profile:", get_profile())"""

EXERCISE = """# Set-up: in Colab this installs the course library and the grader and fetches this
# exercise's public tests; locally (in a clone of the course repository, after
# `make setup`) it only finds the tests. Anywhere, it checks that the installed
# course_lib is the version this exercise was written for.
import importlib.util, os, subprocess, sys

REPO, VERSION = "{repo}", "{version}"
SPEC = f"course_lib[chapters] @ git+{{REPO}}@v{{VERSION}}"
TESTS = "exercises/{name}/tests"
if "google.colab" in sys.modules:
    find = importlib.util.find_spec
    if find("course_lib") is None or find("otter") is None:
        pip = [sys.executable, "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "otter-grader==7.0.0", SPEC], check=True)
    if not os.path.isdir("/content/course"):
        clone = ["git", "clone", "-q", "--depth", "1", "--branch", f"v{{VERSION}}"]
        sparse = ["--filter=blob:none", "--sparse", REPO, "/content/course"]
        subprocess.run([*clone, *sparse], check=True)
    sparse_add = ["git", "-C", "/content/course", "sparse-checkout", "add", TESTS]
    subprocess.run(sparse_add, check=True)
    TESTS = f"/content/course/{{TESTS}}"
elif os.path.isdir("tests"):  # Jupyter started next to this notebook
    TESTS = "tests"
import otter
{check}
from course_lib.profiles import get_profile

grader = otter.Notebook(tests_dir=TESTS)
print(" | ".join(found), "| profile:", get_profile(), "| tests:", TESTS)"""


def chapter_cell() -> str:
    return CHAPTER.format(repo=repository(), version=version(), check=_CHECK)


def exercise_cell(name: str) -> str:
    return EXERCISE.format(repo=repository(), version=version(), name=name, check=_CHECK)


def notebooks() -> dict[Path, str]:
    """{notebook: the set-up cell it must have}: chapter notebooks and exercise masters."""
    out = {p: chapter_cell() for p in sorted(ROOT.glob("chapters/*/*.ipynb"))}
    out |= {p: exercise_cell(p.parent.name) for p in sorted(ROOT.glob("exercises/source/*/*.ipynb"))}
    return out


def setup_cell(nb) -> nbformat.NotebookNode:
    """The notebook's set-up cell: its first code cell, which must start with ``MARK``."""
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    if cell is None or not cell.source.startswith(MARK):
        raise ValueError(
            f"the first code cell must be the set-up cell starting with {MARK!r} "
            "(docs/NOTEBOOK_TEMPLATE.md); run `python tools/setup_cells.py` after adding one"
        )
    return cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for path, source in notebooks().items():
        nb = nbformat.read(path, as_version=4)
        cell = setup_cell(nb)
        tags = cell.metadata.get("tags", [])
        if cell.source != source or HIDE not in tags:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                cell.source = source
                cell.metadata["tags"] = [*tags, HIDE] if HIDE not in tags else tags
                nbformat.write(nb, path)
    verb = "out of date" if args.check else "rewrote"
    for path in stale:
        print(f"{verb}: {path}")
    if args.check and stale:
        print("run `python tools/setup_cells.py && make exercises` and commit")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
