"""Recipes for the shipped checkpoints: each function trains one model from scratch and saves it.

Run one with ``python -m course_lib.train <name>`` (``--list`` shows them). Every recipe is seeded; the
manifest records its steps, wall time, hardware and the metric it reached.

Chapters 1-4 live in ``recipes.digits``, chapter 5 in ``recipes.guidance``, the shapes world's (chapters 6-8) in
``recipes.shapes``, chapter 8's shipped LoRA in ``recipes.dreambooth``, the 3-D world's (chapter 7) in
``recipes.shapes3d``; ``RECIPES`` names every one.
"""

from __future__ import annotations

from .digits import (
    DDPM_DIGITS,
    HELD_OUT_STRATA,
    DDPMDigitsSettings,
    ddpm_digits,
    digit_classifier,
    held_out_bits_per_dim,
    iddpm_digits,
    iddpm_digits_cosine,
    iddpm_digits_cosine_seed1,
    iddpm_digits_hybrid,
    vae_digits,
)
from .dreambooth import dreambooth_lora
from .guidance import cfg_digits, cfg_digits_p20, ddpm_shapes, noisy_digit_classifier
from .shapes import shapes_autoencoder, shapes_judge, tiny_clip, tiny_sd
from .shapes3d import shapes3d_autoencoder, shapes3d_judge, tiny_sd3d

RECIPES = {
    "digit_classifier": digit_classifier,
    "ddpm_digits": ddpm_digits,
    "vae_digits": vae_digits,
    "iddpm_digits_cosine": iddpm_digits_cosine,
    "iddpm_digits_hybrid": iddpm_digits_hybrid,
    "iddpm_digits_cosine_seed1": iddpm_digits_cosine_seed1,
    "noisy_digit_classifier": noisy_digit_classifier,
    "cfg_digits": cfg_digits,
    "cfg_digits_p20": cfg_digits_p20,
    "ddpm_shapes": ddpm_shapes,
    "shapes_judge": shapes_judge,
    "tiny_clip": tiny_clip,
    "shapes_autoencoder": shapes_autoencoder,
    "tiny_sd": tiny_sd,
    "dreambooth_lora": dreambooth_lora,
    "shapes3d_judge": shapes3d_judge,
    "shapes3d_autoencoder": shapes3d_autoencoder,
    "tiny_sd3d": tiny_sd3d,
}
