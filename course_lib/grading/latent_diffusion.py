"""The latent-diffusion set's measured run: sample the shipped tiny Stable Diffusion with a student's sampler settings,
judge how well the images follow held-out prompts.

Rombach et al. 2022 (latent diffusion), run by diffusers' own ``StableDiffusionPipeline``: chapter 6's shipped
``tiny_sd`` pipeline (tiny CLIP text encoder, tiny ``AutoencoderKL``, text-conditioned U-Net), unchanged, generates
images for every held-out attribute combination (``text_to_image.held_out_captions``: prompts whose combination the
U-Net never saw in training) with ``text_to_image.generate`` (the pipeline's ``__call__`` written out), and the
shipped judge reads them back (``judge.adherence``). The student chooses the scheduler, the number of steps and the
classifier-free guidance scale g (diffusers' ``guidance_scale``) within a budget of U-Net evaluations per image: each
step costs one evaluation, two when guided (g > 1: the doubled [empty prompt, prompt] batch). No training.

``check_sampling_settings`` enforces ``LATENT_DIFFUSION_BUDGET`` before anything runs; ``prompt_adherence`` is the
measurement. Two numbers are graded, the two sides of the trade the guidance scale sets:

- ``all``: the fraction of images whose shape, colour, size and position, as the judge reads them, all match their
  prompt (fidelity);
- ``frechet``: the Frechet distance between the judge's features of the images and of real renders of the same
  captions (``data.render_captions``, seed 1000): quality and diversity at once; a large scale, which draws every
  image of a prompt alike, raises it.

The set's thresholds (all >= 0.9 and >= 0.99; frechet < 50 with all >= 0.9, < 35 with all >= 0.99; one point each)
were set from what the shipped pipeline reaches, 480 images (16 per prompt), seed 0 (seed 1):

    sampler, steps, g     evaluations   all             frechet         points on seed 0
    DDIM 10, g = 1.5      20            - (0.985)       - (27.7)        2
    DDIM 10, g = 2        20            0.996 (0.998)   27.8 (29.9)     4
    DDIM 10, g = 3        20            1.00 (1.00)     38.2 (40.6)     3
    DDIM 10, g = 4        20            1.00 (1.00)     44.9 (48.2)     3
    DDIM 10, g = 7.5      20            0.992 (0.975)   60.1 (63.8)     2
    DDIM 10, g = 12       20            0.85 (0.83)     105 (113)       0
    Euler 10, g = 2       20            0.996 (0.996)   31.8 (33.8)     4
    DDPM 10, g = 2        20            1.00 (1.00)     31.8 (32.7)     4
    DDPM 20, unguided     20            0.981 (0.979)   29.1 (32.4)     2
    Euler 20, unguided    20            0.906 (0.890)   38.9 (42.8)     2
    DDIM 20, unguided     20            0.883 (0.848)   48.8 (53.5)     0
    DDIM 5, g = 3         10            - (0.998)       - (47.7)        -

Two sets of real renders are at frechet 6.8. Sampling takes about 12 s on one CPU thread; the solution grades in about 40 s.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import MappingProxyType

import torch

from .checks import assert_settings, assert_tensor
from .measured import _measured, quick_mode

# read-only: no notebook raises its own budget
LATENT_DIFFUSION_BUDGET = MappingProxyType({"max_nfe": 20, "max_guidance_scale": 20.0})
LATENT_DIFFUSION_SCHEDULERS = ("ddpm", "ddim", "euler")  # text_to_image.make_scheduler's kinds
SAMPLES_PER_PROMPT = 16  # 30 held-out prompts x 16 = 480 images: a standard error of about 0.01 on "all" near 0.95
QUICK_PROMPTS = 3  # quick mode (CI plumbing): 3 prompts, 2 images each
RENDER_SEEDS = (1000, 1001)  # data.render_captions of the prompts: the reference, and a second set for scale


def evaluations_per_image(steps: int, guidance_scale: float) -> int:
    """U-Net evaluations per image: one per step, two when guided (g > 1: the [empty prompt, prompt] batch)."""
    return steps * (2 if guidance_scale > 1 else 1)


def check_sampling_settings(sampler: dict) -> dict:
    """Validate a student's ``SAMPLER`` against ``LATENT_DIFFUSION_BUDGET``; return a copy.

    Keys: ``scheduler`` (one of ``LATENT_DIFFUSION_SCHEDULERS``), ``steps`` (an int >= 1, the scheduler's
    ``num_inference_steps``) and ``guidance_scale`` (diffusers' g, a number in [1, max_guidance_scale]; 1 is no
    guidance, as diffusers runs no guidance at g <= 1). ``evaluations_per_image(steps, guidance_scale)`` must be at
    most ``max_nfe``.
    """
    assert_settings(
        sampler,
        "SAMPLER",
        ("scheduler", "steps", "guidance_scale"),
        '{"scheduler": "ddim", "steps": 10, "guidance_scale": 3.0}',
    )
    kind, steps, g = sampler["scheduler"], sampler["steps"], sampler["guidance_scale"]
    b = LATENT_DIFFUSION_BUDGET
    if kind not in LATENT_DIFFUSION_SCHEDULERS:
        raise AssertionError(f"SAMPLER: unknown scheduler {kind!r}; choose one of {LATENT_DIFFUSION_SCHEDULERS}.")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise AssertionError(
            f"SAMPLER: steps must be an int >= 1 (the scheduler's num_inference_steps), got {steps!r}."
        )
    number = isinstance(g, (int, float)) and not isinstance(g, bool)
    if not (number and math.isfinite(g)):
        raise AssertionError(f"SAMPLER: guidance_scale must be a number, got {g!r}.")
    if g < 0:
        raise AssertionError(
            f"SAMPLER: guidance_scale {g!r} is negative; diffusers' g is 1 for no guidance and above "
            "1 to guide (g = 1 + w)."
        )
    if not 1 <= g <= b["max_guidance_scale"]:
        raise AssertionError(
            f"SAMPLER: guidance_scale must be in [1, {b['max_guidance_scale']:g}] (1 = no guidance: "
            f"diffusers does not guide at g <= 1), got {g!r}."
        )
    nfe = evaluations_per_image(steps, g)
    if nfe > b["max_nfe"]:
        raise AssertionError(
            f"SAMPLER: {steps} steps at guidance_scale {g:g} cost {nfe} U-Net evaluations per image "
            f"({'two' if g > 1 else 'one'} per step); the budget is {b['max_nfe']}."
        )
    return dict(sampler)


def prompt_adherence(
    sampler: dict,
    *,
    seed: int = 0,
    samples_per_prompt: int = SAMPLES_PER_PROMPT,
    pipeline_dir: str | Path | None = None,
) -> dict:
    """Generate ``samples_per_prompt`` images for each held-out prompt with ``sampler`` and judge them.

    Fixed procedure (the grader's), on the CPU with one thread: ``text_to_image.load_pipeline(pipeline_dir,
    scheduler=...)`` (the shipped ``tiny_sd``, SHA-256 checked; ``pipeline_dir`` is for the course's tests only),
    ``text_to_image.held_out_captions()`` each repeated ``samples_per_prompt`` times (prompt-major), and
    ``text_to_image.adherence_of(pipe, judge, prompts, guidance_scale, samples_per_prompt, steps, seed)``: one batch,
    the initial latents and every scheduler noise from ``torch.Generator().manual_seed(seed)``, the empty prompt as
    the unconditional half; the shipped ``shapes_judge`` reads the images, and its features of them are compared with
    its features of ``data.render_captions`` of the same captions (seed 1000). Repeated calls with the same settings and
    seed return (a copy of) the cached report.

    Returns:
        ``all`` (the fraction of images whose four attributes match the prompt), ``shape``, ``colour``, ``size``,
        ``position`` (per attribute), ``frechet`` (to the real renders), ``frechet_real`` (a second set of renders,
        seed 1001, to the first: the floor), ``n`` (images), ``prompts``, ``nfe`` (U-Net evaluations per image,
        counted), ``sample_s`` and ``quick``.
    """
    from ..data import render_captions
    from ..judge import ShapesJudge
    from ..metrics import frechet_distance
    from ..text_to_image import adherence_of, held_out_captions, load_pipeline

    def run() -> dict:
        cfg = check_sampling_settings(sampler)
        prompts, per_prompt = held_out_captions(), samples_per_prompt
        if quick_mode():
            prompts, per_prompt = prompts[:QUICK_PROMPTS], 2
        pipe = load_pipeline(pipeline_dir, scheduler=cfg["scheduler"])
        judge = ShapesJudge.from_pretrained()
        evaluated = []  # images per U-Net call: counts the evaluations the loop makes
        hook = pipe.unet.register_forward_pre_hook(lambda module, args: evaluated.append(len(args[0])))
        n = len(prompts) * per_prompt
        start = time.perf_counter()
        try:
            report, images = adherence_of(
                pipe, judge, prompts, float(cfg["guidance_scale"]), per_prompt, cfg["steps"], seed=seed, batch_size=n
            )
        finally:
            hook.remove()
        sample_s = time.perf_counter() - start
        assert_tensor(images, "the images", (n, 3, 32, 32))
        captions = [p for p in prompts for _ in range(per_prompt)]  # adherence_of's order: prompt-major
        with torch.no_grad():  # the judge's features of the samples and of renders of the same captions
            fake = judge.features(images.clamp(-1, 1))
            real, real_too = (judge.features(render_captions(captions, seed=s)) for s in RENDER_SEEDS)
        report.update(
            frechet=frechet_distance(fake, real),
            frechet_real=frechet_distance(real_too, real),
            n=n,
            prompts=len(prompts),
            nfe=sum(evaluated) / n,
            sample_s=round(sample_s, 1),
            quick=quick_mode(),
        )
        return report

    key = (
        "prompt_adherence",
        json.dumps(sampler, sort_keys=True, default=str),
        seed,
        samples_per_prompt,
        str(pipeline_dir),
        quick_mode(),
    )
    return _measured(key, run)
