"""course_lib.ddim against the DDPM posterior, diffusers' DDIMScheduler / DDIMPipeline and an exact 2-D model."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.ddim import (
    ddim_invert,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    karras_sigmas,
    slerp,
    timesteps_for_sigmas,
)
from course_lib.samplers import ddpm_sample, ddpm_step
from course_lib.schedules import get_schedule


class ToyEps(torch.nn.Module):
    """An arbitrary fixed eps-model on images [B, C, H, W]: a 1x1 convolution of x_t plus a function of t."""

    def __init__(self, channels: int = 1, num_timesteps: int = 1000, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(channels, channels, generator=g) * 0.5
        self.T = num_timesteps

    def forward(self, x, t):
        t = torch.as_tensor(t).reshape(-1).float().expand(x.shape[0]) / self.T
        return torch.tanh(torch.einsum("oc,bchw->bohw", self.w, x) + t.reshape(-1, 1, 1, 1))


def gaussian_eps(s: float, schedule):
    """The exact eps-model for data N(0, s^2 I): E[eps | x_t] = sqrt(1 - ab) x_t / (ab s^2 + 1 - ab)."""

    def model(x, t):
        ab = schedule.alpha_bar[t].to(x.dtype).reshape(-1, *[1] * (x.ndim - 1))
        return (1 - ab).sqrt() * x / (ab * s**2 + 1 - ab)

    return model


def test_eta_one_one_step_back_is_the_ddpm_posterior():
    schedule = get_schedule("linear", 100)
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(4, 1, 4, 4, generator=g) for _ in range(3))
    for t in (1, 50, 99):
        ab_t, ab_s = schedule.alpha_bar[t].item(), schedule.alpha_bar[t - 1].item()
        assert ddim_sigma(ab_t, ab_s, 1.0) ** 2 == pytest.approx(schedule.posterior_variance[t].item(), rel=1e-9)
        ours = ddim_step(eps, x, t, t - 1, schedule, eta=1.0, noise=z)
        ddpm = ddpm_step(eps, x, t, schedule, variance="fixed_small", noise=z)
        torch.testing.assert_close(ours.x, ddpm.x, rtol=1e-5, atol=1e-5)
    # sigma hat (Table 1's last row) is DDPM's beta_t, larger than eta = 1's beta_tilde
    t = 10
    sigma_hat = math.sqrt(1 - schedule.alpha_bar[t].item() / schedule.alpha_bar[t - 1].item())
    assert sigma_hat**2 == pytest.approx(schedule.betas[t].item(), rel=1e-9)
    assert sigma_hat > ddim_sigma(schedule.alpha_bar[t].item(), schedule.alpha_bar[t - 1].item(), 1.0)


def test_all_steps_with_eta_one_is_ddpm_sampling():
    schedule, model = get_schedule("linear", 50), ToyEps(num_timesteps=50)
    shape = (3, 1, 4, 4)
    ours = ddim_sample(
        model,
        shape,
        schedule,
        list(range(49, -1, -1)),
        eta=1.0,
        generator=torch.Generator().manual_seed(1),
        progress=False,
    )
    ddpm = ddpm_sample(model, shape, schedule, generator=torch.Generator().manual_seed(1), progress=False)
    torch.testing.assert_close(ours, ddpm, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_are_diffusers(spacing):
    from diffusers import DDIMScheduler

    for S in (10, 30, 50, 1000):
        ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
        ref.set_timesteps(S)
        assert ddim_timesteps(1000, S, spacing) == ref.timesteps.tolist()


def test_leading_never_visits_the_last_index_and_quadratic_is_strict():
    assert max(ddim_timesteps(1000, 50, "leading")) == 980
    assert max(ddim_timesteps(1000, 50, "trailing")) == 999
    for S in (10, 100, 500):
        taus = ddim_timesteps(1000, S, "quadratic")
        assert len(taus) == S and all(a > b for a, b in zip(taus, taus[1:])) and taus[-1] == 0


@pytest.mark.parametrize(
    "spacing,eta,alpha_to_one",
    [("leading", 0.0, True), ("leading", 0.5, False), ("trailing", 1.0, True), ("trailing", 0.0, False)],
)
def test_step_by_step_agreement_with_diffusers(spacing, eta, alpha_to_one):
    from diffusers import DDIMScheduler

    schedule, model, S = get_schedule("linear", 1000), ToyEps(), 20  # S divides T: see the next test otherwise
    ref = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=alpha_to_one,
        timestep_spacing=spacing,
    )
    ref.set_timesteps(S)
    taus = ddim_timesteps(1000, S, spacing)
    g = torch.Generator().manual_seed(2)
    x_ours = x_ref = torch.randn(2, 1, 4, 4, generator=g)
    final = 1.0 if alpha_to_one else schedule.alpha_bar[0].item()
    for t, t_prev in zip(taus, taus[1:] + [-1]):
        z = torch.randn(2, 1, 4, 4, generator=g)
        x_ours = ddim_step(model(x_ours, t), x_ours, t, t_prev, schedule, eta=eta, noise=z, alpha_bar_final=final).x
        x_ref = ref.step(model(x_ref, t), t, x_ref, eta=eta, variance_noise=z).prev_sample
        torch.testing.assert_close(x_ours, x_ref, rtol=1e-4, atol=1e-4)


def test_diffusers_pitfall_trailing_steps_that_do_not_divide_t():
    """diffusers steps to t - T // S, which is not the next timestep when S does not divide T ('trailing')."""
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    ref.set_timesteps(30)
    taus = ref.timesteps.tolist()
    assert taus[:3] == [999, 966, 932] and taus[1] - 1000 // 30 == 933  # so diffusers visits 933, not 932
    assert ddim_timesteps(1000, 30, "trailing")[:3] == [999, 966, 932]  # ours steps along tau itself


def test_ddim_pipeline_equals_ddim_sample():
    from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()
    scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=True)  # set_alpha_to_one, "leading"
    pipe = DDIMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    for eta in (0.0, 1.0):
        theirs = pipe(
            batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=10, eta=eta, output_type="np"
        ).images  # [B, H, W, C] in [0, 1]
        ours = ddim_sample(
            lambda x, t: unet(x, t).sample,
            (2, 1, 8, 8),
            get_schedule("linear", 1000),
            ddim_timesteps(1000, 10),
            eta=eta,
            clip_x0=True,
            generator=torch.Generator().manual_seed(3),
            progress=False,
        )
        ours = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        assert abs(ours - theirs).max() < 1e-4


def test_eta_zero_is_deterministic_and_inversion_error_falls_with_steps():
    schedule = get_schedule("linear", 1000)
    model = gaussian_eps(0.5, schedule)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(4)) * 0.5
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(5))
    a = ddim_sample(
        model,
        (64, 2),
        schedule,
        ddim_timesteps(1000, 20),
        x_T=x_T,
        generator=torch.Generator().manual_seed(6),
        progress=False,
    )
    b = ddim_sample(
        model,
        (64, 2),
        schedule,
        ddim_timesteps(1000, 20),
        x_T=x_T,
        generator=torch.Generator().manual_seed(7),
        progress=False,
    )
    assert torch.equal(a, b)
    errors = []
    for S in (10, 50, 250):
        taus = ddim_timesteps(1000, S, "trailing")
        back = ddim_sample(
            model, (64, 2), schedule, taus, x_T=ddim_invert(model, x0, schedule, taus, progress=False), progress=False
        )
        errors.append(((back - x0) ** 2).mean().item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3, errors


def test_inversion_follows_the_exact_flow_of_gaussian_data():
    """For data N(0, s^2 I) the probability-flow ODE is a scaling: x_t = x_0 sqrt(ab_t s^2 + 1 - ab_t) / s."""
    schedule, s = get_schedule("linear", 1000), 0.5
    model = gaussian_eps(s, schedule)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(9)) * s
    errors = []
    for S in (10, 50, 250):  # "leading": the first step from the data is tiny (to index 0), the rest is Euler
        taus = ddim_timesteps(1000, S, "leading")
        ab = schedule.alpha_bar[taus[0]].item()
        exact = x0 * math.sqrt(ab * s**2 + 1 - ab) / s
        errors.append((ddim_invert(model, x0, schedule, taus, progress=False) - exact).abs().max().item())
    # first order (Euler): five times the steps, about a fifth of the error
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3 and errors[2] < 0.05, errors


def test_slerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(8)
    a, b = torch.randn(5, 3, 8, 8, generator=g), torch.randn(5, 3, 8, 8, generator=g)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    path = slerp(a, b, torch.linspace(0, 1, 7))
    assert path.shape == (7, 5, 3, 8, 8)
    e1, e2 = torch.zeros(1, 4), torch.zeros(1, 4)
    e1[0, 0], e2[0, 1] = 2.0, 2.0
    assert slerp(e1, e2, 0.5).norm().item() == pytest.approx(2.0)  # a straight line would give sqrt(2)
    torch.testing.assert_close(slerp(a, a, 0.3), a)


def test_bad_input_is_explained():
    schedule, x = get_schedule("linear", 100), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        ddim_step(x, x, 10, 5, schedule, eta=-0.1)
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(100, 101)
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(100, 0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddim_sample(lambda x, t: x, (2, 3), schedule, [10, 50, 0], progress=False)
    with pytest.raises(ValueError, match="needs eta = 0"):
        ddim_step(x, x, 10, 20, schedule, eta=0.5)
    with pytest.raises(ValueError, match="spacing"):
        ddim_timesteps(100, 10, "cosine")
    with pytest.raises(ValueError, match="alpha"):
        slerp(x, x, 1.5)


def test_deterministic_step_is_euler_on_the_scaled_ode():
    """DDIM Eq. 14: with xbar = x / sqrt(ab) and sigma = sqrt((1 - ab) / ab), xbar_s = xbar_t + (sigma_s - sigma_t) eps."""
    schedule = get_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(10)
    x, eps = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    for t, s in [(900, 850), (500, 100), (40, 39), (300, 600)]:
        ab_t, ab_s = schedule.alpha_bar[t].item(), schedule.alpha_bar[s].item()
        sig_t, sig_s = math.sqrt((1 - ab_t) / ab_t), math.sqrt((1 - ab_s) / ab_s)
        euler = (x / math.sqrt(ab_t) + (sig_s - sig_t) * eps) * math.sqrt(ab_s)
        torch.testing.assert_close(ddim_step(eps, x, t, s, schedule).x, euler)


def test_karras_sigmas_ends_order_and_rho_one_is_linear():
    s = karras_sigmas(10, 0.01, 157.0)
    assert s.dtype == torch.float64 and s.shape == (10,)
    assert math.isclose(s[0].item(), 157.0, rel_tol=1e-12) and math.isclose(s[-1].item(), 0.01, rel_tol=1e-12)
    assert bool((s[1:] < s[:-1]).all())
    torch.testing.assert_close(karras_sigmas(7, 0.5, 3.5, rho=1.0), torch.linspace(3.5, 0.5, 7, dtype=torch.float64))
    # a larger rho spends more of the steps at low noise: the midpoint falls
    assert karras_sigmas(3, 0.01, 100.0, rho=7.0)[1] < karras_sigmas(3, 0.01, 100.0, rho=3.0)[1]


def test_karras_sigmas_agree_with_diffusers_euler_scheduler():
    from diffusers import EulerDiscreteScheduler

    sched = EulerDiscreteScheduler(num_train_timesteps=1000, beta_schedule="linear", use_karras_sigmas=True)
    sched.set_timesteps(12)
    ab = get_schedule("linear", 1000).alpha_bar
    sig = ((1 - ab) / ab).sqrt()
    ours = karras_sigmas(12, sig[0].item(), sig[-1].item())
    torch.testing.assert_close(ours.float(), sched.sigmas[:-1].float(), rtol=1e-4, atol=1e-6)


def test_timesteps_for_sigmas_round_to_the_nearest_trained_index():
    schedule = get_schedule("linear", 1000)
    ab = schedule.alpha_bar
    sig = ((1 - ab) / ab).sqrt()
    assert timesteps_for_sigmas(sig[[999, 500, 3, 0]], schedule) == [999, 500, 3, 0]
    taus = timesteps_for_sigmas(karras_sigmas(9, sig[0].item(), sig[-1].item()), schedule)
    assert taus[0] == 999 and taus[-1] == 0 and all(a > b for a, b in zip(taus, taus[1:]))
    with pytest.raises(ValueError, match="distinct"):
        timesteps_for_sigmas(karras_sigmas(900, sig[0].item(), sig[-1].item()), schedule)
    with pytest.raises(ValueError, match="range"):
        timesteps_for_sigmas([500.0, 1.0], schedule)
    with pytest.raises(ValueError, match="num_steps"):
        karras_sigmas(1, 0.01, 1.0)
