"""course_lib.likelihood: the terms of Ho et al.'s Eq. 5 checked against independent computations.

- the prior term against torch.distributions' Gaussian KL;
- p_theta's mean against the sampler's step, its variances against diffusers' DDPMScheduler;
- Eq. 12 (KL term = lambda_t ||eps - eps_theta||^2) for an arbitrary model;
- the sum of analytic terms (Eq. 5) against a Monte Carlo estimate of the bound in its original form (Eq. 3),
  E_q[log q(x_{1:T} | x_0) - log p_theta(x_{0:T})], sampled along forward trajectories with torch.distributions;
- the stratified estimator is unbiased: coarse and exact strata agree within their errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from course_lib.distributions import discretized_gaussian_log_likelihood, quantize
from course_lib.likelihood import (
    p_log_variance,
    p_mean_variance,
    prior_kl,
    timestep_strata,
    vlb_bits_per_dim,
    vlb_term,
    vlb_terms_by_variance,
    vlb_weight,
)
from course_lib.samplers import ddpm_step
from course_lib.schedules import Schedule, get_schedule


class ToyEps(torch.nn.Module):
    """A fixed, arbitrary noise predictor: eps_theta(x_t, t) = tanh(W x_t + b t / T)."""

    def __init__(self, dim: int, num_timesteps: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(dim, dim, generator=g) * 0.8)
        self.b = torch.nn.Parameter(torch.randn(dim, generator=g))
        self.T = num_timesteps

    def forward(self, xt, t):
        return torch.tanh(xt @ self.w.T.to(xt.dtype) + self.b.to(xt.dtype) * (t.to(xt.dtype)[:, None] / self.T))


def _data(n: int, dim: int, seed: int = 0, num_bins: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quantize((torch.rand(n, dim, generator=g) * 1.6 - 0.8), num_bins)


def test_prior_kl_matches_torch_distributions():
    schedule = get_schedule("linear", 50)
    x0 = _data(7, 5)
    mean = schedule.sqrt_alpha_bar[-1] * x0.double()
    std = schedule.sqrt_one_minus_alpha_bar[-1].expand_as(mean)
    expected = kl_divergence(Normal(mean, std), Normal(torch.zeros_like(mean), torch.ones_like(mean))).sum(1)
    torch.testing.assert_close(prior_kl(x0.double(), schedule), expected)


def test_p_mean_is_the_samplers_mean_and_variances_are_diffusers():
    from diffusers import DDPMScheduler

    schedule = get_schedule("linear", 100)
    x0, g = _data(6, 4), torch.Generator().manual_seed(1)
    xt, eps = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    for t in (0, 1, 37, 99):
        mean, _ = p_mean_variance(eps, xt, torch.full((6,), t), schedule)
        step = ddpm_step(eps, xt, t, schedule, noise=torch.zeros_like(xt))
        torch.testing.assert_close(mean, step.x)
    for variance in ("fixed_small", "fixed_large"):
        ref = DDPMScheduler(num_train_timesteps=100, beta_schedule="linear", variance_type=variance)
        ours = torch.exp(p_log_variance(schedule, variance))
        theirs = torch.stack([ref._get_variance(t) for t in range(1, 100)]).double()
        torch.testing.assert_close(ours[1:], theirs, rtol=1e-3, atol=0)  # diffusers works in float32
    # index 0 is the decoder's variance: beta_tilde of the paper's step 2 for both choices, as in Ho et al.'s code
    assert p_log_variance(schedule, "fixed_small")[0] == p_log_variance(schedule, "fixed_large")[0]
    assert torch.exp(p_log_variance(schedule, "fixed_large")[0]) == pytest.approx(schedule.posterior_variance[1].item())


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_kl_term_is_eq12_weight_times_squared_noise_error(variance):
    schedule, dim = get_schedule("cosine", 40), 6
    model, x0 = ToyEps(dim, 40), _data(16, dim, seed=2)
    g = torch.Generator().manual_seed(3)
    t = torch.randint(1, 40, (16,), generator=g)
    noise = torch.randn(16, dim, generator=g)
    with torch.no_grad():
        term = vlb_term(model, x0, t, schedule, variance=variance, noise=noise).double()
        xt = (
            schedule.sqrt_alpha_bar[t, None] * x0.double() + schedule.sqrt_one_minus_alpha_bar[t, None] * noise.double()
        )
        eps_theta = model(xt.float(), t).double()
    sq_error = ((noise.double() - eps_theta) ** 2).sum(1)
    sigma2, beta_tilde = torch.exp(p_log_variance(schedule, variance))[t], schedule.posterior_variance[t]
    constant = 0.5 * dim * (torch.log(sigma2 / beta_tilde) + beta_tilde / sigma2 - 1)  # 0 for fixed_small
    torch.testing.assert_close(term, vlb_weight(schedule, variance)[t] * sq_error + constant, rtol=1e-4, atol=1e-5)


def test_terms_by_variance_share_one_call_and_equal_vlb_term():
    """One model call scored under three variances gives vlb_term's three numbers (eps-only for the fixed ones)."""
    schedule, dim = get_schedule("cosine", 30), 3
    eps_net, v_net = ToyEps(dim, 30, seed=20), ToyEps(dim, 30, seed=21)
    model = lambda xt, t: torch.cat([eps_net(xt, t), v_net(xt, t)], dim=1)  # eps, then the raw v in [-1, 1]
    x0 = _data(12, dim, seed=22)
    g = torch.Generator().manual_seed(23)
    t, noise = torch.tensor([0, 1, 2, 5, 9, 15, 20, 25, 28, 29, 3, 0]), torch.randn(12, dim, generator=g)
    with torch.no_grad():
        terms, v = vlb_terms_by_variance(model, x0, t, noise, schedule)
        for variance in ("fixed_small", "fixed_large", "learned_range"):
            net = model if variance == "learned_range" else eps_net
            direct = vlb_term(net, x0, t, schedule, variance=variance, noise=noise)
            torch.testing.assert_close(terms[variance].float(), direct, rtol=1e-4, atol=1e-5)
    assert ((v >= 0) & (v <= 1)).all()  # Eq. 15's v = (raw + 1) / 2 of a tanh output
    with pytest.raises(ValueError, match="noise must have x0's shape"):
        vlb_terms_by_variance(model, x0, t, noise[:, :2], schedule)


def test_decoder_term_is_the_samplers_last_step_scored_by_the_discretized_gaussian():
    schedule, dim = get_schedule("linear", 20), 5
    model, x0 = ToyEps(dim, 20, seed=12), _data(9, dim, seed=13)
    g = torch.Generator().manual_seed(14)
    noise, zero = torch.randn(9, dim, generator=g), torch.zeros(9, dtype=torch.long)
    x1 = schedule.sqrt_alpha_bar[0] * x0 + schedule.sqrt_one_minus_alpha_bar[0] * noise
    with torch.no_grad():
        mean = ddpm_step(model(x1, zero), x1, 0, schedule).x  # the last sampling step adds no noise
        term = vlb_term(model, x0, zero, schedule, noise=noise)
    logvar = torch.log(schedule.posterior_variance[1]).float().expand_as(mean)  # sigma_1^2 = beta_tilde_2 (paper)
    expected = -discretized_gaussian_log_likelihood(x0, mean, logvar).sum(1)
    torch.testing.assert_close(term, expected, rtol=1e-4, atol=1e-4)


def test_oracle_noise_gives_zero_kl_and_positive_terms():
    """A model that knows x_0 predicts the true noise: mu_theta = mu_tilde, so every KL vanishes (fixed_small)."""
    schedule = get_schedule("linear", 30)
    x0 = _data(8, 3)

    class Oracle(torch.nn.Module):
        def forward(self, xt, t):
            return (xt - schedule.sqrt_alpha_bar[t, None].float() * x0) / schedule.sqrt_one_minus_alpha_bar[
                t, None
            ].float()

    for t in (1, 10, 29):
        term = vlb_term(Oracle(), x0, torch.full((8,), t), schedule)
        assert term.abs().max() < 1e-3, term
    assert (vlb_term(ToyEps(3, 30), x0, torch.full((8,), 5), schedule) >= 0).all()  # a KL is never negative
    assert (vlb_term(ToyEps(3, 30), x0, torch.zeros(8, dtype=torch.long), schedule) >= 0).all()  # nor a code length


def _monte_carlo_eq3(model, x0, schedule: Schedule, num_paths: int, seed: int) -> tuple[float, float]:
    """E_q[log q(x_{1:T}|x_0) - log p(x_{0:T})] per example in nats, sampled along forward chains.

    Written from the definitions only: the Markov chain x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z, the
    Gaussian reverse steps with the eps-parameterised mean of Eq. 11 and sigma_t^2 = beta_tilde_t, and
    the discretized decoder at the last step.
    """
    g = torch.Generator().manual_seed(seed)
    T = schedule.num_timesteps
    x = x0.double().repeat(num_paths, 1)
    betas, alphas, ab = schedule.betas, schedule.alphas, schedule.alpha_bar
    path = [x]
    log_q = torch.zeros(len(x), dtype=torch.float64)
    for t in range(T):  # code index t: paper step t+1
        nxt = alphas[t].sqrt() * path[-1] + betas[t].sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
        log_q += Normal(alphas[t].sqrt() * path[-1], betas[t].sqrt()).log_prob(nxt).sum(1)
        path.append(nxt)
    log_p = Normal(0.0, 1.0).log_prob(path[T]).sum(1)
    sigma2 = torch.cat([schedule.posterior_variance[1:2], schedule.posterior_variance[1:]])
    with torch.no_grad():
        for t in range(T - 1, -1, -1):  # p(x_{t-1} | x_t) for paper steps T ... 1; path[t+1] is x at code index t
            xt = path[t + 1]
            eps = model(xt.float(), torch.full((len(xt),), t)).double()
            mean = (xt - betas[t] / (1 - ab[t]).sqrt() * eps) / alphas[t].sqrt()  # Eq. 11
            if t > 0:
                log_p += Normal(mean, sigma2[t].sqrt()).log_prob(path[t]).sum(1)
            else:
                log_p += discretized_gaussian_log_likelihood(
                    x0.double().repeat(num_paths, 1), mean, torch.log(sigma2[0]).expand_as(mean)
                ).sum(1)
    bound = log_q - log_p
    return float(bound.mean()), float(bound.std() / math.sqrt(len(bound)))


def test_analytic_terms_sum_to_the_monte_carlo_bound():
    schedule, dim = get_schedule("linear", 8, beta_start=0.02, beta_end=0.4), 3
    model, x0 = ToyEps(dim, 8, seed=4), _data(1, dim, seed=5)
    mc, mc_err = _monte_carlo_eq3(model, x0, schedule, num_paths=100000, seed=6)
    xs = x0.repeat(20000, 1)
    est = vlb_bits_per_dim(model, xs, schedule, generator=torch.Generator().manual_seed(7), progress=False)
    analytic = est.bits_per_dim * dim * math.log(2)
    analytic_err = est.stderr_bits_per_dim * dim * math.log(2)
    assert abs(analytic - mc) < 4 * math.hypot(mc_err, analytic_err), (analytic, mc, mc_err, analytic_err)
    # per example, the analytic KLs have less variance than the sampled chain (why Eq. 5 is used, not Eq. 3)
    assert analytic_err * math.sqrt(20000) < mc_err * math.sqrt(100000)


def test_stratified_estimate_is_unbiased_and_exact_for_single_steps():
    schedule, dim = get_schedule("linear", 60), 4
    model, xs = ToyEps(dim, 60, seed=8), _data(1, dim, seed=9).repeat(3000, 1)
    exact = vlb_bits_per_dim(model, xs, schedule, generator=torch.Generator().manual_seed(10), progress=False)
    coarse = vlb_bits_per_dim(
        model,
        xs,
        schedule,
        strata=timestep_strata(60, 8, dense=2),
        generator=torch.Generator().manual_seed(11),
        progress=False,
    )
    gap = abs(exact.bits_per_dim - coarse.bits_per_dim)
    assert gap < 4 * math.hypot(exact.stderr_bits_per_dim, coarse.stderr_bits_per_dim), (exact, coarse)
    assert exact.decoder_bits_per_dim == pytest.approx(exact.terms_bits_per_dim[0])
    total = exact.prior_bits_per_dim + sum(exact.terms_bits_per_dim)
    assert total == pytest.approx(exact.bits_per_dim, rel=1e-9)
    assert len(exact.strata) == 60 and exact.per_step_bits_per_dim == exact.terms_bits_per_dim


def test_strata_cover_every_index_once():
    for T, n, dense in [(1000, 100, 10), (1000, 40, 5), (10, 4, 2), (1000, 1, 0), (1000, 20, 0), (5, 4, 3)]:
        strata = timestep_strata(T, n, dense)
        assert [t for a, b in strata for t in range(a, b)] == list(range(T))
        assert len(strata) <= n and strata[:dense] == [(t, t + 1) for t in range(dense)]
    assert timestep_strata(7, 7) == [(t, t + 1) for t in range(7)]
    for T, n, dense, tail in [(1000, 100, 10, 2), (1000, 12, 0, 1), (10, 4, 1, 2), (5, 4, 1, 2)]:
        strata = timestep_strata(T, n, dense, tail)
        assert [t for a, b in strata for t in range(a, b)] == list(range(T))
        assert len(strata) <= n and strata[len(strata) - tail :] == [(t, t + 1) for t in range(T - tail, T)]


def test_bad_input_is_explained():
    schedule = get_schedule("linear", 10)
    with pytest.raises(ValueError, match="cover every index"):
        vlb_bits_per_dim(ToyEps(2, 10), _data(3, 2), schedule, strata=[(0, 5)], progress=False)
    with pytest.raises(ValueError, match="quantize"):
        vlb_term(ToyEps(2, 10), torch.full((3, 2), 0.1234), torch.zeros(3, dtype=torch.long), schedule)
    with pytest.raises(ValueError, match="num_strata"):
        timestep_strata(10, 11)
    with pytest.raises(ValueError, match="dense"):
        timestep_strata(10, 4, dense=4)
    with pytest.raises(ValueError, match="tail"):
        timestep_strata(10, 4, dense=2, tail=2)
    with pytest.raises(ValueError, match="variance"):
        p_log_variance(schedule, "learned")


def test_weight_drops_with_t_for_ddpm_schedule():
    """L_simple's implicit reweighting: relative to the bound it gives small t far less weight (Sec. 3.4)."""
    lam = vlb_weight(get_schedule("linear", 1000))
    assert lam[1] / lam[500] > 50 and lam[1:].argmax() == 0
