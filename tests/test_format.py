"""One formatter for the library and the notebooks (issue 26, item 4): ``ruff format`` (pinned in the lock).

The chapter notebooks are read in the website's column, so they are formatted at 88 characters
(``chapters/ruff.toml``) and no code line a reader sees is longer; the library keeps 120 (``pyproject.toml``).
Fix a failure with ``.venv/bin/ruff format chapters course_lib tests tools benchmarks exercises/*.py`` and, for a
line the formatter cannot break (a long string or comment), by rewording it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import setup_cells  # noqa: E402

CHAPTER_WIDTH = 88


def _ruff() -> str:
    ruff = Path(sys.executable).with_name("ruff")
    found = str(ruff) if ruff.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed in this environment: run `make setup` (requirements/lock.txt pins it)")
    return found


def _format(source: str, filename: str) -> str:
    done = subprocess.run(
        [_ruff(), "format", "--stdin-filename", filename, "-"], input=source, text=True, capture_output=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


SETS = sorted(p.name for p in (ROOT / "exercises" / "source").iterdir() if p.is_dir())


@pytest.mark.parametrize("kind", ["chapter", *SETS])
def test_setup_cell_templates_are_what_ruff_writes(kind):
    """tools/setup_cells.py writes the first cell of every notebook; were it not ruff-clean, the formatter and
    ``setup_cells.py --check`` would fight over it."""
    cell = setup_cells.chapter_cell() if kind == "chapter" else setup_cells.exercise_cell(kind)
    assert _format(cell + "\n", "chapters/setup_cell.py") == cell + "\n"
    assert max(len(line) for line in cell.splitlines()) <= CHAPTER_WIDTH


def test_chapter_notebooks_are_formatted():
    done = subprocess.run([_ruff(), "format", "--check", "chapters"], text=True, capture_output=True, cwd=ROOT)
    assert done.returncode == 0, f"run `.venv/bin/ruff format chapters`:\n{done.stdout}{done.stderr}"


def test_no_code_line_a_reader_sees_is_over_88_characters():
    """Every code cell but the hidden check cells (tag remove-cell): the formatter leaves long strings and comments."""
    long = []
    for path in sorted(ROOT.glob("chapters/*/*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] != "code" or "remove-cell" in cell.get("metadata", {}).get("tags", []):
                continue
            long += [
                f"{path.relative_to(ROOT)} cell {i}: {len(line)} chars: {line.strip()[:60]}..."
                for line in "".join(cell["source"]).splitlines()
                if len(line) > CHAPTER_WIDTH
            ]
    assert not long, f"{len(long)} code lines over {CHAPTER_WIDTH} characters:\n" + "\n".join(long)


def test_library_is_formatted():
    paths = [
        "course_lib",
        "tests",
        "tools",
        "benchmarks",
        *map(str, sorted((ROOT / "exercises").glob("*.py"))),
        "exercises/grader",
    ]
    done = subprocess.run([_ruff(), "format", "--check", *paths], text=True, capture_output=True, cwd=ROOT)
    assert done.returncode == 0, f"run `.venv/bin/ruff format {' '.join(paths)}`:\n{done.stdout}{done.stderr}"


def test_the_image_processor_fallback_notice_is_silenced(caplog):
    """course_lib filters transformers' notice that CLIPImageProcessor falls back to PIL without torchvision (a
    laptop install), which otherwise shows under every diffusers import; other messages of that logger pass."""
    import course_lib  # noqa: F401  (installs the filter)

    logger = logging.getLogger("transformers.utils.import_utils")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("`CLIPImageProcessor` requires torchvision (not installed); falling back to `X` for ...")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
