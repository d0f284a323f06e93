"""The autograder itself: precision hints, bad code that costs only its own question, a batch of submissions
(crashes, files that are no notebooks) graded into one CSV, and, without grading a notebook, the helpers (time
limits, output caps, budget checks, quick mode) and the in-kernel tamper detection that the otter bundle (Gradescope)
still uses, piece by piece. The tests marked ``grading`` grade real notebooks with the isolated grader; the attacks
on it are in test_attacks.py.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time

import nbformat
import pytest
import torch

from helpers import SETS, grade_case, solution, tools, with_answers


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


@pytest.mark.grading
def test_bad_code_costs_only_its_own_question(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_CELL_TIMEOUT", "10")  # the grader's own limits, shortened for this test
    monkeypatch.setenv("COURSE_GRADING_TEST_TIMEOUT", "5")
    path = tmp_path / "ddpm.ipynb"
    nbformat.write(with_answers(solution(), BAD, BAD_CELLS), path)
    result = grade_case(path, "ddpm", "bad-code")
    table = tools.format_table(result)
    assert not result.error, table
    expected = {"q1_cosine": "RuntimeError: not done yet", "q3_embedding": "timed out",
                "q4_posterior": "", "q5_reverse_step": "has shape", "q11_train": "SystemExit"}
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

    config = {"schedule": "linear", "num_timesteps": 20, "steps": 500, "batch_size": 16, "lr": 1e-3}
    report = grading.ddpm_digits_quality(TinyDenoiser, config)
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

        class Tiny(torch.nn.Module):  # a student's own model, defined while the guards watch
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
        subprocess.run([sys.executable, "-m", "grader.gradescope", "--root", str(tmp_path / "autograder")],
                       cwd=source, check=True, capture_output=True, timeout=600)
        data = json.loads((results / "results.json").read_text())
        assert {t["name"] for t in data["tests"]} == set(tools.question_points("ddim")), data
        scores[label] = data["score"]
    assert scores == {"solution": sum(tools.question_points("ddim").values()), "blank": 0}, scores
