"""A clever student against the isolated grader: each attack of issue 24, on a blank notebook, must score 0.

Every class of attack that raised a blank notebook's score under the old in-kernel grader, written as a
submission would write it. The grader runs the submission in its own unprivileged process (``exercises/grader``),
so these tests need root (CI and the graders run as root; elsewhere the run is "NOT ISOLATED" and they skip).
The honest solution, partial answers and blank notebooks are graded as before in ``test_sets.py``.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from helpers import grade_case, tools, with_answers

pytestmark = [
    pytest.mark.grading,
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs a root grader (it drops to another uid)"),
]

# A blank answer that returns something of the right kind, so that only the attack could earn points.
ZEROS_DDIM = {
    name: f"def {name}(*args, **kwargs):\n    import torch\n    return torch.zeros(1, dtype=torch.float64)"
    for name in (
        "ddim_sigma",
        "ddim_step",
        "ddim_timesteps",
        "ddim_invert_step",
        "noise_moments",
        "eta_of_sigma_hat",
        "sigma_hat_grain",
    )
}

FIND_REPO = "import course_lib, pathlib\nREPO = pathlib.Path(course_lib.__file__).resolve().parents[1]\n"

ATTACKS = {
    # read the solutions notebook and the master, run their code (15/15 under the old grader)
    "read_solutions": (
        {},
        {
            999: FIND_REPO
            + (  # the last cell: after the blank answers
                "import json\nfound = []\n"
                "for path in [REPO / 'exercises/dist/ddim/ddim-solution.ipynb', REPO / 'exercises/source/ddim/ddim.ipynb']:\n"
                "    try:\n"
                "        cells = json.loads(path.read_text())['cells']\n"
                "    except OSError as e:\n"
                "        found.append(type(e).__name__)\n"
                "        continue\n"
                "    for c in cells:\n"
                "        if c['cell_type'] == 'code' and 'def ' in ''.join(c['source']):\n"
                "            try:\n"
                "                exec(''.join(c['source']).replace('# BEGIN SOLUTION', ''), globals())\n"
                "            except Exception:\n"
                "                pass\n"
                "pathlib.Path('PIDFILE').write_text(','.join(found))"
            )
        },
    ),
    # read the hidden tests: the bundle, the grader's folders in /tmp, the course's own grading tests
    "read_hidden_tests": (
        {},
        {
            3: FIND_REPO
            + (
                "import glob, zipfile\nstolen = []\n"
                "for path in [REPO / 'exercises/dist/ddim/ddim-autograder.zip', *glob.glob('/tmp/grader-*/tests/*.py'),\n"
                "             *glob.glob(str(REPO / 'tests/exercises/*.py')), REPO / 'tests/exercises/set_ddim.py',\n"
                "             *glob.glob(str(REPO / '.git/objects/pack/*')), REPO / '.git/HEAD']:\n"
                "    try:\n"
                "        stolen.append(open(path, 'rb').read()[:10])\n"
                "    except OSError:\n"
                "        pass\n"
                "pathlib.Path('PIDFILE').write_text(str(len(stolen)))"
            )
        },
    ),
    # a function that reads the calling test's expected value from its frame (15/15)
    "frame_inspection": (
        {
            name: (
                f"def {name}(*args, **kwargs):\n    import sys\n    f = sys._getframe(1)\n"
                "    while f is not None:\n"
                "        for key in ('expected', 'want', 'reference', 'ref'):\n"
                "            if key in f.f_locals:\n"
                "                v = f.f_locals[key]\n"
                "                return v(*args, **kwargs) if callable(v) else v\n"
                "        f = f.f_back\n    return None"
            )
            for name in ("ddim_sigma", "ddim_step", "ddim_timesteps")
        },
        {},
    ),
    # patch the judge: comparisons, the course's checks, a torch function mode, numpy, a profile hook (13.25)
    "patch_the_judge": (
        ZEROS_DDIM,
        {
            999: (
                "import sys, numpy, torch, course_lib.grading, course_lib.grading.checks\n"
                "from torch.overrides import TorchFunctionMode\n"
                "for m in (course_lib.grading, course_lib.grading.checks):\n"
                "    m.assert_close = m.assert_tensor = lambda *a, **k: None\n"
                "torch.allclose = torch.equal = lambda *a, **k: True\n"
                "numpy.allclose = numpy.testing.assert_allclose = lambda *a, **k: True\n"
                "class Yes(TorchFunctionMode):\n"
                "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
                "        out = func(*args, **(kwargs or {}))\n"
                "        return True if func in (torch.Tensor.__eq__, torch.allclose, torch.isclose) else out\n"
                "Yes().__enter__()\n"
                "sys.setprofile(lambda frame, event, arg: None)\n"
                "import builtins\nbuiltins.isinstance = lambda *a: True"
            )
        },
    ),
    # numbers that compare equal to anything, a budget that claims 6 steps and uses 50 (7.08)
    "liar_numbers": (
        {
            **ZEROS_DDIM,
            "GRAIN": "class Any(float):\n    __eq__ = __le__ = __ge__ = __lt__ = __gt__ = lambda s, o: True\n"
            "    __hash__ = float.__hash__\n    def __abs__(self): return Any(0.0)\n"
            "    def __sub__(self, o): return Any(0.0)\n    __rsub__ = __sub__\n\n"
            "GRAIN = Any(123.0)",
            "SAMPLER": "class Six(int):\n    __le__ = __lt__ = lambda s, o: True\n    __eq__ = lambda s, o: True\n"
            "    __hash__ = int.__hash__\n\n"
            "SAMPLER = {'steps': Six(50), 'eta': 0.0, 'spacing': 'trailing'}",
        },
        {},
    ),
    # the course's own answers, called from the notebook (16/16 on the improved-DDPM set)
    "course_lib_answers": (
        {
            "ddim_sigma": "def ddim_sigma(*args):\n    from course_lib.ddim import ddim_sigma as r\n"
            "    import torch\n    return torch.as_tensor(r(*args), dtype=torch.float64)",
            "ddim_timesteps": "def ddim_timesteps(*args):\n    import course_lib.ddim\n"
            "    return course_lib.ddim.ddim_timesteps(*args)",
        },
        {},
    ),
    # a process that outlives the notebook and waits to rewrite the results (15/15): it must be dead when
    # grading ends, and it could not have written anywhere the grader reads
    "outlive_the_grader": (
        {},
        {
            3: (
                "import subprocess, sys, os\n"
                "code = ('import os, time, pathlib\\nif os.fork(): os._exit(0)\\nos.setsid()\\n'\n"
                "        'pathlib.Path(\"PIDFILE\").write_text(str(os.getpid()))\\n'\n"
                "        'for i in range(600):\\n    time.sleep(1)\\n')\n"
                "subprocess.Popen([sys.executable, '-c', code], start_new_session=True)\n"
                "import time\ntime.sleep(1)"
            )
        },
    ),
}


def _attack_notebook(name: str, tmp_path: Path) -> tuple[Path, Path]:
    answers, extra = ATTACKS[name]
    pidfile = Path("/tmp") / f"attack-{uuid.uuid4().hex}.pid"  # /tmp: the one place both sides may write
    extra = {k: v.replace("PIDFILE", str(pidfile)) for k, v in extra.items()}
    student = nbformat.read(tools.ROOT / "ddim" / "ddim.ipynb", as_version=4)
    path = tmp_path / "ddim.ipynb"
    nbformat.write(with_answers(student, answers, extra), path)
    return path, pidfile


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_scores_zero(fresh, tmp_path, attack):
    path, pidfile = _attack_notebook(attack, tmp_path)
    result = grade_case(path, "ddim", f"attack-{attack}")
    table = tools.format_table(result)
    assert result.total == 0, table
    assert result.isolation.startswith("isolated"), table
    if attack == "course_lib_answers":  # refused with the rule, not merely wrong
        for q in ("q1_sigma", "q3_timesteps"):
            assert "is the course's answer" in result.reasons[q], table
    if attack == "read_solutions":  # it tried, and the system said no (not merely: the files were missing)
        assert pidfile.read_text() == "PermissionError,PermissionError", table
        pidfile.unlink()
    if attack == "read_hidden_tests":
        assert pidfile.read_text() == "0", f"the submission read {pidfile.read_text()} of the grader's files"
        pidfile.unlink()
    if attack == "outlive_the_grader":
        assert pidfile.exists(), "the attack did not run (no pid file)"
        pid = int(pidfile.read_text())
        pidfile.unlink()
        time.sleep(0.2)
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} started by the submission outlived grading"


def test_the_grader_refuses_exactly_existing_functions():
    """The policy's names all exist (a renamed library function would silently unlock its answer)."""
    import importlib

    from grader.policy import REFERENCE_ANSWERS

    for set_name, names in REFERENCE_ANSWERS.items():
        assert set_name in tools.exercise_sets()
        for name in names:
            module, _, attr = name.partition(":")
            assert callable(getattr(importlib.import_module(module), attr, None)), name


# --- the measured questions: models that have seen the evaluation data (full size only: quick mode passes every
# quality threshold by design, so there is nothing to game)

MEMORISER = '''
import torch
from course_lib.data import digits
from course_lib.distributions import quantize
from course_lib.schedules import get_schedule


class Memoriser(torch.nn.Module):
    """Stores every digit, train and held-out; predicts the noise of the nearest one exactly."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(1))
        self.register_buffer("memory", torch.cat([quantize(digits(s, image_size=16)[0]) for s in ("train", "test")]))
        self.register_buffer("ab", get_schedule("cosine", 1000).alpha_bar.float())

    def forward(self, xt, t):
        ab = self.ab[t].view(-1, 1, 1, 1)
        pred = (ab.sqrt()[:, None] * self.memory[None]).flatten(2)  # [B, M, D]: sqrt(alpha_bar_t) x0 per digit
        nearest = torch.cdist(xt.flatten(1)[:, None], pred)[:, 0].argmin(1)
        x0 = self.memory[nearest]
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt() + 0 * self.w


def make_model():
    return Memoriser()


TRAIN_CONFIG = {"loss": "l_simple", "steps": 1, "batch_size": 8, "lr": 1e-3}
'''

PRETRAINED = '''
import torch
from course_lib.unet import UNet


def make_model():
    """The shipped 54-minute model, nudged so that two calls differ (the old grader's only check)."""
    model = UNet.from_pretrained("iddpm_digits_hybrid")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-9 * torch.randn_like(p))
    return model


TRAIN_CONFIG = {"loss": "l_hybrid", "steps": 1, "batch_size": 8, "lr": 1e-9}
'''


def _full_size_only():
    if os.environ.get("COURSE_GRADING_QUICK") == "1":
        pytest.skip("quick mode: measured questions are plumbing checks")


@pytest.mark.parametrize(
    "make_model, reason",
    [(MEMORISER, "memorised"), (PRETRAINED, "before any training")],
    ids=["memoriser-of-all-digits", "shipped-checkpoint"],
)
def test_a_model_that_has_seen_the_evaluation_data_scores_zero(fresh, tmp_path, make_model, reason):
    """Improved DDPM, full size: a 'model' that stores all 1797 digits and predicts their noise exactly (the bound
    floor), and the shipped 54-minute model nudged by 1e-9 (the untrained bound) both get 0 on q9, with the reason."""
    _full_size_only()
    student = nbformat.read(tools.ROOT / "iddpm" / "iddpm.ipynb", as_version=4)
    path = tmp_path / "iddpm.ipynb"
    nbformat.write(with_answers(student, {"make_model": make_model}), path)
    result = grade_case(path, "iddpm", f"attack-{reason.split()[0]}")
    table = tools.format_table(result)
    assert result.scores["q9_train"] == 0 and reason in result.reasons["q9_train"], table
