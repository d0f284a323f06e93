"""What every exercise set must satisfy, one table-driven test per point over all the sets; each set's own cases
come from ``set_<name>.py``. Committed student notebooks match their masters; nothing secret (solutions, hidden
tests, the written questions' rubrics) reaches students or the website; and the autograder gives full marks to the
solution, partial marks to the partial answer, zero to the blank notebook and zero to the plausible wrong answers,
each caught by a public test of its question, so a student is told before handing in.

The tests marked ``grading`` are real ``otter run``s (about 15-40 s each in quick grading mode, see helpers.py).
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from helpers import (
    REPO,
    SETS,
    grade_case,
    leaks,
    master,
    parse_questions,
    partial_notebook,
    quick,
    raw_config,
    secret_lines,
    solution,
    tools,
    with_answers,
)

CASES = {name: importlib.import_module(f"set_{name}") for name in SETS}


# --- layout, syllabus and leaks -------------------------------------------------------------------------


def test_the_sets_exist_and_each_has_its_cases():
    assert {"ddpm", "vae", "iddpm", "ddim", "guidance", "latent_diffusion", "lora", "sds"} <= set(SETS)
    for name, case in CASES.items():
        assert {
            "POSSIBLE",
            "TOPICS",
            "MEASURED",
            "PARTIAL",
            "PARTIAL_QUESTIONS",
            "check_partial",
            "WRONG",
            "CAUGHT",
        } <= set(vars(case)), name


@pytest.mark.parametrize("name", SETS)
def test_committed_student_files_match_the_master(fresh, name):
    stale = tools.compare_trees(fresh / name, tools.ROOT / name)
    assert not stale, f"exercises/{name}/ is out of date with its master ({stale}); run `make exercises`."


@pytest.mark.parametrize("name", SETS)
def test_master_follows_the_conventions(name):
    nb = master(name)
    config = raw_config(nb.cells[0])
    assert nb.cells[0].source.startswith("# ASSIGNMENT CONFIG"), "the first cell must be the ASSIGNMENT CONFIG"
    assert config.get("init_cell") is False and config.get("export_cell") is False
    assert config["tests"] == {"files": True, "ok_format": False}, "public tests must be files (Colab fetches them)"
    assert any(
        "course_lib.grading.GradingGuard" in (p if isinstance(p, str) else next(iter(p)))
        for p in config.get("plugins", [])
    ), "list the GradingGuard plugin (timeouts, output cap)"
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert f'"exercises/{name}/tests"' in setup.source and "grader = otter.Notebook(tests_dir=TESTS)" in setup.source
    questions = parse_questions(nb)
    assert questions
    for q in questions:
        assert q.get("points"), f"{q['name']} needs points"
        assert "<summary>Hint</summary>" in q["prompt"], f"{q['name']} needs a hint"
        if q.get("manual"):
            assert not q["public"] and not q["hidden"], f"{q['name']} is graded by hand: no tests"
        else:
            assert q["public"] and q["hidden"], f"{q['name']} needs public and hidden tests"
    written = [q for q in questions if q.get("manual")]
    assert written, "each set has a written answer graded by hand (otter's manual: true)"
    path = tools.DIST / name / f"{name}-solution.ipynb"
    solution_text = json.dumps(nbformat.read(path, as_version=4)) if path.exists() else None
    for q in written:  # the rubric is kept with the solution (instructor material), never in the prompt
        assert "Rubric" not in q["prompt"]
    assert solution_text is None or solution_text.count("**Rubric") >= len(written), "a rubric per written question"


@pytest.mark.parametrize("name", SETS)
def test_set_covers_its_syllabus(name):
    case, questions = CASES[name], {q["name"]: q for q in parse_questions(master(name))}
    for topic in case.TOPICS:
        assert any(topic in q for q in questions), f"{name}: no question about {topic}"
    measured = [q for q in questions.values() if any(case.MEASURED in t for t in q["hidden"])]
    assert measured, f"{name}: at least one open-ended question graded by a measured result ({case.MEASURED})"
    for text in case.PUBLIC_MENTIONS:
        assert any(text in t for t in measured[0]["public"]), (
            f"{name}: a public test of the measured question uses {text}"
        )
    for text in case.HIDDEN_MENTIONS:
        assert any(text in t for t in measured[0]["hidden"]), (
            f"{name}: a hidden test of the measured question uses {text}"
        )
    for text in getattr(case, "EVERY_HIDDEN_MENTIONS", ()):
        assert all(text in t for t in measured[0]["hidden"]), f"{name}: every hidden measured test uses {text}"


@pytest.mark.parametrize("name", SETS)
def test_student_files_hold_no_solutions_or_hidden_tests(name):
    secrets = secret_lines(master(name))
    assert len(secrets) >= 20, "the leak detector found too few secret lines to be meaningful"
    assert not leaks(secrets, tools.ROOT / name)


def test_leak_detector_finds_the_solutions(fresh, tmp_path):
    """The detector's lines do occur in the solutions notebook and the bundle's hidden tests."""
    secrets = secret_lines(master("ddpm"))
    shutil.copy(tools.DIST / "ddpm" / "ddpm-solution.ipynb", tmp_path)
    shutil.unpack_archive(tools.bundle_path("ddpm"), tmp_path / "bundle", "zip")
    found = {line.split(": ", 1)[1] for line in leaks(secrets, tmp_path)}
    # hidden tests are kept in two forms, as written in the master and as otter rewrites them (ast.unparse);
    # the bundle holds only the second, so about a fifth of the lines cannot be found there
    assert len(found) >= 0.75 * len(secrets), sorted(secrets - found)


def test_website_holds_no_solutions_or_hidden_tests(tmp_path):
    """Build the exercises part of the book with the repository's _config.yml (its exclude patterns are
    what keep exercises/source off the site), then scan everything under _build/html; scan the full site
    too if `make book` has built it."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"] = {**config.get("execute", {}), "execute_notebooks": "off"}
    local = config.get("sphinx", {}).get("local_extensions") or {}  # paths relative to the repository
    config.get("sphinx", {})["local_extensions"] = {name: str(REPO / path) for name, path in local.items()} or None
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())  # the book's own Exercises part, nothing else
    toc["parts"] = [p for p in toc.get("parts", []) if p.get("caption") == "Exercises"]
    assert toc["parts"], "_toc.yml needs an 'Exercises' part listing the student notebooks"
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    cmd = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build",
        str(REPO),
        "--config",
        str(tmp_path / "_config.yml"),
        "--toc",
        str(tmp_path / "_toc.yml"),
        "--path-output",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    html = tmp_path / "_build" / "html"
    assert proc.returncode == 0 and html.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in SETS:
        assert (html / "exercises" / name / f"{name}.html").exists(), f"the {name} exercise page is missing"
    roots = [html] + ([REPO / "_build" / "html"] if (REPO / "_build" / "html").exists() else [])
    for name in SETS:
        secrets = secret_lines(master(name))
        for root in roots:
            assert not leaks(secrets, root), f"solution or hidden-test text of {name} under {root}"


# --- grading: real otter runs ------------------------------------------------------------------------------


@pytest.mark.grading
@pytest.mark.parametrize("name", SETS)
def test_solution_scores_full_marks(fresh, name):
    result = grade_case(tools.DIST / name / f"{name}-solution.ipynb", name, "solution")
    assert not result.error, tools.format_table(result)
    assert result.scores == result.possible, tools.format_table(result)


@pytest.mark.grading
@pytest.mark.parametrize("name", SETS)
def test_partial_answers_score_partially_and_blank_answers_zero(fresh, tmp_path, name):
    """One run proves two points: the set's partial answers earn part of their questions' points (with the reason
    the student is shown), and every question left as handed out earns 0."""
    case = CASES[name]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(partial_notebook(name, case.PARTIAL), path)
    result = grade_case(path, name, "partial")
    table = tools.format_table(result)
    assert not result.error, table
    assert sum(result.possible.values()) == case.POSSIBLE, table
    case.check_partial(result, table)
    assert set(case.PARTIAL_QUESTIONS) < set(result.possible), table
    for q in set(result.possible) - set(case.PARTIAL_QUESTIONS):
        assert result.scores[q] == 0, (q, table)
    assert result.total > 0, table


@pytest.mark.grading
@pytest.mark.parametrize("name", SETS)
def test_untouched_notebook_scores_zero(fresh, name):
    if quick():
        pytest.skip(
            "in quick grading mode the partial case proves that blank answers score 0; "
            "make test-grading grades the untouched notebook too"
        )
    result = grade_case(tools.ROOT / name / f"{name}.ipynb", name, "untouched")
    table = tools.format_table(result)
    assert not result.error and result.total == 0, table
    assert sum(result.possible.values()) == CASES[name].POSSIBLE, table


@pytest.mark.grading
@pytest.mark.parametrize("name", SETS)
def test_plausible_wrong_answers_fail_a_public_test_and_score_zero(fresh, tmp_path, name):
    case = CASES[name]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(with_answers(solution(name), case.WRONG), path)
    result = grade_case(path, name, "wrong")
    table = tools.format_table(result)
    assert not result.error, table
    assert set(case.CAUGHT) == set(result.possible), "one plausible wrong answer for every autograded question"
    public = {q["name"]: "\n".join(q["public"]) for q in parse_questions(master(name))}
    for q, message in case.CAUGHT.items():
        assert result.scores[q] == 0 and message in result.reasons[q], (q, table)
        # the first failing test is the one reported: a public one (written first), either by its own text or, for
        # the design questions, the budget check it calls
        assert message in public[q] or "check_" in public[q], f"{q}: {message!r} is not a public test's message"


MORE_WRONG = [(name, i) for name in SETS for i in range(len(getattr(CASES[name], "MORE_WRONG", ())))]


@pytest.mark.grading
@pytest.mark.parametrize("name, round_", MORE_WRONG)
def test_more_plausible_wrong_answers_fail_a_public_test(fresh, tmp_path, name, round_):
    """A set's further wrong answers (``MORE_WRONG``: rounds of at most one per question, each round one graded
    student notebook whose other questions stay blank, so it grades in seconds): each is caught by the public test's
    message and loses points (not always all: a hidden test it passes, e.g. the other function of its question,
    still counts)."""
    answers, caught = CASES[name].MORE_WRONG[round_]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(partial_notebook(name, answers), path)
    result = grade_case(path, name, f"wrong-{round_ + 2}")
    table = tools.format_table(result)
    assert not result.error, table
    public = {q["name"]: "\n".join(q["public"]) for q in parse_questions(master(name))}
    for q, message in caught.items():
        assert result.scores[q] < result.possible[q] and message in result.reasons[q], (q, table)
        assert message in public[q], f"{q}: {message!r} is not a public test's message"
