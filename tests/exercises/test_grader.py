"""The autograder itself: precision hints, bad code that costs only its own question, a batch of submissions
(crashes, files that are no notebooks) graded into one CSV, the Gradescope bundle, and, without grading a notebook,
the helpers the tests and measured runs use (checks, budget checks, quick mode). The tests marked ``grading`` grade
real notebooks with the isolated grader; the attacks on it are in test_attacks.py.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time

import nbformat
import pytest
import torch

from helpers import grade_case, solution, tools, with_answers


class TinyDenoiser(torch.nn.Module):
    """A linear eps-model of 16x16 digits: enough to run a measured question's code path."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(256, 256)

    def forward(self, xt, t):
        return self.lin(xt.flatten(1)).view_as(xt)


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


@pytest.mark.parametrize(
    "function, question", [("cosine_betas", "q1_cosine"), ("q_posterior_mean_variance", "q4_posterior")]
)
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
    assert any(PRECISION_HINT.strip() in r.message or "float32's nearest value to 0.999" in r.message for r in failed)


BAD = {
    "cosine_betas": "def cosine_betas(T, s=0.008):\n    raise RuntimeError('not done yet')",
    "timestep_embedding": "def timestep_embedding(t, dim, max_period=10000):\n    while True:\n        try:\n"
    "            pass\n        except Exception:\n            pass",
    "q_posterior_mean_variance": "def q_posterior_mean_variance(x0, xt, t, betas):\n"
    "    for i in range(10**5):\n        print('debug', i)\n    return x0, x0",
    "p_sample_step": "def p_sample_step(eps, xt, t, betas, noise):\n    return xt.flatten()",
    "make_model": lambda source: source.replace(
        "def make_model():", "def make_model():\n    import sys\n    sys.exit(1)"
    ),
}
BAD_CELLS = {3: "while True:\n    pass", 4: "for i in range(10**6):\n    print('spam', i)", 5: "exit()"}


@pytest.mark.grading
def test_bad_code_costs_only_its_own_question(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_CELL_TIMEOUT", "10")  # the grader's own limits, shortened for this test
    monkeypatch.setenv("COURSE_GRADING_TEST_TIMEOUT", "5")
    path = tmp_path / "ddpm.ipynb"
    nbformat.write(with_answers(solution(), BAD, BAD_CELLS), path)
    result = grade_case(path, "ddpm", "bad-code")
    table = tools.format_table(result)
    assert not result.error, table
    expected = {
        "q1_cosine": "RuntimeError: not done yet",
        "q3_embedding": "timed out",
        "q4_posterior": "",
        "q5_reverse_step": "has shape",
        "q11_train": "SystemExit",
    }
    for q, reason in expected.items():
        assert result.scores[q] == 0 and reason in result.reasons[q], table
    for q in ("q2_q_sample", "q6_l_simple"):  # graded in full after the bad cells and the bad answers
        assert result.scores[q] == result.possible[q], table


@pytest.mark.grading
def test_grade_all_writes_one_row_per_submission(fresh, tmp_path):
    """One batch into one CSV: an untouched notebook (0, no error), one that kills its kernel, one that is no
    notebook at all: each gets its row and its reason."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(tools.ROOT / "ddpm" / "ddpm.ipynb", folder / "ddpm_untouched.ipynb")
    crash = with_answers(solution(), {}, {3: "import os\nos._exit(1)"})
    nbformat.write(crash, folder / "ddpm_kills_kernel.ipynb")
    (folder / "ddpm_not_a_notebook.ipynb").write_text("this is not JSON")
    start = time.perf_counter()
    assert tools.main(["grade-all", str(folder), "--set", "ddpm"]) == 0
    print(f"\ngrade-all of 3 files took {time.perf_counter() - start:.0f} s")
    rows = {r["file"]: r for r in csv.DictReader(open(folder / "scores.csv"))}
    assert set(rows) == {"ddpm_untouched.ipynb", "ddpm_kills_kernel.ipynb", "ddpm_not_a_notebook.ipynb"}
    untouched = rows["ddpm_untouched.ipynb"]
    assert untouched["error"] == "" and float(untouched["total"]) == 0 and float(untouched["possible"]) == 22
    assert "process ended" in rows["ddpm_kills_kernel.ipynb"]["error"]
    assert "could not read" in rows["ddpm_not_a_notebook.ipynb"]["error"]


def test_table_names_every_question_and_the_reason():
    result = tools.Result("x.ipynb", {"q1": 1.0, "q2": 0.0}, {"q1": 1.0, "q2": 2.0}, {"q2": "ValueError: bad"})
    table = tools.format_table(result)
    assert "q1" in table and "passed" in table and "ValueError: bad" in table and "total" in table


# --- the helpers the tests and measured runs use (fast, no notebook graded) -------------------------------


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
    """What the measured DDPM question grades, on samples whose answer is known: real digits no model was shown
    (held-out digits moved one pixel right) pass every threshold, memorised training digits (a nearest-neighbour
    "denoiser") and memorised held-out digits get no recognised-digit or Frechet point, one digit only (mode
    collapse) gets no coverage or Frechet point."""
    from course_lib.data import digits
    from course_lib.grading import score_samples

    test_x, test_y = digits("test", image_size=16)
    train_x = digits("train", image_size=16)[0]
    real = score_samples(torch.roll(test_x[:256], 1, dims=-1))
    assert real["near_copies"] == 0 and real["novel_recognized"] >= 0.9 and real["min_class_share"] >= 0.03
    assert real["frechet_ratio"] <= 1.0  # the question's threshold is 15: a small CPU model reaches about 10
    held_out = score_samples(test_x[:256])
    assert held_out["near_copies"] == 1 and held_out["novel_recognized"] == 0
    copies = score_samples(train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:256]])
    assert copies["recognized"] > 0.95 and copies["near_copies"] > 0.95 and copies["novel_recognized"] < 0.05
    ones = score_samples(torch.roll(test_x[test_y == 1], 1, dims=-1).repeat(8, 1, 1, 1)[:256])
    assert ones["novel_recognized"] > 0.9 and ones["min_class_share"] == 0 and ones["frechet_ratio"] > 100


def test_vae_budget_check_says_what_is_wrong():
    from course_lib.grading import check_vae_config
    from course_lib.vae import VAE, VAEConfig

    config = {"steps": 10, "batch_size": 8, "lr": 1e-3}
    small = lambda: VAE(VAEConfig(channels=(8, 16), blocks_per_level=0))
    assert check_vae_config(small, config) == config
    fixed = small()
    for make_model, cfg, match in [
        (lambda: fixed, config, "same weights"),
        (small, {**config, "steps": 2000}, "steps"),
        (small, {**config, "lr": 1}, "lr must be a float"),
        (small, {"steps": 10}, "exactly the keys"),
        (lambda: torch.nn.Linear(2, 2), config, "course_lib.vae.VAE"),
        (lambda: VAE(VAEConfig(likelihood="bernoulli")), config, "discretized_gaussian"),
        (lambda: VAE(VAEConfig(channels=(128, 256))), config, "parameters"),
    ]:
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
    for make_model, cfg, match in [
        (lambda: fixed, config, "same weights"),
        (lambda: Conv(1), config, r"has shape \(2, 1, 16, 16\), expected \(2, 2, 16, 16\)"),
        (Conv, {**config, "loss": "l_vlb"}, "loss must be one of"),
        (Conv, {**config, "steps": 10**6}, "steps"),
        (Conv, {**config, "schedule": "linear"}, "unknown keys"),
        (lambda: torch.nn.Linear(2000, 2000), config, "parameters"),
    ]:
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

    config = {"schedule": "linear", "num_timesteps": 20, "steps": 500, "batch_size": 16, "lr": 1e-3}
    report = grading.ddpm_digits_quality(TinyDenoiser, config)
    assert report["quick"] and report["n"] == 16
    grading.assert_quality(report, "recognized", 0.9)  # quick mode never fails on quality

    from course_lib.vae import VAE, VAEConfig

    report = grading.vae_digits_elbo(
        lambda: VAE(VAEConfig(channels=(8, 16), blocks_per_level=0)), {"steps": 1500, "batch_size": 16, "lr": 1e-3}
    )
    assert report["quick"] and report["bits_per_dim"] > 0
    grading.assert_quality(report, "bits_per_dim", below=0.1)


def test_ddim_sampler_check_says_what_is_wrong():
    from course_lib.grading import DDIM_BUDGET, check_ddim_sampler

    good = {"steps": DDIM_BUDGET["max_nfe"], "eta": 0.0, "spacing": "trailing"}
    assert check_ddim_sampler(good) == good and check_ddim_sampler({**good, "eta": "sigma_hat"})["eta"] == "sigma_hat"
    for sampler, match in [
        ({**good, "steps": 10}, "steps must be an int in 1 ... 6"),
        ({**good, "steps": 2.0}, "steps"),
        ({**good, "eta": 1.5}, "eta must be a number"),
        ({**good, "eta": True}, "eta"),
        ({**good, "spacing": "cosine"}, "spacing must be one of"),
        ({"steps": 6, "eta": 0.0}, r"is missing \['spacing'\]"),
        ([6, 0.0], "should be a dict"),
    ]:
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
    for guide, match in [
        ({**good, "steps": 50}, "steps must be an int in 1 ... 25"),
        ({**good, "steps": 10.0}, "steps"),
        ({**good, "steps": True}, "steps"),
        ({**good, "scale": -1.0}, "scale must be a number in"),
        ({**good, "scale": float("inf")}, "scale"),
        ({**good, "scale": "2"}, "scale"),
        ({**good, "scale": 1e3}, r"\[0, 100\]"),
        ({"scale": 2.0}, r"is missing \['steps'\]"),
        ({**good, "eta": 0.0}, r"unknown keys \['eta'\]"),
        ([2.0, 25], "should be a dict"),
    ]:
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


def test_latent_diffusion_settings_check_says_what_is_wrong():
    from course_lib.grading import LATENT_DIFFUSION_BUDGET, check_sampling_settings

    good = {"scheduler": "ddim", "steps": 10, "guidance_scale": 4.0}
    assert check_sampling_settings(good) == good
    assert check_sampling_settings({**good, "steps": 20, "guidance_scale": 1})["steps"] == 20  # unguided: one per step
    for sampler, match in [
        ({**good, "scheduler": "lms"}, "unknown scheduler 'lms'"),
        ({**good, "steps": 11}, "cost 22 U-Net evaluations per image .* the budget is 20"),
        ({**good, "steps": 21, "guidance_scale": 1.0}, "cost 21 U-Net evaluations"),
        ({**good, "guidance_scale": -2.0}, "is negative"),
        ({**good, "guidance_scale": 0.5}, r"\[1, 20\]"),
        ({**good, "guidance_scale": 25.0}, r"\[1, 20\]"),
        ({**good, "guidance_scale": float("nan")}, "number"),
        ({**good, "guidance_scale": "4"}, "number"),
        ({**good, "steps": 10.0}, "steps must be an int"),
        ({**good, "steps": 0}, "steps must be an int"),
        ({**good, "steps": True}, "steps"),
        ({"scheduler": "ddim", "steps": 10}, r"is missing \['guidance_scale'\]"),
        ({**good, "eta": 0.0}, r"unknown keys \['eta'\]"),
        (["ddim", 10, 4.0], "should be a dict"),
    ]:
        with pytest.raises(AssertionError, match=match):
            check_sampling_settings(sampler)
    with pytest.raises(TypeError):
        LATENT_DIFFUSION_BUDGET["max_nfe"] = 1000  # read-only


def test_latent_diffusion_quick_mode_counts_the_network_evaluations(monkeypatch):
    from course_lib import grading

    monkeypatch.setenv(grading.QUICK_ENV, "1")
    for sampler, nfe in (
        ({"scheduler": "ddim", "steps": 3, "guidance_scale": 4.0}, 6),
        ({"scheduler": "euler", "steps": 4, "guidance_scale": 1.0}, 4),
    ):
        report = grading.prompt_adherence(sampler)
        assert report["quick"] and report["n"] == 6 and report["prompts"] == 3 and report["nfe"] == nfe, report
        assert all(0 <= report[k] <= 1 for k in ("all", "shape", "colour", "size", "position"))
    grading.assert_quality(report, "all", 1.1)  # quick mode never fails on quality
    grading.assert_quality(report, "frechet", below=0.0)


def test_checks_refuse_tensor_subclasses():
    from course_lib.grading import assert_close

    class AlwaysClose(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return (
                torch.zeros((), dtype=torch.bool)
                if func.__name__ == "any"
                else super().__torch_function__(func, types, args, kwargs or {})
            )

    with pytest.raises(AssertionError, match="plain torch.Tensor"):
        assert_close(torch.zeros(3).as_subclass(AlwaysClose), torch.ones(3), "x")


@pytest.mark.grading
def test_gradescope_bundle_runs_the_isolated_grader(fresh, tmp_path):
    """The autograder zip, unpacked as Gradescope does (/autograder/source, submission, results): its
    run_autograder calls grader.gradescope, which writes results.json: the solution full marks, a blank notebook 0."""
    import subprocess
    import zipfile

    source = tmp_path / "autograder" / "source"
    with zipfile.ZipFile(tools.bundle_path("ddim")) as zf:
        zf.extractall(source)
        assert "python -m grader.gradescope" in zf.read("run_autograder").decode()
    scores = {}
    for label, nb in [("solution", solution("ddim")), ("blank", nbformat.read(tools.ROOT / "ddim" / "ddim.ipynb", 4))]:
        submission, results = tmp_path / "autograder" / "submission", tmp_path / "autograder" / "results"
        shutil.rmtree(submission, ignore_errors=True)
        submission.mkdir()
        nbformat.write(nb, submission / "ddim.ipynb")
        subprocess.run(
            [sys.executable, "-m", "grader.gradescope", "--root", str(tmp_path / "autograder")],
            cwd=source,
            check=True,
            capture_output=True,
            timeout=600,
        )
        data = json.loads((results / "results.json").read_text())
        assert {t["name"] for t in data["tests"]} == set(tools.question_points("ddim")), data
        scores[label] = data["score"]
    assert scores == {"solution": sum(tools.question_points("ddim").values()), "blank": 0}, scores


def test_lora_settings_check_says_what_is_wrong():
    from course_lib.grading import LORA_BUDGET, check_lora_settings

    good = {"rank": 4, "targets": ["to_q", "to_k", "to_v", "to_out.0"], "steps": 300, "lr": 3e-3, "prior_weight": 1.0}
    checked = check_lora_settings(good)
    assert 0.019 < checked["fraction"] < 0.02 and checked["targets"] == good["targets"]
    assert check_lora_settings({**good, "rank": 16, "targets": ["attn2.to_k"]})["fraction"] < 0.02
    for settings, match in [
        ({**good, "rank": 5}, r"trains 2\.\d\d% .* the budget is 2%"),
        ({**good, "targets": ["to_kv"]}, r"unknown targets \['to_kv'\]"),
        ({**good, "targets": "to_q"}, "non-empty list"),
        ({**good, "targets": []}, "non-empty list"),
        ({**good, "steps": 401}, r"\[1, 400\]"),
        ({**good, "steps": 300.0}, "steps must be an int"),
        ({**good, "rank": 0}, "rank must be an int"),
        ({**good, "rank": True}, "rank"),
        ({**good, "lr": 0.0}, r"lr must be in \(0"),
        ({**good, "lr": float("nan")}, "number"),
        ({**good, "prior_weight": -1.0}, r"prior_weight must be in \[0"),
        ({**good, "prior_weight": "1"}, "number"),
        ({k: v for k, v in good.items() if k != "lr"}, r"is missing \['lr'\]"),
        ({**good, "batch_size": 16}, r"unknown keys \['batch_size'\]"),
        ([4, 300], "should be a dict"),
    ]:
        with pytest.raises(AssertionError, match=match):
            check_lora_settings(settings)
    with pytest.raises(TypeError):
        LORA_BUDGET["max_fraction"] = 1.0  # read-only


def test_sds_settings_check_says_what_is_wrong():
    from course_lib.grading import SDS_BUDGET, check_sds_settings

    good = {"guidance_scale": 1.0, "lr": 0.03, "steps": 300, "t_range": [0.02, 0.98]}
    assert check_sds_settings(good) == {**good, "t_range": (0.02, 0.98)}
    assert check_sds_settings({**good, "guidance_scale": 100, "steps": 400, "t_range": (0.2, 0.5)})["steps"] == 400
    for settings, match in [
        ({**good, "steps": 401}, r"\[1, 400\]"),
        ({**good, "steps": 300.0}, "steps must be an int"),
        ({**good, "steps": True}, "steps must be an int"),
        ({**good, "guidance_scale": 0.5}, r"guidance_scale must be in \[1, 100\]"),
        ({**good, "guidance_scale": 150.0}, r"guidance_scale must be in \[1, 100\]"),
        ({**good, "guidance_scale": float("nan")}, "must be a number"),
        ({**good, "lr": 0.0}, r"lr must be in \(0, 1\]"),
        ({**good, "lr": "0.1"}, "number"),
        ({**good, "t_range": [0.5, 0.2]}, "0 < t_min < t_max < 1"),
        ({**good, "t_range": [0.0, 0.98]}, "0 < t_min < t_max < 1"),
        ({**good, "t_range": 0.5}, r"list \[t_min, t_max\]"),
        ({**good, "t_range": [0.1, 0.5, 0.9]}, r"list \[t_min, t_max\]"),
        ({k: v for k, v in good.items() if k != "lr"}, r"is missing \['lr'\]"),
        ({**good, "space": "image"}, r"unknown keys \['space'\]"),
        ([1.0, 300], "should be a dict"),
    ]:
        with pytest.raises(AssertionError, match=match):
            check_sds_settings(settings)
    with pytest.raises(TypeError):
        SDS_BUDGET["max_steps"] = 10_000  # read-only
