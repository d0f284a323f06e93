"""tools/execute.py, the notebook runner of `make book` and CI: it fails on a failing cell, never on time."""

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("execute_tool", ROOT / "tools" / "execute.py")
execute = sys.modules["execute_tool"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execute)


def test_chapters_are_chosen_by_folder_name_or_number_and_a_typo_is_explained():
    notebooks = execute.book_notebooks()
    chosen = execute.select_chapters(notebooks, ["05"])
    assert chosen and all(p.parent.name == "05_guidance" for p in chosen)
    assert execute.select_chapters(notebooks, ["05_guidance", "01"]) == [
        p for p in notebooks if p.parent.name in ("01_vae", "05_guidance")
    ]
    with pytest.raises(SystemExit, match=r"no chapter folder matches \['5_guidance'\].*05_guidance"):
        execute.select_chapters(notebooks, ["5_guidance"])


def test_over_budget_is_a_warning_and_a_failing_cell_an_error(tmp_path, monkeypatch, capsys):
    folder = ROOT / "_build" / "test-execute"
    folder.mkdir(parents=True, exist_ok=True)
    slow, broken = folder / "slow.ipynb", folder / "broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(0.2)")]), slow)
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'check failed'")]), broken
    )
    monkeypatch.setitem(execute.BUDGET_S, "quick", 0.1)  # every notebook is over this budget
    assert execute.main(["--profile", "quick", "--no-cache", str(slow)]) == 0
    out = capsys.readouterr().out
    assert "over budget (warning)" in out and "time is not gated" in out
    assert execute.main(["--profile", "quick", "--no-cache", str(slow), str(broken)]) == 1
    captured = capsys.readouterr()
    assert "check failed" in captured.out and "broken.ipynb failed" in captured.err
