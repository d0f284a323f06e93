"""The DDPM set's measured run: train a student's noise predictor on 16x16 digits, sample, score the samples.

Ho et al. 2020 (DDPM): ``L_simple`` training and ancestral sampling, with the course's own trainer, sampler and
digit classifier. ``check_ddpm_config`` enforces ``DDPM_BUDGET`` (and the model's input/output contract) before
anything trains; ``score_samples`` turns samples into what the question grades: novel recognised digits
(near-copies of training digits count as failures, ``metrics.near_copy_mask``), how evenly the ten classes are
covered, and the Frechet distance relative to real data.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import torch

from .checks import assert_tensor
from .measured import _final_loss, _fresh_module_within, _measured, _require, quick_mode, where_it_lives

DDPM_BUDGET = {"max_steps": 2000, "max_batch_size": 256, "max_timesteps": 1000, "max_parameters": 1_000_000}


def check_ddpm_config(make_model: Callable[[], torch.nn.Module], config: dict) -> dict:
    """Validate a student's ``make_model`` and training config against ``DDPM_BUDGET``; return the config.

    Keys: schedule (a ``get_schedule`` name), num_timesteps, steps, batch_size, lr, and optionally ema_decay.
    """
    if hasattr(type(make_model), "__run_function__"):  # the grader's proxy: check where the model is built
        return where_it_lives(check_ddpm_config, make_model, config)
    from ..schedules import SCHEDULE_NAMES

    if not callable(make_model):
        raise AssertionError(
            f"make_model should be a function that returns a new model; it is {type(make_model).__name__}."
        )
    if not isinstance(config, dict):
        raise AssertionError(f"TRAIN_CONFIG should be a dict, it is {type(config).__name__}.")
    required = {"schedule", "num_timesteps", "steps", "batch_size", "lr"}
    unknown, missing = set(config) - required - {"ema_decay"}, required - set(config)
    if missing or unknown:
        raise AssertionError(f"TRAIN_CONFIG is missing {sorted(missing)} / has unknown keys {sorted(unknown)}.")
    b = DDPM_BUDGET
    checks = [
        (config["schedule"] in SCHEDULE_NAMES, f"schedule must be one of {SCHEDULE_NAMES}"),
        (
            isinstance(config["num_timesteps"], int) and 1 <= config["num_timesteps"] <= b["max_timesteps"],
            f"num_timesteps must be an int in 1 ... {b['max_timesteps']}",
        ),
        (
            isinstance(config["steps"], int) and 1 <= config["steps"] <= b["max_steps"],
            f"steps must be an int in 1 ... {b['max_steps']}",
        ),
        (
            isinstance(config["batch_size"], int) and 1 <= config["batch_size"] <= b["max_batch_size"],
            f"batch_size must be an int in 1 ... {b['max_batch_size']}",
        ),
        (isinstance(config["lr"], float) and 0 < config["lr"] <= 0.1, "lr must be a float in (0, 0.1]"),
        (0 <= config.get("ema_decay", 0.999) < 1, "ema_decay must be in [0, 1)"),
    ]
    _require(checks)

    model = _fresh_module_within(make_model, b["max_parameters"])
    with torch.no_grad():  # the contract the trainer and the sampler rely on, checked before minutes of training
        eps = model(torch.zeros(2, 1, 16, 16), torch.tensor([0, config["num_timesteps"] - 1]))
    assert_tensor(eps, "make_model()(xt [2, 1, 16, 16], t [2]), the predicted noise,", (2, 1, 16, 16))
    return dict(config)


def train_digits_model(
    make_model: Callable[[], torch.nn.Module], config: dict, seed: int, steps: int
) -> tuple[torch.nn.Module, dict]:
    """The training half of ``ddpm_digits_quality`` (in the grader: in the submission's process).

    Checks ``make_model`` and ``config`` (``check_ddpm_config``), trains ``make_model()`` for ``steps`` steps with
    L_simple on the 16x16 training digits; returns the EMA model and ``params``, ``train_s``, ``final_loss``.
    """
    from ..data import digits
    from ..losses import diffusion_loss_fn
    from ..schedules import get_schedule
    from ..trainer import train

    cfg = check_ddpm_config(make_model, config)
    schedule = get_schedule(cfg["schedule"], cfg["num_timesteps"])
    torch.manual_seed(seed)
    model = make_model()
    x, _ = digits("train", image_size=16)
    result = train(
        model,
        diffusion_loss_fn(schedule, torch.Generator().manual_seed(seed + 1)),
        (x,),
        steps=steps,
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        ema_decay=cfg.get("ema_decay", 0.999),
        seed=seed,
        device="cpu",
        progress=False,
    )
    return result.ema_model.eval(), dict(
        params=sum(p.numel() for p in model.parameters()),
        train_s=round(result.wall_time_s, 1),
        final_loss=_final_loss(result),
    )


def _check_config_keys(config) -> None:
    """The part of ``check_ddpm_config`` that reads only the config (plain data): done where the scores are made."""
    if not isinstance(config, dict):
        raise AssertionError(f"TRAIN_CONFIG should be a dict, it is {type(config).__name__}.")
    steps = config.get("steps")
    if not (isinstance(steps, int) and 1 <= steps <= DDPM_BUDGET["max_steps"]):
        raise AssertionError(f"TRAIN_CONFIG: steps must be an int in 1 ... {DDPM_BUDGET['max_steps']}.")
    for key in ("schedule", "num_timesteps"):
        if key not in config:
            raise AssertionError(f"TRAIN_CONFIG is missing {key!r}.")


def score_samples(samples: torch.Tensor) -> dict:
    """What the measured question grades, for samples [N, 1, 16, 16] in [-1, 1].

    ``metrics.sample_report`` plus: ``near_copies`` (fraction that are near-copies of training digits or of held-out
    digits: closer to one than held-out digits are to the training set, or training digits to the held-out set),
    ``novel_recognized`` (fraction recognised with confidence >= 0.5 *and* not a near-copy), ``min_class_share``
    (the rarest digit's count among the novel recognised samples, over N: 0.1 for a perfectly even set, 0 when a
    digit is missing) and ``frechet_ratio`` (``frechet / frechet_real``: 1 is as close as real digits are).
    """
    from ..data import digits
    from ..metrics import NOT_A_DIGIT, DigitClassifier, near_copy_mask, predict, sample_report

    classifier = DigitClassifier.from_pretrained()
    samples = samples.clamp(-1, 1)
    report = sample_report(samples, classifier)
    probs, _ = predict(classifier, samples)
    conf, cls = probs.max(1)
    # a copy of a training digit, or of a held-out one (a "model" that memorised the evaluation data)
    test = digits("test", image_size=samples.shape[-1])[0]
    train = digits("train", image_size=samples.shape[-1])[0]
    copies = near_copy_mask(samples, train, test) | near_copy_mask(samples, test, train)
    novel = (cls != NOT_A_DIGIT) & (conf >= 0.5) & ~copies
    counts = torch.bincount(cls[novel], minlength=NOT_A_DIGIT + 1)[:NOT_A_DIGIT]
    report.update(
        near_copies=copies.float().mean().item(),
        novel_recognized=novel.float().mean().item(),
        novel_class_histogram=counts.tolist(),
        min_class_share=counts.min().item() / len(samples),
        frechet_ratio=report["frechet"] / report["frechet_real"],
    )
    return report


def ddpm_digits_quality(
    make_model: Callable[[], torch.nn.Module], config: dict, *, seed: int = 0, num_samples: int = 256
) -> dict:
    """Train ``make_model()`` on 16x16 digits with L_simple, sample with DDPM, classify the samples.

    Fixed procedure (the grader's): ``trainer.train`` on the CPU with ``seed``, ``losses.diffusion_loss_fn``,
    the EMA weights sampled by ``samplers.ddpm_sample`` from ``torch.Generator().manual_seed(seed)``, and
    ``score_samples`` (``recognized`` = fraction classified as a digit with confidence >= 0.5, ``novel_recognized``
    the same without near-copies of training digits, ``min_class_share``, ``frechet_ratio``, ``near_copies``).
    Repeated calls with the same model function, config and seed return (a copy of) the cached report.

    Returns:
        the ``score_samples`` report plus ``params``, ``train_s``, ``sample_s``, ``final_loss`` and ``quick``.
    """
    from ..samplers import ddpm_sample
    from ..schedules import get_schedule

    def run() -> dict:
        _check_config_keys(config)
        steps = min(config["steps"], 10) if quick_mode() else config["steps"]
        n = min(num_samples, 16) if quick_mode() else num_samples
        ema_model, stats = where_it_lives(train_digits_model, make_model, dict(config), seed, steps)
        start = time.perf_counter()
        samples = ddpm_sample(
            ema_model,
            (n, 1, 16, 16),
            get_schedule(config["schedule"], config["num_timesteps"]),
            generator=torch.Generator().manual_seed(seed),
            progress=False,
        )
        sample_s = time.perf_counter() - start
        assert_tensor(samples, "the samples", (n, 1, 16, 16))
        report = score_samples(samples)
        report.update(stats, sample_s=round(sample_s, 1), quick=quick_mode())
        return report

    key = (id(make_model), json.dumps(config, sort_keys=True, default=str), seed, num_samples, quick_mode())
    return _measured(key, run)
