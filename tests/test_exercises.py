"""The graded exercises: committed student notebooks match their masters, nothing secret leaks to students
or the website, and the autograder gives full marks to the solutions, zero to the blank notebook, partial
marks to partial answers, and survives bad code (exceptions, wrong shapes, loops, printing, exit calls).

Grading runs are real ``otter run`` calls (about 0.5-3 minutes each on 2 CPU cores); see exercises/README.md.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("exercise_tools", REPO / "exercises" / "tools.py")
tools = sys.modules["exercise_tools"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tools)

SETS = tools.exercise_sets()
TEXT_SUFFIXES = {".html", ".js", ".json", ".ipynb", ".txt", ".py", ".md", ".xml", ".css", ".svg"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """Every set built from its master: student files under the returned folder, bundles in exercises/dist."""
    out = tmp_path_factory.mktemp("exercises")
    for name in SETS:
        tools.build(name, out, tools.DIST)
    return out


def _master(name: str) -> nbformat.NotebookNode:
    return nbformat.read(tools.SOURCE / name / f"{name}.ipynb", as_version=4)


def _raw_config(cell) -> dict:
    return yaml.safe_load("\n".join(cell.source.splitlines()[1:])) or {}


def _questions(nb) -> list[dict]:
    """[{name, points, prompt, public, hidden}] parsed from a master's BEGIN/END blocks."""
    questions, current, block = [], None, None
    for cell in nb.cells:
        head = cell.source.splitlines()[0].strip().upper() if cell.source.strip() else ""
        if cell.cell_type == "raw" and head == "# BEGIN QUESTION":
            current = {**_raw_config(cell), "prompt": "", "public": [], "hidden": []}
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


def _secret_lines(nb) -> set[str]:
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
    public_text = "\n".join(public)
    return {line for line in secret if len(line) >= 25 and line not in public_text}


def _leaks(secrets: set[str], root: Path) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES):
        text = path.read_text(errors="ignore")
        text += json.dumps(text)  # also catch lines stored with JSON escapes inside .ipynb / .js files
        found += [f"{path.relative_to(root)}: {line}" for line in secrets if line in text
                  or json.dumps(line)[1:-1] in text]
    return found


def _with_answers(nb: nbformat.NotebookNode, answers: dict, extra: dict[int, str] | None = None):
    """A copy of ``nb``: the code cell defining ``def name(`` gets the new source (a str, or a function of
    the old source); ``extra`` inserts cells at the given indices."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        for name, source in answers.items():
            if cell.cell_type == "code" and re.search(rf"^def {name}\(", cell.source, re.M):
                cell.source = source(cell.source) if callable(source) else source
    for index, source in sorted((extra or {}).items(), reverse=True):
        nb.cells.insert(index, nbformat.v4.new_code_cell(source))
    return nb


def _solution(name: str = "ddpm") -> nbformat.NotebookNode:
    return nbformat.read(tools.DIST / name / f"{name}-solution.ipynb", as_version=4)


# --- layout and leaks ---------------------------------------------------------------------------------

def test_the_sets_exist():
    assert {"ddpm", "vae"} <= set(SETS)


@pytest.mark.parametrize("name", SETS)
def test_committed_student_files_match_the_master(fresh, name):
    stale = tools.compare_trees(fresh / name, tools.ROOT / name)
    assert not stale, f"exercises/{name}/ is out of date with its master ({stale}); run `make exercises`."


@pytest.mark.parametrize("name", SETS)
def test_master_follows_the_conventions(name):
    nb = _master(name)
    config = _raw_config(nb.cells[0])
    assert nb.cells[0].source.startswith("# ASSIGNMENT CONFIG"), "the first cell must be the ASSIGNMENT CONFIG"
    assert config.get("init_cell") is False and config.get("export_cell") is False
    assert config["tests"] == {"files": True, "ok_format": False}, "public tests must be files (Colab fetches them)"
    assert any("course_lib.grading.GradingGuard" in (p if isinstance(p, str) else next(iter(p)))
               for p in config.get("plugins", [])), "list the GradingGuard plugin (timeouts, output cap)"
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert f'"exercises/{name}/tests"' in setup.source and "grader = otter.Notebook(tests_dir=TESTS)" in setup.source
    questions = _questions(nb)
    assert questions
    for q in questions:
        assert q.get("points"), f"{q['name']} needs points"
        assert "<summary>Hint</summary>" in q["prompt"], f"{q['name']} needs a hint"
        assert q["public"] and q["hidden"], f"{q['name']} needs public and hidden tests"


def test_ddpm_covers_the_syllabus():
    questions = {q["name"]: q for q in _questions(_master("ddpm"))}
    for topic in ("cosine", "q_sample", "embedding", "posterior", "reverse_step", "l_simple", "train"):
        assert any(topic in name for name in questions), f"no question about {topic}"
    measured = [q for q in questions.values() if any("ddpm_digits_quality" in t for t in q["hidden"])]
    assert measured, "at least one open-ended question graded by a measured result"


def test_vae_covers_the_syllabus():
    questions = {q["name"]: q for q in _questions(_master("vae"))}
    for topic in ("reparameterize", "kl", "elbo", "train"):
        assert any(topic in name for name in questions), f"no question about {topic}"
    measured = [q for q in questions.values() if any("vae_digits_elbo" in t for t in q["hidden"])]
    assert measured, "at least one open-ended question graded by a measured result"


@pytest.mark.parametrize("name", SETS)
def test_student_files_hold_no_solutions_or_hidden_tests(name):
    secrets = _secret_lines(_master(name))
    assert len(secrets) >= 20, "the leak detector found too few secret lines to be meaningful"
    assert not _leaks(secrets, tools.ROOT / name)


def test_leak_detector_finds_the_solutions(fresh, tmp_path):
    """The detector's lines do occur in the solutions notebook and the bundle's hidden tests."""
    secrets = _secret_lines(_master("ddpm"))
    shutil.copy(tools.DIST / "ddpm" / "ddpm-solution.ipynb", tmp_path)
    shutil.unpack_archive(tools.bundle_path("ddpm"), tmp_path / "bundle", "zip")
    found = {line.split(": ", 1)[1] for line in _leaks(secrets, tmp_path)}
    # hidden tests are kept in two forms, as written in the master and as otter rewrites them (ast.unparse);
    # the bundle holds only the second, so about a fifth of the lines cannot be found there
    assert len(found) >= 0.75 * len(secrets), sorted(secrets - found)


def test_website_holds_no_solutions_or_hidden_tests(tmp_path):
    """Build the exercises part of the book with the repository's _config.yml (its exclude patterns are
    what keep exercises/source off the site), then scan everything under _build/html; scan the full site
    too if `make book` has built it."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"] = {**config.get("execute", {}), "execute_notebooks": "off"}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())  # the book's own Exercises part, nothing else
    toc["parts"] = [p for p in toc.get("parts", []) if p.get("caption") == "Exercises"]
    assert toc["parts"], "_toc.yml needs an 'Exercises' part listing the student notebooks"
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO), "--config",
           str(tmp_path / "_config.yml"), "--toc", str(tmp_path / "_toc.yml"), "--path-output", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    html = tmp_path / "_build" / "html"
    assert proc.returncode == 0 and html.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in SETS:
        assert (html / "exercises" / name / f"{name}.html").exists(), f"the {name} exercise page is missing"
    roots = [html] + ([REPO / "_build" / "html"] if (REPO / "_build" / "html").exists() else [])
    for name in SETS:
        secrets = _secret_lines(_master(name))
        for root in roots:
            assert not _leaks(secrets, root), f"solution or hidden-test text of {name} under {root}"


# --- grading -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SETS)
def test_master_solutions_score_full_marks(fresh, name):
    result = tools.grade(tools.DIST / name / f"{name}-solution.ipynb", name)
    print(f"\n{name} master graded in {result.seconds:.0f} s\n" + tools.format_table(result))
    assert not result.error
    assert result.scores == result.possible, tools.format_table(result)


PARTIAL = {
    # variance = beta_t (the "fixed_large" choice): the mean and the public tests pass, the variance tests fail
    "q_posterior_mean_variance": """
def q_posterior_mean_variance(x0, xt, t, betas):
    betas = betas.double()
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    pick = lambda v: v[t].to(x0.dtype).view(-1, *[1] * (x0.ndim - 1))
    mean = (pick(betas * alpha_bar_prev.sqrt() / (1 - alpha_bar)) * x0
            + pick((1 - alpha_bar_prev) * (1 - betas).sqrt() / (1 - alpha_bar)) * xt)
    return mean, pick(torch.where(torch.arange(len(betas)) == 0, 0.0, betas))
""",
    "p_sample_step": "def p_sample_step(eps, xt, t, betas, noise):\n    ...",
    "l_simple": "def l_simple(model, x0, t, noise, alpha_bar):\n    return torch.tensor(float('nan'))",
    "make_model": lambda source: re.sub(r'"steps": \d+', '"steps": 10**6', source),  # over the budget
}


def test_partial_solution_scores_partially(fresh, tmp_path):
    path = tmp_path / "ddpm.ipynb"
    nbformat.write(_with_answers(_solution(), PARTIAL), path)
    result = tools.grade(path, "ddpm")
    table = tools.format_table(result)
    print(f"\npartial graded in {result.seconds:.0f} s\n" + table)
    assert not result.error, table
    for q in ("q1_cosine", "q2_q_sample", "q3_embedding"):
        assert result.scores[q] == result.possible[q], table
    assert 0 < result.scores["q4_posterior"] < result.possible["q4_posterior"], table
    for q in ("q5_reverse_step", "q6_l_simple", "q7_train"):
        assert result.scores[q] == 0, table
    assert "steps must be an int" in result.reasons["q7_train"], table
    assert 0 < result.total < sum(result.possible.values())


VAE_PARTIAL = {
    # forgets to divide the squared mean difference by sigma_2^2: right whenever the second Gaussian is N(0, 1)
    # (both public tests, and question 3, which only needs the KL to the prior), wrong otherwise
    "gaussian_kl": "def gaussian_kl(mean1, logvar1, mean2, logvar2):\n"
                   "    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 - 1)",
    "make_model": lambda source: source.replace("def make_model():", "def make_model():\n"
                                                "    return torch.nn.Linear(4, 4)"),  # not a course_lib VAE
}


def test_vae_partial_solution_scores_partially(fresh, tmp_path):
    path = tmp_path / "vae.ipynb"
    nbformat.write(_with_answers(_solution("vae"), VAE_PARTIAL), path)
    result = tools.grade(path, "vae")
    table = tools.format_table(result)
    print(f"\nvae partial graded in {result.seconds:.0f} s\n" + table)
    assert not result.error, table
    for q in ("q1_reparameterize", "q3_negative_elbo"):
        assert result.scores[q] == result.possible[q], table
    assert 0 < result.scores["q2_gaussian_kl"] < result.possible["q2_gaussian_kl"], table
    assert result.scores["q4_train"] == 0 and "course_lib.vae.VAE" in result.reasons["q4_train"], table


def test_untouched_vae_notebook_scores_zero(fresh, tmp_path):
    result = tools.grade(tools.ROOT / "vae" / "vae.ipynb", "vae")
    table = tools.format_table(result)
    print(f"\nuntouched vae graded in {result.seconds:.0f} s\n" + table)
    assert not result.error and result.total == 0 and sum(result.possible.values()) == 14, table


BAD = {
    "cosine_betas": "def cosine_betas(T, s=0.008):\n    raise RuntimeError('not done yet')",
    "timestep_embedding": "def timestep_embedding(t, dim, max_period=10000):\n    while True:\n        try:\n"
                          "            pass\n        except Exception:\n            pass",
    "q_posterior_mean_variance": "def q_posterior_mean_variance(x0, xt, t, betas):\n"
                                 "    for i in range(10**5):\n        print('debug', i)\n    return x0, x0",
    "p_sample_step": "def p_sample_step(eps, xt, t, betas, noise):\n    return xt.flatten()",
    "make_model": lambda source: source.replace("def make_model():", "def make_model():\n    import sys\n"
                                                "    sys.exit(1)"),
}
BAD_CELLS = {3: "while True:\n    pass", 4: "for i in range(10**6):\n    print('spam', i)", 5: "exit()"}


def test_bad_code_costs_only_its_own_question(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_CELL_TIMEOUT", "30")
    monkeypatch.setenv("COURSE_GRADING_TEST_TIMEOUT", "10")
    path = tmp_path / "ddpm.ipynb"
    nbformat.write(_with_answers(_solution(), BAD, BAD_CELLS), path)
    result = tools.grade(path, "ddpm")
    table = tools.format_table(result)
    print(f"\nbad code graded in {result.seconds:.0f} s\n" + table)
    assert not result.error, table
    expected = {"q1_cosine": "RuntimeError: not done yet", "q3_embedding": "Timed out",
                "q4_posterior": "printed more than", "q5_reverse_step": "has shape", "q7_train": "SystemExit"}
    for q, reason in expected.items():
        assert result.scores[q] == 0 and reason in result.reasons[q], table
    for q in ("q2_q_sample", "q6_l_simple"):  # graded in full after the bad cells and the bad answers
        assert result.scores[q] == result.possible[q], table


def test_grade_all_writes_one_row_per_submission(fresh, tmp_path, capsys):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(tools.ROOT / "ddpm" / "ddpm.ipynb", folder / "ddpm_untouched.ipynb")
    crash = _with_answers(_solution(), {}, {3: "import os\nos._exit(1)"})
    nbformat.write(crash, folder / "ddpm_kills_kernel.ipynb")
    (folder / "ddpm_not_a_notebook.ipynb").write_text("this is not JSON")
    start = time.perf_counter()
    assert tools.main(["grade-all", str(folder), "--set", "ddpm"]) == 0
    print(f"\ngrade-all of 3 files took {time.perf_counter() - start:.0f} s")
    rows = {r["file"]: r for r in csv.DictReader(open(folder / "scores.csv"))}
    assert set(rows) == {"ddpm_untouched.ipynb", "ddpm_kills_kernel.ipynb", "ddpm_not_a_notebook.ipynb"}
    untouched = rows["ddpm_untouched.ipynb"]
    assert untouched["error"] == "" and float(untouched["total"]) == 0 and float(untouched["possible"]) == 20
    assert "crashed" in rows["ddpm_kills_kernel.ipynb"]["error"]
    assert "could not read" in rows["ddpm_not_a_notebook.ipynb"]["error"]


def test_table_names_every_question_and_the_reason():
    result = tools.Result("x.ipynb", {"q1": 1.0, "q2": 0.0}, {"q1": 1.0, "q2": 2.0}, {"q2": "ValueError: bad"})
    table = tools.format_table(result)
    assert "q1" in table and "passed" in table and "ValueError: bad" in table and "total" in table


# --- the in-kernel helpers (fast, no otter run) -------------------------------------------------------

def test_time_limit_stops_a_loop_and_restores_the_outer_limit():
    from course_lib.grading import GradingTimeout, time_limit

    with time_limit(5.0, "outer"):
        with pytest.raises(GradingTimeout, match="inner"):
            with time_limit(0.2, "inner"):
                while True:
                    pass
        import signal
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 3.0 < remaining <= 5.0


def test_capped_stream_cuts_output_once():
    import io

    from course_lib.grading import _CappedStream

    buffer = io.StringIO()
    stream = _CappedStream(buffer, limit=10)
    for _ in range(100):
        stream.write("abcdef")
    assert stream.overflowed and buffer.getvalue().count("output cut") == 1 and len(buffer.getvalue()) < 80


def test_assert_close_says_where_and_by_how_much():
    from course_lib.grading import assert_close

    with pytest.raises(AssertionError, match=r"at index \(1,\): got 5, expected 2"):
        assert_close(torch.tensor([1.0, 5.0]), torch.tensor([1.0, 2.0]), "x")
    with pytest.raises(AssertionError, match="has shape"):
        assert_close(torch.zeros(3), torch.zeros(2), "x")


def test_budget_check_refuses_loaded_weights_and_big_configs():
    from course_lib.grading import check_ddpm_config

    config = {"schedule": "cosine", "num_timesteps": 100, "steps": 10, "batch_size": 8, "lr": 1e-3}
    fixed = torch.nn.Linear(4, 4)
    with pytest.raises(AssertionError, match="same weights"):
        check_ddpm_config(lambda: fixed, config)
    with pytest.raises(AssertionError, match="steps"):
        check_ddpm_config(lambda: torch.nn.Linear(4, 4), {**config, "steps": 10**6})
    with pytest.raises(AssertionError, match="parameters"):
        check_ddpm_config(lambda: torch.nn.Linear(2000, 2000), config)
    assert check_ddpm_config(lambda: torch.nn.Linear(4, 4), config) == config


def test_vae_budget_check_says_what_is_wrong():
    from course_lib.grading import check_vae_config
    from course_lib.vae import VAE, VAEConfig

    config = {"steps": 10, "batch_size": 8, "lr": 1e-3}
    small = lambda: VAE(VAEConfig(channels=(8, 16), blocks_per_level=0))
    assert check_vae_config(small, config) == config
    fixed = small()
    for make_model, cfg, match in [(lambda: fixed, config, "same weights"),
                                   (small, {**config, "steps": 2000}, "steps"),
                                   (small, {**config, "lr": 1}, "lr must be a float"),
                                   (small, {"steps": 10}, "exactly the keys"),
                                   (lambda: torch.nn.Linear(2, 2), config, "course_lib.vae.VAE"),
                                   (lambda: VAE(VAEConfig(likelihood="bernoulli")), config, "discretized_gaussian"),
                                   (lambda: VAE(VAEConfig(channels=(128, 256))), config, "parameters")]:
        with pytest.raises(AssertionError, match=match):
            check_vae_config(make_model, cfg)


def test_quick_mode_measured_run_only_checks_the_plumbing(monkeypatch):
    from course_lib import grading

    monkeypatch.setenv(grading.QUICK_ENV, "1")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(256, 256)

        def forward(self, xt, t):
            return self.lin(xt.flatten(1)).view_as(xt)

    config = {"schedule": "linear", "num_timesteps": 20, "steps": 500, "batch_size": 16, "lr": 1e-3}
    report = grading.ddpm_digits_quality(Tiny, config)
    assert report["quick"] and report["n"] == 16
    grading.assert_quality(report, "recognized", 0.9)  # quick mode never fails on quality

    from course_lib.vae import VAE, VAEConfig

    report = grading.vae_digits_elbo(lambda: VAE(VAEConfig(channels=(8, 16), blocks_per_level=0)),
                                     {"steps": 1500, "batch_size": 16, "lr": 1e-3})
    assert report["quick"] and report["bits_per_dim"] > 0
    grading.assert_quality(report, "bits_per_dim", below=0.1)
