"""Support for the graded exercises (otter-grader 7.0): guards, tamper detection, readable checks, measured runs.

The autograder runs a submission top to bottom in a Jupyter kernel, then the question tests
(``exercises/INSTRUCTORS.md`` explains the whole pipeline). Both the grading kernel and a student's Colab session
import this package; the names below keep their dotted paths (``course_lib.grading.GradingGuard`` in the
masters' ASSIGNMENT CONFIG, ``course_lib.grading.assert_close`` in the tests).

Grading infrastructure:

- ``plugin``: ``GradingGuard``, the otter plugin; it runs in the grader process, inserts the guards' cell
  before the student's cells and audits the run afterwards;
- ``guards``: ``install_guards``, the limits, the guarded test runner and the tamper checks in the kernel;
- ``limits``: ``time_limit`` and the output cap;
- ``integrity``: the snapshot of what the tests rely on, and what a notebook changed in it;
- ``source_scan``: writes to the grader that the submission's source shows literally;
- ``checks``: ``assert_tensor``, ``assert_close``, ``assert_quality``: messages a student can act on.

Measured runs ("train to a measured quality" questions): ``measured`` (cache, quick mode, budget helpers),
then one module per exercise set: ``ddpm`` (``ddpm_digits_quality``), ``vae`` (``vae_digits_elbo``),
``ddim`` (``ddim_digits_quality``: no training, a sampler's settings under a budget of network evaluations).
The improved-DDPM set's is ``iddpm`` (``iddpm_digits_bound``: a held-out bound in bits/dim, every digit sampled); the
guidance set's is ``guidance`` (``guided_digits_quality``: no training, classifier guidance's scale and steps, graded
on the requested digit's accuracy and the Frechet distance).
"""

from .checks import assert_close, assert_quality, assert_tensor
from .ddim import DDIM_BUDGET, check_ddim_sampler, ddim_digits_quality
from .ddpm import DDPM_BUDGET, check_ddpm_config, ddpm_digits_quality, score_samples
from .guards import install_guards
from .guidance import GUIDANCE_BUDGET, check_guidance_settings, guided_digits_quality
from .iddpm import IDDPM_BUDGET, check_iddpm_config, iddpm_digits_bound
from .integrity import TAMPER_PREFIX, tamper_reason
from .limits import CELL_TIMEOUT_S, MAX_OUTPUT_CHARS, TEST_TIMEOUT_S, GradingTimeout, time_limit
from .measured import QUICK_ENV, quick_mode
from .plugin import GradingGuard
from .vae import VAE_BUDGET, check_vae_config, vae_digits_elbo

__all__ = ["CELL_TIMEOUT_S", "DDPM_BUDGET", "GradingGuard", "GradingTimeout", "MAX_OUTPUT_CHARS", "QUICK_ENV",
           "TAMPER_PREFIX", "TEST_TIMEOUT_S", "VAE_BUDGET", "assert_close", "assert_quality", "assert_tensor",
           "check_ddpm_config", "check_vae_config", "ddpm_digits_quality", "install_guards", "quick_mode", "score_samples",
           "tamper_reason", "time_limit", "vae_digits_elbo",
           "DDIM_BUDGET", "check_ddim_sampler", "ddim_digits_quality",
           "IDDPM_BUDGET", "check_iddpm_config", "iddpm_digits_bound",
           "GUIDANCE_BUDGET", "check_guidance_settings", "guided_digits_quality"]
