"""U-Net, timestep embedding and the model-agnostic trainer."""

import pytest
import torch
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

from course_lib.losses import diffusion_loss_fn
from course_lib.schedules import get_schedule
from course_lib.trainer import ema_update, tensor_batches, train
from course_lib.unet import UNet, UNetConfig, timestep_embedding


@pytest.mark.parametrize("dim", [2, 32, 128])
def test_timestep_embedding_agrees_with_diffusers(dim):
    t = torch.tensor([0, 1, 17, 500, 999])
    ref = get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding(t, dim), ref, atol=1e-5, rtol=1e-5)


def test_timestep_embedding_properties():
    e = timestep_embedding(torch.arange(1000), 64)
    assert e.shape == (1000, 64)
    # each (cos, sin) pair lies on the unit circle; t = 0 maps to cos = 1, sin = 0
    torch.testing.assert_close(e[:, :32] ** 2 + e[:, 32:] ** 2, torch.ones(1000, 32))
    torch.testing.assert_close(e[0], torch.cat([torch.ones(32), torch.zeros(32)]))
    # distinct timesteps get distinct codes
    assert torch.cdist(e, e).add(torch.eye(1000) * 10).min() > 1e-2


@pytest.mark.parametrize("bad", [3, 0, -2])
def test_timestep_embedding_rejects_odd_dims(bad):
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(torch.arange(3), bad)


@pytest.mark.parametrize(
    "config,shape",
    [
        (UNetConfig(), (2, 1, 16, 16)),
        (UNetConfig(in_channels=3, base_channels=16, channel_mults=(1, 2), attention_levels=(1,)), (3, 3, 32, 32)),
        (UNetConfig(num_res_blocks=2, channel_mults=(1, 2, 2, 2), attention_levels=(3,)), (1, 1, 16, 16)),
    ],
)
def test_unet_output_shape_and_starts_at_zero(config, shape):
    model = UNet(config)
    out = model(torch.randn(shape), torch.randint(0, 1000, (shape[0],)))
    assert out.shape == shape
    assert out.abs().max() == 0  # zero-initialised output layer: the first prediction is eps = 0


def test_unet_time_and_class_conditioning_change_the_output():
    torch.manual_seed(0)
    model = UNet(UNetConfig(num_classes=10))
    for p in model.parameters():  # leave the zero init so the output depends on its inputs
        nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 1, 16, 16)
    t = torch.tensor([10, 10])
    a, b = model(x, t, y=torch.tensor([1, 1])), model(x, t, y=torch.tensor([2, 2]))
    c = model(x, torch.tensor([900, 900]), y=torch.tensor([1, 1]))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    null = model(x, t)  # no label = the null class
    torch.testing.assert_close(null, model(x, t, y=torch.tensor([10, 10])))


def test_unet_rejects_bad_inputs():
    model = UNet(UNetConfig())
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 1, 15, 15), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        model(torch.randn(1, 3, 16, 16), torch.tensor([0]))
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(1, 1, 16, 16), torch.tensor([0]), y=torch.tensor([3]))


def test_ema_update_identities():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    before = [p.clone() for p in a.parameters()]
    ema_update(a, b, decay=1.0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), before))
    ema_update(a, b, decay=0.0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_tensor_batches_cover_an_epoch_and_check_sizes():
    x = torch.arange(10)
    it = tensor_batches((x,), 5, torch.Generator().manual_seed(0))
    seen = torch.cat([next(it)[0], next(it)[0]])
    assert sorted(seen.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="larger than the dataset"):
        next(tensor_batches((x,), 11, torch.Generator()))
    with pytest.raises(ValueError, match="same first dimension"):
        next(tensor_batches((x, torch.arange(9)), 2, torch.Generator()))


def test_train_reduces_diffusion_loss_on_toy_data_and_is_seeded():
    torch.manual_seed(0)
    data = (torch.randn(512, 2) * 0.1 + torch.tensor([0.5, -0.5]),)
    sched = get_schedule("linear", 100)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 2))

        def forward(self, x, t):
            return self.net(torch.cat([x, t[:, None].float() / 100], 1))

    def run():
        torch.manual_seed(1)
        return train(
            MLP(),
            diffusion_loss_fn(sched, torch.Generator().manual_seed(2)),
            data,
            steps=300,
            batch_size=64,
            lr=3e-3,
            device="cpu",
            progress=False,
        )

    r1, r2 = run(), run()
    assert r1.losses == r2.losses, "same seed, same losses"
    assert sum(r1.losses[-50:]) / 50 < 0.6 * sum(r1.losses[:20]) / 20
    assert r1.steps == 300 and len(r1.losses) == 300


def test_train_stops_on_nan():
    model = nn.Linear(2, 1)
    with pytest.raises(FloatingPointError, match="loss became"):
        train(
            model,
            lambda m, b: m(b[0]).sum() * float("nan"),
            (torch.randn(8, 2),),
            steps=2,
            batch_size=4,
            device="cpu",
            progress=False,
        )
