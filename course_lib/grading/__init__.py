"""Support for the graded exercises (otter-grader 7.0 test files): readable checks and the measured runs.

The tests of every set import from here (``course_lib.grading.assert_close``); a student's notebook imports the
measured runs to try a design. How a submission is graded (in its own unprivileged process, the tests in the
grader's) is ``exercises/grader`` and exercises/INSTRUCTORS.md, "Grading mechanics".

- ``checks``: ``assert_tensor``, ``assert_close``, ``assert_quality``: messages a student can act on;
- ``plugin``: ``GradingGuard``, the otter plugin entry that carries a set's time limits into its bundle;
- measured runs ("train to a measured quality" questions): ``measured`` (cache, quick mode, ``where_it_lives``),
  then one module per exercise set: ``ddpm`` (``ddpm_digits_quality``), ``vae`` (``vae_digits_elbo``), ``iddpm``
  (``iddpm_digits_bound``: a held-out bound in bits/dim, every digit sampled), ``ddim`` (``ddim_digits_quality``: no
  training, a sampler's settings under a budget of network evaluations) and ``guidance`` (``guided_digits_quality``:
  no training, classifier guidance's scale and steps, graded on the requested digit's accuracy and the Frechet
  distance) and ``latent_diffusion`` (``prompt_adherence``: no training, the shipped tiny Stable Diffusion's scheduler,
  steps and guidance scale within a budget of U-Net evaluations, graded on the judge's prompt adherence) and ``lora``
  (``dreambooth_quality``: LoRA-DreamBooth on the shipped tiny Stable Diffusion with a student's rank, targets, steps,
  learning rate and prior weight, trained and judged by ``course_lib``, graded on fidelity and drift) and ``sds``
  (``sds_adherence``: score distillation of the tiny Stable Diffusion's latents with a student's guidance scale, learning
  rate, steps and t range, run and judged by ``course_lib``, graded on prompt adherence and colour).
"""

from .checks import assert_close, assert_quality, assert_tensor
from .ddim import DDIM_BUDGET, check_ddim_sampler, ddim_digits_quality
from .ddpm import DDPM_BUDGET, check_ddpm_config, ddpm_digits_quality, score_samples
from .guidance import GUIDANCE_BUDGET, check_guidance_settings, guided_digits_quality
from .iddpm import IDDPM_BUDGET, check_iddpm_config, iddpm_digits_bound
from .latent_diffusion import LATENT_DIFFUSION_BUDGET, check_sampling_settings, prompt_adherence
from .lora import LORA_BUDGET, LORA_TARGETS, check_lora_settings, dreambooth_quality
from .measured import QUICK_ENV, quick_mode
from .plugin import GradingGuard
from .sds import SDS_BUDGET, SDS_PROMPTS, check_sds_settings, sds_adherence
from .vae import VAE_BUDGET, check_vae_config, vae_digits_elbo

__all__ = [
    "DDPM_BUDGET",
    "GradingGuard",
    "QUICK_ENV",
    "VAE_BUDGET",
    "assert_close",
    "assert_quality",
    "assert_tensor",
    "check_ddpm_config",
    "check_vae_config",
    "ddpm_digits_quality",
    "quick_mode",
    "score_samples",
    "vae_digits_elbo",
    "DDIM_BUDGET",
    "check_ddim_sampler",
    "ddim_digits_quality",
    "IDDPM_BUDGET",
    "check_iddpm_config",
    "iddpm_digits_bound",
    "GUIDANCE_BUDGET",
    "check_guidance_settings",
    "guided_digits_quality",
    "LATENT_DIFFUSION_BUDGET",
    "check_sampling_settings",
    "prompt_adherence",
    "LORA_BUDGET",
    "LORA_TARGETS",
    "check_lora_settings",
    "dreambooth_quality",
    "SDS_BUDGET",
    "SDS_PROMPTS",
    "check_sds_settings",
    "sds_adherence",
]
