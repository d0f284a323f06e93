"""Guidance (chapter 5): identities of the wrappers, exact scores, finite differences, diffusers' CFG order."""

import math

import pytest
import torch

from course_lib.data import gaussian_mixture, mixture_means
from course_lib.ddim import ddim_step
from course_lib.mixture import NoisedGaussianMixture
from course_lib.guidance import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    GuidanceInterval,
    LossGuidance,
    cfg_loss_fn,
    classifier_log_prob_grad,
    colour_loss,
    drop_labels,
    foreground_colour,
    foreground_weights,
)
from course_lib.noisy_classifier import NoisyClassifier, NoisyClassifierConfig, accuracy_by_t
from course_lib.samplers import ddpm_step
from course_lib.schedules import get_schedule
from course_lib.unet import UNet, UNetConfig

SCHEDULE = get_schedule("linear", 1000)


@pytest.fixture(scope="module")
def mixture():
    return NoisedGaussianMixture(mixture_means(), 0.3, SCHEDULE)


@pytest.fixture(scope="module")
def cond_unet():
    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(), num_classes=10))
    for p in model.parameters():  # the zero-initialised output layers would make every label give eps = 0
        torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 1000, (n,), generator=g), torch.arange(n) % 10


# --- the exact 2-D mixture -------------------------------------------------------------------------------


def test_mixture_eps_is_the_scaled_score_by_autograd(mixture):
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 10, 200, 600, 999])
    log_q = torch.logsumexp(mixture.logits(x, t), dim=1).sum()  # log q(x_t) up to log K
    (score,) = torch.autograd.grad(log_q, x)
    expected = -SCHEDULE.sqrt_one_minus_alpha_bar[t][:, None] * score
    torch.testing.assert_close(mixture.eps(x.detach(), t), expected)


def test_mixture_eps_is_the_posterior_mean_of_the_noise(mixture):
    # Tweedie: eps*(x_t) = E[eps | x_t]. Check on the conditional: for one class, q(x_t | y) is Gaussian and
    # E[eps | x_t, y] = sqrt(1 - ab) (x_t - sqrt(ab) mu_y) / v_t.
    x, t, y = torch.randn(4, 2, dtype=torch.float64), torch.tensor([5, 300, 700, 999]), torch.tensor([0, 1, 2, 3])
    ab = SCHEDULE.alpha_bar[t][:, None]
    v = ab * 0.09 + 1 - ab
    expected = (1 - ab).sqrt() * (x - ab.sqrt() * mixture.means[y]) / v
    torch.testing.assert_close(mixture.eps(x, t, y), expected)


def test_classifier_guidance_at_s_is_cfg_at_w_s_minus_1_with_exact_scores(mixture):
    x, t = torch.randn(64, 2, dtype=torch.float64) * 1.5, torch.randint(0, 1000, (64,))
    y = torch.randint(0, 4, (64,))
    for s in (0.5, 1.0, 2.0, 5.0):
        cg = ClassifierGuidance(mixture.eps, mixture.logits, SCHEDULE, scale=s, algorithm="ddim")
        cfg = ClassifierFreeGuidance(mixture.eps, w=s - 1, null_label=4) if s >= 1 else None
        if cfg is None:  # w = s - 1 < 0: the same combination, (1 - s) eps_u + s eps_c, written out
            expected = (1 - s) * mixture.eps(x, t) + s * mixture.eps(x, t, y)
        else:
            expected = cfg(x, t, y=y)
        torch.testing.assert_close(cg(x, t, y=y), expected)


def test_exact_guidance_at_scale_1_is_the_conditional_model(mixture):
    x, t, y = torch.randn(16, 2, dtype=torch.float64), torch.randint(0, 1000, (16,)), torch.randint(0, 4, (16,))
    cg = ClassifierGuidance(mixture.eps, mixture.logits, SCHEDULE, scale=1.0)
    torch.testing.assert_close(cg(x, t, y=y), mixture.eps(x, t, y))


def test_guided_sampling_on_the_mixture_lands_in_the_requested_class(mixture):
    from course_lib.ddim import ddim_sample, ddim_timesteps

    y = torch.arange(200) % 4
    x = ddim_sample(
        ClassifierFreeGuidance(mixture.eps, w=0.0, null_label=4),
        (200, 2),
        SCHEDULE,
        ddim_timesteps(1000, 50),
        generator=torch.Generator().manual_seed(0),
        x_T=None,
        progress=False,
        y=y,
    ).double()
    nearest = torch.cdist(x, mixture.means).argmin(1)
    assert (nearest == y).float().mean() > 0.97  # components 5.9 stds apart: the conditional model is the class


def test_guidance_interval_guides_inside_and_is_the_conditional_model_outside(mixture):
    guided = ClassifierGuidance(mixture.eps, mixture.logits, SCHEDULE, scale=5.0)
    plain = ClassifierGuidance(mixture.eps, mixture.logits, SCHEDULE, scale=1.0)
    limited = GuidanceInterval(guided, plain, 50, 100)
    x, y = torch.randn(6, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])
    t = torch.tensor([0, 49, 50, 75, 100, 101])  # one batch across both ends of the interval
    inside = torch.tensor([False, False, True, True, True, False])
    out = limited(x, t, y=y)
    torch.testing.assert_close(out[inside], guided(x, t, y=y)[inside])
    torch.testing.assert_close(out[~inside], mixture.eps(x, t, y)[~inside])  # scale 1: the conditional model
    assert (out[inside] - mixture.eps(x, t, y)[inside]).abs().max() > 1e-3  # and inside, guidance changes it
    for t_all, model in ((75, guided), (500, plain)):  # a batch on one side: that model alone
        t_same = torch.full((6,), t_all)
        torch.testing.assert_close(limited(x, t_same, y=y), model(x, t_same, y=y))
    everywhere = GuidanceInterval(guided, plain, 0, SCHEDULE.num_timesteps - 1)
    torch.testing.assert_close(everywhere(x, t, y=y), guided(x, t, y=y))


def test_guidance_interval_bad_input(mixture):
    for t_min, t_max in ((-1, 10), (20, 10), (0.5, 10), (0, None)):
        with pytest.raises(ValueError, match="t_min <= t_max"):
            GuidanceInterval(mixture.eps, mixture.eps, t_min, t_max)


# --- classifier-free guidance ----------------------------------------------------------------------------


def test_cfg_w0_is_the_conditional_model(cond_unet):
    x, t, y = _batch()
    with torch.no_grad():
        torch.testing.assert_close(ClassifierFreeGuidance(cond_unet, 0.0)(x, t, y=y), cond_unet(x, t, y=y))


def test_cfg_with_the_same_conditional_and_unconditional_model_is_the_identity():
    base = lambda x, t, y=None: torch.sin(x) + t[:, None, None, None] / 1000  # noqa: E731 (ignores y)
    x, t, y = _batch()
    for w in (0.5, 3.0):
        torch.testing.assert_close(ClassifierFreeGuidance(base, w, null_label=10)(x, t, y=y), base(x, t))


def test_cfg_matches_diffusers_ordering(cond_unet):
    # diffusers' pipelines: noise_pred_uncond, noise_pred_text = noise_pred.chunk(2) of the batch
    # [uncond, cond]; noise_pred = uncond + guidance_scale * (text - uncond), with guidance_scale = 1 + w.
    x, t, y = _batch()
    w = 2.5
    with torch.no_grad():
        noise_pred = cond_unet(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([torch.full_like(y, 10), y]))
        uncond, text = noise_pred.chunk(2)
        diffusers_style = uncond + (1 + w) * (text - uncond)
        ours = ClassifierFreeGuidance(cond_unet, w)(x, t, y=y)
        separate = (1 + w) * cond_unet(x, t, y=y) - w * cond_unet(x, t, y=None)
    torch.testing.assert_close(ours, diffusers_style, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, separate, rtol=1e-5, atol=1e-6)


def test_cfg_bad_input(cond_unet):
    x, t, y = _batch()
    with pytest.raises(ValueError, match="null label"):
        ClassifierFreeGuidance(UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=())), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        ClassifierFreeGuidance(cond_unet, -1.0)
    with pytest.raises(ValueError, match="0 ... 9"):
        ClassifierFreeGuidance(cond_unet, 1.0)(x, t, y=torch.full_like(y, 10))
    with pytest.raises(ValueError, match="needs labels"):
        ClassifierFreeGuidance(cond_unet, 1.0)(x, t)


def test_drop_labels_rate_and_cfg_loss_trains_the_null_label():
    y = torch.zeros(20_000, dtype=torch.long)
    dropped = drop_labels(y, 0.2, 10, torch.Generator().manual_seed(0))
    assert abs((dropped == 10).float().mean().item() - 0.2) < 0.01
    assert set(dropped.unique().tolist()) == {0, 10}
    with pytest.raises(ValueError, match="probability"):
        drop_labels(y, 1.5, 10)
    seen = []
    model = lambda x, t, y=None: seen.append(y.clone()) or torch.zeros_like(x)  # noqa: E731
    x0, labels = torch.randn(4000, 1, 2, 2), torch.arange(4000) % 10
    loss = cfg_loss_fn(SCHEDULE, 0.1, 10, torch.Generator().manual_seed(0))(model, (x0, labels))
    assert abs(loss.item() - 1.0) < 0.05  # predicting 0 costs E[eps^2] = 1
    assert 0.08 < (seen[0] == 10).float().mean() < 0.12


# --- classifier guidance ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_classifier():
    torch.manual_seed(0)
    clf = NoisyClassifier(NoisyClassifierConfig(base_channels=8, channel_mults=(1, 2)))
    for p in clf.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return clf.double().eval()


def test_classifier_gradient_matches_finite_differences(noisy_classifier):
    x, t, y = _batch(3)
    x = x.double()
    grad = classifier_log_prob_grad(noisy_classifier, x, t, y)
    log_p = lambda z: torch.log_softmax(noisy_classifier(z, t), 1).gather(1, y[:, None]).sum()  # noqa: E731
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        direction = torch.randn(x.shape, generator=g, dtype=torch.float64)
        h = 1e-5
        fd = (log_p(x + h * direction) - log_p(x - h * direction)) / (2 * h)
        assert math.isclose((grad * direction).sum().item(), fd.item(), rel_tol=1e-6, abs_tol=1e-8)


def test_classifier_gradient_inside_no_grad_leaves_no_parameter_gradients(noisy_classifier):
    x, t, y = _batch(2)
    with torch.no_grad():
        grad = classifier_log_prob_grad(noisy_classifier, x.double(), t, y)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    assert all(p.grad is None for p in noisy_classifier.parameters())


def test_classifier_guidance_scale_0_is_the_base_model(noisy_classifier):
    x, t, y = _batch(4)
    base = lambda x, t: torch.cos(x)  # noqa: E731
    out = ClassifierGuidance(base, noisy_classifier, SCHEDULE, 0.0)(x.double(), t, y=y)
    torch.testing.assert_close(out, torch.cos(x.double()))


def test_ddpm_algorithm_1_shifts_the_mean_by_s_sigma_grad(noisy_classifier):
    x, _, y = _batch(4)
    x = x.double()
    base = lambda x, t: 0.3 * x  # noqa: E731
    for variance in ("fixed_small", "fixed_large"):
        for t_int in (1, 400, 999):
            t = torch.full((4,), t_int)
            s = 3.0
            guided = ClassifierGuidance(base, noisy_classifier, SCHEDULE, s, algorithm="ddpm", variance=variance)
            zero = torch.zeros_like(x)
            mean_guided = ddpm_step(guided(x, t, y=y), x, t_int, SCHEDULE, variance=variance, noise=zero).x
            mean = ddpm_step(base(x, t), x, t_int, SCHEDULE, variance=variance, noise=zero).x
            sigma2 = (SCHEDULE.posterior_variance if variance == "fixed_small" else SCHEDULE.betas)[t_int]
            expected = mean + s * sigma2 * classifier_log_prob_grad(noisy_classifier, x, t, y)
            torch.testing.assert_close(mean_guided, expected)


def test_ddim_algorithm_2_is_eps_minus_sqrt_one_minus_ab_s_grad(noisy_classifier):
    x, t, y = _batch(4)
    x = x.double()
    base = lambda x, t: 0.3 * x  # noqa: E731
    out = ClassifierGuidance(base, noisy_classifier, SCHEDULE, 2.0)(x, t, y=y)
    c = SCHEDULE.sqrt_one_minus_alpha_bar[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out, 0.3 * x - 2.0 * c * classifier_log_prob_grad(noisy_classifier, x, t, y))


def test_classifier_guidance_bad_input(noisy_classifier):
    x, t, y = _batch(2)
    with pytest.raises(ValueError, match=">= 0"):
        ClassifierGuidance(lambda x, t: x, noisy_classifier, SCHEDULE, -0.5)
    with pytest.raises(ValueError, match="algorithm"):
        ClassifierGuidance(lambda x, t: x, noisy_classifier, SCHEDULE, 1.0, algorithm="euler")
    guided = ClassifierGuidance(lambda x, t: x, noisy_classifier, SCHEDULE, 1.0)
    with pytest.raises(ValueError, match="0 ... 9"):
        guided(x.double(), t, y=torch.tensor([3, 12]))
    with pytest.raises(ValueError, match="labels"):
        guided(x.double(), t)


def test_noisy_classifier_shapes_and_accuracy_by_t(noisy_classifier):
    x, t, y = _batch(5)
    assert noisy_classifier(x.double(), t).shape == (5, 10)
    acc = accuracy_by_t(noisy_classifier.float(), x, y, SCHEDULE, [0, 999])
    # whether t is passed is read from the signature, so a wrapper of the classifier scores the same
    wrapped = accuracy_by_t(lambda x, t: noisy_classifier(x, t), x, y, SCHEDULE, [0, 999])
    flagged = accuracy_by_t(lambda *a: noisy_classifier(*a), x, y, SCHEDULE, [0, 999], takes_t=True)
    clean = accuracy_by_t(lambda x: noisy_classifier(x, torch.zeros(len(x), dtype=torch.long)), x, y, SCHEDULE, [0])
    with pytest.raises(ValueError, match="takes_t"):
        accuracy_by_t(lambda *a: noisy_classifier(*a), x, y, SCHEDULE, [0])
    noisy_classifier.double()
    assert len(acc) == 2 and all(0 <= a <= 1 for a in acc)
    assert wrapped == acc == flagged and clean == acc[:1]


# --- loss guidance ---------------------------------------------------------------------------------------


def _quadratic(target):
    return lambda x0: ((x0 - target) ** 2).flatten(1).sum(1)


def test_loss_guidance_variant_1_gradient_through_the_scheduler_only():
    x, t, _ = _batch(3)
    x, target, a = x.double(), torch.full((3, 1, 8, 8), 0.5, dtype=torch.float64), 0.7
    model = lambda x, t: a * x  # noqa: E731
    ab = SCHEDULE.alpha_bar[t].reshape(-1, 1, 1, 1)
    x0_hat = (x - (1 - ab).sqrt() * a * x) / ab.sqrt()
    s = 0.2
    v1 = LossGuidance(model, SCHEDULE, _quadratic(target), s, through_model=False, weighting="constant")(x, t)
    torch.testing.assert_close(v1, a * x + s * (1 - ab).sqrt() * 2 * (x0_hat - target) / ab.sqrt())
    # variant 2: d x0_hat / dx = (1 - sqrt(1 - ab) a) / sqrt(ab) for this linear model
    v2 = LossGuidance(model, SCHEDULE, _quadratic(target), s, through_model=True, weighting="constant")(x, t)
    grad2 = 2 * (x0_hat - target) * (1 - (1 - ab).sqrt() * a) / ab.sqrt()
    torch.testing.assert_close(v2, a * x + s * (1 - ab).sqrt() * grad2)


def test_loss_guidance_snr_weighting_is_one_gradient_step_on_x0_hat():
    """weighting="snr", variant 1: the DDIM step's x0_hat is x0_hat - s grad_{x0_hat} loss, at any noise level."""
    x, _, _ = _batch(4)
    x, target, a, s = x.double(), torch.full((4, 1, 8, 8), 0.5, dtype=torch.float64), 0.7, 0.3
    model = lambda x, t: a * x  # noqa: E731
    for step in (999, 500, 20):
        t = torch.full((4,), step)
        x0_hat = ddim_step(model(x, t), x, step, step - 10, SCHEDULE).x0_hat
        guided = LossGuidance(model, SCHEDULE, _quadratic(target), s, weighting="snr")(x, t)
        torch.testing.assert_close(
            ddim_step(guided, x, step, step - 10, SCHEDULE).x0_hat, x0_hat - s * 2 * (x0_hat - target)
        )
    with pytest.raises(ValueError, match="weighting"):
        LossGuidance(model, SCHEDULE, _quadratic(target), s, weighting="linear")


def test_loss_guidance_scale_0_and_lowers_the_loss_in_one_ddim_step():
    x, t, _ = _batch(3)
    model = lambda x, t: 0.5 * x  # noqa: E731
    target = torch.ones(3, 1, 8, 8)
    assert torch.equal(LossGuidance(model, SCHEDULE, _quadratic(target), 0.0)(x, t), model(x, t))
    t = torch.full((3,), 500)
    plain = ddim_step(model(x, t), x, 500, 400, SCHEDULE).x0_hat
    guided_eps = LossGuidance(model, SCHEDULE, _quadratic(target), 0.05)(x, t)
    guided = ddim_step(guided_eps, x, 500, 400, SCHEDULE)
    assert (
        _quadratic(target)(ddim_step(model(x, t), guided.x, 400, 300, SCHEDULE).x0_hat) < _quadratic(target)(plain)
    ).all()
    with pytest.raises(ValueError, match=">= 0"):
        LossGuidance(model, SCHEDULE, _quadratic(target), float("nan"))


def test_mixture_data_matches_its_exact_model():
    x, y = gaussian_mixture(n=4000, seed=0)
    mix = NoisedGaussianMixture(mixture_means(), 0.3, SCHEDULE)
    pred = mix.logits(x.double(), torch.zeros(4000, dtype=torch.long)).argmax(1)
    assert (pred == y).float().mean() > 0.99


# --- fidelity and diversity ------------------------------------------------------------------------------


def test_precision_recall_identities():
    from course_lib.metrics import precision_recall

    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 4, generator=g)
    same = precision_recall(real, real.clone())
    assert same == {"precision": 1.0, "recall": 1.0}
    far = precision_recall(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0}
    # mode dropping: four well-separated clusters, a generator that draws only the first one
    centres = 20.0 * torch.eye(4)
    four = centres[torch.arange(400) % 4] + torch.randn(400, 4, generator=g)
    one = centres[0] + torch.randn(200, 4, generator=g)
    pr = precision_recall(four, one)
    assert pr["precision"] > 0.9 and 0.2 < pr["recall"] < 0.3
    with pytest.raises(ValueError, match="k must"):
        precision_recall(real[:3], one[:3], k=3)


def test_within_class_diversity():
    from course_lib.metrics import within_class_diversity

    f = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 10.0], [10.0, 10.0]])
    assert within_class_diversity(f, torch.tensor([0, 0, 1, 1])) == pytest.approx(2.5)  # (5 + 0) / 2


def test_ddpm_algorithm_1_on_a_respaced_schedule(noisy_classifier):
    from course_lib.schedules import respace

    taus = list(range(0, 1000, 50))
    sub = respace(SCHEDULE, taus)
    x, _, y = _batch(4)
    x = x.double()
    base = lambda x, t: 0.3 * x  # noqa: E731
    guided = ClassifierGuidance(base, noisy_classifier, sub, 2.0, algorithm="ddpm", model_timesteps=taus)
    i, t = 7, torch.full((4,), taus[7])  # called with the original index, as ddpm_sample(model_timesteps=) does
    zero = torch.zeros_like(x)
    shifted = ddpm_step(guided(x, t, y=y), x, i, sub, noise=zero).x
    expected = ddpm_step(base(x, t), x, i, sub, noise=zero).x + 2.0 * sub.posterior_variance[
        i
    ] * classifier_log_prob_grad(noisy_classifier, x, t, y)
    torch.testing.assert_close(shifted, expected)


def test_colour_loss_is_zero_on_the_target_colour_and_its_gradient_recolours_the_foreground():
    from course_lib.data import render_shape

    red = render_shape("circle", "red", "large", "center").unsqueeze(0)  # palette red (230, 40, 40) on black
    rgb = (foreground_colour(red) + 1) * 127.5
    assert (rgb - torch.tensor([230.0, 40.0, 40.0])).abs().max() < 6  # edges count little
    painted = torch.where(red > -1, torch.tensor([230.0, 40.0, 40.0]).view(1, 3, 1, 1) / 127.5 - 1, red)
    assert colour_loss((230, 40, 40))(painted.float()).item() < 1e-6
    x = red.clone().requires_grad_(True)
    loss = colour_loss((255, 140, 0))(x)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    background = foreground_weights(red) < 1e-6
    assert grad.masked_select(background.expand_as(grad)).abs().max() == 0  # black pixels carry no weight
    assert colour_loss((255, 140, 0))(x.detach() - 0.1 * grad) < loss.detach()  # a gradient step helps
    with pytest.raises(ValueError, match="0..255"):
        colour_loss((300, 0, 0))
    with pytest.raises(ValueError, match="RGB"):
        foreground_weights(torch.zeros(2, 1, 8, 8))


def test_colour_error_of_renders_is_small_for_their_colour_and_large_for_another():
    from course_lib.data import render_shape
    from course_lib.guidance import colour_error

    images = torch.stack(
        [render_shape("circle", "red", "large", "center"), render_shape("star", "cyan", "small", "top left")]
    )
    right, wrong = colour_error(images, ["red", "cyan"]), colour_error(images, ["blue", "red"])
    assert (right < 20).all() and (wrong > 100).all(), (right, wrong)  # small shapes blend at their edges
    with pytest.raises(ValueError, match="unknown colour"):
        colour_error(images, ["red", "orange"])
