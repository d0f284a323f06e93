"""The tiny Stable Diffusion: the opened loop against diffusers' own pipeline, cross-attention against diffusers'
``Attention``, the training loss's prompt dropout, the held-out split, the saved pipeline's SHA check, and clear
errors for bad input. Parts are random (untrained) and tiny: these are identities, not quality checks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from course_lib import text_to_image as t2i
from course_lib.checkpoints import CheckpointError
from course_lib.cross_attention import cross_attention, cross_attention_of, record_cross_attention, word_maps
from course_lib.data import ATTRIBUTES, SHAPES, parse_caption
from course_lib.latent import tiny_autoencoder
from course_lib.text import load_tokenizer

PROMPTS = ["a large red circle at the top left", "a small blue square at the center"]


@pytest.fixture(scope="module")
def pipe():
    from transformers import CLIPModel

    from course_lib.clip import tiny_clip_config

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    text_encoder = t2i.text_encoder_from_clip(CLIPModel(tiny_clip_config(tokenizer)).eval())
    vae = tiny_autoencoder(scaling_factor=0.9).eval()
    pipe = t2i.build_pipeline(vae, text_encoder, tokenizer, t2i.tiny_unet().eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("kind", ["ddpm", "ddim", "euler"])
def test_opened_loop_returns_the_pipelines_images(pipe, kind):
    pipe.scheduler = t2i.make_scheduler(kind)
    ours = t2i.generate(
        pipe, PROMPTS, guidance_scale=4.0, num_inference_steps=8, generator=torch.Generator().manual_seed(3)
    )
    theirs = pipe(
        PROMPTS, guidance_scale=4.0, num_inference_steps=8, generator=torch.Generator().manual_seed(3), output_type="pt"
    ).images
    torch.testing.assert_close(ours, theirs * 2 - 1, rtol=0, atol=1e-5)


def test_negative_prompts_replace_the_empty_prompt_as_in_diffusers(pipe):
    pipe.scheduler = t2i.make_scheduler("ddim")
    negative = ["a small green star at the bottom right"] * 2
    ours = t2i.generate(pipe, PROMPTS, 3.0, 6, negative_prompts=negative, generator=torch.Generator().manual_seed(1))
    theirs = pipe(
        PROMPTS,
        guidance_scale=3.0,
        num_inference_steps=6,
        negative_prompt=negative,
        generator=torch.Generator().manual_seed(1),
        output_type="pt",
    ).images
    torch.testing.assert_close(ours, theirs * 2 - 1, rtol=0, atol=1e-5)
    plain = t2i.generate(pipe, PROMPTS, 3.0, 6, generator=torch.Generator().manual_seed(1))
    assert (plain - ours).abs().max() > 1e-3  # the negative prompt does change the result


def test_guidance_scale_one_is_the_conditional_model_alone(pipe):
    """g = 1: eps_u + 1 (eps_c - eps_u) = eps_c, so the unconditional pass is skipped; the formula is continuous there."""
    pipe.scheduler = t2i.make_scheduler("ddim")
    run = lambda g, **kw: t2i.generate(pipe, PROMPTS, g, 5, generator=torch.Generator().manual_seed(2), **kw)
    at_one = run(1.0)
    torch.testing.assert_close(run(1.0, negative_prompts=["a large red star at the center"] * 2), at_one)
    torch.testing.assert_close(run(1.0 + 1e-6), at_one, rtol=0, atol=1e-4)


def test_encode_prompts_matches_the_pipelines_prompt_embeddings(pipe):
    ours = t2i.encode_prompts(pipe.text_encoder, pipe.tokenizer, PROMPTS)
    cond, uncond = pipe.encode_prompt(PROMPTS, "cpu", 1, True)
    torch.testing.assert_close(ours, cond)
    torch.testing.assert_close(t2i.encode_prompts(pipe.text_encoder, pipe.tokenizer, ["", ""]), uncond)


def test_cross_attention_equals_diffusers_attention(pipe):
    attn = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    torch.manual_seed(0)
    x, context = torch.randn(2, 64, attn.to_q.in_features), torch.randn(2, 16, attn.to_k.in_features)
    ours, weights = cross_attention_of(attn, x, context)
    torch.testing.assert_close(ours, attn(x, encoder_hidden_states=context), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert weights.shape == (2, attn.heads, 64, 16)


def test_one_head_cross_attention_by_hand():
    torch.manual_seed(1)
    x, ctx = torch.randn(1, 3, 4), torch.randn(1, 2, 5)
    wq, wk, wv, wo = torch.randn(4, 4), torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 4)
    out, weights = cross_attention(x, ctx, wq, wk, wv, wo, None, heads=1)
    q, k, v = x[0] @ wq.T, ctx[0] @ wk.T, ctx[0] @ wv.T
    expected = torch.softmax(q @ k.T / 2.0, dim=-1)  # sqrt(d) = sqrt(4)
    torch.testing.assert_close(weights[0, 0], expected)
    torch.testing.assert_close(out[0], expected @ v @ wo.T)


def test_recorder_leaves_the_unet_output_unchanged_and_keeps_maps(pipe):
    unet = pipe.unet
    torch.manual_seed(0)
    z, t, cond = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 16, 64)
    with torch.no_grad():
        before = unet(z, t, encoder_hidden_states=cond).sample
        with record_cross_attention(unet) as recorded:
            during = unet(z, t, encoder_hidden_states=cond).sample
        after = unet(z, t, encoder_hidden_states=cond).sample
    torch.testing.assert_close(during, before, rtol=1e-5, atol=1e-5)
    assert not any("Recording" in type(p).__name__ for p in unet.attn_processors.values())  # put back
    torch.testing.assert_close(after, before)
    assert len(recorded) == 10  # attn2 of the transformer blocks: 3 down (1 each), 1 mid, 3 up (2 each)
    maps = word_maps(recorded, size=8)
    assert maps.shape == (2, 16, 8, 8)
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 8, 8), rtol=1e-4, atol=1e-4)  # a distribution over tokens


def test_loss_drops_the_condition_with_probability_p_uncond():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, z, t, encoder_hidden_states):
            seen.append(encoder_hidden_states.clone())
            return type("Out", (), {"sample": torch.zeros_like(z)})()

    null, cond = torch.zeros(16, 64), torch.ones(4000, 16, 64)
    ab = t2i.make_scheduler().alphas_cumprod
    loss = t2i.latent_diffusion_loss_fn(ab, null, 0.2, torch.Generator().manual_seed(0))(
        Probe(), (torch.zeros(4000, 4, 2, 2), cond)
    )
    dropped = (seen[0][:, 0, 0] == 0).float().mean().item()
    assert abs(dropped - 0.2) < 0.03
    assert torch.isclose(loss, torch.tensor(1.0), atol=0.05)  # predicting 0 for unit noise: MSE ~ 1
    with pytest.raises(ValueError, match="p_uncond"):
        t2i.latent_diffusion_loss_fn(ab, null, 1.0)


def test_loss_is_l_simple_on_the_schedulers_forward_process():
    """With the scheduler's own ``add_noise`` on the same t and noise, the loss is the MSE against that noise."""
    torch.manual_seed(0)
    unet = t2i.tiny_unet().eval()
    z0, cond = torch.randn(3, 4, 8, 8), torch.randn(3, 16, 64)
    scheduler = t2i.make_scheduler()
    g = torch.Generator().manual_seed(5)
    loss = t2i.latent_diffusion_loss_fn(scheduler.alphas_cumprod, torch.zeros(16, 64), 0.0, g)(unet, (z0, cond))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 1000, (3,), generator=g)
    noise = torch.randn(z0.shape, generator=g)
    expected = F.mse_loss(unet(scheduler.add_noise(z0, noise, t), t, encoder_hidden_states=cond).sample, noise)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_held_out_split():
    data, keep = t2i.training_data(3000, seed=4)
    assert SHAPES.index(t2i.HELD_OUT_SHAPE) not in set(data.shape.tolist())
    held_out = set(t2i.held_out_captions())
    kept = [c for c, k in zip(data.captions, keep) if k]
    assert held_out.isdisjoint(kept) and not held_out.isdisjoint(data.captions)
    assert 25 <= len(held_out) <= 35  # one in ten of 5 x 6 x 2 x 5 = 300
    for name, values in ATTRIBUTES.items():  # every value of every attribute still appears in training
        assert {parse_caption(c)[name] for c in kept} == set(range(len(values))) - (
            {SHAPES.index(t2i.HELD_OUT_SHAPE)} if name == "shape" else set()
        )


def test_save_load_round_trip_and_the_sha_check(pipe, tmp_path):
    pipe.scheduler = t2i.make_scheduler("ddim")
    manifest = t2i.save_pipeline(pipe, tmp_path / "p", recipe="test")
    assert "unet/diffusion_pytorch_model.safetensors" in manifest["files"]
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in manifest["files"])
    loaded = t2i.load_pipeline(tmp_path / "p", scheduler="ddim")
    assert loaded.unet.dtype == torch.float32  # stored in float16, loaded as float32
    a = t2i.generate(pipe, PROMPTS[:1], 2.0, 4, generator=torch.Generator().manual_seed(0))
    b = t2i.generate(loaded, PROMPTS[:1], 2.0, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0.02)  # float16 storage of the U-Net's weights

    shutil.copytree(tmp_path / "p", tmp_path / "changed")
    (tmp_path / "changed" / "scheduler" / "scheduler_config.json").write_text(json.dumps({"beta_end": 0.5}))
    with pytest.raises(CheckpointError, match="scheduler_config.json does not match"):
        t2i.load_pipeline(tmp_path / "changed")
    shutil.copytree(tmp_path / "p", tmp_path / "extra")
    (tmp_path / "extra" / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="does not list"):
        t2i.load_pipeline(tmp_path / "extra")
    (tmp_path / "p" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        t2i.load_pipeline(tmp_path / "p")


def test_bad_input_gets_clear_errors(pipe):
    with pytest.raises(ValueError, match="no prompts"):
        t2i.generate(pipe, [], 2.0, 4)
    with pytest.raises(ValueError, match="guidance_scale"):
        t2i.generate(pipe, PROMPTS, -1.0, 4)
    with pytest.raises(ValueError, match="one per prompt"):
        t2i.generate(pipe, PROMPTS, 2.0, 4, negative_prompts=[""])
    with pytest.raises(ValueError, match="unknown scheduler"):
        t2i.make_scheduler("plms")
    with pytest.raises(OSError, match="load_pipeline\\(\\)"):
        t2i.load_pipeline("no-such-user/no-such-model")
    with pytest.warns(UserWarning, match="cut off"):  # truncation is said, not silent
        t2i.encode_prompts(pipe.text_encoder, pipe.tokenizer, [" ".join(["a red circle"] * 8)])


def test_attention_on_object_is_one_for_uniform_maps_and_higher_on_the_object():
    from course_lib.cross_attention import attention_on_object

    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[:, :, :4, :4] = True  # a quarter of the image
    uniform = torch.full((2, 3, 4, 4), 1 / 3)
    torch.testing.assert_close(attention_on_object(uniform, masks), torch.ones(3))
    focused = torch.zeros(2, 1, 4, 4)
    focused[:, :, :2, :2] = 1.0
    assert attention_on_object(focused, masks)[0] > 3.0  # nearly all of it on a quarter of the image: close to 4


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_sdedit_returns_the_img2img_pipelines_images(pipe, kind):
    from diffusers import StableDiffusionImg2ImgPipeline

    from course_lib.data import render_captions

    pipe.scheduler = t2i.make_scheduler(kind)
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    img2img.set_progress_bar_config(disable=True)
    images = render_captions(PROMPTS, seed=0)
    ours = t2i.sdedit(pipe, images, PROMPTS, 0.6, 3.0, 10, generator=torch.Generator().manual_seed(4))
    theirs = img2img(
        PROMPTS,
        image=(images + 1) / 2,
        strength=0.6,
        guidance_scale=3.0,
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(4),
        output_type="pt",
    ).images
    torch.testing.assert_close(ours, theirs * 2 - 1, rtol=0, atol=1e-4)


def test_sdedit_bad_input(pipe):
    images = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="resize"):
        t2i.sdedit(pipe, torch.zeros(2, 3, 64, 64), PROMPTS, 0.5)
    with pytest.raises(ValueError, match="strength"):
        t2i.sdedit(pipe, images, PROMPTS, 0.0)
    with pytest.raises(ValueError, match="one prompt per image"):
        t2i.sdedit(pipe, images, PROMPTS[:1], 0.5)
    with pytest.raises(ValueError, match="no step"):
        t2i.sdedit(pipe, images, PROMPTS, 0.05, num_inference_steps=10)
