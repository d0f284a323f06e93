"""The LoRA set's measured run: LoRA-DreamBooth on the shipped tiny Stable Diffusion with a student's settings,
judged on the subject it learns and on how far the rest of the model drifts.

Ruiz et al. 2023 (DreamBooth) with Hu et al. 2021's low-rank update, as chapter 8 page 3 runs it: five renders of the
held-out shape in red (``dreambooth.subject_captions(5, seed=0)``, rendered with seed 3), captioned "a sks shape";
64 prior images the *base* model draws for "a shape" (DDIM 20 steps, no guidance, seed 1); ``train_dreambooth`` on
``dreambooth_data`` with the student's rank, targets, steps, learning rate and prior weight (8 subject and 8 prior rows
per step, seed 0); then ``evaluate_dreambooth`` (32 samples per prompt, 30 ordinary held-out prompts, g = 4, 20 DDIM
steps, seed 7). The student's notebook supplies only the settings: every line that trains and measures is
``course_lib``'s, run in the grader's process. ``check_lora_settings`` enforces ``LORA_BUDGET`` before anything runs:
at most 2 % of the U-Net's parameters trainable (``count_parameters`` after ``inject_lora``; rank 4 on every
attention projection is 1.98 %) and at most 400 steps (about 1 minute of training on one CPU thread at 8 + 8 rows).

Graded (one point each, every one with ``fidelity`` >= 0.7: the subject learned): ``fidelity`` ("a sks shape" judged
the held-out shape) >= 0.7; ``class_to_subject`` ("a shape" judged the subject) below 0.3; ``ordinary`` (judge adherence
on 30 ordinary prompts) >= 0.3; ``recontext`` ("a sks shape at the bottom right" is the subject there) >= 0.8. Measured
(this procedure, one thread; exercises/INSTRUCTORS.md has the table with train times):

    rank, targets, steps, lr, lambda         fidelity  class_to_subject  ordinary  recontext  points
    4, to_q/k/v/out, 300, 3e-3, 3 (solution)   0.91      0.00              0.53      1.00       4
      the same, training seeds 1 and 2         0.97/0.97 0.06/0.03         0.43/0.40 1.00/1.00  4/4
    4, to_q/k/v/out, 300, 3e-3, 1 (page 8.3)   0.78      0.19              0.33      0.94       4
      the same, training seed 1                1.00      0.72              0.27      0.91       2
    4, to_q/k/v/out, 300, 3e-3, 0              1.00      0.94              0.20      1.00       2
    4, to_q/k/v/out, 400, 3e-3, 1              1.00      0.62              0.20      1.00       2
    4, to_q/k/v/out, 400, 1e-2, 1              1.00      0.22              0.20      0.22       2
    4, attn2.to_k/v, 300, 3e-3, 1              0.62      0.94              0.27      0.97       0
    2, to_q/k/v/out, 150, 1e-3, 1              0.12      0.38              0.60      0.06       0
"""

from __future__ import annotations

import json
import math
import time
from types import MappingProxyType

from .checks import assert_settings
from .measured import _measured, quick_mode

# read-only: no notebook raises its own budget
LORA_BUDGET = MappingProxyType({"max_fraction": 0.02, "max_steps": 400, "max_lr": 0.1, "max_prior_weight": 10.0})
LORA_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "attn1.to_q",
    "attn1.to_k",
    "attn1.to_v",
    "attn1.to_out.0",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
)  # names inject_lora matches in the U-Net
N_SUBJECT, N_PRIOR, BATCH, SAMPLES, N_ORDINARY = 5, 64, 8, 32, 30
QUICK = {"n_prior": 8, "batch": 4, "max_steps": 20, "samples": 4, "n_ordinary": 4}  # quick mode: CI plumbing only


def _fraction(rank: int, targets) -> float:
    """Trainable fraction after ``inject_lora(unet, targets, rank)``, from the layers' shapes (no weights needed)."""
    from ..lora import count_lora_parameters
    from ..text_to_image import load_pipeline

    unet = load_pipeline().unet
    lora = count_lora_parameters(unet, targets, rank)
    return lora / (sum(p.numel() for p in unet.parameters()) + lora)


def check_lora_settings(settings: dict) -> dict:
    """Validate a student's ``LORA`` against ``LORA_BUDGET``; return a copy with ``fraction`` added.

    Keys: ``rank`` (an int >= 1), ``targets`` (a non-empty list of names from ``LORA_TARGETS``), ``steps`` (an int in
    [1, max_steps]), ``lr`` (a number in (0, max_lr]) and ``prior_weight`` (lambda, a number in [0, max_prior_weight]).
    The trainable fraction of the U-Net after injection must be at most ``max_fraction``.
    """
    assert_settings(
        settings,
        "LORA",
        ("rank", "targets", "steps", "lr", "prior_weight"),
        '{"rank": 2, "targets": ["to_k", "to_v"], "steps": 200, "lr": 1e-3, "prior_weight": 1.0}',
    )
    b = LORA_BUDGET
    rank, targets, steps = settings["rank"], settings["targets"], settings["steps"]
    lr, weight = settings["lr"], settings["prior_weight"]
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise AssertionError(f"LORA: rank must be an int >= 1, got {rank!r}.")
    if isinstance(targets, str) or not isinstance(targets, (list, tuple)) or not targets:
        raise AssertionError(f"LORA: targets must be a non-empty list of layer names, got {targets!r}.")
    bad = [t for t in targets if t not in LORA_TARGETS]
    if bad:
        raise AssertionError(
            f"LORA: unknown targets {bad}; choose from {list(LORA_TARGETS)} (attn1 is "
            "self-attention, attn2 cross-attention; a bare name targets both)."
        )
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= b["max_steps"]:
        raise AssertionError(f"LORA: steps must be an int in [1, {b['max_steps']}], got {steps!r}.")
    for name, value, top, low_ok in (
        ("lr", lr, b["max_lr"], False),
        ("prior_weight", weight, b["max_prior_weight"], True),
    ):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise AssertionError(f"LORA: {name} must be a number, got {value!r}.")
        if not ((value >= 0 if low_ok else value > 0) and value <= top):
            raise AssertionError(f"LORA: {name} must be in {'[0' if low_ok else '(0'}, {top:g}], got {value!r}.")
    try:
        fraction = _fraction(rank, list(targets))
    except ValueError as e:
        raise AssertionError(f"LORA: {e}") from None
    if fraction > b["max_fraction"]:
        raise AssertionError(
            f"LORA: rank {rank} on {list(targets)} trains {fraction:.2%} of the U-Net's parameters; "
            f"the budget is {b['max_fraction']:.0%}."
        )
    return {**settings, "targets": list(targets), "fraction": fraction}


def dreambooth_quality(settings: dict, *, seed: int = 0) -> dict:
    """Train LoRA-DreamBooth with ``settings`` (the fixed procedure above) and evaluate it.

    Returns ``evaluate_dreambooth``'s scores (``fidelity``, ``recontext``, ``property``, ``class_to_subject``,
    ``diversity``, ``ordinary``), ``fraction`` (trainable),
    ``train_s``, ``final_loss`` (mean of the last 20 steps' losses), ``steps`` and ``quick``. Repeated calls with the same settings
    return (a copy of) the cached report.
    """
    from ..dreambooth import dreambooth_data, evaluate_dreambooth, subject_and_prior, train_dreambooth
    from ..judge import ShapesJudge
    from ..text_to_image import held_out_captions, load_pipeline

    def run() -> dict:
        cfg = check_lora_settings(settings)
        quick = quick_mode()
        n_prior, batch = (QUICK["n_prior"], QUICK["batch"]) if quick else (N_PRIOR, BATCH)
        samples, n_ordinary = (QUICK["samples"], QUICK["n_ordinary"]) if quick else (SAMPLES, N_ORDINARY)
        steps = min(cfg["steps"], QUICK["max_steps"]) if quick else cfg["steps"]
        pipe = load_pipeline(scheduler="ddim")
        judge = ShapesJudge.from_pretrained()
        ordinary = held_out_captions()[:n_ordinary]
        subject, prior = subject_and_prior(pipe, N_SUBJECT, n_prior)
        data = dreambooth_data(pipe, subject, prior)
        start = time.perf_counter()
        result = train_dreambooth(
            pipe,
            data,
            prior_weight=float(cfg["prior_weight"]),
            rank=cfg["rank"],
            steps=steps,
            lr=float(cfg["lr"]),
            batch_size=batch,
            targets=cfg["targets"],
            seed=seed,
        )
        train_s = time.perf_counter() - start
        scores, _ = evaluate_dreambooth(pipe, judge, ordinary, samples=samples)
        losses = [float(x) for x in result.losses][-20:]
        return {
            **scores,
            "fraction": cfg["fraction"],
            "train_s": round(train_s, 1),
            "final_loss": sum(losses) / max(len(losses), 1),
            "steps": steps,
            "quick": quick,
        }

    key = ("dreambooth_quality", json.dumps(settings, sort_keys=True, default=str), seed, quick_mode())
    return _measured(key, run)
