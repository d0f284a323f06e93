"""CLIP guidance (course_lib.clip_guidance): identities on random tiny parts, not quality checks."""

from __future__ import annotations

import pytest
import torch

from course_lib import text_to_image as t2i
from course_lib.clip import embed, tiny_clip_config
from course_lib.clip_guidance import clip_guided_generate, clip_latent_loss, shifted_copies
from course_lib.latent import tiny_autoencoder
from course_lib.text import load_tokenizer

PROMPTS = ["a large red circle at the top left", ""]


@pytest.fixture(scope="module")
def parts():
    from transformers import CLIPModel

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    clip = CLIPModel(tiny_clip_config(tokenizer)).eval()
    vae = tiny_autoencoder(scaling_factor=0.9).eval()
    pipe = t2i.build_pipeline(
        vae, t2i.text_encoder_from_clip(clip), tokenizer, t2i.tiny_unet().eval(), t2i.make_scheduler("ddim")
    )
    return pipe, clip


@pytest.mark.parametrize("g", [1.0, 3.0])
def test_zero_scale_is_the_unguided_sampler(parts, g):
    pipe, clip = parts
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = clip_guided_generate(
        pipe, clip, PROMPTS, ["a small blue star at the center"] * 2, 0.0, g, 4, latents=latents
    )
    theirs = t2i.generate(pipe, PROMPTS, g, 4, latents=latents)
    torch.testing.assert_close(ours, theirs)


def test_loss_is_one_minus_the_cosine_of_the_decoded_image(parts):
    pipe, clip = parts
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    _, text = embed(clip, pipe.tokenizer, prompts=["a large red circle at the top left"])
    with torch.no_grad():
        image_emb, _ = embed(clip, images=pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample)
        loss = clip_latent_loss(clip, pipe.vae, text[0])(z)
    torch.testing.assert_close(loss, 1 - image_emb @ text[0])


def test_a_guided_step_lowers_the_loss(parts):
    """One gradient step on x0_hat (what LossGuidance's SNR weighting makes a sampler step) lowers the CLIP loss."""
    pipe, clip = parts
    _, text = embed(clip, pipe.tokenizer, prompts=["a small blue star at the center"])
    loss_fn = clip_latent_loss(clip, pipe.vae, text[0], augmentations=2, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    (grad,) = torch.autograd.grad(clip_latent_loss(clip, pipe.vae, text[0])(z).sum(), z)
    with torch.no_grad():
        before = clip_latent_loss(clip, pipe.vae, text[0])(z)
        after = clip_latent_loss(clip, pipe.vae, text[0])(z - 1e-2 * grad / grad.norm())
    assert (after < before).all()
    assert loss_fn(z).shape == (2,)


def test_shifted_copies_move_the_image_and_pad_with_black():
    image = -torch.ones(1, 3, 8, 8)
    image[..., 4, 4] = 1.0
    copies = shifted_copies(image, 5, 2, torch.Generator().manual_seed(0))
    assert copies.shape == (5, 3, 8, 8)
    assert (copies == 1.0).flatten(1).sum(1).tolist() == [3] * 5  # the one bright pixel survives every shift


def test_bad_input(parts):
    pipe, clip = parts
    with pytest.raises(ValueError, match="no prompts"):
        clip_guided_generate(pipe, clip, [], [], 1.0)
    with pytest.raises(ValueError, match="text_emb"):
        clip_latent_loss(clip, pipe.vae, torch.zeros(1, 1, 64))
    euler = t2i.build_pipeline(pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.unet, t2i.make_scheduler("euler"))
    with pytest.raises(ValueError, match="DDPM or DDIM"):
        clip_guided_generate(euler, clip, PROMPTS, ["a red circle"] * 2, 1.0)
    with pytest.raises(ValueError, match="one CLIP prompt per prompt"):
        clip_guided_generate(pipe, clip, PROMPTS, "a red circle", 1.0)
