"""The DDIM set's measured run: sample the shipped digits model with a student's sampler settings, score the samples.

Song et al. 2021 (DDIM): chapter 2's ``ddpm_digits`` U-Net, unchanged, sampled over a subsequence tau of its 1000
training steps, either by the generative step of Eq. 12 with sigma_t(eta) of Eq. 16 (``ddim.ddim_sample``) or, for
Table 1's sigma hat, by DDPM's step with beta' on the respaced schedule (as the chapter's pages and Song et al.'s
code run it). The cost of sampling is the number of network function evaluations (NFE), one per step;
``check_ddim_sampler`` enforces ``DDIM_BUDGET`` before anything runs, and ``ddpm.score_samples`` scores the samples.
No training: the run takes seconds.
"""

from __future__ import annotations

import json
import time

import torch

from .checks import assert_settings, assert_tensor
from .ddpm import score_samples
from .measured import _measured, quick_mode

DDIM_BUDGET = {"max_nfe": 6}
DDIM_SPACINGS = ("leading", "trailing", "linspace", "quadratic")  # ddim.ddim_timesteps' spacings


def check_ddim_sampler(sampler: dict) -> dict:
    """Validate a student's ``SAMPLER`` against ``DDIM_BUDGET``; return a copy.

    Keys: ``steps`` (an int: the length of tau, one network evaluation each), ``eta`` (a number in [0, 1], or
    ``"sigma_hat"`` for Table 1's DDPM with beta') and ``spacing`` (one of ``DDIM_SPACINGS``).
    """
    assert_settings(sampler, "SAMPLER", ("steps", "eta", "spacing"))
    steps, eta, spacing = sampler["steps"], sampler["eta"], sampler["spacing"]
    nfe = DDIM_BUDGET["max_nfe"]
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= nfe:
        raise AssertionError(
            f"SAMPLER: steps must be an int in 1 ... {nfe}: every step costs one network "
            f"evaluation and the budget is {nfe}; got {steps!r}."
        )
    number = isinstance(eta, (int, float)) and not isinstance(eta, bool)
    if eta != "sigma_hat" and not (number and 0 <= eta <= 1):
        raise AssertionError(f'SAMPLER: eta must be a number in [0, 1] or "sigma_hat", got {eta!r}.')
    if spacing not in DDIM_SPACINGS:
        raise AssertionError(f"SAMPLER: spacing must be one of {DDIM_SPACINGS}, got {spacing!r}.")
    return dict(sampler)


def ddim_digits_quality(sampler: dict, *, seed: int = 0, num_samples: int = 256) -> dict:
    """Sample ``num_samples`` digits from the shipped ``ddpm_digits`` model with ``sampler`` and score them.

    Fixed procedure (the grader's): the model on the CPU, one thread, the linear schedule with T = 1000 it was trained
    with, tau = ``ddim.ddim_timesteps(1000, steps, spacing)``, x_T and every z from
    ``torch.Generator().manual_seed(seed)``; a number eta runs ``ddim.ddim_sample`` (Eq. 12), ``"sigma_hat"`` runs
    ``samplers.ddpm_sample`` on ``schedules.respace(schedule, tau)`` with ``variance="fixed_large"``. The samples are
    scored by ``score_samples``. Repeated calls with the same settings and seed return (a copy of) the cached report.

    Returns:
        the ``score_samples`` report plus ``nfe`` (network evaluations per sample, counted), ``timesteps`` (tau),
        ``sample_s`` and ``quick``.
    """
    from ..ddim import ddim_sample, ddim_timesteps
    from ..samplers import ddpm_sample
    from ..schedules import get_schedule, respace
    from ..unet import UNet

    def run() -> dict:
        cfg = check_ddim_sampler(sampler)
        n = min(num_samples, 16) if quick_mode() else num_samples
        unet = UNet.from_pretrained("ddpm_digits").eval()
        calls = []

        def model(xt, t):  # counts the network evaluations the sampler makes, one per step and batch
            calls.append(1)
            return unet(xt, t)

        schedule = get_schedule("linear", 1000)
        taus = ddim_timesteps(schedule.num_timesteps, cfg["steps"], cfg["spacing"])
        generator = torch.Generator().manual_seed(seed)
        shape = (n, 1, 16, 16)
        start = time.perf_counter()
        if cfg["eta"] == "sigma_hat":
            samples = ddpm_sample(
                model,
                shape,
                respace(schedule, taus[::-1]),
                generator=generator,
                variance="fixed_large",
                model_timesteps=taus[::-1],
                progress=False,
            )
        else:
            samples = ddim_sample(
                model, shape, schedule, taus, eta=float(cfg["eta"]), generator=generator, progress=False
            )
        sample_s = time.perf_counter() - start
        assert_tensor(samples, "the samples", shape)
        report = score_samples(samples)
        report.update(nfe=len(calls), timesteps=taus, sample_s=round(sample_s, 1), quick=quick_mode())
        return report

    key = ("ddim_digits_quality", json.dumps(sampler, sort_keys=True, default=str), seed, num_samples, quick_mode())
    return _measured(key, run)
