"""Recipes of chapters 1-4: the digits classifier, the DDPM / improved-DDPM digits models and the VAEs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from ..checkpoints import save_checkpoint
from ..profiles import default_device


def digit_classifier(steps: int = 1500, seed: int = 0) -> dict:
    """The 11-way digits classifier behind ``metrics`` (digits 0-9 + "not a digit"), 16x16 inputs."""
    from ..data import digits
    from ..metrics import NOT_A_DIGIT, ClassifierConfig, DigitClassifier, accuracy, classifier_loss_fn, negatives
    from ..trainer import process_generator, train

    torch.manual_seed(seed)
    x, y = digits("train", image_size=16)
    config = ClassifierConfig()
    model = DigitClassifier(config)
    gen = process_generator(seed + 1)
    result = train(
        model,
        classifier_loss_fn(gen),
        (x, y),
        steps=steps,
        batch_size=128,
        lr=2e-3,
        weight_decay=1e-4,
        ema_decay=0.995,
        seed=seed,
        device="cpu",
    )
    if not result.is_main_process:  # under accelerate launch, process 0 alone measures and saves
        return {}
    clf = result.ema_model.cpu()
    xt, yt = digits("test", image_size=16)
    neg = negatives(xt, torch.Generator().manual_seed(123))
    metrics = {
        "test_accuracy": accuracy(clf, xt, yt),
        "negatives_rejected": accuracy(clf, neg, torch.full_like(yt, NOT_A_DIGIT)),
    }
    save_checkpoint(
        "digit_classifier",
        clf,
        model_kind="classifier",
        config=config.to_dict(),
        recipe="python -m course_lib.train digit_classifier",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics


@dataclass(frozen=True)
class DDPMDigitsSettings:
    """How ``ddpm_digits`` trains: the one place these numbers live (the DDPM digits page retrains with them)."""

    steps: int = 4000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    seed: int = 0

    def train_kwargs(self) -> dict:
        """These settings as keyword arguments of ``trainer.train``."""
        return asdict(self)


DDPM_DIGITS = DDPMDigitsSettings()


def ema_snapshots(ema, snapshot_dir: str, name: str, every: int = 500, done: int = 0):
    """A ``train`` callback that writes the EMA weights to ``<snapshot_dir>/<name>_step<N>.safetensors`` every
    ``every`` steps (N counts ``done`` earlier steps too, for resumed runs). Not shipped: for inspecting a long
    run, or for shipping one of its snapshots by hand."""
    from pathlib import Path

    from safetensors.torch import save_file

    Path(snapshot_dir).mkdir(parents=True, exist_ok=True)

    def snapshot(step, loss):
        if (step + 1) % every == 0:
            state = {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}
            save_file(state, str(Path(snapshot_dir) / f"{name}_step{done + step + 1}.safetensors"))

    return snapshot


def ddpm_digits(
    steps: int = DDPM_DIGITS.steps,
    seed: int = DDPM_DIGITS.seed,
    num_samples: int = 256,
    batch_size: int = DDPM_DIGITS.batch_size,
    snapshot_dir: str = "runs",
) -> dict:
    """DDPM (linear schedule, T = 1000, L_simple) on 16x16 digits with the default small U-Net.

    The training settings are ``DDPM_DIGITS`` (``steps``, ``seed`` and ``batch_size`` override them). Every 500
    steps the EMA weights are written to ``<snapshot_dir>/ddpm_digits_step<N>.safetensors`` (not shipped) so a
    long run can be inspected or resumed by hand.
    """
    from ..data import digits
    from ..losses import diffusion_loss_fn
    from ..metrics import sample_report
    from ..samplers import ddpm_sample
    from ..schedules import get_schedule
    from ..trainer import process_generator, train
    from ..unet import UNet, UNetConfig

    settings = replace(DDPM_DIGITS, steps=steps, seed=seed, batch_size=batch_size)
    torch.manual_seed(seed)
    x, y = digits("train", image_size=16)
    schedule = get_schedule("linear", 1000)
    config = UNetConfig()
    device = default_device()
    model, ema = UNet(config), UNet(config)
    ema.load_state_dict(model.state_dict())
    result = train(
        model,
        diffusion_loss_fn(schedule, process_generator(seed + 1)),
        (x,),
        device=device,
        callback=ema_snapshots(ema, snapshot_dir, "ddpm_digits"),
        ema_model=ema,
        **settings.train_kwargs(),
    )
    if not result.is_main_process:
        return {}
    ema = result.ema_model
    samples = ddpm_sample(
        ema, (num_samples, 1, 16, 16), schedule, generator=torch.Generator().manual_seed(seed), device=device
    )
    report = sample_report(samples.cpu())
    metrics = {k: report[k] for k in ("recognized", "mean_confidence", "frechet", "frechet_real")}
    metrics["final_loss"] = sum(result.losses[-100:]) / 100
    save_checkpoint(
        "ddpm_digits",
        ema.cpu(),
        model_kind="unet",
        config=config.to_dict(),
        recipe="python -m course_lib.train ddpm_digits",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics


def iddpm_digits(
    variant: str = "hybrid",
    steps: int = DDPM_DIGITS.steps,
    seed: int = DDPM_DIGITS.seed,
    num_samples: int = 256,
    name: str | None = None,
) -> dict:
    """Improved DDPM on 16x16 digits: the cosine schedule with L_simple ("cosine") or L_hybrid + learned Sigma.

    Nichol & Dhariwal 2021. Everything else is ``ddpm_digits``'s (``DDPM_DIGITS``: steps, batch, lr, warm-up,
    EMA; the default U-Net, with 2 output channels, eps and v, for the learned variance), so the chapter-3 table
    compares like with like. The digits are rounded to 256 levels (``quantize``) for training, as the
    decoder term of L_hybrid needs; ``ddpm_digits`` trained on the unrounded values (they differ by < 1/255).
    Saves ``iddpm_digits_<variant>`` (or ``name``) with its samples' metrics and held-out bits/dim in the manifest.
    """
    from ..data import digits
    from ..distributions import quantize
    from ..losses import l_hybrid, l_simple
    from ..metrics import sample_report
    from ..samplers import ddpm_sample
    from ..schedules import get_schedule
    from ..trainer import process_generator, train
    from ..unet import UNet, UNetConfig

    if variant not in ("cosine", "hybrid"):
        raise ValueError(
            f"variant must be 'cosine' (cosine schedule, L_simple) or 'hybrid' (cosine, L_hybrid, "
            f"learned variance), got {variant!r}."
        )
    settings = replace(DDPM_DIGITS, steps=steps, seed=seed)
    name, learned = name or f"iddpm_digits_{variant}", variant == "hybrid"
    torch.manual_seed(seed)
    x = quantize(digits("train", image_size=16)[0])
    schedule = get_schedule("cosine", 1000)
    config = UNetConfig(out_channels=2 if learned else None)
    model, ema = UNet(config), UNet(config)
    ema.load_state_dict(model.state_dict())
    gen = process_generator(seed + 1)
    loss = l_hybrid if learned else l_simple

    def loss_fn(net, batch):
        return loss(net, batch[0], schedule, generator=gen)

    result = train(model, loss_fn, (x,), device=default_device(), ema_model=ema, **settings.train_kwargs())
    if not result.is_main_process:
        return {}
    ema = result.ema_model.cpu().eval()
    variance = "learned_range" if learned else "fixed_small"
    samples = ddpm_sample(
        ema, (num_samples, 1, 16, 16), schedule, variance=variance, generator=torch.Generator().manual_seed(seed)
    )
    report = sample_report(samples.clamp(-1, 1))
    metrics = {k: report[k] for k in ("recognized", "mean_confidence", "frechet", "frechet_real")}
    metrics |= {
        "final_loss": sum(result.losses[-100:]) / 100,
        **held_out_bits_per_dim(ema, variance, seed),
        "schedule": "cosine",
        "variance": variance,
        "loss": "l_hybrid (lambda 0.001)" if learned else "l_simple",
    }
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


HELD_OUT_STRATA = dict(num_strata=100, dense=10, tail=2)  # timestep_strata(1000, **HELD_OUT_STRATA)


def held_out_bits_per_dim(model, variance: str, seed: int = DDPM_DIGITS.seed) -> dict:
    """-L_vlb of a cosine-schedule digits model on the 360 held-out digits (256 levels), for the manifest.

    Stratified over t with ``HELD_OUT_STRATA``: the first 10 and the last 2 indices on their own (the last,
    after the clipped beta of the cosine schedule, holds about 0.23 bits/dim that a wide range would sample
    once per image: chapter 3, page 4).
    """
    from ..data import digits
    from ..distributions import quantize
    from ..likelihood import timestep_strata, vlb_bits_per_dim
    from ..schedules import get_schedule

    x_test = quantize(digits("test", image_size=16)[0])
    vlb = vlb_bits_per_dim(
        model,
        x_test,
        get_schedule("cosine", 1000),
        strata=timestep_strata(1000, **HELD_OUT_STRATA),
        variance=variance,
        generator=torch.Generator().manual_seed(seed),
    )
    return {
        "test_bits_per_dim": vlb.bits_per_dim,
        "test_bits_per_dim_stderr": vlb.stderr_bits_per_dim,
        "test_bits_per_dim_strata": f"timestep_strata(1000, {HELD_OUT_STRATA})",
    }


def iddpm_digits_cosine(steps: int = DDPM_DIGITS.steps, seed: int = DDPM_DIGITS.seed) -> dict:
    """Improved DDPM, cosine schedule + L_simple, fixed variance, on digits (see ``iddpm_digits``)."""
    return iddpm_digits("cosine", steps=steps, seed=seed)


def iddpm_digits_cosine_seed1(steps: int = DDPM_DIGITS.steps, seed: int = 1) -> dict:
    """``iddpm_digits_cosine`` again with another seed: how far two runs of one recipe differ (chapter 3, page 4)."""
    return iddpm_digits("cosine", steps=steps, seed=seed, name="iddpm_digits_cosine_seed1")


def iddpm_digits_hybrid(steps: int = DDPM_DIGITS.steps, seed: int = DDPM_DIGITS.seed) -> dict:
    """Improved DDPM, cosine schedule + L_hybrid + learned variance, on digits (see ``iddpm_digits``)."""
    return iddpm_digits("hybrid", steps=steps, seed=seed)


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

    from ..data import digits
    from ..distributions import quantize
    from ..metrics import sample_report
    from ..vae import VAE, VAEConfig, evaluate, train_vae

    x_train, x_test = (quantize(digits(split, image_size=16)[0]) for split in ("train", "test"))
    small = {"channels": (16, 32, 32), "blocks_per_level": 0}
    runs = {
        "vae_digits": (VAEConfig(latent_dim=16, **small), 1.0),
        "vae_digits_2d": (VAEConfig(latent_dim=2, **small), 1.0),
    }
    for name, beta in [
        ("vae_digits_beta_1", 1.0),
        ("vae_digits_beta_1e-1", 0.1),
        ("vae_digits_beta_1e-2", 0.01),
        ("vae_digits_beta_1e-3", 1e-3),
        ("vae_digits_ldm", 1e-6),
    ]:
        runs[name] = (VAEConfig(latent_channels=4, **small), beta)

    all_metrics = {}
    for i, (name, (config, beta)) in enumerate(runs.items()):
        if names is not None and name not in names:
            continue
        run_seed = seed + min(i, 2)  # the sweep shares one seed
        torch.manual_seed(run_seed)
        history: list[dict[str, float]] = []
        result = train_vae(VAE(config), x_train, beta=beta, steps=steps, seed=run_seed, device="cpu", history=history)
        if not result.is_main_process:
            continue
        model = result.ema_model.cpu()
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            latents = model.encode(x_train).latent_dist.sample(gen)
        model.config = replace(config, scaling_factor=round(1.0 / latents.std().item(), 5))
        test, train_report = evaluate(model, x_test, generator=gen), evaluate(model, x_train, generator=gen)
        report = sample_report(model.sample(256, generator=gen).clamp(-1, 1))
        every = max(1, steps // 40)  # the training curve, averaged over windows of `every` steps
        curve = [
            {"step": s + every, **{k: sum(h[k] for h in history[s : s + every]) / every for k in ("recon", "kl")}}
            for s in range(0, steps - every + 1, every)
        ]
        metrics = {
            "beta": beta,
            "test_neg_elbo_nats": test.neg_elbo,
            "test_bits_per_dim": test.bits_per_dim,
            "test_recon_nats": test.recon,
            "test_kl_nats": test.kl,
            "test_mse": test.mse,
            "train_neg_elbo_nats": train_report.neg_elbo,
            "latent_std": latents.std().item(),
            "sample_recognized": report["recognized"],
            "sample_confidence": report["mean_confidence"],
            "sample_frechet": report["frechet"],
            "curve": curve,
        }
        save_checkpoint(
            name,
            model,
            model_kind="vae",
            config=model.config.to_dict(),
            recipe="python -m course_lib.train vae_digits",
            steps=steps,
            wall_time_s=result.wall_time_s,
            metrics=metrics,
        )
        all_metrics[name] = {k: v for k, v in metrics.items() if k != "curve"}
        print(name, all_metrics[name], flush=True)
    return all_metrics


# --- chapter 5: guidance ----------------------------------------------------------------------------------
