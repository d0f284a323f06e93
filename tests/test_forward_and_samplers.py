"""q_sample, the posterior and the DDPM step: identities, Monte-Carlo moments, and diffusers step by step."""

import pytest
import torch
from diffusers import DDPMScheduler

from course_lib.forward_process import predict_eps_from_x0, predict_x0_from_eps, q_posterior_mean_variance, q_sample
from course_lib.losses import l_simple
from course_lib.samplers import ddpm_sample, ddpm_sample_loop, ddpm_step, keep_frames
from course_lib.schedules import get_schedule

SHAPES = [(4, 2), (3, 1, 8, 8), (2, 3, 4, 6)]


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 250, 999])
def test_q_sample_mean_and_variance(name, t):
    s, g = get_schedule(name), torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 3, generator=g, dtype=torch.float64) * 2 - 1
    n = 200_000
    xt = q_sample(x0.expand(n, 3), torch.full((n,), t), s, generator=g)
    ab = s.alpha_bar[t].item()
    torch.testing.assert_close(xt.mean(0), ab**0.5 * x0[0], atol=5 * (1 / n) ** 0.5, rtol=0)
    torch.testing.assert_close(xt.var(0), torch.full((3,), 1 - ab, dtype=torch.float64), atol=0.01, rtol=0.01)


def test_q_sample_composes_single_steps():
    """x_t from x_0 in one jump has the same distribution as t+1 steps of q(x_t | x_{t-1})."""
    s, g, n, t = get_schedule("linear", 50), torch.Generator().manual_seed(1), 100_000, 30
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x = x0.clone()
    for k in range(t + 1):
        beta = s.betas[k].item()
        x = (1 - beta) ** 0.5 * x + beta**0.5 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    jump = q_sample(x0, torch.full((n,), t), s, generator=g)
    assert abs(x.mean() - jump.mean()) < 0.01 and abs(x.var() - jump.var()) < 0.01


@pytest.mark.parametrize("shape", SHAPES)
def test_eps_and_x0_are_inverse(shape):
    s, g = get_schedule("cosine"), torch.Generator().manual_seed(2)
    x0, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    xt = q_sample(x0, t, s, eps)
    torch.testing.assert_close(predict_x0_from_eps(xt, t, eps, s), x0, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(predict_eps_from_x0(xt, t, x0, s), eps, atol=1e-4, rtol=1e-4)


def test_posterior_matches_bayes_rule_by_monte_carlo():
    """Draw (x_{t-1}, x_t) from the forward process for a fixed x_0; regress x_{t-1} on x_t to get its conditional."""
    s, g, n, t = get_schedule("linear", 100), torch.Generator().manual_seed(3), 400_000, 40
    x0 = torch.full((n, 1), -0.4, dtype=torch.float64)
    x_prev = q_sample(x0, torch.full((n,), t - 1), s, generator=g)
    beta = s.betas[t].item()
    xt = (1 - beta) ** 0.5 * x_prev + beta**0.5 * torch.randn(x_prev.shape, generator=g, dtype=torch.float64)
    # Gaussian conditioning: E[x_{t-1} | x_t] is linear in x_t; the residual variance is beta_tilde.
    X = torch.cat([torch.ones_like(xt), xt], 1)
    coef = torch.linalg.lstsq(X, x_prev).solution
    resid = (x_prev - X @ coef).var().item()
    mean, var = q_posterior_mean_variance(
        x0[:2], torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.full((2,), t), s
    )
    assert coef[0].item() == pytest.approx(mean[0].item(), abs=3e-3)
    assert coef[1].item() == pytest.approx((mean[1] - mean[0]).item(), abs=3e-3)
    assert resid == pytest.approx(var[0].item(), rel=0.02)


@pytest.mark.parametrize("t", [0, 1, 500, 999])
def test_step_equals_algorithm_2_line_4(t):
    s, g = get_schedule("linear"), torch.Generator().manual_seed(4)
    xt, eps, z = (torch.randn(3, 2, 5, 5, generator=g) for _ in range(3))
    alpha, ab, beta = s.alphas[t].item(), s.alpha_bar[t].item(), s.betas[t].item()
    sigma = s.posterior_variance[t].item() ** 0.5
    expected = (xt - beta / (1 - ab) ** 0.5 * eps) / alpha**0.5 + (sigma * z if t > 0 else 0)
    torch.testing.assert_close(ddpm_step(eps, xt, t, s, noise=z).x, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_step_agrees_with_diffusers(variance, clip, name):
    T = 100
    s = get_schedule(name, T)
    ref = DDPMScheduler(
        num_train_timesteps=T,
        beta_schedule={"linear": "linear", "cosine": "squaredcos_cap_v2"}[name],
        variance_type=variance,
        clip_sample=clip,
        prediction_type="epsilon",
    )
    g = torch.Generator().manual_seed(5)
    for t in [T - 1, 60, 10, 1, 0]:
        xt, eps = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(2))
        # diffusers draws its noise with torch.randn(shape, generator=...): give both the same seed.
        z = torch.randn(xt.shape, generator=torch.Generator().manual_seed(t))
        ours = ddpm_step(eps, xt, t, s, variance=variance, clip_x0=clip, noise=z)
        theirs = ref.step(eps, t, xt, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(ours.x, theirs.prev_sample, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours.x0_hat, theirs.pred_original_sample, atol=1e-3, rtol=1e-3)


def test_q_sample_agrees_with_diffusers_add_noise():
    s, ref = (
        get_schedule("scaled_linear"),
        DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    )
    g = torch.Generator().manual_seed(6)
    x0, eps = torch.randn(8, 4, 8, 8, generator=g), torch.randn(8, 4, 8, 8, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    torch.testing.assert_close(q_sample(x0, t, s, eps), ref.add_noise(x0, eps, t), atol=1e-5, rtol=1e-5)


def test_sampler_is_reproducible_and_records_frames():
    s = get_schedule("linear", 20)
    model = lambda x, t: 0.1 * x
    frames, cb = keep_frames(every=5)
    a = ddpm_sample(model, (4, 2), s, generator=torch.Generator().manual_seed(0), callback=cb, progress=False)
    b = ddpm_sample(model, (4, 2), s, generator=torch.Generator().manual_seed(0), progress=False)
    torch.testing.assert_close(a, b)
    assert [f.t for f in frames] == [15, 10, 5, 0] and torch.equal(frames[-1].x, a)
    steps = list(ddpm_sample_loop(model, (4, 2), s, generator=torch.Generator().manual_seed(0), progress=False))
    assert [st.t for st in steps] == list(range(19, -1, -1))


def test_exact_eps_sampler_recovers_a_point_mass():
    """With the true eps for data concentrated at x*, (eps = (x_t - sqrt(ab) x*) / sqrt(1 - ab)), DDPM lands on x*."""
    s, target = get_schedule("linear", 200), torch.tensor([0.5, -0.25])

    def true_eps(x, t):
        ab = s.alpha_bar[t].float()[:, None]
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    x = ddpm_sample(true_eps, (16, 2), s, generator=torch.Generator().manual_seed(1), progress=False)
    torch.testing.assert_close(x, target.expand(16, 2), atol=1e-3, rtol=0)


def test_l_simple_is_the_noise_regression_error():
    s, g = get_schedule("linear"), torch.Generator().manual_seed(7)
    x0, noise = torch.randn(6, 1, 4, 4, generator=g), torch.randn(6, 1, 4, 4, generator=g)
    t = torch.randint(0, 1000, (6,), generator=g)
    perfect = lambda xt, tt: predict_eps_from_x0(xt, tt, x0, s)
    assert l_simple(perfect, x0, s, t=t, noise=noise).item() < 1e-8
    zero = lambda xt, tt: torch.zeros_like(xt)
    assert l_simple(zero, x0, s, t=t, noise=noise).item() == pytest.approx(noise.pow(2).mean().item())


# --- bad input ---


def test_out_of_range_timesteps_are_clear_errors():
    s, x0 = get_schedule("linear", 10), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"0 \.\.\. T-1"):
        q_sample(x0, torch.tensor([0, 10]), s)
    with pytest.raises(ValueError, match=r"0 \.\.\. T-1"):
        q_sample(x0, torch.tensor([-1, 0]), s)
    with pytest.raises(ValueError, match="t must be an integer index"):
        ddpm_step(x0, x0, 10, s)


def test_wrong_dtypes_and_shapes_are_clear_errors():
    s = get_schedule("linear", 10)
    with pytest.raises(ValueError, match="floating-point"):
        q_sample(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), s)
    with pytest.raises(ValueError, match="integer timesteps"):
        q_sample(torch.zeros(2, 3), torch.tensor([0.0, 1.0]), s)
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        q_sample(torch.zeros(2, 3), torch.tensor([0, 1, 2]), s)
    with pytest.raises(ValueError, match="same shape"):
        q_sample(torch.zeros(2, 3), torch.tensor([0, 1]), s, noise=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="variance"):
        ddpm_step(torch.zeros(2, 3), torch.zeros(2, 3), 3, s, variance="learned")
    with pytest.raises(ValueError, match="model returned shape"):
        l_simple(lambda x, t: x[:, :1], torch.zeros(2, 3), s)
