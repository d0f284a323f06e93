"""Schedules: identities, the seed lab's SNR(T) table, and agreement with diffusers' DDPMScheduler."""

import math

import pytest
import torch
from diffusers import DDPMScheduler

from course_lib.schedules import SCHEDULE_NAMES, Schedule, get_schedule

DIFFUSERS_NAME = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
BETA_RANGE = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012), "cosine": (1e-4, 0.02)}


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("T", [10, 1000])
def test_monotone_and_in_range(name, T):
    s = get_schedule(name, T)
    assert s.num_timesteps == T
    assert ((s.betas > 0) & (s.betas <= 0.999 + 1e-12)).all()
    assert (s.alpha_bar[1:] < s.alpha_bar[:-1]).all(), "alpha_bar must decrease"
    assert ((s.alpha_bar > 0) & (s.alpha_bar < 1)).all()
    assert (s.snr[1:] < s.snr[:-1]).all(), "SNR must decrease"
    torch.testing.assert_close(s.alpha_bar_prev[1:], s.alpha_bar[:-1])
    assert s.alpha_bar_prev[0] == 1.0


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_posterior_identities(name):
    s = get_schedule(name, 1000)
    # beta_tilde_t = (1 - ab_{t-1}) / (1 - ab_t) beta_t <= beta_t, and 0 at t = 0 (x_{-1} = x_0 is known).
    assert s.posterior_variance[0] == 0
    assert (s.posterior_variance <= s.betas + 1e-15).all()
    # The posterior mean coefficients reproduce x_{t-1} exactly when x_t is noise-free data scaled by sqrt(alpha):
    # coef1 * sqrt(ab_t) ... the identity used is coef1 + coef2 * sqrt(ab_t) = sqrt(ab_{t-1}) (means of q).
    torch.testing.assert_close(
        s.posterior_mean_coef1 + s.posterior_mean_coef2 * s.sqrt_alpha_bar, s.alpha_bar_prev.sqrt()
    )
    # Finite log-variance everywhere, equal to log(beta_tilde) for t >= 1.
    assert torch.isfinite(s.posterior_log_variance_clipped).all()
    torch.testing.assert_close(s.posterior_log_variance_clipped[1:], s.posterior_variance[1:].log())


def test_cosine_follows_alpha_bar_function():
    T, s = 1000, get_schedule("cosine", 1000)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in [0, 10, 500, 900]:  # before the 0.999 clip matters, alpha_bar_t = f((t+1)/T) / f(0)
        assert s.alpha_bar[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert s.betas[-1].item() == pytest.approx(0.999)


# The table in the SFU lab (seed 004): SNR(T) and sqrt(alpha_bar_T) at T = 1000.
SEED_TABLE = {
    "linear": (4.035993e-05, 0.006353),
    "cosine": (2.428735e-09, 4.928220e-05),
    "scaled_linear": (0.004682, 0.068265),
}


@pytest.mark.parametrize("name", SEED_TABLE)
def test_reproduces_seed_snr_table(name):
    snr_T, sqrt_ab_T = SEED_TABLE[name]
    s = get_schedule(name, 1000)
    assert s.snr[-1].item() == pytest.approx(snr_T, rel=1e-4)
    assert s.sqrt_alpha_bar[-1].item() == pytest.approx(sqrt_ab_T, rel=1e-4)


@pytest.mark.parametrize("name", ["linear", "scaled_linear", "cosine"])
@pytest.mark.parametrize("T", [50, 1000])
def test_agrees_with_diffusers(name, T):
    lo, hi = BETA_RANGE[name]
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=DIFFUSERS_NAME[name], beta_start=lo, beta_end=hi)
    s = get_schedule(name, T) if name == "cosine" else get_schedule(name, T, beta_start=lo, beta_end=hi)
    torch.testing.assert_close(s.betas.float(), ref.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s.alphas.float(), ref.alphas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s.alpha_bar.float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("bad", ["sigmoid", "Linear", "squaredcos_cap_v2", ""])
def test_unknown_name_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="expected one of"):
        get_schedule(bad)


@pytest.mark.parametrize("T", [0, -5, 2.5, True])
def test_bad_num_timesteps(T):
    with pytest.raises(ValueError, match="num_timesteps"):
        get_schedule("linear", T)


def test_bad_betas_and_kwargs():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        Schedule.from_betas("x", torch.tensor([0.1, 1.5]))
    with pytest.raises(ValueError, match="Bad keyword"):
        get_schedule("cosine", 10, beta_start=0.1)


def test_schedule_is_frozen():
    s = get_schedule("linear", 10)
    with pytest.raises(Exception):
        s.betas = torch.zeros(10)
