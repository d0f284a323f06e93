"""unet.stage_shapes: the stage table of a U-Net agrees with its config (resolution halves per level, channels
follow channel_mults, skips widen the decoder), accounts for every parameter, and leaves no hook behind."""

from __future__ import annotations

import pytest
import torch

from course_lib.unet import UNet, UNetConfig, stage_shapes

CONFIGS = [
    (UNetConfig(), 16),  # the chapter's model
    (UNetConfig(base_channels=16, channel_mults=(1, 2, 4), num_res_blocks=2, attention_levels=(1, 2)), 16),
    (UNetConfig(base_channels=8, channel_mults=(1, 1, 2, 2), attention_levels=(), num_classes=3), 32),
]


def _table(config: UNetConfig, size: int, batch: int = 2, y=None):
    torch.manual_seed(0)
    model = UNet(config).eval()
    x = torch.randn(batch, config.in_channels, size, size)
    t = torch.tensor([3, 700])[:batch]
    return model, x, t, stage_shapes(model, x, t, y)


@pytest.mark.parametrize("config,size", CONFIGS)
def test_every_stage_has_the_resolution_and_width_of_its_level(config, size):
    _, x, _, stages = _table(config, size)
    ch = [config.base_channels * m for m in config.channel_mults]
    assert stages[0]["stage"] == "conv_in" and stages[0]["output shape"] == (2, ch[0], size, size)
    assert stages[-1]["stage"] == "conv_out" and stages[-1]["output shape"] == tuple(x.shape)  # eps: x's shape
    for row in stages[1:-1]:
        name, shape = row["stage"], row["output shape"]
        if name.startswith("middle"):
            assert shape == (2, ch[-1], size // 2 ** (len(ch) - 1), size // 2 ** (len(ch) - 1)), row
            continue
        side, rest = name.split(" ", 1)
        level = int(rest.split(":")[0])
        if name.endswith("downsample"):
            assert shape == (2, ch[level], size // 2 ** (level + 1), size // 2 ** (level + 1)), row
        elif name.endswith("upsample"):
            assert shape == (2, ch[level], size // 2 ** (level - 1), size // 2 ** (level - 1)), row
        else:
            assert shape == (2, ch[level], size // 2**level, size // 2**level), row


@pytest.mark.parametrize("config,size", CONFIGS)
def test_stages_follow_the_forward_pass_with_attention_exactly_where_configured(config, size):
    _, _, _, stages = _table(config, size)
    names = [s["stage"] for s in stages]
    levels = len(config.channel_mults)
    for side in ("down", "up"):
        for i in range(levels):
            res = [n for n in names if n.startswith(f"{side} {i}: ResBlock")]
            attn = [n for n in names if n.startswith(f"{side} {i}: attention")]
            assert len(res) == config.num_res_blocks
            assert len(attn) == (config.num_res_blocks if i in config.attention_levels else 0)
    # execution order: all of the encoder, the middle, then the decoder from the lowest level up
    down_last = max(k for k, n in enumerate(names) if n.startswith("down"))
    mid = [k for k, n in enumerate(names) if n.startswith("middle")]
    up_levels = [int(n.split()[1].rstrip(":")) for n in names if n.startswith("up ")]
    assert mid == [down_last + 1, down_last + 2, down_last + 3]
    assert up_levels == sorted(up_levels, reverse=True) and up_levels[0] == levels - 1
    assert sum(n.endswith("downsample") for n in names) == sum(n.endswith("upsample") for n in names) == levels - 1


@pytest.mark.parametrize("config,size", CONFIGS)
def test_stage_parameters_plus_embeddings_and_last_norm_are_the_whole_model(config, size):
    model, _, _, stages = _table(config, size)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    rest = count(model.time_mlp) + count(model.norm_out) + (count(model.class_emb) if model.class_emb else 0)
    assert sum(s["parameters"] for s in stages) + rest == count(model)


def test_decoder_blocks_that_take_a_skip_are_wider_than_their_encoder_twins():
    _, _, _, stages = _table(*CONFIGS[0])
    params = {s["stage"]: s["parameters"] for s in stages}
    for i in range(3):
        assert params[f"up {i}: ResBlock 0"] > params[f"down {i}: ResBlock 0"], i
    # the extra input channels of the skip: conv1 of "up 0: ResBlock 0" reads 64 + 32 channels, not 32
    model = UNet()
    assert model.up[-1]["res"][0].conv1.in_channels == 96 and model.down[0]["res"][0].conv1.in_channels == 32


def test_no_hook_is_left_behind_and_the_output_is_unchanged():
    model, x, t, _ = _table(*CONFIGS[0])
    assert all(not m._forward_hooks for m in model.modules())
    with torch.no_grad():
        before = model(x, t)
        stage_shapes(model, x, t)
        assert torch.equal(model(x, t), before)
    with pytest.raises(ValueError, match="divisible"):  # the model's own check fires, and the hooks still go
        stage_shapes(model, torch.zeros(1, 1, 15, 15), torch.tensor([0]))
    assert all(not m._forward_hooks for m in model.modules())


def test_a_class_label_reaches_the_conditional_model():
    config, size = CONFIGS[2]
    model, x, t, stages = _table(config, size, y=torch.tensor([0, 2]))
    assert stages[-1]["output shape"] == tuple(x.shape)
    with pytest.raises(ValueError, match="course_lib UNet"):
        stage_shapes(torch.nn.Conv2d(1, 1, 1), x, t)
