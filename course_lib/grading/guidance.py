"""The guidance set's measured run: guide the shipped digits model with the shipped noisy classifier, score the digits.

Dhariwal & Nichol 2021, Algorithm 2 (classifier-guided DDIM): chapter 2's unconditional ``ddpm_digits`` U-Net,
unchanged, guided by chapter 5's noise-aware ``noisy_digit_classifier`` through ``guidance.ClassifierGuidance``
(eps^ = eps - s sqrt(1 - ab_t) grad log p_phi(y | x_t)), sampled by ``ddim.ddim_sample`` with eta = 0 over the leading
tau of ``ddim.ddim_timesteps`` (the chapter's second page). The digits 0-9 are requested in turn. Two numbers are
graded, the two sides of the trade the guidance scale sets:

- ``accuracy``: the fraction of samples that chapter 2's classifier of clean digits (``metrics.DigitClassifier``)
  reads as the requested digit (argmax over the ten digit classes): fidelity to the label;
- ``frechet``: the Frechet distance between the samples' and the held-out digits' features of that classifier
  (``metrics.frechet_distance``): quality and diversity at once; a scale so large that each digit collapses to one
  shape raises it.

``check_guidance_settings`` enforces ``GUIDANCE_BUDGET`` before anything runs. No training: 256 samples in 25 steps take
about 12 s on one CPU thread. What the set's thresholds (accuracy >= 0.7 and >= 0.9; frechet < 2.5 with accuracy >= 0.7,
< 1.5 and < 0.8 with accuracy >= 0.9; one point each) were set from, measured with 256 samples and 25 steps:

    scale s   accuracy, seeds 0 / 1 / 2   frechet, seeds 0 / 1 / 2   points on the grader's seed 0
    0         0.09 / 0.09 / 0.07          1.33 / 2.29 / 0.71         0
    0.5       0.48 / 0.43 / 0.43          2.12 / 2.64 / 2.20         0
    1         0.78 / 0.77 / 0.75          1.22 / 0.96 / 1.17         2
    1.5       0.92 / 0.91 / 0.90          0.48 / 0.58 / 0.66         5
    2         0.97 / 0.98 / 0.95          0.55 / 0.63 / 0.68         5
    3         0.99 / 0.99 / 0.99          1.01 / 1.26 / 1.06         4
    5         1.00 / 1.00 / 1.00          1.87 / 2.09 / 1.99         3
    10        1.00 / 1.00 / 1.00          3.21 / 3.21 / 3.32         2
    20        1.00 / 1.00                 4.66 / 4.59                2

With s = 2 and 10 (15) steps, seed 0: accuracy 0.97 (0.97), frechet 1.04 (0.74). 256 random training digits are at
frechet 1.14 (not class-balanced, as the requests are).
"""

from __future__ import annotations

import json
import math
import time
from types import MappingProxyType

import torch

from .checks import assert_settings, assert_tensor
from .measured import _measured, quick_mode

GUIDANCE_BUDGET = MappingProxyType({"max_steps": 25, "max_scale": 100.0})  # read-only: no notebook raises its own
NUM_SAMPLES = 256  # the digits 0-9 requested in turn; at 100 (the chapter's cpu sweep) the Frechet distance is noisier


def check_guidance_settings(guide: dict) -> dict:
    """Validate a student's ``GUIDE`` against ``GUIDANCE_BUDGET``; return a copy.

    Keys: ``scale`` (the guidance scale s of Algorithm 2, a number in [0, max_scale]) and ``steps`` (the number of
    DDIM steps, an int in 1 ... max_steps; one U-Net evaluation and one classifier gradient each).
    """
    assert_settings(guide, "GUIDE", ("scale", "steps"), '{"scale": 1.0, "steps": 25}')
    scale, steps = guide["scale"], guide["steps"]
    b = GUIDANCE_BUDGET
    number = isinstance(scale, (int, float)) and not isinstance(scale, bool)
    if not (number and math.isfinite(scale) and 0 <= scale <= b["max_scale"]):
        raise AssertionError(
            f"GUIDE: scale must be a number in [0, {b['max_scale']:g}] (0 = no guidance), got {scale!r}."
        )
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= b["max_steps"]:
        raise AssertionError(
            f"GUIDE: steps must be an int in 1 ... {b['max_steps']}: every DDIM step costs one U-Net "
            f"evaluation and one classifier gradient, and the budget is {b['max_steps']}; got {steps!r}."
        )
    return dict(guide)


def guided_digits_quality(guide: dict, *, seed: int = 0, num_samples: int = NUM_SAMPLES) -> dict:
    """Sample ``num_samples`` digits with classifier guidance at ``guide`` and score them.

    Fixed procedure (the grader's), on the CPU with one thread: the shipped ``ddpm_digits`` U-Net and
    ``noisy_digit_classifier``, the linear schedule with T = 1000 they were trained with,
    ``ClassifierGuidance(model, classifier, schedule, scale)`` (Algorithm 2), labels ``arange(num_samples) % 10``,
    ``ddim_sample`` with eta = 0 over ``ddim_timesteps(1000, steps)`` (leading spacing) from x_T drawn with
    ``torch.Generator().manual_seed(seed)``. The samples, clamped to [-1, 1], are scored by chapter 2's digit
    classifier (``metrics.sample_report`` plus the accuracy on the request). Repeated calls with the same settings
    and seed return (a copy of) the cached report.

    Returns:
        ``accuracy`` (fraction read as the requested digit), ``frechet`` (to the held-out digits), ``frechet_real``
        (``num_samples`` random training digits to the held-out ones, for scale; not class-balanced),
        ``recognized``, ``mean_confidence``, ``class_histogram``, ``n``, ``nfe`` (U-Net evaluations per sample,
        counted), ``timesteps`` (tau), ``sample_s`` and ``quick``.
    """
    from ..ddim import ddim_sample, ddim_timesteps
    from ..guidance import ClassifierGuidance
    from ..metrics import DigitClassifier, predict, sample_report
    from ..noisy_classifier import NoisyClassifier
    from ..schedules import get_schedule
    from ..unet import UNet

    def run() -> dict:
        cfg = check_guidance_settings(guide)
        n = min(num_samples, 16) if quick_mode() else num_samples
        unet = UNet.from_pretrained("ddpm_digits").eval()
        classifier = NoisyClassifier.from_pretrained("noisy_digit_classifier").eval()
        calls = []

        def model(xt, t):  # counts the U-Net evaluations the sampler makes, one per step and batch
            calls.append(1)
            return unet(xt, t)

        schedule = get_schedule("linear", 1000)
        taus = ddim_timesteps(schedule.num_timesteps, cfg["steps"], "leading")
        guided = ClassifierGuidance(model, classifier, schedule, scale=float(cfg["scale"]))
        labels = torch.arange(n) % 10
        start = time.perf_counter()
        samples = ddim_sample(
            guided,
            (n, 1, 16, 16),
            schedule,
            taus,
            eta=0.0,
            generator=torch.Generator().manual_seed(seed),
            progress=False,
            y=labels,
        )
        sample_s = time.perf_counter() - start
        assert_tensor(samples, "the samples", (n, 1, 16, 16), finite=False)
        samples = torch.nan_to_num(samples, nan=0.0).clamp(-1, 1)  # a diverged sample is no digit, not a crash
        judge = DigitClassifier.from_pretrained()
        report = sample_report(samples, judge)
        probs, _ = predict(judge, samples)
        report.update(
            accuracy=(probs[:, :10].argmax(1) == labels).float().mean().item(),
            nfe=len(calls),
            timesteps=taus,
            sample_s=round(sample_s, 1),
            quick=quick_mode(),
        )
        return report

    key = ("guided_digits_quality", json.dumps(guide, sort_keys=True, default=str), seed, num_samples, quick_mode())
    return _measured(key, run)
