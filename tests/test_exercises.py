"""The graded exercises: committed student notebooks match their masters, nothing secret leaks to students
or the website (solutions, hidden tests, the written questions' rubrics), and the autograder gives full marks to
the solutions, zero to the blank notebook, partial marks to partial answers, zero to plausible wrong answers
(each caught by a public test of its question, so a student is told before handing in), and survives bad code
(exceptions, wrong shapes, loops, printing, exit calls).

Grading runs are real ``otter run`` calls (about 0.5-3 minutes each on 2 CPU cores); see exercises/README.md.
A notebook that modifies the grader (monkeypatching the checks, torch, otter's runner, the quick-mode flag or the
measured runs' cache, or switching the guards off) scores 0 with the reason; the fast tests at the end check
the tamper detection piece by piece. Safe under pytest-xdist (the workers share one build of the bundles).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import importlib.util
import json
import os
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
    """Every set built from its master: student files under the returned folder, bundles in exercises/dist.

    Under pytest-xdist the workers of one run share a single build: the first builds it under a file lock, the
    others wait and reuse it while the masters are unchanged (exercises/dist is shared by everyone)."""
    from filelock import FileLock

    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    root = tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.mktemp("build")
    out, stamp = root / "exercises", root / "exercises.masters"
    masters = json.dumps({n: hashlib.sha256((tools.SOURCE / n / f"{n}.ipynb").read_bytes()).hexdigest() for n in SETS})
    with FileLock(str(root / "exercises.lock")):
        if not (stamp.exists() and stamp.read_text() == masters and all(map(tools.bundle_is_current, SETS))):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            for name in SETS:
                tools.build(name, out, tools.DIST)
            stamp.write_text(masters)
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
        if q.get("manual"):
            assert not q["public"] and not q["hidden"], f"{q['name']} is graded by hand: no tests"
        else:
            assert q["public"] and q["hidden"], f"{q['name']} needs public and hidden tests"
    written = [q for q in questions if q.get("manual")]
    assert written, "each set has a written answer graded by hand (otter's manual: true)"
    solution = json.dumps(nbformat.read(tools.DIST / name / f"{name}-solution.ipynb", as_version=4)) \
        if (tools.DIST / name / f"{name}-solution.ipynb").exists() else None
    for q in written:  # the rubric is kept with the solution (instructor material), never in the prompt
        assert "Rubric" not in q["prompt"]
    assert solution is None or solution.count("**Rubric") >= len(written), "a rubric per written question"


def test_ddpm_covers_the_syllabus():
    questions = {q["name"]: q for q in _questions(_master("ddpm"))}
    for topic in ("cosine", "q_sample", "embedding", "posterior", "reverse_step", "l_simple", "x0_and_score",
                  "loss_weight", "zero_snr", "written", "train"):
        assert any(topic in name for name in questions), f"no question about {topic}"
    measured = [q for q in questions.values() if any("ddpm_digits_quality" in t for t in q["hidden"])]
    assert measured, "at least one open-ended question graded by a measured result"


def test_vae_covers_the_syllabus():
    questions = {q["name"]: q for q in _questions(_master("vae"))}
    for topic in ("reparameterize", "kl", "elbo", "elbo_gap", "written", "train"):
        assert any(topic in name for name in questions), f"no question about {topic}"
    measured = [q for q in questions.values() if any("vae_digits_elbo" in t for t in q["hidden"])]
    assert measured, "at least one open-ended question graded by a measured result"


def test_iddpm_covers_the_syllabus():
    questions = {q["name"]: q for q in _questions(_master("iddpm"))}
    for topic in ("cosine_clip", "learned_variance", "vlb_kl", "decoder", "respace", "stop_gradient",
                  "bound_profile", "written", "train"):
        assert any(topic in name for name in questions), f"no question about {topic}"
    measured = [q for q in questions.values() if any("iddpm_digits_bound" in t for t in q["hidden"])]
    assert measured, "at least one open-ended question graded by a measured result"
    assert all("digits_covered" in t for t in measured[0]["hidden"]), "every bound point needs every digit sampled"


def test_ddim_covers_the_syllabus():
    questions = {q["name"]: q for q in _questions(_master("ddim"))}
    for topic in ("sigma", "ddim_step", "timesteps", "invert_step", "same_model", "sigma_hat", "written", "sampler"):
        assert any(topic in name for name in questions), f"no question about {topic}"
    measured = [q for q in questions.values() if any("ddim_digits_quality" in t for t in q["hidden"])]
    assert measured, "at least one open-ended question graded by a measured result"
    assert any("check_ddim_sampler" in t for t in measured[0]["public"]), "the budget is checked by a public test"


def test_guidance_covers_the_syllabus():
    questions = {q["name"]: q for q in _questions(_master("guidance"))}
    for topic in ("guided_eps", "cfg", "label_dropout", "classifier_grad", "cg_is_cfg", "written", "guide"):
        assert any(topic in name for name in questions), f"no question about {topic}"
    measured = [q for q in questions.values() if any("guided_digits_quality" in t for t in q["hidden"])]
    assert measured, "at least one open-ended question graded by a measured result"
    assert any("check_guidance_settings" in t for t in measured[0]["public"]), "the budget is checked by a public test"
    hidden = "\n".join(measured[0]["hidden"])
    assert '"accuracy"' in hidden and '"frechet"' in hidden, "graded on fidelity (accuracy) and the Frechet distance"


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
    local = config.get("sphinx", {}).get("local_extensions") or {}  # paths relative to the repository
    config.get("sphinx", {})["local_extensions"] = {name: str(REPO / path) for name, path in local.items()} or None
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
    # variance = beta_t (the "fixed_large" choice): the mean tests pass, the by-hand variance and hidden tests fail
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
    for q in ("q1_cosine", "q2_q_sample", "q3_embedding", "q7_x0_and_score", "q8_loss_weight", "q9_zero_snr"):
        assert result.scores[q] == result.possible[q], table
    assert 0 < result.scores["q4_posterior"] < result.possible["q4_posterior"], table
    for q in ("q5_reverse_step", "q6_l_simple", "q11_train"):
        assert result.scores[q] == 0, table
    assert "steps must be an int" in result.reasons["q11_train"], table
    assert 0 < result.total < sum(result.possible.values())


VAE_PARTIAL = {
    # forgets to divide the squared mean difference by sigma_2^2: right whenever the second Gaussian is N(0, 1)
    # (the first by-hand test, and question 3, which only needs the KL to the prior), wrong otherwise: the public
    # test against N(0, 4) says so
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
    assert "KL(N(1, 1) || N(0, 4))" in result.reasons["q2_gaussian_kl"], table
    assert result.scores["q6_train"] == 0 and "course_lib.vae.VAE" in result.reasons["q6_train"], table


def test_untouched_vae_notebook_scores_zero(fresh, tmp_path):
    result = tools.grade(tools.ROOT / "vae" / "vae.ipynb", "vae")
    table = tools.format_table(result)
    print(f"\nuntouched vae graded in {result.seconds:.0f} s\n" + table)
    assert not result.error and result.total == 0 and sum(result.possible.values()) == 13, table


IDDPM_PARTIAL = {
    # log beta_tilde_0 = -inf left in place: right at every t >= 1 (the by-hand case at t = 1, diffusers' range), -inf
    # at t = 0, which the public test of the first index reports
    "learned_log_variance": "def learned_log_variance(v, t, betas):\n"
                            "    betas = betas.double()\n"
                            "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
                            "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
                            "    log_beta_tilde = torch.log((1 - alpha_bar_prev) / (1 - alpha_bar) * betas)\n"
                            "    shape = (-1, *[1] * (v.ndim - 1))\n"
                            "    u = (v + 1) / 2\n"
                            "    return (u * torch.log(betas)[t].view(shape)\n"
                            "            + (1 - u) * log_beta_tilde[t].view(shape)).to(v.dtype)",
    "mean_weight": "def mean_weight(betas, lam=0.001):\n    ...",
    "make_model": lambda source: re.sub(r'"steps": \d+', '"steps": 10**6', source),  # over the budget
}


def test_iddpm_partial_solution_scores_partially(fresh, tmp_path):
    path = tmp_path / "iddpm.ipynb"
    nbformat.write(_with_answers(_solution("iddpm"), IDDPM_PARTIAL), path)
    result = tools.grade(path, "iddpm")
    table = tools.format_table(result)
    print(f"\niddpm partial graded in {result.seconds:.0f} s\n" + table)
    assert not result.error, table
    for q in ("q1_cosine_clip", "q3_vlb_kl", "q4_decoder", "q5_respace", "q7_bound_profile"):
        assert result.scores[q] == result.possible[q], table
    assert 0 < result.scores["q2_learned_variance"] < result.possible["q2_learned_variance"], table
    assert "log Sigma at t = 0" in result.reasons["q2_learned_variance"], table
    for q in ("q6_stop_gradient", "q9_train"):
        assert result.scores[q] == 0, table
    assert "steps must be an int" in result.reasons["q9_train"], table


def test_untouched_iddpm_notebook_scores_zero(fresh, tmp_path):
    result = tools.grade(tools.ROOT / "iddpm" / "iddpm.ipynb", "iddpm")
    table = tools.format_table(result)
    print(f"\nuntouched iddpm graded in {result.seconds:.0f} s\n" + table)
    assert not result.error and result.total == 0 and sum(result.possible.values()) == 21, table


DDIM_PARTIAL = {
    # trailing rounds halves up (floor(x + 0.5)) instead of to even: the by-hand cases have no halves and pass, the
    # hidden agreement tests (S = 16 of 1000, T = 999 with S = 6) do not
    "ddim_timesteps": "def ddim_timesteps(T, S, spacing):\n"
                      "    if spacing == 'leading':\n"
                      "        return [i * (T // S) for i in range(S)][::-1]\n"
                      "    return [math.floor(T - i * T / S + 0.5) - 1 for i in range(S)]",
    # alpha_bar[t] also at t = -1, where Python reads the last entry: right for every step from t >= 0, wrong for the
    # first step from the data, which the public by-hand test reports
    "ddim_invert_step": "def ddim_invert_step(eps, x, t, t_next, alpha_bar):\n"
                        "    ab_t, ab_next = alpha_bar[t].item(), alpha_bar[t_next].item()\n"
                        "    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)\n"
                        "    return math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_next) * eps",
    # DDPM's amount of noise (eta = 1) on the best spacing: real digits (the first tier), but too blurred for the others
    "SAMPLER": 'SAMPLER = {"steps": 6, "eta": 1.0, "spacing": "trailing"}',
}


def test_ddim_partial_solution_scores_partially(fresh, tmp_path):
    path = tmp_path / "ddim.ipynb"
    nbformat.write(_with_answers(_solution("ddim"), DDIM_PARTIAL), path)
    result = tools.grade(path, "ddim")
    table = tools.format_table(result)
    print(f"\nddim partial graded in {result.seconds:.0f} s\n" + table)
    assert not result.error, table
    for q in ("q1_sigma", "q2_ddim_step", "q5_same_model", "q6_sigma_hat"):
        assert result.scores[q] == result.possible[q], table
    for q, reason in (("q3_timesteps", "diffusers"), ("q4_invert_step", "from the data x = 1 (t = -1")):
        assert 0 < result.scores[q] < result.possible[q] and reason in result.reasons[q], table
    assert result.scores["q8_sampler"] == 1 and "frechet_ratio" in result.reasons["q8_sampler"], table


def test_untouched_ddim_notebook_scores_zero(fresh, tmp_path):
    result = tools.grade(tools.ROOT / "ddim" / "ddim.ipynb", "ddim")
    table = tools.format_table(result)
    print(f"\nuntouched ddim graded in {result.seconds:.0f} s\n" + table)
    assert not result.error and result.total == 0 and sum(result.possible.values()) == 15, table


GUIDANCE_PARTIAL = {
    # u <= p_uncond: the same as u < p_uncond except where u equals p_uncond, which only the by-hand case has
    "drop_labels": "def drop_labels(y, p_uncond, null_label, u):\n"
                   "    return torch.where(u <= p_uncond, torch.full_like(y, null_label), y)",
    # the right gradient, by .backward(): it also accumulates .grad in the classifier's parameters at every call; the
    # by-hand values pass, every test that looks at the parameters fails
    "classifier_grad": "def classifier_grad(classifier, x, t, y):\n"
                       "    with torch.enable_grad():\n"
                       "        x_in = x.detach().requires_grad_(True)\n"
                       "        torch.log_softmax(classifier(x_in, t), dim=1).gather(1, y[:, None]).sum().backward()\n"
                       "    return x_in.grad",
    # a large scale: every digit as requested (the two accuracy points), collapsed towards one shape per class (no
    # Frechet point: 3.2 on the grader's seed)
    "GUIDE": 'GUIDE = {"scale": 10.0, "steps": 25}',
}


def test_guidance_partial_solution_scores_partially(fresh, tmp_path):
    path = tmp_path / "guidance.ipynb"
    nbformat.write(_with_answers(_solution("guidance"), GUIDANCE_PARTIAL), path)
    result = tools.grade(path, "guidance")
    table = tools.format_table(result)
    print(f"\nguidance partial graded in {result.seconds:.0f} s\n" + table)
    assert not result.error, table
    for q in ("q1_guided_eps", "q2_cfg", "q5_cg_is_cfg"):
        assert result.scores[q] == result.possible[q], table
    for q, reason in (("q3_label_dropout", "u = p keeps it"), ("q4_classifier_grad", "it called .backward()")):
        assert 0 < result.scores[q] < result.possible[q] and reason in result.reasons[q], table
    assert result.scores["q7_guide"] == 2 and "frechet = " in result.reasons["q7_guide"], table


def test_untouched_guidance_notebook_scores_zero(fresh, tmp_path):
    result = tools.grade(tools.ROOT / "guidance" / "guidance.ipynb", "guidance")
    table = tools.format_table(result)
    print(f"\nuntouched guidance graded in {result.seconds:.0f} s\n" + table)
    assert not result.error and result.total == 0 and sum(result.possible.values()) == 15, table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told. One notebook per set holds them all.
DDPM_WRONG = {
    # Q1: DDPM's linear betas instead of the cosine schedule (float64, right shape, valid, increasing)
    "cosine_betas": "def cosine_betas(T, s=0.008):\n    return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)",
    # Q2: alpha_bar where its square roots belong
    "q_sample": "def q_sample(x0, t, alpha_bar, noise):\n"
                "    ab = alpha_bar[t].to(x0.dtype).view(-1, *[1] * (x0.ndim - 1))\n"
                "    return ab * x0 + (1 - ab) * noise",
    # Q3: sines first (diffusers' default order, flip_sin_to_cos=False)
    "timestep_embedding": "def timestep_embedding(t, dim, max_period=10000):\n"
                          "    n = dim // 2\n"
                          "    freqs = torch.exp(-math.log(max_period) * torch.arange(n) / n)\n"
                          "    args = t.float()[:, None] * freqs[None, :]\n"
                          "    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)",
    # Q4: alpha_bar_t where alpha_bar_(t-1) belongs (the index shift forgotten)
    "q_posterior_mean_variance": "def q_posterior_mean_variance(x0, xt, t, betas):\n"
                                 "    betas = betas.double()\n"
                                 "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
                                 "    pick = lambda v: v[t].to(x0.dtype).view(-1, *[1] * (x0.ndim - 1))\n"
                                 "    mean = (pick(betas * alpha_bar.sqrt() / (1 - alpha_bar)) * x0\n"
                                 "            + pick((1 - alpha_bar) * (1 - betas).sqrt() / (1 - alpha_bar)) * xt)\n"
                                 "    return mean, pick(betas)",
    # Q5: the variance beta_tilde multiplies z instead of its square root
    "p_sample_step": "def p_sample_step(eps, xt, t, betas, noise):\n"
                     "    betas = betas.double()\n"
                     "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
                     "    beta, ab = betas[t].item(), alpha_bar[t].item()\n"
                     "    ab_prev = alpha_bar[t - 1].item() if t > 0 else 1.0\n"
                     "    mean = (xt - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)\n"
                     "    return mean if t == 0 else mean + (1 - ab_prev) / (1 - ab) * beta * noise",
    # Q6: the model is shown the clean image instead of x_t
    "l_simple": "def l_simple(model, x0, t, noise, alpha_bar):\n"
                "    return F.mse_loss(model(x0, t), noise)",
    # Q7: the scale factors dropped: x0_hat = x_t - sqrt(1 - alpha_bar) eps and score = -eps
    "predict_x0": "def predict_x0(xt, t, eps, alpha_bar):\n"
                  "    ab = alpha_bar[t].to(xt.dtype).view(-1, *[1] * (xt.ndim - 1))\n"
                  "    return xt - (1 - ab).sqrt() * eps\n\n\n"
                  "def score_from_eps(eps, t, alpha_bar):\n    return -eps",
    # Q8: sigma_t^2 = beta_t (the other choice of Ho et al. Sec. 3.2, not the prompt's), read as "large t"
    "vlb_weight": "def vlb_weight(betas):\n"
                  "    betas = betas.double()\n"
                  "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
                  "    return betas ** 2 / (2 * betas * (1 - betas) * (1 - alpha_bar))\n\n\n"
                  'DOWNWEIGHTED = "large t"\n'
                  'FACTOR = float(vlb_weight(get_schedule("linear", 1000).betas)[1] / vlb_weight(get_schedule("linear", 1000).betas)[-1])',
    # Q9: alpha_bar shifted and scaled instead of sqrt(alpha_bar)
    "rescale_zero_terminal_snr": "def rescale_zero_terminal_snr(betas):\n"
                                 "    ab = torch.cumprod(1 - betas.double(), dim=0)\n"
                                 "    ab = (ab - ab[-1]) * ab[0] / (ab[0] - ab[-1])\n"
                                 "    return 1 - torch.cat([ab[:1], ab[1:] / ab[:-1]])\n\n\n"
                                 "def snr(betas):\n"
                                 "    alpha_bar = torch.cumprod(1 - betas.double(), dim=0)\n"
                                 "    return alpha_bar / (1 - alpha_bar)\n\n\n"
                                 'before, after = snr(get_schedule("scaled_linear").betas), '
                                 'snr(rescale_zero_terminal_snr(get_schedule("scaled_linear").betas))\n'
                                 "SNR_TABLE = {t: (before[t].item(), after[t].item()) for t in (0, 250, 500, 750, 999)}",
    # Q11: the MLP's output left flat, [B, 256] instead of [B, 1, 16, 16]
    "make_model": lambda source: source.replace("return self.out(F.silu(h)).view_as(xt)", "return self.out(F.silu(h))"),
}
DDPM_CAUGHT = {  # question: text of the public test's failure message
    "q1_cosine": "cosine_betas(3, s=0)", "q2_q_sample": "alpha_bar = [1, 0.25, 0]",
    "q3_embedding": "the embedding of t = 0 (cosine half first)", "q4_posterior": "the posterior mean at t = 0",
    "q5_reverse_step": "with betas (0.5, 0.5)", "q6_l_simple": "the loss of model(x_t, t) = x_t",
    "q7_x0_and_score": "x0_hat for alpha_bar = 0.25", "q8_loss_weight": "lambda_1 and lambda_2 for betas",
    "q9_zero_snr": "the rescaled betas for alpha_bar = (0.81, 0.49, 0.25)",
    "q11_train": "the predicted noise, has shape (2, 256)",
}
VAE_WRONG = {
    # Q1: exp(logvar) (the variance) used as sigma
    "reparameterize": "def reparameterize(mean, logvar, noise):\n    return mean + torch.exp(logvar) * noise",
    # Q2: the two Gaussians swapped: KL(N2 || N1)
    "gaussian_kl": "def gaussian_kl(mean1, logvar1, mean2, logvar2):\n"
                   "    return 0.5 * (logvar1 - logvar2 + torch.exp(logvar2 - logvar1)"
                   " + (mean1 - mean2) ** 2 * torch.exp(-logvar1) - 1)",
    # Q3: averages over the dimensions (the F.mse_loss habit) instead of summing them
    "negative_elbo": "def negative_elbo(x, mean, logvar, decode, noise):\n"
                     "    z = reparameterize(mean, logvar, noise)\n"
                     "    m, v = decode(z)\n"
                     "    recon = 0.5 * (math.log(2 * math.pi) + v + (x - m) ** 2 * torch.exp(-v))\n"
                     "    kl = gaussian_kl(mean, logvar, torch.zeros(()), torch.zeros(()))\n"
                     "    return recon.flatten(1).mean(1), kl.flatten(1).mean(1)",
    # Q4: the prior forgotten: the posterior of z from x = w z + noise alone, and p(x) = N(0, s2)
    "exact_posterior": "def exact_posterior(x, w, s2):\n"
                       "    return x / w, torch.full_like(x, math.log(s2 / w ** 2))\n\n\n"
                       "def log_evidence(x, w, s2):\n"
                       "    return -0.5 * (math.log(2 * math.pi * s2) + x ** 2 / s2)\n\n\n"
                       "_post_mean, _post_logvar = exact_posterior(torch.tensor([1.0]), 2.0, 1.0)\n"
                       "GAP_AT_PRIOR = gaussian_kl(torch.zeros(1), torch.zeros(1), _post_mean, _post_logvar).item()",
    # Q6: the Gaussian decoder of question 3 instead of the discretized one
    "make_model": lambda source: source.replace("latent_channels=4)", 'latent_channels=4, likelihood="gaussian")'),
}
VAE_CAUGHT = {
    "q1_reparameterize": "z for mean 1, variance 4", "q2_gaussian_kl": "KL(N(0, e^2) || N(0, 1))",
    "q3_negative_elbo": "recon for a perfect mean and unit variance", "q4_elbo_gap": "the posterior mean for w = 1",
    "q6_train": "likelihood='discretized_gaussian'",
}
IDDPM_WRONG = {
    # Q1: the cosine formula's alpha_bar, f(t) / f(0), without the clip
    "cosine_alpha_bar": "def cosine_alpha_bar(T, s=0.008, max_beta=0.999):\n"
                        "    u = torch.arange(T + 1, dtype=torch.float64) / T\n"
                        "    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2\n"
                        "    return f[1:] / f[0]\n\n\n"
                        "alpha_bar = cosine_alpha_bar(1000)\n"
                        "alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])\n"
                        "LAST_STEP_GAIN = ((1 - alphas) / (alphas.sqrt() * (1 - alpha_bar).sqrt()))[-1].item()",
    # Q2: u and 1 - u swapped (v = 1 read as beta_tilde)
    "learned_log_variance": "def learned_log_variance(v, t, betas):\n"
                            "    betas = betas.double()\n"
                            "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
                            "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
                            "    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas\n"
                            "    log_beta_tilde = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))\n"
                            "    shape = (-1, *[1] * (v.ndim - 1))\n"
                            "    u = (1 - v) / 2\n"
                            "    return (u * torch.log(betas)[t].view(shape) + (1 - u) * log_beta_tilde[t].view(shape)).to(v.dtype)",
    # Q3: the KL the wrong way round, KL(p_theta || q)
    "vlb_kl": "def vlb_kl(x0, xt, t, eps, log_variance, schedule):\n"
              "    shape = (-1, *[1] * (x0.ndim - 1))\n"
              "    pick = lambda values: values[t].view(shape)\n"
              "    x0_hat = (xt.double() - pick(schedule.sqrt_one_minus_alpha_bar) * eps.double()) / pick(schedule.sqrt_alpha_bar)\n"
              "    c1, c2 = pick(schedule.posterior_mean_coef1), pick(schedule.posterior_mean_coef2)\n"
              "    mean_q, mean_p = c1 * x0.double() + c2 * xt.double(), c1 * x0_hat + c2 * xt.double()\n"
              "    logvar_q, logvar_p = torch.log(pick(schedule.posterior_variance)), log_variance.double()\n"
              "    kl = 0.5 * (logvar_q - logvar_p + torch.exp(logvar_p - logvar_q) + (mean_q - mean_p) ** 2 * torch.exp(-logvar_q) - 1)\n"
              "    return kl.flatten(1).sum(dim=1).float()",
    # Q4: bins of half-width 1/256 (the 8-bit habit) instead of 1/255, the half-distance between the levels
    "decoder_nll": "def decoder_nll(x0, mean, log_variance):\n"
                   "    inv_std = torch.exp(-0.5 * log_variance.double())\n"
                   "    x0, mean = x0.double(), mean.double()\n"
                   "    upper = torch.special.ndtr((x0 + 1 / 256 - mean) * inv_std)\n"
                   "    lower = torch.special.ndtr((x0 - 1 / 256 - mean) * inv_std)\n"
                   "    upper = torch.where(x0 > 1 - 1 / 256, torch.ones_like(upper), upper)\n"
                   "    lower = torch.where(x0 < -1 + 1 / 256, torch.zeros_like(lower), lower)\n"
                   "    return -torch.log(upper - lower).flatten(1).sum(dim=1).float()",
    # Q5: the original betas of the kept steps, instead of the betas of the respaced process
    "respace_betas": "def respace_betas(alpha_bar, timesteps):\n"
                     "    alpha_bar = alpha_bar.double()\n"
                     "    betas = 1 - torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])\n"
                     "    return betas[list(timesteps)]",
    # Q6: the bound's own weight, without L_hybrid's factor T; read as 'the bound weights small t most' (the DDPM
    # exercises' lesson on the linear schedule) and 'lam = 0.001 makes it negligible'
    "mean_weight": "def mean_weight(betas, lam=0.001):\n"
                   "    betas = betas.double()\n"
                   "    alphas = 1 - betas\n"
                   "    alpha_bar = torch.cumprod(alphas, dim=0)\n"
                   "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
                   "    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas\n"
                   "    return lam * betas ** 2 / (alphas * (1 - alpha_bar)) / (2 * beta_tilde * math.log(2))\n\n\n"
                   "HEAVIEST = 1\nNEGLIGIBLE = True",
    # Q7: the bound left in nats per image, and the first ten and the last step read one range off (1 ... 10, 998)
    "BOUND": "from course_lib.data import digits\n"
             "from course_lib.distributions import nats_to_bits_per_dim, quantize\n"
             "from course_lib.likelihood import timestep_strata, vlb_bits_per_dim\n"
             "from course_lib.unet import UNet\n\n"
             "model = UNet.from_pretrained('iddpm_digits_hybrid')\n"
             "x0 = quantize(digits('test', image_size=16)[0][:64])\n"
             "strata = timestep_strata(999, 23, dense=10) + [(999, 1000)]\n"
             "estimate = vlb_bits_per_dim(model, x0, get_schedule('cosine', 1000), strata=strata,\n"
             "                            variance='learned_range', generator=torch.Generator().manual_seed(0), progress=False)\n"
             "BOUND = estimate.bits_per_dim * 256 * math.log(2)\n"
             "SHARE_FIRST_TEN = sum(estimate.terms_bits_per_dim[1:11]) / estimate.bits_per_dim\n"
             "SHARE_LAST = estimate.terms_bits_per_dim[-2] / estimate.bits_per_dim",
    # Q9: an eps-only network with the learned-variance loss (the model must return eps and v)
    "make_model": lambda source: source.replace("return torch.cat([eps, out[:, 1:]], dim=1)", "return eps"),
}
IDDPM_CAUGHT = {
    "q1_cosine_clip": "cosine_alpha_bar(3, s=0)[2]", "q2_learned_variance": "log Sigma at t = 1 for betas (0.5, 0.5)",
    "q3_vlb_kl": "Sigma = beta_1 = 1/2", "q4_decoder": "decoder_nll of the levels -1, 1/255 and 1",
    "q5_respace": "respace_betas((0.9, 0.6, 0.3, 0.1), [0, 2, 3])", "q6_stop_gradient": "w_1 and w_2 for betas",
    "q7_bound_profile": "it should be in bits per dimension", "q9_train": "has shape (2, 1, 16, 16), expected (2, 2, 16, 16)",
}
DDIM_WRONG = {
    # Q1: (1 - alpha_bar_t) where (1 - alpha_bar_prev) belongs: sigma^2 exceeds 1 - alpha_bar_prev, the square root of
    # Eq. 12 gets a negative argument (and the step into the data divides by 0)
    "ddim_sigma": "def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta):\n"
                  "    return eta * ((1 - alpha_bar_t) / (1 - alpha_bar_prev)).sqrt() * (1 - alpha_bar_t / alpha_bar_prev).sqrt()",
    # Q2: x0_hat without the division by sqrt(alpha_bar_t)
    "ddim_step": "def ddim_step(eps, xt, alpha_bar_t, alpha_bar_prev, eta, noise):\n"
                 "    sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev))\n"
                 "    x0_hat = xt - math.sqrt(1 - alpha_bar_t) * eps\n"
                 "    x_prev = math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(1 - alpha_bar_prev - sigma ** 2) * eps\n"
                 "    return x_prev + sigma * noise, x0_hat",
    # Q3: trailing without the - 1: it starts at T, one past the last index
    "ddim_timesteps": "def ddim_timesteps(T, S, spacing):\n"
                      "    if spacing == 'leading':\n"
                      "        return [i * (T // S) for i in range(S)][::-1]\n"
                      "    return [round(T - i * T / S) for i in range(S)]",
    # Q4: the alpha_bar of the wrong index in the direction term: sqrt(1 - alpha_bar_t) eps, the step's start
    "ddim_invert_step": "def ddim_invert_step(eps, x, t, t_next, alpha_bar):\n"
                        "    ab_t = 1.0 if t < 0 else alpha_bar[t].item()\n"
                        "    ab_next = alpha_bar[t_next].item()\n"
                        "    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)\n"
                        "    return math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_t) * eps",
    # Q5: the fresh noise z forgotten: r_(t-1) taken as a multiple of r_t (variance below 1, correlation 1)
    "noise_moments": "def noise_moments(alpha_bar_t, alpha_bar_prev, sigma):\n"
                     "    keep = ((1 - alpha_bar_prev - sigma ** 2) / (1 - alpha_bar_prev)).sqrt()\n"
                     "    return keep ** 2, torch.ones_like(keep)\n\n\n"
                     "ab = get_schedule('linear', 1000).alpha_bar\n"
                     "NOISE_MEMORY = {eta: noise_moments(ab[1:], ab[:-1], ddim_sigma(ab[1:], ab[:-1], eta))[1].prod().item()\n"
                     "                for eta in (0.0, 0.5, 1.0)}",
    # Q6: sigma_hat read as eta = 1 (the chapter's warning), so its grain computed with sigma(1)
    "eta_of_sigma_hat": "def eta_of_sigma_hat(alpha_bar_t, alpha_bar_prev):\n"
                        "    return torch.ones_like(alpha_bar_t)\n\n\n"
                        "def sigma_hat_grain(alpha_bar, taus):\n"
                        "    a, b = alpha_bar[taus[-2]], alpha_bar[taus[-1]]\n"
                        "    return (ddim_sigma(a, b, 1.0) / (1 - b).sqrt()).item()\n\n\n"
                        "_taus = {s: ddim_timesteps(1000, 10, s) for s in ('leading', 'trailing')}\n"
                        "_taus['quadratic'] = [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]\n"
                        "GRAIN = {s: sigma_hat_grain(get_schedule('linear', 1000).alpha_bar, t) for s, t in _taus.items()}",
    # Q8: the chapter's 10 steps, over the budget of 6 network evaluations
    "SAMPLER": 'SAMPLER = {"steps": 10, "eta": 0.0, "spacing": "leading"}',
}
DDIM_CAUGHT = {
    "q1_sigma": "sigma(eta = 1) for the steps 0.25 -> 0.5", "q2_ddim_step": "x0_hat for alpha_bar_t = 0.25",
    "q3_timesteps": "tau by hand for T = ", "q4_invert_step": "the first step, from the data x = 1 (t = -1",
    "q5_same_model": "the variance of r_{t-1} for alpha_bar_t = 0.25", "q6_sigma_hat": "the eta of sigma_hat for",
    "q8_sampler": "steps must be an int in 1 ... 6",
}
GUIDANCE_WRONG = {
    # Q1: the sign of the classifier term flipped (eps treated as if it were the score)
    "guided_eps": "def guided_eps(eps, grad, alpha_bar_t, s):\n"
                  "    factor = (1 - alpha_bar_t).sqrt().reshape(-1, *[1] * (eps.ndim - 1))\n"
                  "    return (eps + s * factor * grad).to(eps.dtype)",
    # Q2: diffusers' line with w in place of g = 1 + w (eps_u + w (eps_c - eps_u)); the diffusers half right
    "cfg_eps": "def cfg_eps(eps_cond, eps_uncond, w):\n"
               "    return eps_uncond + w * (eps_cond - eps_uncond)\n\n\n"
               "def cfg_eps_diffusers(noise_pred, guidance_scale):\n"
               "    eps_uncond, eps_cond = noise_pred.chunk(2)\n"
               "    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)",
    # Q3: keeps the label where u < p_uncond (drops with probability 1 - p_uncond)
    "drop_labels": "def drop_labels(y, p_uncond, null_label, u):\n"
                   "    return torch.where(u > p_uncond, torch.full_like(y, null_label), y)",
    # Q4: the gradient of the logit, not of the log-probability (no log-softmax)
    "classifier_grad": "def classifier_grad(classifier, x, t, y):\n"
                       "    with torch.enable_grad():\n"
                       "        x_in = x.detach().requires_grad_(True)\n"
                       "        logit = classifier(x_in, t).gather(1, y[:, None]).sum()\n"
                       "        return torch.autograd.grad(logit, x_in)[0]",
    # Q5: the implied gradient with the sign of eps_c - eps_u kept (the score's minus forgotten), w taken equal to s, and
    # the spread as the RMS distance in the plane, not per coordinate
    "implied_classifier_grad": "def implied_classifier_grad(eps_cond, eps_uncond, alpha_bar_t):\n"
                               "    factor = (1 - alpha_bar_t).sqrt().reshape(-1, *[1] * (eps_cond.ndim - 1))\n"
                               "    return ((eps_cond - eps_uncond) / factor).to(eps_cond.dtype)\n\n\n"
                               "def equivalent_weight(s):\n"
                               "    return float(s), float(s)\n\n\n"
                               "def tilted_spread(means, std, s, y=0):\n"
                               "    axis = torch.linspace(-4, 4, 401, dtype=torch.float64)\n"
                               "    grid = torch.cartesian_prod(axis, axis)\n"
                               "    log_comp = -((grid[:, None, :] - means[None]) ** 2).sum(-1) / (2 * std ** 2)\n"
                               "    log_p = torch.logsumexp(log_comp, 1)\n"
                               "    w = torch.softmax(log_p + s * (log_comp[:, y] - log_p), 0)\n"
                               "    centre = w @ grid\n"
                               "    return math.sqrt((w @ ((grid - centre) ** 2).sum(1)).item())\n\n\n"
                               "SPREAD = {s: tilted_spread(mixture_means(4, 0.6).double(), 0.3, s) for s in (0, 1, 2, 5, 10)}",
    # Q7: the chapter's gpu-profile 50 steps, over the budget of 25
    "GUIDE": 'GUIDE = {"scale": 2.0, "steps": 50}',
}
GUIDANCE_CAUGHT = {
    "q1_guided_eps": "eps_hat for eps = 1, grad = 2, s = 3", "q2_cfg": "cfg_eps for eps_cond = (2, -1)",
    "q3_label_dropout": "a label is dropped where u < p_uncond",
    "q4_classifier_grad": "the gradient of log p(y | x) at x = 0 for logits = W x",
    "q5_cg_is_cfg": "the implied gradient for eps_cond - eps_uncond = (1, -2)",
    "q7_guide": "steps must be an int in 1 ... 25",
}
PLAUSIBLE_WRONG = {"ddpm": (DDPM_WRONG, DDPM_CAUGHT), "vae": (VAE_WRONG, VAE_CAUGHT),
                   "iddpm": (IDDPM_WRONG, IDDPM_CAUGHT), "ddim": (DDIM_WRONG, DDIM_CAUGHT),
                   "guidance": (GUIDANCE_WRONG, GUIDANCE_CAUGHT)}


@pytest.mark.parametrize("name", sorted(PLAUSIBLE_WRONG))
def test_plausible_wrong_answers_fail_a_public_test_and_score_zero(fresh, tmp_path, name):
    answers, caught = PLAUSIBLE_WRONG[name]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(_with_answers(_solution(name), answers), path)
    result = tools.grade(path, name)
    table = tools.format_table(result)
    print(f"\n{name} plausible-wrong graded in {result.seconds:.0f} s\n" + table)
    assert not result.error, table
    assert set(caught) == set(result.possible), "one plausible wrong answer for every autograded question"
    public = {q["name"]: "\n".join(q["public"]) for q in _questions(_master(name))}
    for q, message in caught.items():
        assert result.scores[q] == 0 and message in result.reasons[q], (q, table)
        # the first failing test is the one reported: a public one (written first), either by its own text or, for
        # the design questions, the budget check it calls
        assert message in public[q] or "check_" in public[q], f"{q}: {message!r} is not a public test's message"


# Correct formulas computed in float32: the public tests fail them and say that precision is the cause.
FLOAT32 = {
    "cosine_betas": "def cosine_betas(T, s=0.008):\n"
                    "    u = torch.arange(T + 1) / T\n"
                    "    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2\n"
                    "    return torch.clamp(1 - f[1:] / f[:-1], max=0.999).double()",
    "q_posterior_mean_variance": "def q_posterior_mean_variance(x0, xt, t, betas):\n"
                                 "    betas = betas.float()\n"
                                 "    alphas = 1 - betas\n"
                                 "    alpha_bar = torch.cumprod(alphas, dim=0)\n"
                                 "    alpha_bar_prev = torch.cat([torch.ones(1), alpha_bar[:-1]])\n"
                                 "    pick = lambda v: v[t].view(-1, *[1] * (x0.ndim - 1))\n"
                                 "    mean = (pick(betas * alpha_bar_prev.sqrt() / (1 - alpha_bar)) * x0\n"
                                 "            + pick((1 - alpha_bar_prev) * alphas.sqrt() / (1 - alpha_bar)) * xt)\n"
                                 "    return mean, pick((1 - alpha_bar_prev) / (1 - alpha_bar) * betas)",
}


@pytest.mark.parametrize("function, question", [("cosine_betas", "q1_cosine"),
                                                ("q_posterior_mean_variance", "q4_posterior")])
def test_float32_answers_are_told_about_precision(function, question):
    import math

    from otter.test_files import ExceptionTestFile

    from course_lib.grading.checks import PRECISION_HINT

    env = {"torch": torch, "math": math}
    exec(FLOAT32[function], env)
    test = ExceptionTestFile.from_file(str(tools.ROOT / "ddpm" / "tests" / f"{question}.py"))
    test.run(env)
    failed = [r for r in test.test_case_results if not r.passed]
    assert failed, f"a float32 {function} should fail a public test of {question}"
    assert all("float64" in r.message for r in failed), [r.message for r in failed]
    assert any(PRECISION_HINT.strip() in r.message or "float32's nearest value to 0.999" in r.message
               for r in failed)


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
                "q4_posterior": "printed more than", "q5_reverse_step": "has shape", "q11_train": "SystemExit"}
    for q, reason in expected.items():
        assert result.scores[q] == 0 and reason in result.reasons[q], table
    for q in ("q2_q_sample", "q6_l_simple"):  # graded in full after the bad cells and the bad answers
        assert result.scores[q] == result.possible[q], table


# Submissions that answer nothing but modify the grader; each must score 0 with the reason naming what it modified.
ZEROS = {name: f"def {name}(*args, **kwargs):\n    return torch.zeros(1)"
         for name in ("cosine_betas", "q_sample", "timestep_embedding", "q_posterior_mean_variance", "p_sample_step",
                      "l_simple")}
ZEROS["make_model"] = "def make_model():\n    return torch.zeros(1)\n\n\nTRAIN_CONFIG = {}"
USELESS = ("class Useless(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
           "        self.w = nn.Parameter(torch.randn(1))\n\n"
           "    def forward(self, xt, t):\n        return self.w * xt\n\n\n"
           "def make_model():\n    return Useless()\n\n\n"
           'TRAIN_CONFIG = {"schedule": "linear", "num_timesteps": 10, "steps": 10, "batch_size": 8, "lr": 1e-3}')
PERFECT = '{"recognized": 1.0, "quick": False, "train_s": 0.0, "final_loss": 0.0}'
ATTACKS = {  # name: (answers, extra cells, labels the reason must name); without the guards they score as noted
    # the reviewer's: no-op checks and torch.allclose in the first cell (7.9 / 20 before)
    "reviewer": (ZEROS, {0: "import torch, course_lib.grading\n"
                            "course_lib.grading.assert_close = lambda *args, **kwargs: None\n"
                            "course_lib.grading.assert_tensor = lambda *args, **kwargs: None\n"
                            "torch.allclose = lambda *args, **kwargs: True"},
                 ["course_lib.grading.assert_close", "course_lib.grading.assert_tensor", "torch.allclose"]),
    # quick mode switched on in the notebook: a useless model passes every quality threshold (6.7 / 20 before)
    "quick_env": ({**ZEROS, "make_model": USELESS}, {3: "import os\nos.environ['COURSE_GRADING_QUICK'] = '1'"},
                  ["os.environ['COURSE_GRADING_QUICK']"]),
    # four at once, two hidden from the source scan (exec, computed names), so that the kernel's checks find them:
    # otter's runner reports passes, a perfect ddpm_digits_quality, a pre-filled cache, a swapped __code__ (20 / 20)
    "several": ({**ZEROS, "make_model": lambda source: USELESS + "\n\n\nimport importlib, json\n"
                 "m = importlib.import_module('course_lib.grading.' + 'measured')\n"
                 "getattr(m, '_MEAS' + 'URED')[(id(make_model), json.dumps(TRAIN_CONFIG, sort_keys=True, default=str), "
                 f"0, 256, False)] = {PERFECT}"},
                {3: 'exec("from otter.test_files.exception_test import ExceptionTestFile\\n'
                    "from otter.test_files.abstract_test import TestCaseResult\\n"
                    "def run(self, env):\\n"
                    "    self.test_case_results = [TestCaseResult(test_case=tc, message='', passed=True)"
                    ' for tc in self.test_cases]\\n'
                    'ExceptionTestFile.run = run")\n'
                    "import course_lib.grading as g\n"
                    f"g.ddpm_digits_quality = lambda make_model, config, **kwargs: {PERFECT}\n"
                    "from course_lib.grading import assert_close\n"
                    "assert_close.__code__ = (lambda *args, **kwargs: None).__code__"},
                ["otter.test_files.ExceptionTestFile.run", "course_lib.grading.ddpm_digits_quality",
                 "course_lib.grading.measured._MEASURED", "course_lib.grading.assert_close.__code__"]),
    # the kernel's checks switched off first (hooks removed, checkpoint a no-op), all hidden from the source scan:
    # only the grader process notices, from the signed reports that stop arriving
    "guards_off": (ZEROS, {3: 'exec("import sys\\nip = get_ipython()\\n'
                              "for event in ('pre_run_cell', 'post_run_cell'):\\n"
                              "    ip.events.callbacks[event].clear()\\n"
                              "sys.modules['course_lib.grading.integrity'].checkpoint = lambda: []\\n"
                              "g = sys.modules['course_lib.grading']\\n"
                              "g.assert_close = g.assert_tensor = lambda *args, **kwargs: None\\n"
                              "sys.modules['torch'].allclose = lambda *args, **kwargs: True\")"},
                   ["the guards: no signed report from cell"]),
}


def test_grade_all_writes_one_row_per_submission(fresh, tmp_path, capsys):
    """One batch: an untouched notebook, one that kills its kernel, one that is not a notebook, and the attacks
    (each 0 with the reason; the untouched one, graded in the same batch, is unaffected)."""
    from course_lib.grading import TAMPER_PREFIX

    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(tools.ROOT / "ddpm" / "ddpm.ipynb", folder / "ddpm_untouched.ipynb")
    crash = _with_answers(_solution(), {}, {3: "import os\nos._exit(1)"})
    nbformat.write(crash, folder / "ddpm_kills_kernel.ipynb")
    (folder / "ddpm_not_a_notebook.ipynb").write_text("this is not JSON")
    student = nbformat.read(tools.ROOT / "ddpm" / "ddpm.ipynb", as_version=4)
    for name, (answers, extra, _) in ATTACKS.items():
        nbformat.write(_with_answers(student, answers, extra), folder / f"ddpm_attack_{name}.ipynb")
    start = time.perf_counter()
    assert tools.main(["grade-all", str(folder), "--set", "ddpm"]) == 0
    print(f"\ngrade-all of {3 + len(ATTACKS)} files took {time.perf_counter() - start:.0f} s")
    rows = {r["file"]: r for r in csv.DictReader(open(folder / "scores.csv"))}
    assert set(rows) == {"ddpm_untouched.ipynb", "ddpm_kills_kernel.ipynb", "ddpm_not_a_notebook.ipynb",
                         *(f"ddpm_attack_{name}.ipynb" for name in ATTACKS)}
    untouched = rows["ddpm_untouched.ipynb"]
    assert untouched["error"] == "" and float(untouched["total"]) == 0 and float(untouched["possible"]) == 22
    assert "crashed" in rows["ddpm_kills_kernel.ipynb"]["error"]
    assert "could not read" in rows["ddpm_not_a_notebook.ipynb"]["error"]
    for name, (_, _, labels) in ATTACKS.items():
        row = rows[f"ddpm_attack_{name}.ipynb"]
        assert float(row["total"]) == 0 and row["error"].startswith(TAMPER_PREFIX), (name, row)
        assert all(label in row["error"] for label in labels), (name, labels, row["error"])
        assert all(float(row[q]) == 0 for q in tools.question_points("ddpm")), (name, row)


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

    from course_lib.grading.limits import _CappedStream

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
    class Conv(torch.nn.Module):  # eps = conv(x_t): the right input and output shapes
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, xt, t):
            return self.conv(xt)

    fixed = Conv()
    with pytest.raises(AssertionError, match="same weights"):
        check_ddpm_config(lambda: fixed, config)
    with pytest.raises(AssertionError, match="steps"):
        check_ddpm_config(Conv, {**config, "steps": 10**6})
    with pytest.raises(AssertionError, match="parameters"):
        check_ddpm_config(lambda: torch.nn.Linear(2000, 2000), config)
    class Flat(torch.nn.Module):  # an MLP's output left flat, [B, 256]
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(256, 256)

        def forward(self, xt, t):
            return self.lin(xt.flatten(1))

    with pytest.raises(AssertionError, match=r"has shape \(2, 256\), expected \(2, 1, 16, 16\)"):
        check_ddpm_config(Flat, config)  # caught by the public budget test, before any training
    assert check_ddpm_config(Conv, config) == config


def test_score_samples_fails_copies_and_collapse_and_passes_real_digits():
    """What the measured DDPM question grades, on samples whose answer is known: held-out digits pass every
    threshold, memorised training digits (a nearest-neighbour "denoiser") get no recognised-digit or Frechet point,
    one digit only (mode collapse) gets no coverage or Frechet point."""
    from course_lib.data import digits
    from course_lib.grading import score_samples

    test_x, test_y = digits("test", image_size=16)
    train_x = digits("train", image_size=16)[0]
    real = score_samples(test_x[:256])
    assert real["near_copies"] == 0 and real["novel_recognized"] >= 0.9 and real["min_class_share"] >= 0.03
    assert real["frechet_ratio"] <= 1.0  # the question's threshold is 15: a small CPU model reaches about 10
    copies = score_samples(train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:256]])
    assert copies["recognized"] > 0.95 and copies["near_copies"] > 0.95 and copies["novel_recognized"] < 0.05
    ones = score_samples(test_x[test_y == 1].repeat(8, 1, 1, 1)[:256])
    assert ones["novel_recognized"] > 0.9 and ones["min_class_share"] == 0 and ones["frechet_ratio"] > 100


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


def test_iddpm_budget_check_says_what_is_wrong_and_quick_mode_runs(monkeypatch):
    """The improved-DDPM set's budget: the loss decides the output channels; the budget cannot be raised from a
    notebook; in quick mode the whole procedure (train, bound, respaced samples, coverage) runs in seconds."""
    from course_lib import grading
    from course_lib.grading import IDDPM_BUDGET, check_iddpm_config

    class Conv(torch.nn.Module):  # eps and v from a convolution: the right shapes for l_hybrid
        def __init__(self, channels=2):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, channels, 3, padding=1)

        def forward(self, xt, t):
            return self.conv(xt)

    config = {"loss": "l_hybrid", "steps": 10, "batch_size": 8, "lr": 1e-3}
    assert check_iddpm_config(Conv, config) == config
    assert check_iddpm_config(lambda: Conv(1), {**config, "loss": "l_simple"})["loss"] == "l_simple"
    fixed = Conv()
    for make_model, cfg, match in [(lambda: fixed, config, "same weights"),
                                   (lambda: Conv(1), config, r"has shape \(2, 1, 16, 16\), expected \(2, 2, 16, 16\)"),
                                   (Conv, {**config, "loss": "l_vlb"}, "loss must be one of"),
                                   (Conv, {**config, "steps": 10**6}, "steps"),
                                   (Conv, {**config, "schedule": "linear"}, "unknown keys"),
                                   (lambda: torch.nn.Linear(2000, 2000), config, "parameters")]:
        with pytest.raises(AssertionError, match=match):
            check_iddpm_config(make_model, cfg)
    with pytest.raises(TypeError):
        IDDPM_BUDGET["max_train_s"] = 10**6  # read-only
    monkeypatch.setenv(grading.QUICK_ENV, "1")
    report = grading.iddpm_digits_bound(Conv, {**config, "steps": 1500})
    assert report["quick"] and report["bits_per_dim"] > 0 and 0 <= report["digits_covered"] <= 10
    grading.assert_quality(report, "bits_per_dim", below=0.1)  # quick mode never fails on quality


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


def test_ddim_sampler_check_says_what_is_wrong():
    from course_lib.grading import DDIM_BUDGET, check_ddim_sampler

    good = {"steps": DDIM_BUDGET["max_nfe"], "eta": 0.0, "spacing": "trailing"}
    assert check_ddim_sampler(good) == good and check_ddim_sampler({**good, "eta": "sigma_hat"})["eta"] == "sigma_hat"
    for sampler, match in [({**good, "steps": 10}, "steps must be an int in 1 ... 6"), ({**good, "steps": 2.0}, "steps"),
                           ({**good, "eta": 1.5}, "eta must be a number"), ({**good, "eta": True}, "eta"),
                           ({**good, "spacing": "cosine"}, "spacing must be one of"),
                           ({"steps": 6, "eta": 0.0}, r"is missing \['spacing'\]"), ([6, 0.0], "should be a dict")]:
        with pytest.raises(AssertionError, match=match):
            check_ddim_sampler(sampler)


def test_ddim_quick_mode_counts_the_network_evaluations(monkeypatch):
    from course_lib import grading

    monkeypatch.setenv(grading.QUICK_ENV, "1")
    for eta in (0.5, "sigma_hat"):
        report = grading.ddim_digits_quality({"steps": 3, "eta": eta, "spacing": "leading"})
        assert report["quick"] and report["n"] == 16 and report["nfe"] == 3 and report["timesteps"] == [666, 333, 0]
    grading.assert_quality(report, "frechet_ratio", below=1.0)  # quick mode never fails on quality


def test_guidance_settings_check_says_what_is_wrong():
    from course_lib.grading import GUIDANCE_BUDGET, check_guidance_settings

    good = {"scale": 2.0, "steps": GUIDANCE_BUDGET["max_steps"]}
    assert check_guidance_settings(good) == good and check_guidance_settings({"scale": 0, "steps": 1})["scale"] == 0
    for guide, match in [({**good, "steps": 50}, "steps must be an int in 1 ... 25"), ({**good, "steps": 10.0}, "steps"),
                         ({**good, "steps": True}, "steps"), ({**good, "scale": -1.0}, "scale must be a number in"),
                         ({**good, "scale": float("inf")}, "scale"), ({**good, "scale": "2"}, "scale"),
                         ({**good, "scale": 1e3}, r"\[0, 100\]"), ({"scale": 2.0}, r"is missing \['steps'\]"),
                         ({**good, "eta": 0.0}, r"unknown keys \['eta'\]"), ([2.0, 25], "should be a dict")]:
        with pytest.raises(AssertionError, match=match):
            check_guidance_settings(guide)
    with pytest.raises(TypeError):
        GUIDANCE_BUDGET["max_steps"] = 1000  # read-only


def test_guidance_quick_mode_counts_the_network_evaluations(monkeypatch):
    from course_lib import grading

    monkeypatch.setenv(grading.QUICK_ENV, "1")
    report = grading.guided_digits_quality({"scale": 2.0, "steps": 4})
    assert report["quick"] and report["n"] == 16 and report["nfe"] == 4 and report["timesteps"] == [750, 500, 250, 0]
    assert 0 <= report["accuracy"] <= 1 and report["frechet"] >= 0
    grading.assert_quality(report, "accuracy", 1.1)  # quick mode never fails on quality
    grading.assert_quality(report, "frechet", below=0.0)


# --- tamper detection (fast, no otter run) ------------------------------------------------------------

@pytest.fixture
def kernel_record():
    """The grading kernel's record (integrity) and quick-mode flag, put back after the test."""
    from course_lib.grading import integrity, measured

    saved = dict(integrity._KERNEL), measured._frozen_quick, dict(measured._MEASURED), dict(measured._GENUINE)
    yield integrity
    integrity._KERNEL.update(saved[0])
    measured._frozen_quick = saved[1]
    for cache, before in ((measured._MEASURED, saved[2]), (measured._GENUINE, saved[3])):
        cache.clear()
        cache.update(before)


def _fake_grader():
    """A small module tree standing in for the grader: functions, a closure, classes, a constant."""
    import types

    pkg = types.ModuleType("fake_grader")
    exec("def helper(x):\n    return x\n"
         "def check(x, y=1, *, atol=1e-6):\n    return x\n"
         "def _outer(f):\n    def closed(x):\n        return f(x)\n    return closed\n"
         "closed = _outer(helper)\n"
         "class Runner:\n    def run(self):\n        return 'real'\n"
         "class Child(Runner):\n    pass\n"
         "BUDGET = {'steps': 10}\n", pkg.__dict__)
    pkg.Runner.__module__ = pkg.Child.__module__ = "fake_grader"
    return pkg


TAMPERINGS = [  # (what the notebook does to the fake grader, the name that must be reported)
    (lambda g: setattr(g, "check", lambda *a, **k: None), "fake_grader.check"),
    (lambda g: delattr(g, "helper"), "fake_grader.helper"),
    (lambda g: setattr(g.check, "__code__", (lambda *a, **k: None).__code__), "fake_grader.check.__code__"),
    (lambda g: setattr(g.check, "__defaults__", (2,)), "fake_grader.check.__defaults__"),
    (lambda g: g.check.__kwdefaults__.update(atol=1e9), "fake_grader.check.__kwdefaults__"),
    (lambda g: setattr(g.closed.__closure__[0], "cell_contents", print), "fake_grader.closed.__closure__"),
    (lambda g: setattr(g.Runner, "run", lambda self: "fake"), "fake_grader.Runner.run"),
    (lambda g: setattr(g.Child, "run", lambda self: "fake"), "fake_grader.Child.run"),  # shadows the inherited one
    (lambda g: sys.modules.__setitem__("fake_grader", type(sys)("fake_grader")), "sys.modules['fake_grader']"),
    (lambda g: os.environ.__setitem__("COURSE_GRADING_QUICK", "1"), "os.environ['COURSE_GRADING_QUICK']"),
]


@pytest.mark.parametrize("tamper, label", TAMPERINGS, ids=[label for _, label in TAMPERINGS])
def test_snapshot_finds_each_kind_of_tampering_and_restores_it(tamper, label, monkeypatch):
    from course_lib.grading.snapshot import take_snapshot

    monkeypatch.delenv("COURSE_GRADING_QUICK", raising=False)
    grader = _fake_grader()
    monkeypatch.setitem(sys.modules, "fake_grader", grader)
    snapshot = take_snapshot(["fake_grader"])
    assert snapshot.changes() == []
    tamper(grader)
    assert label in snapshot.changes()
    snapshot.restore()
    assert snapshot.changes() == [] and grader.Child().run() == "real" and grader.check(3) == 3


def test_snapshot_sees_builtins_and_torch_methods():
    import builtins

    from course_lib.grading.snapshot import take_snapshot

    snapshot = take_snapshot(["torch"], ["builtins"])
    real_len, real_allclose = builtins.len, torch.Tensor.allclose
    try:
        builtins.len = lambda x: 0
        torch.Tensor.allclose = lambda *args, **kwargs: True  # on Tensor: shadows torch._C.TensorBase.allclose
        assert {"builtins.len", "torch.Tensor.allclose"} <= set(snapshot.changes())
    finally:
        builtins.len = real_len
        del torch.Tensor.allclose
    assert torch.Tensor.allclose is real_allclose and snapshot.changes() == []


def test_legitimate_notebook_code_is_not_flagged(kernel_record, monkeypatch):
    """What students do (imports, helpers, course_lib calls, seeds, threads, grad mode, plots, training, their own
    measured run) changes nothing that the guards watch."""
    import copy

    from course_lib.grading import guards, integrity, measured

    monkeypatch.setenv(measured.QUICK_ENV, "1")  # the grader's own setting: fixed before the snapshot
    guards._import_protected([])  # what install_guards imports before its snapshot
    integrity.install(roots=integrity.PROTECTED_ROOTS, modules=integrity.PROTECTED_MODULES)
    measured.watch_inputs()
    threads = torch.get_num_threads()
    try:
        import fractions  # noqa: F401 -- an extra module

        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from course_lib.grading import ddpm_digits_quality
        from course_lib.schedules import get_schedule

        torch.manual_seed(0)
        torch.set_num_threads(1)
        torch.set_grad_enabled(False)
        torch.set_grad_enabled(True)
        plt.plot(get_schedule("cosine", 50).alpha_bar.numpy())
        plt.close("all")
        net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.SiLU(), torch.nn.LayerNorm(4))
        copy.deepcopy(net)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)  # wraps Adam.step on first use
        net(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()

        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(256, 256)

            def forward(self, xt, t):
                return self.lin(xt.flatten(1)).view_as(xt)

        config = {"schedule": "linear", "num_timesteps": 20, "steps": 5, "batch_size": 8, "lr": 1e-3}
        report = ddpm_digits_quality(Tiny, config)
        recognized, report["recognized"] = report["recognized"], 2.0  # editing the returned report ...
        assert report["quick"] and ddpm_digits_quality(Tiny, config)["recognized"] == recognized  # ... changes no grade
        assert integrity.checkpoint() == []
    finally:
        torch.set_num_threads(threads)


def test_quick_flag_cache_and_data_are_fixed_before_student_code(kernel_record, monkeypatch):
    import json as json_

    from course_lib.data import _digits_arrays
    from course_lib.grading import integrity, measured

    monkeypatch.delenv(measured.QUICK_ENV, raising=False)
    measured.freeze_quick_mode()  # as install_guards does: the flag first, then the snapshot
    integrity.install(roots=["course_lib"], modules=[])
    measured.watch_inputs()
    monkeypatch.setenv(measured.QUICK_ENV, "1")  # the notebook switches quick mode on ...
    assert not measured.quick_mode()  # ... which changes nothing, and is a finding
    assert integrity.checkpoint() == ["os.environ['COURSE_GRADING_QUICK']"]
    make_model = torch.nn.Identity
    key = (id(make_model), json_.dumps({}, sort_keys=True), 0, 256, False)
    measured._MEASURED[key] = {"recognized": 1.0, "quick": False}  # a pre-filled cache
    images = _digits_arrays()[0]
    images[0, 0, 0] += 1  # the cached training digits, edited in place
    try:
        assert {"course_lib.grading.measured._MEASURED", "course_lib.data._digits_arrays()"} <= \
            set(integrity.checkpoint())
    finally:
        images[0, 0, 0] -= 1
        del measured._MEASURED[key]
    assert "course_lib.data._digits_arrays()" in integrity.checkpoint()  # findings stick


def test_guarded_runner_fails_every_case_once_the_grader_was_modified(kernel_record):
    from otter.test_files import ExceptionTestFile

    from course_lib.grading import TAMPER_PREFIX, guards, integrity
    from course_lib.schedules import cosine_betas

    integrity.install(roots=["course_lib"], modules=[])
    test = ExceptionTestFile.from_file(str(tools.ROOT / "ddpm" / "tests" / "q1_cosine.py"))
    guards._guarded_run(test, {"cosine_betas": cosine_betas})
    assert test.test_case_results and all(r.passed for r in test.test_case_results)
    integrity.flag(["torch.allclose"])
    guards._guarded_run(test, {"cosine_betas": cosine_betas})
    assert not any(r.passed for r in test.test_case_results)
    assert all(f"{TAMPER_PREFIX}torch.allclose)" in r.message for r in test.test_case_results)


SCANNED = {  # source -> what the grader process's static scan must report
    "import course_lib.grading, torch\ncourse_lib.grading.assert_close = None\ntorch.allclose = None":
        ["course_lib.grading.assert_close", "torch.allclose"],
    "import os\nos.environ['COURSE_GRADING_QUICK'] = '1'\nos.environ.update(COURSE_GRADING_TEST_TIMEOUT='1')":
        ["os.environ['COURSE_GRADING_QUICK']", "os.environ['COURSE_GRADING_TEST_TIMEOUT']"],
    "from course_lib.grading import assert_close as a\na.__code__ = (lambda: None).__code__":
        ["course_lib.grading.assert_close.__code__"],
    "import course_lib.grading as g\nf = g.assert_close\nf.__kwdefaults__['atol'] = 1e9":
        ["course_lib.grading.assert_close.__kwdefaults__"],
    "from course_lib.grading import measured\nmeasured._MEASURED[1] = {}": ["course_lib.grading.measured._MEASURED"],
    "from otter.test_files import ExceptionTestFile as E\nsetattr(E, 'run', None)":
        ["otter.test_files.ExceptionTestFile.run"],
    "import sys\nsys.modules['course_lib.grading'] = None\n__builtins__.len = None":
        ["builtins.len", "sys.modules['course_lib.grading']"],
    "import torch\nvars(torch)['equal'] = None\n%matplotlib inline": ["torch.equal"],
}
LEGITIMATE = """\
import os, sys, torch
import torch.nn as nn
%matplotlib inline
torch.manual_seed(0); torch.set_num_threads(1); torch.set_grad_enabled(False)
torch.backends.cudnn.benchmark = True
os.environ["CUDA_VISIBLE_DEVICES"] = ""
class Net(nn.Module):
    def forward(self, x):
        return x
net = Net()
net.forward = lambda x: x
nn = Net()  # a name that once meant torch.nn
nn.scale = 2
from course_lib.grading import ddpm_digits_quality
report = ddpm_digits_quality(lambda: Net(), {})
report["recognized"] = 1.0
"""


def test_source_scan_reports_literal_writes_and_nothing_legitimate():
    from course_lib.grading.source_scan import find_writes

    for source, labels in SCANNED.items():
        assert find_writes([source]) == sorted(labels), source
    assert find_writes([LEGITIMATE]) == []
    for name in SETS:
        for path in (tools.SOURCE / name / f"{name}.ipynb", tools.ROOT / name / f"{name}.ipynb"):
            nb = nbformat.read(path, as_version=4)
            assert find_writes([c.source for c in nb.cells if c.cell_type == "code"]) == [], path


def test_grader_process_trusts_only_signed_reports():
    from course_lib.grading.guards import EXPORT_CELL_MARK
    from course_lib.grading.integrity import HEARTBEAT_MIME, sign
    from course_lib.grading.plugin import read_reports

    key = "k" * 32

    def cell(source, count, found=(), results=None, mac_key=key):
        report = json.dumps({"cell": count, "found": list(found), **({"results": results} if results else {})},
                            sort_keys=True)
        out = nbformat.v4.new_output("display_data", data={HEARTBEAT_MIME: {"report": report,
                                                                            "mac": sign(mac_key, report)}})
        return nbformat.v4.new_code_cell(source, execution_count=count, outputs=[out])

    final = {"q1": [["q1 - 1", True]]}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("otter init", execution_count=1),
                                         cell("install_guards(...)", 2), cell("x = 1", 3),
                                         cell(EXPORT_CELL_MARK, 4, results=final)])
    assert read_reports(nb, key) == (set(), final)
    nb.cells[2] = cell("x = 1", 3, found=["torch.allclose"])
    assert read_reports(nb, key)[0] == {"torch.allclose"}
    nb.cells[2] = cell("x = 1", 3, mac_key="forged")  # a report the notebook made itself
    assert read_reports(nb, key)[0] == {"the guards: no signed report from cell 3"}
    nb.cells[2].outputs = []
    assert read_reports(nb, key)[0] == {"the guards: no signed report from cell 3"}


def test_grader_process_unpickles_only_grading_results():
    import io
    import pickle

    from otter.test_files import ExceptionTestFile, GradingResults

    from course_lib.grading.plugin import RefusedPickle, _ResultsUnpickler

    test = ExceptionTestFile.from_file(str(tools.ROOT / "ddpm" / "tests" / "q1_cosine.py"))
    test.run({})
    loaded = _ResultsUnpickler(io.BytesIO(pickle.dumps(GradingResults([test])))).load()
    assert isinstance(loaded, GradingResults) and list(loaded.results) == ["q1_cosine"]

    class Exploit:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    with pytest.raises(RefusedPickle, match="posix.system|os.system"):
        _ResultsUnpickler(io.BytesIO(pickle.dumps(Exploit()))).load()


def test_checks_refuse_tensor_subclasses():
    from course_lib.grading import assert_close

    class AlwaysClose(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return torch.zeros((), dtype=torch.bool) if func.__name__ == "any" else \
                super().__torch_function__(func, types, args, kwargs or {})

    with pytest.raises(AssertionError, match="plain torch.Tensor"):
        assert_close(torch.zeros(3).as_subclass(AlwaysClose), torch.ones(3), "x")


def test_tools_reports_tampering_in_the_error_column():
    from course_lib.grading import TAMPER_PREFIX, tamper_reason

    assert tools.TAMPER_PREFIX == TAMPER_PREFIX
    reason = tamper_reason(["torch.allclose", "course_lib.grading.assert_close"])
    assert reason == TAMPER_PREFIX + "course_lib.grading.assert_close, torch.allclose)"
    assert tamper_reason([f"x{i}" for i in range(9)], limit=6).endswith("x5 and 3 more)")
