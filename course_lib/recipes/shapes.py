"""Recipes of the shapes world (chapters 6-8): the judge, the tiny CLIP, the autoencoder, the tiny Stable Diffusion."""

from __future__ import annotations

import torch

from ..checkpoints import save_checkpoint

JUDGE_TRAIN, JUDGE_TEST = 20_000, 2_000  # renders of every shape; the test set is drawn with another seed


def shapes_judge(steps: int = 1500, seed: int = 0, batch_size: int = 128) -> dict:
    """The attribute classifier behind ``judge.adherence``, trained on clean renders of all six shapes.

    Metrics: adherence of held-out renders to their own captions (near 1) and to shuffled captions (chance:
    1/6 shape, 1/6 colour, 1/2 size, 1/5 position, about 0.006 for all four).
    """
    from ..data import shapes
    from ..judge import JudgeConfig, ShapesJudge, adherence, judge_loss_fn
    from ..trainer import process_generator, train

    torch.manual_seed(seed)
    data = shapes(JUDGE_TRAIN, seed=seed)
    config = JudgeConfig()
    model = ShapesJudge(config)
    result = train(
        model,
        judge_loss_fn(generator=process_generator(seed + 1)),
        (data.images, data.shape, data.colour, data.size, data.position),
        steps=steps,
        batch_size=batch_size,
        lr=2e-3,
        weight_decay=1e-4,
        ema_decay=0.995,
        seed=seed,
        device="cpu",
    )
    if not result.is_main_process:  # under accelerate launch, process 0 alone measures and saves
        return {}
    judge = result.ema_model.cpu().eval()
    test = shapes(JUDGE_TEST, seed=seed + 1000)
    shuffled = [test.captions[i] for i in torch.randperm(JUDGE_TEST, generator=torch.Generator().manual_seed(1))]
    metrics = {
        "real_adherence": adherence(judge, test.images, test.captions),
        "shuffled_adherence": adherence(judge, test.images, shuffled),
        "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:]),
    }
    save_checkpoint(
        "shapes_judge",
        judge,
        model_kind="shapes_judge",
        config=config.to_dict(),
        recipe="python -m course_lib.train shapes_judge",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics


CLIP_TRAIN, CLIP_TEST = 20_000, 500


def tiny_clip(steps: int = 1500, seed: int = 0, batch_size: int = 256) -> dict:
    """The tiny CLIP (``clip.TINY_CLIP``), trained contrastively on renders of all six shapes with their captions.

    Metrics on held-out renders: retrieval (top-1 caption among 500), zero-shot accuracy per attribute, and the
    cosine similarity of matched and of shuffled image-caption pairs.
    """
    from transformers import CLIPModel

    from ..clip import clip_loss_fn, clip_score, retrieval_accuracy, tiny_clip_config, zero_shot_attributes
    from ..data import shapes
    from ..text import load_tokenizer, tokenize
    from ..trainer import train

    torch.manual_seed(seed)
    tokenizer = load_tokenizer()
    data = shapes(CLIP_TRAIN, seed=seed + 10)
    tokens = tokenize(tokenizer, list(data.captions))
    config = tiny_clip_config(tokenizer)
    model = CLIPModel(config)
    result = train(
        model,
        clip_loss_fn(),
        (tokens["input_ids"], tokens["attention_mask"], data.images),
        steps=steps,
        batch_size=batch_size,
        lr=1e-3,
        weight_decay=0.1,
        warmup_steps=100,
        ema_decay=0.995,
        seed=seed,
        device="cpu",
    )
    if not result.is_main_process:
        return {}
    clip = result.ema_model.cpu().eval()
    test = shapes(CLIP_TEST, seed=seed + 2000)
    shuffled = [test.captions[i] for i in torch.randperm(CLIP_TEST, generator=torch.Generator().manual_seed(1))]
    metrics = {
        "retrieval_top1": retrieval_accuracy(clip, tokenizer, test.images, list(test.captions)),
        "zero_shot": zero_shot_attributes(clip, tokenizer, test.images, list(test.captions)),
        "cosine_matched": clip_score(clip, tokenizer, test.images, list(test.captions)).mean().item(),
        "cosine_shuffled": clip_score(clip, tokenizer, test.images, shuffled).mean().item(),
        "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:]),
    }
    save_checkpoint(
        "tiny_clip",
        clip,
        model_kind="clip",
        config=config.to_dict(),
        recipe="python -m course_lib.train tiny_clip",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics


AE_TRAIN, AE_TEST = 20_000, 1_000


def shapes_autoencoder(steps: int = 1500, seed: int = 0, batch_size: int = 64) -> dict:
    """The tiny ``AutoencoderKL`` of ``latent`` (f = 4), trained on renders of all six shapes with a small KL weight;
    its ``scaling_factor`` is 1 / std of its latents on 2 000 training renders.

    Metrics on held-out renders: reconstruction PSNR (all, and hearts alone), the std of the scaled latents, and the
    judge's adherence of the reconstructions to the renders' captions.
    """
    from ..data import SHAPES, shapes
    from ..judge import ShapesJudge, adherence
    from ..latent import KL_WEIGHT, TINY_AUTOENCODER, autoencoder_loss_fn, decode, encode, latent_scaling_factor, psnr
    from ..latent import tiny_autoencoder
    from ..trainer import process_generator, train

    torch.manual_seed(seed)
    data = shapes(AE_TRAIN, seed=seed + 20)
    vae = tiny_autoencoder()
    result = train(
        vae,
        autoencoder_loss_fn(KL_WEIGHT, process_generator(seed + 1)),
        (data.images,),
        steps=steps,
        batch_size=batch_size,
        lr=1e-3,
        warmup_steps=100,
        ema_decay=0.995,
        seed=seed,
        device="cpu",
    )
    if not result.is_main_process:
        return {}
    ae = result.ema_model.cpu().eval()
    factor = latent_scaling_factor(ae, data.images[:2000], generator=torch.Generator().manual_seed(seed + 2))
    ae.register_to_config(scaling_factor=factor)
    test = shapes(AE_TEST, seed=seed + 3000)
    latents = encode(ae, test.images)
    recon = decode(ae, latents)
    quality = psnr(recon, test.images)
    hearts = test.shape == SHAPES.index("heart")
    metrics = {
        "scaling_factor": factor,
        "scaled_latent_std": latents.std().item(),
        "psnr_db": quality.mean().item(),
        "psnr_db_hearts": quality[hearts].mean().item(),
        "reconstruction_adherence": adherence(ShapesJudge.from_pretrained(), recon, list(test.captions)),
        "kl_weight": KL_WEIGHT,
        "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:]),
    }
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_AUTOENCODER.items()}
    save_checkpoint(
        "shapes_autoencoder",
        ae,
        model_kind="autoencoder_kl",
        config={**config, "scaling_factor": factor},
        recipe="python -m course_lib.train shapes_autoencoder",
        steps=steps,
        wall_time_s=result.wall_time_s,
        metrics=metrics,
    )
    return metrics


SD_TRAIN = 40_000  # renders before the held-out shape and combinations are removed (about 30 000 remain)
SD_STATE = "tiny_sd_state.safetensors"  # the resumable state in snapshot_dir: U-Net, EMA, steps done, time


def tiny_sd(
    steps: int = 3000,
    seed: int = 0,
    batch_size: int = 128,
    p_uncond: float = 0.1,
    snapshot_dir: str = "runs",
    resume: bool = False,
    train_images: int = SD_TRAIN,
    out_dir: str | None = None,
) -> dict:
    """The tiny Stable Diffusion: ``text_to_image.TINY_UNET`` trained on scaled latents of the shipped autoencoder with
    the shipped tiny CLIP's text states (frozen), prompt dropout ``p_uncond`` for classifier-free guidance, on every
    shape but hearts and without the held-out combinations; assembled with them into ``StableDiffusionPipeline`` and
    saved to ``checkpoints/tiny_sd`` (SHA-256 of every file in its manifest).

    Every 500 steps the U-Net, its EMA and the steps done go to ``<snapshot_dir>/tiny_sd_state.safetensors``;
    ``resume=True`` continues from there up to ``steps`` in all (a fresh AdamW, no second warm-up; data order seeded
    with seed + steps done); resumed at ``steps`` already done, it only measures and saves. The learning rate is
    constant after warm-up, so the first N steps of a longer run are an N-step run. Metrics: the judge's adherence
    of DDIM-30 samples for the held-out combinations and for as
    many training combinations, at guidance scales 1, 2, 4 and 7.5. ``out_dir`` (default: the shipped
    ``checkpoints/tiny_sd``) and ``train_images`` are for tests and experiments.
    """
    import time
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    from ..checkpoints import CHECKPOINT_DIR
    from ..clip import load_clip
    from ..judge import ShapesJudge
    from ..latent import encode, load_autoencoder
    from ..text import load_tokenizer
    from ..text_to_image import (
        PIPELINE_NAME,
        TINY_UNET,
        adherence_of,
        build_pipeline,
        encode_prompts,
        held_out_captions,
        latent_diffusion_loss_fn,
        make_scheduler,
        save_pipeline,
        text_encoder_from_clip,
        tiny_unet,
        training_data,
    )
    from ..trainer import process_generator, train

    start = time.perf_counter()
    torch.manual_seed(seed)
    vae, tokenizer = load_autoencoder(), load_tokenizer()
    text_encoder = text_encoder_from_clip(load_clip())
    data, keep = training_data(train_images, seed=seed + 30)
    latents = encode(vae, data.images[keep])
    conditions = encode_prompts(text_encoder, tokenizer, [c for c, k in zip(data.captions, keep) if k])
    null = encode_prompts(text_encoder, tokenizer, [""])[0]
    scheduler = make_scheduler("ddpm")
    unet, ema = tiny_unet(), tiny_unet()
    done, done_time, state_path = 0, 0.0, Path(snapshot_dir) / SD_STATE
    if resume:
        if not state_path.exists():
            raise FileNotFoundError(f"--resume: no {state_path} to continue from; train without --resume first.")
        state = load_file(str(state_path))
        unet.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("unet.")})
        ema.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("ema.")})
        done, done_time = int(state["steps_done"]), float(state["wall_time_s"])
        recent = [float(state["recent_loss"])] if "recent_loss" in state else []
    else:
        ema.load_state_dict(unet.state_dict())
        recent = []
    setup_time = time.perf_counter() - start

    def save_state(step, loss):
        recent.append(loss)
        del recent[:-100]
        if (step + 1) % 500 == 0:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            tensors = {
                **{f"unet.{k}": v.detach().cpu().contiguous() for k, v in unet.state_dict().items()},
                **{f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()},
                "steps_done": torch.tensor(done + step + 1),
                "recent_loss": torch.tensor(sum(recent) / len(recent)),
                "wall_time_s": torch.tensor(done_time + setup_time + time.perf_counter() - train_start),
            }
            save_file(tensors, str(state_path))

    train_start = time.perf_counter()
    result = train(
        unet,
        latent_diffusion_loss_fn(scheduler.alphas_cumprod, null, p_uncond, process_generator(seed + done + 1)),
        (latents, conditions),
        steps=max(steps - done, 0),
        batch_size=batch_size,
        lr=5e-4,
        warmup_steps=0 if done else 200,
        ema_decay=0.999,
        seed=seed + done,
        device="cpu",
        callback=save_state,
        ema_model=ema,
    )
    if not result.is_main_process:
        return {}
    wall = done_time + setup_time + result.wall_time_s
    pipe = build_pipeline(vae, text_encoder, tokenizer, result.ema_model.cpu().eval(), make_scheduler("ddim"))
    pipe.set_progress_bar_config(disable=True)
    judge = ShapesJudge.from_pretrained()
    held_out = held_out_captions()
    seen = sorted(set(c for c, k in zip(data.captions, keep) if k))
    seen = [seen[i] for i in torch.randperm(len(seen), generator=torch.Generator().manual_seed(seed))[: len(held_out)]]
    metrics = {
        "p_uncond": p_uncond,
        "held_out_shape": "heart",
        "train_images": len(latents),
        "final_loss": sum(recent) / len(recent) if recent else None,  # the last 100 steps' mean
        "evaluation": "judge adherence, DDIM 30 steps, 4 samples per prompt, seed 0",
    }
    for g in (1.0, 2.0, 4.0, 7.5):
        metrics[f"held_out_g{g:g}"] = adherence_of(pipe, judge, held_out, g)[0]
        metrics[f"seen_g{g:g}"] = adherence_of(pipe, judge, seen, g)[0]
    pipe.scheduler = make_scheduler("ddpm")
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_UNET.items()}
    save_pipeline(
        pipe,
        out_dir or CHECKPOINT_DIR / PIPELINE_NAME,
        recipe="python -m course_lib.train tiny_sd",
        steps=max(steps, done),
        batch_size=batch_size,
        wall_time_s=round(wall, 1),
        unet_config=config,
        metrics=metrics,
    )
    return metrics
