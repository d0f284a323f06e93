"""Recipes of chapter 5 (guidance): the noise-aware classifier, the class-conditional CFG models, the RGB shapes model."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..checkpoints import save_checkpoint
from ..profiles import default_device

from .digits import DDPM_DIGITS, ema_snapshots


def noisy_digit_classifier(steps: int = 2000, seed: int = 0) -> dict:
    """p_phi(y | x_t, t) on 16x16 digits under ddpm_digits' linear schedule (classifier guidance, chapter 5)."""
    from ..data import digits
    from ..metrics import DigitClassifier
    from ..noisy_classifier import NoisyClassifier, NoisyClassifierConfig, accuracy_by_t, noisy_classifier_loss_fn
    from ..schedules import get_schedule
    from ..trainer import process_generator, train

    torch.manual_seed(seed)
    x, y = digits("train", image_size=16)
    schedule = get_schedule("linear", 1000)
    config = NoisyClassifierConfig()
    result = train(
        NoisyClassifier(config),
        noisy_classifier_loss_fn(schedule, process_generator(seed + 1)),
        (x, y),
        steps=steps,
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-4,
        warmup_steps=100,
        ema_decay=0.999,
        seed=seed,
        device="cpu",
    )
    if not result.is_main_process:  # under accelerate launch, process 0 alone measures and saves
        return {}
    clf = result.ema_model.cpu().eval()
    xt, yt = digits("test", image_size=16)
    ts = [0, 100, 250, 500, 750, 900, 999]
    metrics = {
        "timesteps": ts,
        "test_accuracy_by_t": accuracy_by_t(clf, xt, yt, schedule, ts),
        "clean_classifier_accuracy_by_t": accuracy_by_t(DigitClassifier.from_pretrained(), xt, yt, schedule, ts),
        "final_loss": sum(result.losses[-100:]) / 100,
        "schedule": "linear",
    }
    save_checkpoint(
        "noisy_digit_classifier",
        clf,
        model_kind="noisy_classifier",
        config=config.to_dict(),
        recipe="python -m course_lib.train noisy_digit_classifier",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics


def cfg_digits(
    p_uncond: float = 0.1,
    steps: int = DDPM_DIGITS.steps,
    seed: int = DDPM_DIGITS.seed,
    num_samples: int = 250,
    name: str | None = None,
) -> dict:
    """Class-conditional DDPM on digits with a null label, for classifier-free guidance (Ho & Salimans Alg. 1).

    ddpm_digits' schedule (linear, T = 1000), U-Net and settings (``DDPM_DIGITS``), plus ``num_classes=10``
    (label 10 is the null label) and labels dropped with probability ``p_uncond``. The manifest records, for
    w = 0 and w = 1 (DDIM, 50 steps, eta = 0), the fraction of samples the digits classifier reads as the
    requested digit and the samples' Frechet distance.
    """
    from ..data import digits
    from ..ddim import ddim_sample, ddim_timesteps
    from ..guidance import ClassifierFreeGuidance, cfg_loss_fn
    from ..metrics import DigitClassifier, predict, sample_report
    from ..schedules import get_schedule
    from ..trainer import process_generator, train
    from ..unet import UNet, UNetConfig

    name = name or ("cfg_digits" if p_uncond == 0.1 else f"cfg_digits_p{round(p_uncond * 100):02d}")
    settings = replace(DDPM_DIGITS, steps=steps, seed=seed)
    torch.manual_seed(seed)
    x, y = digits("train", image_size=16)
    schedule = get_schedule("linear", 1000)
    config = UNetConfig(num_classes=10)
    model, ema = UNet(config), UNet(config)
    ema.load_state_dict(model.state_dict())
    loss_fn = cfg_loss_fn(schedule, p_uncond, null_label=10, generator=process_generator(seed + 1))
    result = train(model, loss_fn, (x, y), device=default_device(), ema_model=ema, **settings.train_kwargs())
    if not result.is_main_process:
        return {}
    ema = result.ema_model.cpu().eval()
    labels = torch.arange(num_samples) % 10
    metrics = {
        "p_uncond": p_uncond,
        "final_loss": sum(result.losses[-100:]) / 100,
        "schedule": "linear",
        "null_label": 10,
    }
    clf = DigitClassifier.from_pretrained()
    for w in (0.0, 1.0):
        samples = ddim_sample(
            ClassifierFreeGuidance(ema, w),
            (num_samples, 1, 16, 16),
            schedule,
            ddim_timesteps(1000, 50),
            generator=torch.Generator().manual_seed(seed),
            y=labels,
        )
        samples = samples.clamp(-1, 1)
        probs, _ = predict(clf, samples)
        report = sample_report(samples, clf)
        metrics[f"w{w:g}_class_accuracy"] = (probs[:, :10].argmax(1) == labels).float().mean().item()
        metrics[f"w{w:g}_frechet"] = report["frechet"]
    metrics["frechet_real"] = report["frechet_real"]
    save_checkpoint(
        name,
        ema,
        model_kind="unet",
        config=config.to_dict(),
        recipe=f"python -m course_lib.train {name}",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics


def cfg_digits_p20(steps: int = DDPM_DIGITS.steps, seed: int = DDPM_DIGITS.seed) -> dict:
    """``cfg_digits`` with p_uncond = 0.2 (the CFG paper's other setting, chapter 5)."""
    return cfg_digits(0.2, steps=steps, seed=seed)


def ddpm_shapes(
    steps: int = 4000,
    seed: int = 0,
    batch_size: int = 32,
    num_samples: int = 64,
    snapshot_dir: str = "runs",
    resume: bool = False,
) -> dict:
    """Unconditional DDPM on 32x32 RGB shapes (linear schedule, T = 1000), the model loss guidance steers.

    A U-Net of width 24 with four levels (32, 16, 8, 4 px; attention at 4 px), 20k images of ``data.shapes``,
    ddpm_digits' learning rate, warm-up and EMA. The manifest records, for DDIM-50 samples and for real images,
    how much of the image is foreground and how far each foreground colour is from the nearest palette colour
    (0..255 units): a model that learned the data paints shapes of the six palette colours.

    ``resume=True`` continues the shipped checkpoint for ``steps`` more steps (model and EMA both start from its
    EMA weights; a fresh optimiser and warm-up; data order and noise seeded with ``seed`` + the steps done), and
    the manifest records the total steps, the summed wall time and the chain of commands.
    """
    import json

    from ..data import shapes
    from ..losses import diffusion_loss_fn
    from ..schedules import get_schedule
    from ..trainer import process_generator, train
    from ..unet import UNet, UNetConfig

    settings = replace(DDPM_DIGITS, steps=steps, seed=seed, batch_size=batch_size)
    torch.manual_seed(seed)
    x = shapes(20_000, seed=seed).images
    schedule = get_schedule("linear", 1000)
    config = UNetConfig(in_channels=3, base_channels=24, channel_mults=(1, 2, 2, 2), attention_levels=(3,))
    model, ema = UNet(config), UNet(config)
    done, done_time, recipe = 0, 0.0, "python -m course_lib.train ddpm_shapes"
    if resume:
        from ..checkpoints import load_verified

        state, entry = load_verified("ddpm_shapes", expected_model="unet")
        if entry["config"] != json.loads(json.dumps(config.to_dict())):  # tuples were stored as lists
            raise ValueError("the shipped ddpm_shapes has a different U-Net config; retrain it without --resume.")
        model.load_state_dict(state)
        done, done_time = entry["steps"], entry["wall_time_s"]
        recipe = f"{entry['recipe']} && python -m course_lib.train ddpm_shapes --resume --steps {steps}"
        settings = replace(settings, seed=seed + done)
    ema.load_state_dict(model.state_dict())
    result = train(
        model,
        diffusion_loss_fn(schedule, process_generator(settings.seed + 1)),
        (x,),
        device=default_device(),
        callback=ema_snapshots(ema, snapshot_dir, "ddpm_shapes", done=done),
        ema_model=ema,
        **settings.train_kwargs(),
    )
    if not result.is_main_process:
        return {}
    return save_ddpm_shapes(
        result.ema_model,
        config,
        x,
        recipe=recipe,
        steps=done + steps,
        wall_time_s=done_time + result.wall_time_s,
        seed=seed,
        num_samples=num_samples,
        final_loss=sum(result.losses[-100:]) / 100,
    )


def save_ddpm_shapes(
    ema,
    config,
    x,
    *,
    recipe: str,
    steps: int,
    wall_time_s: float,
    seed: int = 0,
    num_samples: int = 64,
    final_loss: float | None = None,
) -> dict:
    """Measure ddpm_shapes' EMA model (DDIM-50 samples vs real images ``x``) and ship it with those metrics.

    Also used by hand to ship a snapshot of a long run (``runs/ddpm_shapes_step<N>.safetensors``): the learning
    rate is constant after warm-up, so the EMA at step N of a longer run is the EMA an N-step run ends with.
    """
    from ..data import COLOUR_RGB
    from ..ddim import ddim_sample, ddim_timesteps
    from ..guidance import foreground_colour, foreground_weights
    from ..schedules import get_schedule

    ema = ema.cpu().eval()
    with torch.no_grad():
        samples = ddim_sample(
            ema,
            (num_samples, 3, 32, 32),
            get_schedule("linear", 1000),
            ddim_timesteps(1000, 50),
            generator=torch.Generator().manual_seed(seed),
        ).clamp(-1, 1)
    palette = torch.tensor(list(COLOUR_RGB.values()), dtype=torch.float32)
    metrics = {"final_loss": final_loss, "schedule": "linear"}
    for what, images in (("samples", samples), ("real", x[:num_samples])):
        rgb = (foreground_colour(images) + 1) * 127.5
        metrics[f"{what}_foreground_fraction"] = foreground_weights(images).mean().item()
        metrics[f"{what}_palette_distance"] = torch.cdist(rgb, palette).min(1).values.mean().item()
    save_checkpoint(
        "ddpm_shapes",
        ema,
        model_kind="unet",
        config=config.to_dict(),
        recipe=recipe,
        steps=steps,
        wall_time_s=round(wall_time_s, 1),
        metrics=metrics,
    )
    return metrics
