"""Score distillation (course_lib.sds): the surrogate's gradient, a Gaussian whose SDS fixed point is known, the U-Net
left untouched, and bad input. Identities on exact or random tiny models, not quality checks."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import text_to_image as t2i
from course_lib.clip import tiny_clip_config
from course_lib.latent import tiny_autoencoder
from course_lib.sds import (
    T_RANGE,
    check_guidance_scale,
    diffusion_loss_gradient,
    sample_timesteps,
    score_distillation,
    sds_gradient,
    sds_surrogate,
    sds_weight,
)
from course_lib.text import load_tokenizer

ALPHAS_CUMPROD = t2i.make_scheduler("ddpm").alphas_cumprod  # Stable Diffusion's schedule, T = 1000


def gaussian_eps(mu: torch.Tensor, s: float):
    """The exact eps-model of data N(mu, s^2 I): E[eps | z_t] = sigma_t (z_t - sqrt(ab) mu) / (ab s^2 + sigma_t^2)."""

    def eps(z_t, t):
        ab = ALPHAS_CUMPROD.to(z_t)[t].view(-1, *([1] * (z_t.ndim - 1)))
        return (1 - ab).sqrt() * (z_t - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)

    return eps


def test_surrogate_gradient_is_the_sds_gradient():
    z = torch.randn(3, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    grad = torch.randn_like(z)
    sds_surrogate(z, grad).backward()
    torch.testing.assert_close(z.grad, grad)  # up to the rounding of z - (z - g)
    # the value says how hard the model pushes, nothing about the image
    assert math.isclose(sds_surrogate(z, grad).item(), 0.5 * grad.pow(2).sum().item(), rel_tol=1e-12)


def test_expected_gradient_of_a_gaussian_matches_its_closed_form():
    # For data N(mu, s^2 I) and the exact model, E_eps[eps_hat - eps] = sigma sqrt(ab) (x - mu) / (ab s^2 + sigma^2).
    mu, s, t = torch.tensor([0.5, -1.0]), 0.3, 400
    x = torch.tensor([[2.0, 1.0]]).expand(40000, 2)
    tt = torch.full((len(x),), t)
    g = sds_gradient(gaussian_eps(mu, s), x, ALPHAS_CUMPROD, t=tt, generator=torch.Generator().manual_seed(0))
    ab = ALPHAS_CUMPROD[t]
    expected = sds_weight(ab) * (1 - ab).sqrt() * ab.sqrt() * (x[0] - mu) / (ab * s**2 + 1 - ab)
    torch.testing.assert_close(g.mean(0), expected, atol=4 * g.std(0).max().item() / math.sqrt(len(x)), rtol=0)


def test_sds_fixed_point_of_a_gaussian_is_its_mode():
    # With omega = 1 and the exact denoiser of N(mu, s^2 I), SDS drives x to the mode mu (and not to a sample).
    mu, s = torch.tensor([0.5, -1.0, 2.0]), 0.5
    x = torch.zeros(1, 3, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.02)
    generator = torch.Generator().manual_seed(0)
    for _ in range(1500):
        g = sds_gradient(gaussian_eps(mu, s), x, ALPHAS_CUMPROD, generator=generator)
        opt.zero_grad()
        sds_surrogate(x, g).backward()
        opt.step()
    torch.testing.assert_close(x.detach()[0], mu, atol=0.1, rtol=0)


def test_dropping_the_jacobian_of_a_linear_model_rescales_the_gradient():
    # eps_hat = a z_t has Jacobian a I, so the full gradient is a sqrt(ab_t) times the SDS gradient, element by element.
    z, a = torch.randn(4, 3, 5, 5, dtype=torch.float64), 0.7
    t, noise = torch.tensor([20, 300, 600, 980]), torch.randn(4, 3, 5, 5, dtype=torch.float64)
    ab = ALPHAS_CUMPROD.double()[t].view(-1, 1, 1, 1)
    full = diffusion_loss_gradient(lambda z_t, tt: a * z_t, z, ALPHAS_CUMPROD.double(), t=t, noise=noise)
    sds = sds_gradient(lambda z_t, tt: a * z_t, z, ALPHAS_CUMPROD.double(), t=t, noise=noise)
    torch.testing.assert_close(full, a * ab.sqrt() * sds)


def test_timesteps_stay_in_range_and_reach_both_ends():
    t = sample_timesteps(20000, 1000, T_RANGE, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and t.min().item() == 20 and t.max().item() == 980


@pytest.mark.parametrize("t_range", [(0.0, 0.5), (0.5, 0.2), (0.1, 1.0), (-0.1, 0.9)])
def test_bad_t_range_is_refused(t_range):
    with pytest.raises(ValueError, match="t_range"):
        sample_timesteps(4, 1000, t_range)


@pytest.mark.parametrize("omega", [-1.0, float("nan"), float("inf"), True, "100"])
def test_bad_guidance_scale_is_refused(omega):
    with pytest.raises(ValueError, match="guidance_scale"):
        check_guidance_scale(omega)


def test_gradient_shape_mismatches_are_refused():
    z = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="shape"):
        sds_surrogate(z, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="noise"):
        sds_gradient(lambda z_t, t: z_t, z, ALPHAS_CUMPROD, noise=torch.zeros(3, 4))


@pytest.fixture(scope="module")
def pipe():
    from transformers import CLIPModel

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    clip = CLIPModel(tiny_clip_config(tokenizer)).eval()
    return t2i.build_pipeline(
        tiny_autoencoder(scaling_factor=0.9).eval(),
        t2i.text_encoder_from_clip(clip),
        tokenizer,
        t2i.tiny_unet().eval(),
        t2i.make_scheduler("ddim"),
    )


def test_distillation_moves_the_renderer_and_never_the_model(pipe):
    before = {name: p.detach().clone() for name, p in pipe.unet.named_parameters()}
    pixels = torch.zeros(2, 3, 32, 32, requires_grad=True)
    result = score_distillation(
        pipe,
        lambda step: (pixels.tanh(), ["a red circle", "a blue square"]),
        [pixels],
        steps=3,
        lr=0.05,
        guidance_scale=100.0,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert pixels.detach().abs().sum() > 0 and len(result.grad_norms) == 3
    assert result.images.shape == (2, 3, 32, 32)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        assert all(p.grad is None for p in module.parameters())
    assert all(torch.equal(p, before[name]) for name, p in pipe.unet.named_parameters())


def test_distillation_refuses_bad_renders(pipe):
    pixels = torch.zeros(1, 3, 32, 32, requires_grad=True)
    with pytest.raises(ValueError, match="prompts"):
        score_distillation(pipe, lambda step: (pixels, ["a", "b"]), [pixels], steps=1, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="requires_grad"):
        score_distillation(pipe, lambda step: (pixels, ["a"]), [torch.zeros(3)], steps=1, lr=0.1, progress=False)
