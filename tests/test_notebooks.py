"""Structure of the notebooks: no stored outputs, the Colab set-up cell, a measured check cell, all in the toc.

Whether they *run* is checked by nbval (``make test`` runs ``pytest --nbval-lax chapters``).
"""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*/*.ipynb"))
STUDENT = sorted(p for p in (ROOT / "exercises").glob("*/*.ipynb") if "source" not in p.parts and "dist" not in p.parts)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _toc_files():
    """Document names listed in _toc.yml, with `glob:` entries expanded over notebooks and Markdown files."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            if "glob" in node:
                matches = sorted(ROOT.glob(node["glob"] + ".ipynb")) + sorted(ROOT.glob(node["glob"] + ".md"))
                assert matches, f"glob {node['glob']!r} in _toc.yml matches nothing"
                files.extend(str(m.relative_to(ROOT).with_suffix("")) for m in matches)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return files


def test_there_are_chapter_notebooks():
    assert len(CHAPTERS) >= 3


@pytest.mark.parametrize("path", CHAPTERS + STUDENT, ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} has stored outputs: clear them"
            assert cell.get("execution_count") is None, f"{path.name} has execution counts: clear them"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_notebook_structure(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).lstrip().startswith("#"), \
        "a notebook opens with its title"
    first_code = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "google.colab" in first_code and "course_lib.__version__" in first_code, \
        "the first code cell is the Colab set-up cell (docs/NOTEBOOK_TEMPLATE.md)"
    checks = [c for c in cells if "remove-cell" in c.get("metadata", {}).get("tags", [])
              and "assert" in "".join(c["source"])]
    assert checks, "each notebook asserts its measured result in a cell tagged remove-cell"


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    files = _toc_files()
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in ("", ".md", ".ipynb")), f"{f} in _toc.yml does not exist"
    listed = {str(Path(f).with_suffix("")) for f in files}
    for path in CHAPTERS + STUDENT:
        assert str(path.relative_to(ROOT).with_suffix("")) in listed, f"{path} is not in _toc.yml"


def test_book_executes_chapters_but_not_student_exercises():
    """The book runs the chapter notebooks and publishes the student notebooks unexecuted (they would only
    raise "not implemented"). myst-nb matches ``execute.exclude_patterns`` with ``PurePosixPath.match``,
    i.e. against the *end* of each absolute path: reproduce that here."""
    from pathlib import PurePosixPath

    patterns = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["exclude_patterns"]
    excluded = lambda p: any(PurePosixPath(p.resolve().as_posix()).match(pat) for pat in patterns)  # noqa: E731
    assert STUDENT and all(excluded(p) for p in STUDENT), [str(p) for p in STUDENT if not excluded(p)]
    assert not any(excluded(p) for p in CHAPTERS), [str(p) for p in CHAPTERS if excluded(p)]
