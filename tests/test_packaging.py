"""The released package holds the whole library: every module, sub-package and shipped checkpoint.

Students install the sdist/wheel (the set-up cell's ``pip install course_lib @ git+...``), not the working tree,
so a module or checkpoint missing from ``pyproject.toml``'s package list only fails in their Colab. ``make
colab-check`` proves the same by running the notebooks; this is the fast version that runs in ``make test``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _library_files() -> set[str]:
    files = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "course_lib").rglob("*.py") if "__pycache__" not in p.parts
    }
    manifest = json.loads((ROOT / "course_lib" / "checkpoints" / "manifest.json").read_text())
    files |= {f"course_lib/checkpoints/{entry['file']}" for entry in manifest.values()}
    for pipeline in (ROOT / "course_lib" / "checkpoints").iterdir():  # saved pipelines: every file their manifest lists
        if (pipeline / "manifest.json").is_file():
            listed = json.loads((pipeline / "manifest.json").read_text())["files"]
            files |= {f"course_lib/checkpoints/{pipeline.name}/{name}" for name in [*listed, "manifest.json"]}
    return files | {"course_lib/checkpoints/manifest.json"}


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> Path:
    """sdist and wheel built from a copy of the sources (so the checkout gets no build/ or egg-info)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "course_lib", src / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    hooks = (
        "from setuptools import build_meta as b; import sys; out = sys.argv[1]; b.build_sdist(out); b.build_wheel(out)"
    )
    subprocess.run([sys.executable, "-c", hooks, str(out)], cwd=src, check=True, capture_output=True)
    return out


def test_wheel_holds_every_module_and_checkpoint(dists):
    (wheel,) = dists.glob("course_lib-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_library_files() - names)
    assert not missing, (
        f"the wheel lacks {missing}: add the sub-package to [tool.setuptools] packages or the "
        "files to package-data in pyproject.toml"
    )


def test_sdist_holds_every_module_and_checkpoint(dists):
    (sdist,) = dists.glob("course_lib-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = sorted(_library_files() - names)
    assert not missing, f"the sdist lacks {missing} (pip builds the student's wheel from it)"
