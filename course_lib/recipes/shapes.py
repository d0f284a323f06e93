"""Recipes of the shapes world (chapters 6-8): the judge that measures prompt adherence."""

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
    result = train(model, judge_loss_fn(generator=process_generator(seed + 1)),
                   (data.images, data.shape, data.colour, data.size, data.position), steps=steps,
                   batch_size=batch_size, lr=2e-3, weight_decay=1e-4, ema_decay=0.995, seed=seed, device="cpu")
    if not result.is_main_process:  # under accelerate launch, process 0 alone measures and saves
        return {}
    judge = result.ema_model.cpu().eval()
    test = shapes(JUDGE_TEST, seed=seed + 1000)
    shuffled = [test.captions[i] for i in torch.randperm(JUDGE_TEST, generator=torch.Generator().manual_seed(1))]
    metrics = {"real_adherence": adherence(judge, test.images, test.captions),
               "shuffled_adherence": adherence(judge, test.images, shuffled),
               "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:])}
    save_checkpoint("shapes_judge", judge, model_kind="shapes_judge", config=config.to_dict(),
                    recipe="python -m course_lib.train shapes_judge", steps=steps,
                    wall_time_s=result.wall_time_s, metrics=metrics)
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
    result = train(model, clip_loss_fn(), (tokens["input_ids"], tokens["attention_mask"], data.images), steps=steps,
                   batch_size=batch_size, lr=1e-3, weight_decay=0.1, warmup_steps=100, ema_decay=0.995, seed=seed,
                   device="cpu")
    if not result.is_main_process:
        return {}
    clip = result.ema_model.cpu().eval()
    test = shapes(CLIP_TEST, seed=seed + 2000)
    shuffled = [test.captions[i] for i in torch.randperm(CLIP_TEST, generator=torch.Generator().manual_seed(1))]
    metrics = {"retrieval_top1": retrieval_accuracy(clip, tokenizer, test.images, list(test.captions)),
               "zero_shot": zero_shot_attributes(clip, tokenizer, test.images, list(test.captions)),
               "cosine_matched": clip_score(clip, tokenizer, test.images, list(test.captions)).mean().item(),
               "cosine_shuffled": clip_score(clip, tokenizer, test.images, shuffled).mean().item(),
               "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:])}
    save_checkpoint("tiny_clip", clip, model_kind="clip", config=config.to_dict(),
                    recipe="python -m course_lib.train tiny_clip", steps=steps, wall_time_s=result.wall_time_s,
                    metrics=metrics)
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
    result = train(vae, autoencoder_loss_fn(KL_WEIGHT, process_generator(seed + 1)), (data.images,), steps=steps,
                   batch_size=batch_size, lr=1e-3, warmup_steps=100, ema_decay=0.995, seed=seed, device="cpu")
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
    metrics = {"scaling_factor": factor, "scaled_latent_std": latents.std().item(),
               "psnr_db": quality.mean().item(), "psnr_db_hearts": quality[hearts].mean().item(),
               "reconstruction_adherence": adherence(ShapesJudge.from_pretrained(), recon, list(test.captions)),
               "kl_weight": KL_WEIGHT, "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:])}
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_AUTOENCODER.items()}
    save_checkpoint("shapes_autoencoder", ae, model_kind="autoencoder_kl", config={**config, "scaling_factor": factor},
                    recipe="python -m course_lib.train shapes_autoencoder", steps=steps,
                    wall_time_s=result.wall_time_s, metrics=metrics)
    return metrics
