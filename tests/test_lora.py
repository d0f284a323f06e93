"""LoRA from scratch against its definition, against peft and against diffusers' LoRA loading; the DreamBooth loss."""

import copy

import pytest
import torch
from torch import nn

from course_lib import lora as L
from course_lib.dreambooth import dreambooth_loss_fn
from course_lib.text_to_image import latent_diffusion_loss_fn, tiny_unet


def _unet(seed=0):
    torch.manual_seed(seed)
    return tiny_unet().eval()


def _inputs(seed=1, n=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 4, 8, 8, generator=g), torch.tensor([10, 700][:n]), torch.randn(n, 16, 64, generator=g))


def _randomise_b(model, seed=2, std=0.05):
    L.randomise_lora_b(model, std, torch.Generator().manual_seed(seed))


def _run(unet, inputs, **kwargs):
    z, t, c = inputs
    with torch.no_grad():
        return unet(z, t, encoder_hidden_states=c, **kwargs).sample


def test_forward_is_the_definition():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    layer = L.LoRALinear(base, rank=3, alpha=6.0)
    nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(5, 12)
    a, b = layer.lora_A.weight, layer.lora_B.weight
    expected = x @ base.weight.T + base.bias + (6.0 / 3) * x @ a.T @ b.T
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)
    assert layer.delta_weight().shape == base.weight.shape


def test_randomise_lora_b_draws_b_only():
    unet = _unet()
    L.inject_lora(unet, rank=4)
    a_before = {n: m.lora_A.weight.clone() for n, m in L.lora_layers(unet).items()}
    L.randomise_lora_b(unet, 0.3, torch.Generator().manual_seed(0))
    b = torch.cat([m.lora_B.weight.flatten() for m in L.lora_layers(unet).values()])
    assert abs(b.std().item() - 0.3) < 0.01 and abs(b.mean().item()) < 0.01
    assert all(torch.equal(m.lora_A.weight, a_before[n]) for n, m in L.lora_layers(unet).items())
    L.randomise_lora_b(unet, 0.0)
    assert all((m.lora_B.weight == 0).all() for m in L.lora_layers(unet).values())
    with pytest.raises(ValueError, match="std must be >= 0"):
        L.randomise_lora_b(unet, -1.0)


@pytest.mark.parametrize("rank, targets", [(1, ("to_q", "to_v")), (4, L.ATTENTION_TARGETS), (8, ("attn2.to_k",))])
def test_count_lora_parameters_is_what_inject_adds(rank, targets):
    unet = _unet()
    total = L.count_parameters(unet)["total"]
    expected = L.count_lora_parameters(unet, targets, rank)
    L.inject_lora(unet, targets=targets, rank=rank)
    assert L.count_parameters(unet) == {
        "trainable": expected,
        "total": total + expected,
        "fraction": expected / (total + expected),
    }
    with torch.device("meta"):  # shapes only: the same count without weights
        assert L.count_lora_parameters(tiny_unet(), targets, rank) == expected
    with pytest.raises(ValueError, match="rank must be an integer from 1 to min"):
        L.count_lora_parameters(_unet(), targets, 33)  # the first level has 32 channels


def test_b_zero_at_init_leaves_the_unet_unchanged():
    unet = _unet()
    inputs = _inputs()
    before = _run(unet, inputs)
    layers = L.inject_lora(unet, rank=4)
    assert len(layers) == 80 and all((m.lora_B.weight == 0).all() for m in layers.values())
    assert torch.equal(_run(unet, inputs), before)


def test_merge_then_unmerge_restores_the_weights():
    unet = _unet()
    weights = {k: v.clone() for k, v in unet.state_dict().items()}
    L.inject_lora(unet, rank=2, alpha=5.0)
    _randomise_b(unet)
    inputs = _inputs()
    unmerged = _run(unet, inputs)
    L.merge_lora(unet)
    torch.testing.assert_close(_run(unet, inputs), unmerged, rtol=0, atol=1e-5)
    L.unmerge_lora(unet)
    L.remove_lora(unet)
    after = unet.state_dict()
    assert set(after) == set(weights)
    assert max((after[k] - weights[k]).abs().max().item() for k in weights) < 1e-6


@pytest.mark.parametrize(
    "rank, alpha, targets",
    [(1, 1.0, ("to_q", "to_v")), (4, 8.0, L.ATTENTION_TARGETS), (3, 1.5, ("attn2.to_k", "attn2.to_v", "ff.net.2"))],
)
def test_equals_peft(rank, alpha, targets):
    from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict

    ours, theirs = _unet(), _unet()
    L.inject_lora(ours, targets=targets, rank=rank, alpha=alpha)
    _randomise_b(ours, seed=rank)
    theirs.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets)))
    assert set(get_peft_model_state_dict(theirs)) == set(L.lora_state_dict(ours))
    result = set_peft_model_state_dict(theirs, L.lora_state_dict(ours))
    assert not result.unexpected_keys
    trainable_peft = sum(p.numel() for n, p in theirs.named_parameters() if "lora_" in n)
    assert L.count_parameters(ours)["trainable"] == trainable_peft
    inputs = _inputs()
    torch.testing.assert_close(_run(ours, inputs), _run(theirs, inputs), rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    """The shipped pipeline with our LoRA (random B), and a second copy that loaded the same weights through
    diffusers' ``save_lora_weights`` / ``load_lora_weights``."""
    from diffusers import StableDiffusionPipeline

    from course_lib.text_to_image import load_pipeline

    ours = load_pipeline(scheduler="ddim")
    L.inject_lora(ours.unet, rank=2, alpha=4.0)
    _randomise_b(ours.unet)
    directory = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(
        directory, unet_lora_layers=L.lora_state_dict(ours.unet), unet_lora_adapter_metadata=L.lora_config(ours.unet)
    )
    theirs = load_pipeline(scheduler="ddim")
    theirs.load_lora_weights(directory, adapter_name="ours")
    return ours, theirs


def test_load_lora_weights_gives_the_same_images(pipelines):
    from course_lib.text_to_image import generate

    ours, theirs = pipelines
    prompts = ["a large red circle at the top left", "a small blue star at the center"]
    images = [generate(p, prompts, 4.0, 5, generator=torch.Generator().manual_seed(0)) for p in (ours, theirs)]
    assert (images[0] - images[1]).abs().max() < 1e-4


def test_inference_scale_and_fuse_equal_diffusers(pipelines):
    ours, theirs = pipelines
    inputs = _inputs()
    L.set_lora_scale(ours.unet, 0.4)
    torch.testing.assert_close(
        _run(ours.unet, inputs), _run(theirs.unet, inputs, cross_attention_kwargs={"scale": 0.4}), rtol=0, atol=1e-5
    )
    L.set_lora_scale(ours.unet, 1.0)
    merged = copy.deepcopy(ours.unet)
    L.remove_lora(merged, merge=True)
    theirs.fuse_lora()
    theirs.unload_lora_weights()
    torch.testing.assert_close(_run(merged, inputs), _run(theirs.unet, inputs), rtol=0, atol=1e-5)


def test_training_moves_only_lora():
    from course_lib.trainer import train

    unet = _unet()
    base = {k: v.clone() for k, v in unet.state_dict().items()}
    L.inject_lora(unet, rank=2)
    z, _, c = _inputs(n=2)
    loss_fn = latent_diffusion_loss_fn(
        torch.linspace(0.99, 0.01, 1000), torch.zeros(16, 64), p_uncond=0.0, generator=torch.Generator().manual_seed(0)
    )
    loss_fn(unet, (z, c)).backward()
    with_grad = [n for n, p in unet.named_parameters() if p.grad is not None]
    assert with_grad and all("lora_" in n for n in with_grad)
    unet.zero_grad(set_to_none=True)
    train(unet, loss_fn, (z.repeat(4, 1, 1, 1), c.repeat(4, 1, 1)), steps=2, batch_size=4, progress=False)
    after = {k.replace(".base.", "."): v for k, v in unet.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(after[k], base[k]) for k in base)
    assert any(
        not torch.equal(layer.lora_B.weight, torch.zeros_like(layer.lora_B.weight))
        for layer in L.lora_layers(unet).values()
    )


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match=r"rank must be an integer in \[1, min\(in, out\)\] = \[1, 3\]"):
        L.LoRALinear(nn.Linear(8, 3), rank=4)
    with pytest.raises(ValueError, match="rank must be"):
        L.LoRALinear(nn.Linear(8, 3), rank=0)
    unet = _unet()
    with pytest.raises(ValueError, match="target 'to_query' matches no nn.Linear"):
        L.inject_lora(unet, targets=("to_q", "to_query"))
    with pytest.raises(ValueError, match=r"matches \['down_blocks.0.attentions.0.proj_in \(Conv2d\)'"):
        L.inject_lora(unet, targets=("proj_in",))
    with pytest.raises(ValueError, match="holds no LoRA layers"):
        L.merge_lora(unet)
    L.inject_lora(unet, rank=2)
    with pytest.raises(ValueError, match="already holds LoRA layers"):
        L.inject_lora(unet, rank=2)
    other = _unet()
    L.inject_lora(other, rank=4)
    with pytest.raises(ValueError, match="saved at another rank: inject_lora with rank=4"):
        L.load_lora_state_dict(unet, L.lora_state_dict(other))
    with pytest.raises(ValueError, match="keys missing"):
        L.load_lora_state_dict(unet, L.lora_state_dict(other, prefix="unet"))


def test_dreambooth_loss_is_subject_plus_lambda_prior():
    unet = _unet()
    z, _, c = _inputs(n=2)
    batch = (z, c, z.flip(0), c.flip(0))
    alphas_cumprod = torch.linspace(0.999, 0.01, 1000)

    def value(weight):
        fn = dreambooth_loss_fn(alphas_cumprod, weight, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            return fn(unet, batch).item()

    losses = [value(w) for w in (0.0, 1.0, 2.0)]
    assert abs(losses[2] - 2 * losses[1] + losses[0]) < 1e-6  # linear in lambda
    simple = latent_diffusion_loss_fn(
        alphas_cumprod, torch.zeros(16, 64), p_uncond=0.0, generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        assert abs(simple(unet, (z, c)).item() - losses[0]) < 1e-6  # lambda = 0: the subject's L_simple
    with pytest.raises(ValueError, match="prior_weight"):
        dreambooth_loss_fn(alphas_cumprod, -1.0)


def test_low_rank_energy_identities():
    g = torch.Generator().manual_seed(0)
    low = torch.randn(40, 3, generator=g) @ torch.randn(3, 30, generator=g)  # rank 3
    kept = L.low_rank_energy(low, [1, 3, 30])
    assert 0 < kept[0] < 1 and abs(kept[1] - 1) < 1e-9 and abs(kept[2] - 1) < 1e-9
    noise = torch.randn(64, 64, generator=g)
    s = torch.linalg.svdvals(noise.double()).square()
    assert abs(L.low_rank_energy(noise, [4])[0] - (s[:4].sum() / s.sum()).item()) < 1e-12
    with pytest.raises(ValueError, match="all zeros"):
        L.low_rank_energy(torch.zeros(4, 4), [1])


def test_fine_tune_trains_only_the_lora_layers():
    from course_lib.data import render_captions
    from course_lib.text_to_image import caption_pairs, fine_tune, load_pipeline

    pipe = load_pipeline(scheduler="ddim")
    captions = ["a large red heart at the top left", "a small blue heart at the center"] * 2
    pairs = caption_pairs(pipe, render_captions(captions), captions)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    L.inject_lora(pipe.unet, rank=2)
    result = fine_tune(pipe, pairs, steps=2, lr=1e-3, batch_size=4)
    assert len(result.losses) == 2
    after = {k.replace(".base.", "."): v for k, v in pipe.unet.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(after[k], before[k]) for k in before)
    with pytest.raises(ValueError, match="one caption per image"):
        caption_pairs(pipe, render_captions(captions), captions[:3])


def _trained_like(rank, seed, targets=L.ATTENTION_TARGETS):
    """A LoRA state dict of the given rank with random A and B (a stand-in for a trained one)."""
    unet = _unet()
    torch.manual_seed(seed)
    L.inject_lora(unet, targets=targets, rank=rank)
    _randomise_b(unet, seed=seed)
    return L.lora_state_dict(unet)


def test_concatenated_loras_equal_both_adapters_active():
    first, second = _trained_like(2, seed=5), _trained_like(3, seed=6)
    inputs = _inputs()
    both = _unet()  # dW1 folded into W, dW2 active as an adapter: W + dW1 + dW2
    L.inject_lora(both, rank=2)
    L.load_lora_state_dict(both, first)
    L.remove_lora(both, merge=True)
    L.inject_lora(both, rank=3)
    L.load_lora_state_dict(both, second)
    merged = _unet()
    L.inject_lora(merged, rank=5)
    L.load_lora_state_dict(merged, L.concat_lora_state_dicts(first, second))
    torch.testing.assert_close(_run(merged, inputs), _run(both, inputs), rtol=0, atol=1e-5)
    updates = [L.lora_updates(sd) for sd in (first, second)]
    for name, layer in L.lora_layers(merged).items():  # the layer's update is the sum of the two
        torch.testing.assert_close(layer.delta_weight(), updates[0][name] + updates[1][name], rtol=0, atol=1e-6)
    L.set_lora_scale(merged, 0.5)  # both at weight 0.5 = the concatenation at inference scale 0.5
    half = _unet()
    L.inject_lora(half, rank=5)
    L.load_lora_state_dict(half, L.concat_lora_state_dicts(first, second, weights=(0.5, 0.5)))
    torch.testing.assert_close(_run(half, inputs), _run(merged, inputs), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="adapt different layers"):
        L.concat_lora_state_dicts(first, _trained_like(2, seed=7, targets=("to_q",)))


def test_lora_updates_and_column_cosine_identities():
    unet = _unet()
    L.inject_lora(unet, rank=3, alpha=6.0)
    _randomise_b(unet)
    updates = L.lora_updates(L.lora_state_dict(unet, prefix="unet"), scaling=6.0 / 3)
    for name, layer in L.lora_layers(unet).items():
        torch.testing.assert_close(updates[f"unet.{name}"], layer.delta_weight(), rtol=0, atol=1e-7)
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(16, 9, generator=g)
    torch.testing.assert_close(L.column_cosine(delta, 2 * delta), torch.ones(9))
    torch.testing.assert_close(L.column_cosine(delta, -delta), -torch.ones(9))
    other = torch.randn(16, 9, generator=g)
    other -= delta * (delta * other).sum(0) / delta.square().sum(0)  # each column made orthogonal to delta's
    assert L.column_cosine(delta, other).abs().max() < 1e-6
    zero = delta.clone()
    zero[:, 0] = 0
    assert L.column_cosine(zero, other)[0] == 0
    with pytest.raises(ValueError, match="two updates"):
        L.column_cosine(delta, delta.T)
    with pytest.raises(ValueError, match="lora_A.weight"):
        L.lora_updates({"x.weight": delta})
