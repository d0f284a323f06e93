"""Recipe of chapter 8's shipped LoRA: LoRA-DreamBooth of the held-out shape on the shipped tiny Stable Diffusion."""

from __future__ import annotations

PRIOR_WEIGHT, RANK, LR, BATCH = 1.0, 4, 3e-3, 8  # page 8.3's settings (lambda, r = alpha, Adam, subject rows/step)
N_PRIOR, N_ORDINARY, SAMPLES = 64, 30, 32


def dreambooth_lora(steps: int = 300, seed: int = 0) -> dict:
    """LoRA-DreamBooth of the held-out shape ("a sks shape"), page 8.3's run, saved as a diffusers LoRA.

    Rank 4 (alpha 4) on every attention projection of the U-Net, prior weight 1 with 64 images the base model draws
    for "a shape" (``dreambooth.subject_and_prior``: regenerated from seeds, not shipped), 300 Adam steps of 8 subject
    + 8 prior rows at 3e-3. The file holds ``lora.lora_state_dict(unet, prefix="unet")``, the key format of
    diffusers' ``load_lora_weights``; the manifest's config holds r, lora_alpha and the target modules. Metrics:
    ``dreambooth.evaluate_dreambooth`` (32 samples per subject prompt, 30 ordinary held-out prompts).
    """
    from ..checkpoints import save_checkpoint
    from ..dreambooth import (
        CLASS_PROMPT,
        INSTANCE_PROMPT,
        dreambooth_data,
        evaluate_dreambooth,
        subject_and_prior,
        train_dreambooth,
    )
    from ..judge import ShapesJudge
    from ..lora import lora_config, lora_state_dict
    from ..text_to_image import held_out_captions, load_pipeline

    pipe = load_pipeline(scheduler="ddim")
    subject, prior = subject_and_prior(pipe, n_prior=N_PRIOR)
    data = dreambooth_data(pipe, subject, prior)
    result = train_dreambooth(
        pipe, data, prior_weight=PRIOR_WEIGHT, rank=RANK, steps=steps, lr=LR, batch_size=BATCH, seed=seed, progress=True
    )
    scores, _ = evaluate_dreambooth(
        pipe, ShapesJudge.from_pretrained(), held_out_captions()[:N_ORDINARY], samples=SAMPLES
    )
    metrics = {**scores, "final_loss": sum(result.losses[-20:]) / len(result.losses[-20:])}
    config = {
        **lora_config(pipe.unet),
        "instance_prompt": INSTANCE_PROMPT,
        "class_prompt": CLASS_PROMPT,
        "prior_weight": PRIOR_WEIGHT,
        "lr": LR,
        "batch_size": BATCH,
        "seed": seed,
        "prior_images": f"{N_PRIOR} unguided DDIM-20 samples of {CLASS_PROMPT!r}, generator seed 1",
    }
    save_checkpoint(
        "dreambooth_lora",
        lora_state_dict(pipe.unet, prefix="unet"),
        model_kind="lora",
        config=config,
        recipe="python -m course_lib.train dreambooth_lora",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics
