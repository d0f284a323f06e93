"""The SDS set's measured run: score distillation of the shipped tiny Stable Diffusion's latents with a student's
settings, judged on how well the decoded images follow their prompts.

Poole et al. 2022 (DreamFusion), Sec. 3, as chapter 7 page 1 runs it in latent space: ``SDS_PROMPTS`` (four held-out
attribute combinations: the U-Net never saw them in training) x ``SDS_STARTS`` random starting latents each, 16 latents
``[4, 8, 8]`` drawn from ``torch.Generator().manual_seed(seed)``, optimised by ``course_lib.sds.score_distillation``
(``space="latent"``, Adam, the same generator drawing every step's t and eps) under the shipped pipeline
``text_to_image.load_pipeline(scheduler="ddim")`` with the student's guidance scale omega, learning rate, number of
steps and t range; the shipped judge reads the decoded images (``judge.adherence``) and ``guidance.colour_error`` says
how far each image's foreground colour is from the palette colour asked for (RGB units 0..255). The student's notebook
supplies only the settings: every line that optimises and measures is ``course_lib``'s, run in the grader's process.
``check_sds_settings`` enforces ``SDS_BUDGET`` before anything runs.

Graded (one point each): ``all`` (shape, colour, size and position all judged right) >= 0.5 and >= 0.85;
``colour_error`` (mean over the 16 images, RGB units) below 40 with ``all`` >= 0.5, and below 20 with ``all`` >= 0.85.
Measured (this procedure, one thread; seed 0, seeds 1 and 2 in brackets; exercises/INSTRUCTORS.md has the times):

    omega, lr, steps, t range             all                 colour_error        points
    1, 0.03, 300, [0.02, 0.98] (solution) 1.00 (1.00, 1.00)   9.7 (10.2, 10.0)    4 (4, 4)
    3, 0.03, 300, [0.02, 0.98]            1.00 (1.00)         14.5 (14.2)         4 (4)
    7.5, 0.03, 300, [0.02, 0.98]          1.00 (1.00)         26.3 (28.4)         3 (3)
    25, 0.03, 300, [0.02, 0.98]           0.75 (0.75)         58.7 (63.2)         1 (1)
    100, 0.03, 300, [0.02, 0.98]          0.62 (0.62)         81.8 (86.2)         1 (1)
    1, 0.03, 100, [0.02, 0.98]            0.31 (0.38)         112 (120)           0 (0)
    1, 0.03, 300, [0.02, 0.5]             1.00                9.6                 4
    1, 0.1, 400, [0.02, 0.98]             1.00                9.1                 4

A large omega shifts the colours first (the judge still reads the right colour name at 7.5) and then the colour names
and shapes; too few steps leave the latents short of the prompt. 300 steps take 18-26 s on one thread.
"""

from __future__ import annotations

import json
import math
import time
from types import MappingProxyType

from .checks import assert_settings
from .measured import _measured, quick_mode

# read-only: no notebook raises its own budget
SDS_BUDGET = MappingProxyType({"max_steps": 400, "max_guidance_scale": 100.0, "max_lr": 1.0})
SDS_PROMPTS = (
    "a large green circle at the bottom left",
    "a small yellow square at the center",
    "a large red triangle at the top right",
    "a small blue cross at the bottom right",
)
SDS_STARTS = 4  # random starting latents per prompt
QUICK = {"prompts": 2, "starts": 1, "max_steps": 5}  # quick mode: CI plumbing only


def check_sds_settings(settings: dict) -> dict:
    """Validate a student's ``SDS`` against ``SDS_BUDGET``; return a copy with ``t_range`` as a tuple of floats.

    Keys: ``guidance_scale`` (omega, diffusers' convention, a number in [1, max_guidance_scale]; 1 = the conditional
    model alone), ``lr`` (Adam's learning rate, in (0, max_lr]), ``steps`` (an int in [1, max_steps]) and ``t_range``
    (``[t_min, t_max]``, fractions of the schedule with 0 < t_min < t_max < 1; DreamFusion's is [0.02, 0.98]).
    """
    assert_settings(
        settings,
        "SDS",
        ("guidance_scale", "lr", "steps", "t_range"),
        '{"guidance_scale": 100.0, "lr": 0.03, "steps": 200, "t_range": [0.02, 0.98]}',
    )
    b = SDS_BUDGET
    omega, lr, steps, t_range = settings["guidance_scale"], settings["lr"], settings["steps"], settings["t_range"]

    def number(name, value):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise AssertionError(f"SDS: {name} must be a number, got {value!r}.")
        return float(value)

    omega, lr = number("guidance_scale", omega), number("lr", lr)
    if not 1.0 <= omega <= b["max_guidance_scale"]:
        raise AssertionError(
            f"SDS: guidance_scale must be in [1, {b['max_guidance_scale']:g}] (1 = the conditional "
            f"model alone, DreamFusion uses 100), got {omega!r}."
        )
    if not 0.0 < lr <= b["max_lr"]:
        raise AssertionError(f"SDS: lr must be in (0, {b['max_lr']:g}], got {lr!r}.")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= b["max_steps"]:
        raise AssertionError(f"SDS: steps must be an int in [1, {b['max_steps']}] (the step budget), got {steps!r}.")
    if isinstance(t_range, str) or not isinstance(t_range, (list, tuple)) or len(t_range) != 2:
        raise AssertionError(f"SDS: t_range must be a list [t_min, t_max], got {t_range!r}.")
    lo, hi = number("t_range[0]", t_range[0]), number("t_range[1]", t_range[1])
    if not 0.0 < lo < hi < 1.0:
        raise AssertionError(
            f"SDS: t_range must satisfy 0 < t_min < t_max < 1 (fractions of the schedule), got "
            f"{list(t_range)}; DreamFusion uses [0.02, 0.98]."
        )
    return {"guidance_scale": omega, "lr": lr, "steps": steps, "t_range": (lo, hi)}


def sds_adherence(settings: dict, *, seed: int = 0) -> dict:
    """Run latent SDS with ``settings`` (the fixed procedure above) and judge the decoded images.

    Returns ``judge.adherence``'s ``shape``, ``colour``, ``size``, ``position`` and ``all``; ``colour_error`` (mean
    over the images, RGB units); ``steps``, ``images``, ``sds_s`` (wall time of the optimisation) and ``quick``.
    Repeated calls with the same settings and seed return (a copy of) the cached report.
    """
    import torch

    from ..data import COLOURS, parse_caption
    from ..guidance import colour_error
    from ..judge import ShapesJudge, adherence
    from ..sds import score_distillation
    from ..text_to_image import load_pipeline

    def run() -> dict:
        cfg = check_sds_settings(settings)
        quick = quick_mode()
        prompts = SDS_PROMPTS[: QUICK["prompts"]] if quick else SDS_PROMPTS
        starts = QUICK["starts"] if quick else SDS_STARTS
        steps = min(cfg["steps"], QUICK["max_steps"]) if quick else cfg["steps"]
        pipe = load_pipeline(scheduler="ddim")
        judge = ShapesJudge.from_pretrained()
        captions = [p for p in prompts for _ in range(starts)]
        size, channels = pipe.unet.config.sample_size, pipe.unet.config.in_channels
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(len(captions), channels, size, size, generator=generator).requires_grad_()
        result = score_distillation(
            pipe,
            lambda step: (z, captions),
            [z],
            steps=steps,
            lr=cfg["lr"],
            guidance_scale=cfg["guidance_scale"],
            t_range=cfg["t_range"],
            generator=generator,
            space="latent",
            progress=False,
        )
        scores = adherence(judge, result.images, captions)
        colours = [COLOURS[parse_caption(c)["colour"]] for c in captions]
        error = colour_error(result.images, colours).mean().item()
        return {
            **scores,
            "colour_error": error,
            "steps": steps,
            "images": len(captions),
            "sds_s": round(result.wall_time_s, 1),
            "quick": quick,
        }

    key = ("sds_adherence", json.dumps(settings, sort_keys=True, default=str), seed, quick_mode())
    return _measured(key, run)
