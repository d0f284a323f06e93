"""Improved DDPM pieces (Nichol & Dhariwal 2021): respacing, the learned-variance step, L_hybrid, importance-sampled t.

References: diffusers' DDPMScheduler (variance_type="learned_range"; set_timesteps for respaced sampling),
identities of the schedule (respacing with every step is the identity), a zero KL for a model whose mean and
variance are the posterior's, and the unbiasedness of the importance-weighted estimate.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.ddim import ddim_timesteps
from course_lib.distributions import quantize
from course_lib.likelihood import vlb_term, vlb_terms_from_prediction
from course_lib.losses import ImportanceSampler, l_hybrid, l_simple
from course_lib.samplers import ddpm_sample, ddpm_step, learned_log_variance
from course_lib.schedules import get_schedule, respace


def test_respace_with_every_step_is_the_identity_and_keeps_alpha_bar():
    for name in ("linear", "cosine"):
        s = get_schedule(name, 1000)
        full = respace(s, list(range(1000)))
        for field in ("betas", "alpha_bar", "posterior_variance", "posterior_mean_coef1"):
            torch.testing.assert_close(getattr(full, field), getattr(s, field), rtol=1e-10, atol=1e-12)
        kept = [0, 3, 10, 250, 600, 999]
        torch.testing.assert_close(respace(s, kept).alpha_bar, s.alpha_bar[kept], rtol=1e-8, atol=0)


def test_respace_rejects_bad_timesteps():
    s = get_schedule("linear", 100)
    for bad in ([], [5, 5, 9], [9, 3], [0, 100], [-1, 4]):
        with pytest.raises(ValueError, match="strictly increasing"):
            respace(s, bad)


def test_learned_variance_step_equals_diffusers_learned_range():
    from diffusers import DDPMScheduler

    schedule = get_schedule("linear", 1000)
    ref = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", variance_type="learned_range", clip_sample=False
    )
    g = torch.Generator().manual_seed(0)
    for t in (999, 500, 20, 1, 0):
        x, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
        v = torch.rand(2, 1, 4, 4, generator=g) * 2 - 1
        ours = ddpm_step(
            eps, x, t, schedule, variance="learned_range", v=v, generator=torch.Generator().manual_seed(t)
        ).x  # diffusers draws z itself, the same way
        theirs = ref.step(torch.cat([eps, v], dim=1), t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # the two ends of the range are the two fixed choices
    t = torch.full((2,), 300)
    one = torch.ones(2, 3)
    torch.testing.assert_close(
        learned_log_variance(-one, t, schedule), torch.log(schedule.posterior_variance[300]).float().expand(2, 3)
    )
    torch.testing.assert_close(
        learned_log_variance(one, t, schedule), torch.log(schedule.betas[300]).float().expand(2, 3)
    )


def test_respaced_sampling_equals_diffusers_set_timesteps():
    """DDPMScheduler.set_timesteps(K) ('leading') recomputes beta from alpha_bar at the kept steps: our respace."""
    from diffusers import DDPMScheduler

    schedule, K = get_schedule("linear", 1000), 25
    taus = ddim_timesteps(1000, K, "leading")[::-1]  # increasing: 0, 40, ..., 960
    model = lambda x, t: torch.tanh(x + t.float().reshape(-1, 1, 1, 1) / 1000)  # noqa: E731
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    ref.set_timesteps(K)
    assert ref.timesteps.tolist() == taus[::-1]
    x = y = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    r = respace(schedule, taus)
    for i, t in enumerate(ref.timesteps.tolist()):  # index K-1-i of the respaced schedule is original index t
        x = ref.step(model(x, torch.full((3,), t)), t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        y = ddpm_step(model(y, torch.full((3,), t)), y, K - 1 - i, r, generator=torch.Generator().manual_seed(i)).x
    torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4)
    # and the sampler loop calls the model with the original timesteps
    seen = []
    ddpm_sample(lambda x, t: (seen.append(int(t[0])), x * 0)[1], (1, 1, 2, 2), r, model_timesteps=taus, progress=False)
    assert seen == taus[::-1]


def test_kl_is_zero_when_mean_and_variance_are_the_posteriors():
    schedule = get_schedule("cosine", 200)
    g = torch.Generator().manual_seed(2)
    x0 = quantize(torch.rand(5, 1, 3, 3, generator=g) * 2 - 1)
    t = torch.tensor([1, 7, 50, 120, 199])
    noise = torch.randn(x0.shape, generator=g)
    ab = schedule.alpha_bar[t].float().reshape(-1, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    terms = vlb_terms_from_prediction(x0, xt, t, noise, schedule, variance="learned_range", v=-torch.ones_like(x0))
    assert terms.abs().max() < 1e-4
    bigger = vlb_terms_from_prediction(x0, xt, t, noise, schedule, variance="learned_range", v=torch.ones_like(x0))
    assert (bigger[:3] > 1e-3).all()  # beta_t is not the posterior's variance (at large t the two nearly agree)


def test_l_hybrid_trains_the_mean_with_l_simple_and_the_variance_with_the_bound():
    schedule = get_schedule("linear", 100)
    g = torch.Generator().manual_seed(3)
    x0 = quantize(torch.rand(4, 1, 3, 3, generator=g) * 2 - 1)
    out = torch.zeros(4, 2, 3, 3, requires_grad=True)
    model = lambda xt, t: out + 0 * xt  # noqa: E731  (a "network" whose output is a leaf we can differentiate)
    t = torch.tensor([0, 5, 50, 99])

    def grads(lam):
        out.grad = None
        l_hybrid(model, x0, schedule, lam=lam, t=t, noise=torch.ones_like(x0)).backward()
        return out.grad.clone()

    g0, g1 = grads(0.0), grads(10.0)
    torch.testing.assert_close(g0[:, :1], g1[:, :1])  # stop-gradient: the bound does not move eps
    assert g0[:, 1:].abs().max() == 0 and g1[:, 1:].abs().max() > 0  # only the bound trains v
    with torch.no_grad():  # with lam = 0 it is L_simple on the eps half
        simple = l_simple(lambda xt, tt: out[:, :1] + 0 * xt, x0, schedule, t=t, noise=torch.ones_like(x0))
        assert l_hybrid(model, x0, schedule, lam=0.0, t=t, noise=torch.ones_like(x0)).item() == pytest.approx(
            simple.item()
        )


def test_l_hybrid_bound_term_matches_the_evaluated_term():
    schedule = get_schedule("linear", 50)
    g = torch.Generator().manual_seed(4)
    x0 = quantize(torch.rand(6, 1, 2, 2, generator=g) * 2 - 1)
    net = torch.nn.Conv2d(1, 2, 1)
    t, noise = torch.randint(0, 50, (6,), generator=g), torch.randn(6, 1, 2, 2, generator=g)
    with torch.no_grad():
        simple = l_simple(lambda x, tt: net(x)[:, :1], x0, schedule, t=t, noise=noise).item()
        hybrid = l_hybrid(lambda x, tt: net(x), x0, schedule, lam=1.0, t=t, noise=noise).item()
        terms = vlb_term(lambda x, tt: net(x), x0, t, schedule, variance="learned_range", noise=noise)
    expected = simple + (50 * terms / (4 * torch.log(torch.tensor(2.0)))).mean().item()
    assert hybrid == pytest.approx(expected, rel=1e-4)


def test_importance_sampler_is_uniform_until_warm_then_unbiased():
    T = 20
    sampler = ImportanceSampler(T, history=3)
    assert torch.equal(sampler.probabilities(), torch.full((T,), 1 / T, dtype=torch.float64))
    L = torch.linspace(5.0, 0.1, T, dtype=torch.float64) ** 2  # large terms at small t, as in the bound
    for _ in range(3):
        sampler.update(torch.arange(T), L)
    assert sampler.warm
    p = sampler.probabilities()
    expected = (1 - 0.001) * L / L.sum() + 0.001 / T  # sqrt(mean L^2) = L when every value is the same
    torch.testing.assert_close(p, expected)
    t, w = sampler.sample(100000, generator=torch.Generator().manual_seed(5))
    assert abs((w.double() * L[t]).mean().item() - L.mean().item()) < 0.02 * L.mean().item()  # E_p[w L_t] = mean L
    # the variance of the estimate is lower than with uniform t
    t_u = torch.randint(0, T, (100000,), generator=torch.Generator().manual_seed(6))
    assert (w.double() * L[t]).var() < 0.2 * L[t_u].var()
    with pytest.raises(ValueError, match="shape"):
        sampler.update(torch.arange(3), torch.ones(4))


def test_a_learned_variance_model_with_a_fixed_variance_is_explained():
    from course_lib.samplers import split_output

    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="learned-variance model"):
        split_output(torch.zeros(2, 2, 4, 4), x, "fixed_small")
    eps, v = split_output(torch.ones(2, 1, 4, 4), x, "fixed_large")
    assert v is None and torch.equal(eps, torch.ones(2, 1, 4, 4))
