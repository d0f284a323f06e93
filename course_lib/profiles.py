"""Run profiles: one notebook, three sizes.

``quick`` is for CI and nbval (seconds per cell), ``cpu`` is the default and builds the website on a laptop,
``gpu`` is picked automatically when CUDA is present (Colab) and scales data and training up.
Set the environment variable ``COURSE_PROFILE`` to choose one explicitly.
"""

from __future__ import annotations

import os
import random
from typing import Literal, TypeVar

import numpy as np
import torch

Profile = Literal["quick", "cpu", "gpu"]
PROFILES: tuple[str, ...] = ("quick", "cpu", "gpu")
T = TypeVar("T")


def get_profile() -> Profile:
    """The active profile: ``$COURSE_PROFILE`` if set, else "gpu" when CUDA is available, else "cpu"."""
    name = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(
            f"COURSE_PROFILE={name!r} is not a profile; expected one of {PROFILES}. "
            "Unset it to pick automatically, or e.g. `export COURSE_PROFILE=cpu`."
        )
    return name  # type: ignore[return-value]


def pick(*, quick: T, cpu: T, gpu: T) -> T:
    """Return the value for the active profile, e.g. ``steps = pick(quick=50, cpu=2000, gpu=20000)``."""
    return {"quick": quick, "cpu": cpu, "gpu": gpu}[get_profile()]


DEVICES: tuple[str, ...] = ("cpu", "cuda", "mps")


def default_device() -> torch.device:
    """``$COURSE_DEVICE`` if set ("cpu", "cuda" or "mps"), else CUDA if available, else Apple's MPS, else the CPU.

    On MPS the library keeps its float64 arithmetic (schedules, likelihood terms) on the CPU, since MPS has no
    float64, and ops without an MPS kernel fall back to the CPU (``PYTORCH_ENABLE_MPS_FALLBACK``, set by
    ``import course_lib``). If a page still fails on MPS, ``COURSE_DEVICE=cpu`` runs it on the CPU.
    """
    name = os.environ.get("COURSE_DEVICE", "").strip().lower()
    if name:
        if name not in DEVICES:
            raise ValueError(
                f"COURSE_DEVICE={name!r} is not a device; expected one of {DEVICES}. "
                "Unset it to pick automatically, or e.g. `export COURSE_DEVICE=cpu`."
            )
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        }
        if not available[name]:
            raise ValueError(
                f"COURSE_DEVICE={name!r}, but this machine's torch cannot use {name} "
                f"(torch {torch.__version__}). Unset COURSE_DEVICE or set it to 'cpu'."
            )
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded with ``seed`` for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
