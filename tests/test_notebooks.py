"""Structure of the notebooks: no stored outputs, the Colab set-up cell, a measured check cell, all in the toc.

Whether they *run* is checked where they are executed: CI (quick profile, once each, ``tools/execute.py``),
`make book` (cpu profile, every check cell) and `make test-notebooks` (nbval, quick profile).
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
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).lstrip().startswith("#"), (
        "a notebook opens with its title"
    )
    first_code = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "google.colab" in first_code and "course_lib.__version__" in first_code, (
        "the first code cell is the Colab set-up cell (docs/NOTEBOOK_TEMPLATE.md)"
    )
    checks = [
        c for c in cells if "remove-cell" in c.get("metadata", {}).get("tags", []) and "assert" in "".join(c["source"])
    ]
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


# --- the set-up cell: one repository (_config.yml), one pinned version (course_lib.__version__) ------------


def _setup_tools():
    import importlib.util

    spec = importlib.util.spec_from_file_location("setup_cells", ROOT / "tools" / "setup_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setup_cell_names_the_configured_repository_and_the_library_version():
    import course_lib

    tools = _setup_tools()
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert tools.version() == course_lib.__version__
    notebooks = tools.notebooks()
    assert set(CHAPTERS) <= set(notebooks) and len(notebooks) >= len(CHAPTERS) + 2
    for path, expected in notebooks.items():
        first = next(c for c in _cells(path) if c["cell_type"] == "code")
        cell = "".join(first["source"])
        assert tools.HIDE in first["metadata"].get("tags", []), f"{path.relative_to(ROOT)}: set-up cell not folded"
        assert cell == expected, f"{path.relative_to(ROOT)}: stale set-up cell; run `python tools/setup_cells.py`"
        assert f'"{repo}", "{course_lib.__version__}"' in cell and "@main" not in cell
        assert "course_lib[chapters] @ git+{REPO}@v{VERSION}" in cell


def test_setup_cell_stops_with_a_message_when_the_installed_version_differs(monkeypatch, capsys):
    import course_lib

    source = _setup_tools().chapter_cell()
    exec(compile(source, "setup-cell", "exec"), {})  # the installed version: runs and prints the versions
    assert f"course_lib {course_lib.__version__}" in capsys.readouterr().out
    monkeypatch.setattr(course_lib, "__version__", "0.0.1")
    with pytest.raises(RuntimeError, match=r"written for course_lib .* but 0\.0\.1 is installed.*pip install"):
        exec(compile(source, "setup-cell", "exec"), {})


def test_the_repository_url_lives_only_in_config_and_generated_cells():
    """Anything else that names the repository reads it from _config.yml (pyproject's Homepage aside)."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    allowed = {"_config.yml", "pyproject.toml", "README.md"}
    generated = {str(p.relative_to(ROOT)) for p in _setup_tools().notebooks()} | {
        str(p.relative_to(ROOT)) for p in STUDENT
    }
    offenders = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".ipynb", ".yml", ".yaml", ".md", ".toml"}
        and ".venv" not in p.parts
        and "_build" not in p.parts
        and "dist" not in p.parts
        and repo in p.read_text(errors="ignore")
        and str(p.relative_to(ROOT)) not in allowed | generated
    ]
    assert not offenders, f"these files hard-code {repo}; read it from _config.yml instead: {offenders}"


# --- short cells: one idea per cell (the developers' guide; issue 26, item 4) -----------------------------

MAX_CELL_LINES = 30


def test_no_visible_code_cell_is_over_30_lines():
    """Every code cell a reader sees (all but the set-up cell and the check cells tagged remove-cell) is at most
    MAX_CELL_LINES lines: split a longer one where its idea changes, or move repeated helpers into course_lib."""
    offenders = []
    for path in CHAPTERS:
        code = [(i, c) for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"]
        for i, cell in code[1:]:  # code[0] is the set-up cell, written by tools/setup_cells.py
            n = len("".join(cell["source"]).splitlines())
            if "remove-cell" not in cell.get("metadata", {}).get("tags", []) and n > MAX_CELL_LINES:
                offenders.append(f"{path.relative_to(ROOT)} cell {i}: {n} lines")
    assert not offenders, f"code cells over {MAX_CELL_LINES} lines:\n" + "\n".join(offenders)


def test_every_code_cell_compiles_without_a_warning():
    """A non-raw string with TeX ("$\\mathrm{SNR}$") is an invalid escape: a SyntaxWarning that Python 3.12 (Colab)
    prints under the cell, on the page. Write such strings as r"..."."""
    import warnings

    bad = []
    for path in CHAPTERS:
        for i, cell in enumerate(_cells(path)):
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            source = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))  # IPython magics
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    compile(source, f"{path.name} cell {i}", "exec")
                except (SyntaxError, SyntaxWarning, DeprecationWarning) as e:
                    bad.append(f"{path.relative_to(ROOT)} cell {i}: {e}")
    assert not bad, "code cells that do not compile cleanly:\n" + "\n".join(bad)
