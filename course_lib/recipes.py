"""Recipes for the shipped checkpoints: each function trains one model from scratch and saves it.

Run one with ``python -m course_lib.train <name>`` (``--list`` shows them). Every recipe is seeded; the
manifest records its steps, wall time, hardware and the metric it reached.
"""

from __future__ import annotations

import torch

from .checkpoints import save_checkpoint
from .profiles import default_device


def digit_classifier(steps: int = 1500, seed: int = 0) -> dict:
    """The 11-way digits classifier behind ``metrics`` (digits 0-9 + "not a digit"), 16x16 inputs."""
    from .data import digits
    from .metrics import NOT_A_DIGIT, ClassifierConfig, DigitClassifier, accuracy, classifier_loss_fn, negatives
    from .trainer import train

    torch.manual_seed(seed)
    x, y = digits("train", image_size=16)
    config = ClassifierConfig()
    model = DigitClassifier(config)
    gen = torch.Generator().manual_seed(seed + 1)
    result = train(model, classifier_loss_fn(gen), (x, y), steps=steps, batch_size=128, lr=2e-3,
                   weight_decay=1e-4, ema_decay=0.995, seed=seed, device="cpu")
    clf = result.ema_model.cpu()
    xt, yt = digits("test", image_size=16)
    neg = negatives(xt, torch.Generator().manual_seed(123))
    metrics = {"test_accuracy": accuracy(clf, xt, yt),
               "negatives_rejected": accuracy(clf, neg, torch.full_like(yt, NOT_A_DIGIT))}
    save_checkpoint("digit_classifier", clf, model_kind="classifier", config=config.to_dict(),
                    recipe="python -m course_lib.train digit_classifier", steps=steps,
                    wall_time_s=result.wall_time_s, metrics=metrics)
    return metrics


def ddpm_digits(steps: int = 4000, seed: int = 0, num_samples: int = 256, batch_size: int = 64,
                snapshot_dir: str = "runs") -> dict:
    """DDPM (linear schedule, T = 1000, L_simple) on 16x16 digits with the default small U-Net.

    Every 500 steps the EMA weights are written to ``<snapshot_dir>/ddpm_digits_step<N>.safetensors``
    (not shipped) so a long run can be inspected or resumed by hand.
    """
    from pathlib import Path

    from safetensors.torch import save_file
    from .data import digits
    from .losses import diffusion_loss_fn
    from .metrics import sample_report
    from .samplers import ddpm_sample
    from .schedules import get_schedule
    from .trainer import train
    from .unet import UNet, UNetConfig

    torch.manual_seed(seed)
    x, y = digits("train", image_size=16)
    schedule = get_schedule("linear", 1000)
    config = UNetConfig()
    device = default_device()
    model, ema = UNet(config), UNet(config)
    ema.load_state_dict(model.state_dict())
    Path(snapshot_dir).mkdir(parents=True, exist_ok=True)

    def snapshot(step, loss):
        if (step + 1) % 500 == 0:
            state = {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}
            save_file(state, str(Path(snapshot_dir) / f"ddpm_digits_step{step + 1}.safetensors"))

    result = train(model, diffusion_loss_fn(schedule, torch.Generator().manual_seed(seed + 1)), (x,),
                   steps=steps, batch_size=batch_size, lr=1e-3, warmup_steps=200, ema_decay=0.999, seed=seed,
                   device=device, callback=snapshot, ema_model=ema)
    ema = result.ema_model
    samples = ddpm_sample(ema, (num_samples, 1, 16, 16), schedule, generator=torch.Generator().manual_seed(seed),
                          device=device)
    report = sample_report(samples.cpu())
    metrics = {k: report[k] for k in ("recognized", "mean_confidence", "frechet", "frechet_real")}
    metrics["final_loss"] = sum(result.losses[-100:]) / 100
    save_checkpoint("ddpm_digits", ema.cpu(), model_kind="unet", config=config.to_dict(),
                    recipe="python -m course_lib.train ddpm_digits", steps=steps,
                    wall_time_s=result.wall_time_s, metrics=metrics)
    return metrics


def vae_digits(steps: int = 2000, seed: int = 0, names: tuple[str, ...] | None = None) -> dict:
    """Chapter 1's VAEs on 8-bit 16x16 digits: vae_digits, vae_digits_2d, the beta sweep and vae_digits_ldm.

    vae_digits (16-d latent) and vae_digits_2d (2-d latent, for the latent map) minimise the negative ELBO
    (beta = 1). The sweep vae_digits_beta_* keeps Stable Diffusion's kind of latent ([4, 4, 4] here) and lowers
    the KL weight beta, from the same seed, so that the models differ only in beta; its last model,
    vae_digits_ldm (beta = 1e-6, as in Rombach et al. 2022), is the autoencoder of the latent diffusion chapter.
    Digits are rounded to 256 grey levels, so each -ELBO is a code length of 8-bit images. Each model's config
    stores scaling_factor = 1 / std of its training latents. ``names`` retrains only those checkpoints.
    """
    from dataclasses import replace

    from .data import digits
    from .distributions import quantize
    from .metrics import sample_report
    from .vae import VAE, VAEConfig, evaluate, train_vae

    x_train, x_test = (quantize(digits(split, image_size=16)[0]) for split in ("train", "test"))
    small = {"channels": (16, 32, 32), "blocks_per_level": 0}
    runs = {"vae_digits": (VAEConfig(latent_dim=16, **small), 1.0),
            "vae_digits_2d": (VAEConfig(latent_dim=2, **small), 1.0)}
    for name, beta in [("vae_digits_beta_1", 1.0), ("vae_digits_beta_1e-1", 0.1), ("vae_digits_beta_1e-2", 0.01),
                       ("vae_digits_beta_1e-3", 1e-3), ("vae_digits_ldm", 1e-6)]:
        runs[name] = (VAEConfig(latent_channels=4, **small), beta)

    all_metrics = {}
    for i, (name, (config, beta)) in enumerate(runs.items()):
        if names is not None and name not in names:
            continue
        run_seed = seed + min(i, 2)  # the sweep shares one seed
        torch.manual_seed(run_seed)
        history: list[dict[str, float]] = []
        result = train_vae(VAE(config), x_train, beta=beta, steps=steps, seed=run_seed, device="cpu", history=history)
        model = result.ema_model.cpu()
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            latents = model.encode(x_train).latent_dist.sample(gen)
        model.config = replace(config, scaling_factor=round(1.0 / latents.std().item(), 5))
        test, train_report = evaluate(model, x_test, generator=gen), evaluate(model, x_train, generator=gen)
        report = sample_report(model.sample(256, generator=gen).clamp(-1, 1))
        every = max(1, steps // 40)  # the training curve, averaged over windows of `every` steps
        curve = [{"step": s + every, **{k: sum(h[k] for h in history[s:s + every]) / every for k in ("recon", "kl")}}
                 for s in range(0, steps - every + 1, every)]
        metrics = {"beta": beta, "test_neg_elbo_nats": test.neg_elbo, "test_bits_per_dim": test.bits_per_dim,
                   "test_recon_nats": test.recon, "test_kl_nats": test.kl, "test_mse": test.mse,
                   "train_neg_elbo_nats": train_report.neg_elbo, "latent_std": latents.std().item(),
                   "sample_recognized": report["recognized"], "sample_confidence": report["mean_confidence"],
                   "sample_frechet": report["frechet"], "curve": curve}
        save_checkpoint(name, model, model_kind="vae", config=model.config.to_dict(),
                        recipe="python -m course_lib.train vae_digits", steps=steps,
                        wall_time_s=result.wall_time_s, metrics=metrics)
        all_metrics[name] = {k: v for k, v in metrics.items() if k != "curve"}
        print(name, all_metrics[name], flush=True)
    return all_metrics


RECIPES = {
    "digit_classifier": digit_classifier,
    "ddpm_digits": ddpm_digits,
    "vae_digits": vae_digits,
}
