"""The improved-DDPM exercise set's test cases (exercises/source/iddpm).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

import re


POSSIBLE = 21  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = (
    "cosine_clip",
    "learned_variance",
    "vlb_kl",
    "decoder",
    "respace",
    "stop_gradient",
    "bound_profile",
    "written",
    "train",
)
MEASURED = "iddpm_digits_bound"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ()
HIDDEN_MENTIONS = ()
EVERY_HIDDEN_MENTIONS = ("digits_covered",)  # every bound point needs every digit sampled

PARTIAL = {
    # log beta_tilde_0 = -inf left in place: right at every t >= 1 (the by-hand case at t = 1, diffusers' range), -inf
    # at t = 0, which the public test of the first index reports
    "learned_log_variance": "def learned_log_variance(v, t, betas):\n"
    "    betas = betas.double()\n"
    "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
    "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
    "    log_beta_tilde = torch.log((1 - alpha_bar_prev) / (1 - alpha_bar) * betas)\n"
    "    shape = (-1, *[1] * (v.ndim - 1))\n"
    "    u = (v + 1) / 2\n"
    "    return (u * torch.log(betas)[t].view(shape)\n"
    "            + (1 - u) * log_beta_tilde[t].view(shape)).to(v.dtype)",
    "mean_weight": "def mean_weight(betas, lam=0.001):\n    ...",
    "make_model": lambda source: re.sub(r'"steps": \d+', '"steps": 10**6', source),  # over the budget
}


# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q2_learned_variance", "q6_stop_gradient", "q9_train")


def check_partial(result, table):
    assert 0 < result.scores["q2_learned_variance"] < result.possible["q2_learned_variance"], table
    assert "log Sigma at t = 0" in result.reasons["q2_learned_variance"], table
    for q in ("q6_stop_gradient", "q9_train"):
        assert result.scores[q] == 0, table
    assert "steps must be an int" in result.reasons["q9_train"], table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: the cosine formula's alpha_bar, f(t) / f(0), without the clip
    "cosine_alpha_bar": "def cosine_alpha_bar(T, s=0.008, max_beta=0.999):\n"
    "    u = torch.arange(T + 1, dtype=torch.float64) / T\n"
    "    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2\n"
    "    return f[1:] / f[0]\n\n\n"
    "alpha_bar = cosine_alpha_bar(1000)\n"
    "alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])\n"
    "LAST_STEP_GAIN = ((1 - alphas) / (alphas.sqrt() * (1 - alpha_bar).sqrt()))[-1].item()",
    # Q2: u and 1 - u swapped (v = 1 read as beta_tilde)
    "learned_log_variance": "def learned_log_variance(v, t, betas):\n"
    "    betas = betas.double()\n"
    "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
    "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
    "    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas\n"
    "    log_beta_tilde = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))\n"
    "    shape = (-1, *[1] * (v.ndim - 1))\n"
    "    u = (1 - v) / 2\n"
    "    return (u * torch.log(betas)[t].view(shape) + (1 - u) * log_beta_tilde[t].view(shape)).to(v.dtype)",
    # Q3: the KL the wrong way round, KL(p_theta || q)
    "vlb_kl": "def vlb_kl(x0, xt, t, eps, log_variance, schedule):\n"
    "    shape = (-1, *[1] * (x0.ndim - 1))\n"
    "    pick = lambda values: values[t].view(shape)\n"
    "    x0_hat = (xt.double() - pick(schedule.sqrt_one_minus_alpha_bar) * eps.double()) / pick(schedule.sqrt_alpha_bar)\n"
    "    c1, c2 = pick(schedule.posterior_mean_coef1), pick(schedule.posterior_mean_coef2)\n"
    "    mean_q, mean_p = c1 * x0.double() + c2 * xt.double(), c1 * x0_hat + c2 * xt.double()\n"
    "    logvar_q, logvar_p = torch.log(pick(schedule.posterior_variance)), log_variance.double()\n"
    "    kl = 0.5 * (logvar_q - logvar_p + torch.exp(logvar_p - logvar_q) + (mean_q - mean_p) ** 2 * torch.exp(-logvar_q) - 1)\n"
    "    return kl.flatten(1).sum(dim=1).float()",
    # Q4: bins of half-width 1/256 (the 8-bit habit) instead of 1/255, the half-distance between the levels
    "decoder_nll": "def decoder_nll(x0, mean, log_variance):\n"
    "    inv_std = torch.exp(-0.5 * log_variance.double())\n"
    "    x0, mean = x0.double(), mean.double()\n"
    "    upper = torch.special.ndtr((x0 + 1 / 256 - mean) * inv_std)\n"
    "    lower = torch.special.ndtr((x0 - 1 / 256 - mean) * inv_std)\n"
    "    upper = torch.where(x0 > 1 - 1 / 256, torch.ones_like(upper), upper)\n"
    "    lower = torch.where(x0 < -1 + 1 / 256, torch.zeros_like(lower), lower)\n"
    "    return -torch.log(upper - lower).flatten(1).sum(dim=1).float()",
    # Q5: the original betas of the kept steps, instead of the betas of the respaced process
    "respace_betas": "def respace_betas(alpha_bar, timesteps):\n"
    "    alpha_bar = alpha_bar.double()\n"
    "    betas = 1 - torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])\n"
    "    return betas[list(timesteps)]",
    # Q6: the bound's own weight, without L_hybrid's factor T; read as 'the bound weights small t most' (the DDPM
    # exercises' lesson on the linear schedule) and 'lam = 0.001 makes it negligible'
    "mean_weight": "def mean_weight(betas, lam=0.001):\n"
    "    betas = betas.double()\n"
    "    alphas = 1 - betas\n"
    "    alpha_bar = torch.cumprod(alphas, dim=0)\n"
    "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
    "    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas\n"
    "    return lam * betas ** 2 / (alphas * (1 - alpha_bar)) / (2 * beta_tilde * math.log(2))\n\n\n"
    "HEAVIEST = 1\nNEGLIGIBLE = True",
    # Q7: the bound left in nats per image, and the first ten and the last step read one range off (1 ... 10, 998)
    "BOUND": "from course_lib.data import digits\n"
    "from course_lib.distributions import nats_to_bits_per_dim, quantize\n"
    "from course_lib.likelihood import timestep_strata, vlb_bits_per_dim\n"
    "from course_lib.unet import UNet\n\n"
    "model = UNet.from_pretrained('iddpm_digits_hybrid')\n"
    "x0 = quantize(digits('test', image_size=16)[0][:64])\n"
    "strata = timestep_strata(999, 23, dense=10) + [(999, 1000)]\n"
    "estimate = vlb_bits_per_dim(model, x0, get_schedule('cosine', 1000), strata=strata,\n"
    "                            variance='learned_range', generator=torch.Generator().manual_seed(0), progress=False)\n"
    "BOUND = estimate.bits_per_dim * 256 * math.log(2)\n"
    "SHARE_FIRST_TEN = sum(estimate.terms_bits_per_dim[1:11]) / estimate.bits_per_dim\n"
    "SHARE_LAST = estimate.terms_bits_per_dim[-2] / estimate.bits_per_dim",
    # Q9: an eps-only network with the learned-variance loss (the model must return eps and v)
    "make_model": lambda source: source.replace("return torch.cat([eps, out[:, 1:]], dim=1)", "return eps"),
}
IDDPM_CAUGHT = {
    "q1_cosine_clip": "cosine_alpha_bar(3, s=0)[2]",
    "q2_learned_variance": "log Sigma at t = 1 for betas (0.5, 0.5)",
    "q3_vlb_kl": "Sigma = beta_1 = 1/2",
    "q4_decoder": "decoder_nll of the levels -1, 1/255 and 1",
    "q5_respace": "respace_betas((0.9, 0.6, 0.3, 0.1), [0, 2, 3])",
    "q6_stop_gradient": "w_1 and w_2 for betas",
    "q7_bound_profile": "it should be in bits per dimension",
    "q9_train": "has shape (2, 1, 16, 16), expected (2, 2, 16, 16)",
}
CAUGHT = {
    "q1_cosine_clip": "cosine_alpha_bar(3, s=0)[2]",
    "q2_learned_variance": "log Sigma at t = 1 for betas (0.5, 0.5)",
    "q3_vlb_kl": "Sigma = beta_1 = 1/2",
    "q4_decoder": "decoder_nll of the levels -1, 1/255 and 1",
    "q5_respace": "respace_betas((0.9, 0.6, 0.3, 0.1), [0, 2, 3])",
    "q6_stop_gradient": "w_1 and w_2 for betas",
    "q7_bound_profile": "it should be in bits per dimension",
    "q9_train": "has shape (2, 1, 16, 16), expected (2, 2, 16, 16)",
}


# More plausible wrong answers, each of which passed every public test until its question got a by-hand case with
# asymmetric inputs (issue 24 item 6): rounds of (answers, the public message that catches each), at most one wrong
# answer per question in a round, since each round is one graded notebook (the other questions left blank). Each
# loses points, not always all of them: a test that it passes (e.g. of the other function of its question) counts.
MORE_WRONG = [
    (
        {
            # Q1: only the last beta clipped (the one the formula sets to 1): right while no other beta exceeds max_beta
            "cosine_alpha_bar": "def cosine_alpha_bar(T, s=0.008, max_beta=0.999):\n"
            "    u = torch.arange(T + 1, dtype=torch.float64) / T\n"
            "    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2\n"
            "    betas = 1 - f[1:] / f[:-1]\n"
            "    betas[-1] = min(betas[-1].item(), max_beta)\n"
            "    return torch.cumprod(1 - betas, dim=0)",
            # Q2: alpha_bar = cumprod(betas) for cumprod(1 - betas): the same when every beta is 1/2
            "learned_log_variance": "def learned_log_variance(v, t, betas):\n"
            "    betas = betas.double()\n"
            "    alpha_bar = torch.cumprod(betas, dim=0)\n"
            "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
            "    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas\n"
            "    log_beta_tilde = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))\n"
            "    shape = (-1, *[1] * (v.ndim - 1))\n"
            "    u = (v + 1) / 2\n"
            "    return (u * torch.log(betas)[t].view(shape) + (1 - u) * log_beta_tilde[t].view(shape)).to(v.dtype)",
            # Q3: c1 and c2 swapped: the same when c1 = c2 (betas (0.5, 0.5) at t = 1)
            "vlb_kl": "def vlb_kl(x0, xt, t, eps, log_variance, schedule):\n"
            "    shape = (-1, *[1] * (x0.ndim - 1))\n"
            "    pick = lambda values: values[t].view(shape)\n"
            "    x0_, xt_, eps_ = x0.double(), xt.double(), eps.double()\n"
            "    x0_hat = (xt_ - pick(schedule.sqrt_one_minus_alpha_bar) * eps_) / pick(schedule.sqrt_alpha_bar)\n"
            "    c1, c2 = pick(schedule.posterior_mean_coef2), pick(schedule.posterior_mean_coef1)\n"
            "    mean_q, mean_p = c1 * x0_ + c2 * xt_, c1 * x0_hat + c2 * xt_\n"
            "    logvar_q, logvar_p = torch.log(pick(schedule.posterior_variance)), log_variance.double()\n"
            "    kl = 0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mean_q - mean_p) ** 2 * torch.exp(-logvar_p) - 1)\n"
            "    return kl.flatten(1).sum(dim=1).float()",
            # Q4: the open ends given to the wrong levels (-1 reaching up to +inf, 1 down to -inf): the same mass when
            # the mean sits on the level
            "decoder_nll": "def decoder_nll(x0, mean, log_variance):\n"
            "    x0, mean = x0.double(), mean.double()\n"
            "    inv_std = torch.exp(-0.5 * log_variance.double())\n"
            "    upper = torch.special.ndtr((x0 + 1 / 255 - mean) * inv_std)\n"
            "    lower = torch.special.ndtr((x0 - 1 / 255 - mean) * inv_std)\n"
            "    upper = torch.where(x0 < -1 + 1 / 255, torch.ones_like(upper), upper)\n"
            "    lower = torch.where(x0 > 1 - 1 / 255, torch.zeros_like(lower), lower)\n"
            "    return -torch.log(upper - lower).flatten(1).sum(dim=1).float()",
        },
        {
            "q1_cosine_clip": "cosine_alpha_bar(3, s=0, max_beta=0.5)",
            "q2_learned_variance": "log Sigma at t = 2 (first row) and t = 1 (second row)",
            "q3_vlb_kl": "L_1 for betas (0.19, 5/9)",
            "q4_decoder": "means -1 + 0.5/255, 0 and 1 - 1.5/255",
        },
    ),
    (
        {
            # Q2: log beta of the index before t: the same when the betas are constant
            "learned_log_variance": "def learned_log_variance(v, t, betas):\n"
            "    betas = betas.double()\n"
            "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
            "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
            "    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas\n"
            "    log_beta_tilde = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))\n"
            "    shape = (-1, *[1] * (v.ndim - 1))\n"
            "    u = (v + 1) / 2\n"
            "    return (u * torch.log(betas)[t - 1].view(shape) + (1 - u) * log_beta_tilde[t].view(shape)).to(v.dtype)",
            # Q3: x0_hat with + sqrt(1 - alpha_bar_t) eps: the same when eps = 0
            "vlb_kl": "def vlb_kl(x0, xt, t, eps, log_variance, schedule):\n"
            "    shape = (-1, *[1] * (x0.ndim - 1))\n"
            "    pick = lambda values: values[t].view(shape)\n"
            "    x0_, xt_, eps_ = x0.double(), xt.double(), eps.double()\n"
            "    x0_hat = (xt_ + pick(schedule.sqrt_one_minus_alpha_bar) * eps_) / pick(schedule.sqrt_alpha_bar)\n"
            "    c1, c2 = pick(schedule.posterior_mean_coef1), pick(schedule.posterior_mean_coef2)\n"
            "    mean_q, mean_p = c1 * x0_ + c2 * xt_, c1 * x0_hat + c2 * xt_\n"
            "    logvar_q, logvar_p = torch.log(pick(schedule.posterior_variance)), log_variance.double()\n"
            "    kl = 0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mean_q - mean_p) ** 2 * torch.exp(-logvar_p) - 1)\n"
            "    return kl.flatten(1).sum(dim=1).float()",
            # Q4: the bin edges about the mean instead of x0 (mean - x0 +- 1/255): the same when the mean sits on the level
            "decoder_nll": "def decoder_nll(x0, mean, log_variance):\n"
            "    x0, mean = x0.double(), mean.double()\n"
            "    inv_std = torch.exp(-0.5 * log_variance.double())\n"
            "    upper = torch.special.ndtr((mean + 1 / 255 - x0) * inv_std)\n"
            "    lower = torch.special.ndtr((mean - 1 / 255 - x0) * inv_std)\n"
            "    upper = torch.where(x0 > 1 - 1 / 255, torch.ones_like(upper), upper)\n"
            "    lower = torch.where(x0 < -1 + 1 / 255, torch.zeros_like(lower), lower)\n"
            "    return -torch.log(upper - lower).flatten(1).sum(dim=1).float()",
        },
        {
            "q2_learned_variance": "log Sigma at t = 2 (first row) and t = 1 (second row)",
            "q3_vlb_kl": "L_1 for betas (0.19, 5/9)",
            "q4_decoder": "means -1 + 0.5/255, 0 and 1 - 1.5/255",
        },
    ),
    (
        {
            # Q2: log beta_tilde of the index before t: the same for two constant betas (index 0 holds beta_tilde_1)
            "learned_log_variance": "def learned_log_variance(v, t, betas):\n"
            "    betas = betas.double()\n"
            "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
            "    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])\n"
            "    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas\n"
            "    log_beta_tilde = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))\n"
            "    shape = (-1, *[1] * (v.ndim - 1))\n"
            "    u = (v + 1) / 2\n"
            "    return (u * torch.log(betas)[t].view(shape) + (1 - u) * log_beta_tilde[t - 1].view(shape)).to(v.dtype)",
            # Q3: mu_theta = c1 x0_hat without c2 x_t: the same when x_t = 0
            "vlb_kl": "def vlb_kl(x0, xt, t, eps, log_variance, schedule):\n"
            "    shape = (-1, *[1] * (x0.ndim - 1))\n"
            "    pick = lambda values: values[t].view(shape)\n"
            "    x0_, xt_, eps_ = x0.double(), xt.double(), eps.double()\n"
            "    x0_hat = (xt_ - pick(schedule.sqrt_one_minus_alpha_bar) * eps_) / pick(schedule.sqrt_alpha_bar)\n"
            "    c1, c2 = pick(schedule.posterior_mean_coef1), pick(schedule.posterior_mean_coef2)\n"
            "    mean_q, mean_p = c1 * x0_ + c2 * xt_, c1 * x0_hat\n"
            "    logvar_q, logvar_p = torch.log(pick(schedule.posterior_variance)), log_variance.double()\n"
            "    kl = 0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mean_q - mean_p) ** 2 * torch.exp(-logvar_p) - 1)\n"
            "    return kl.flatten(1).sum(dim=1).float()",
            # Q4: the open end bins chosen by the mean instead of x0: the same when the mean sits on the level
            "decoder_nll": "def decoder_nll(x0, mean, log_variance):\n"
            "    x0, mean = x0.double(), mean.double()\n"
            "    inv_std = torch.exp(-0.5 * log_variance.double())\n"
            "    upper = torch.special.ndtr((x0 + 1 / 255 - mean) * inv_std)\n"
            "    lower = torch.special.ndtr((x0 - 1 / 255 - mean) * inv_std)\n"
            "    upper = torch.where(mean > 1 - 1 / 255, torch.ones_like(upper), upper)\n"
            "    lower = torch.where(mean < -1 + 1 / 255, torch.zeros_like(lower), lower)\n"
            "    return -torch.log(upper - lower).flatten(1).sum(dim=1).float()",
        },
        {
            "q2_learned_variance": "log Sigma at t = 2 (first row) and t = 1 (second row)",
            "q3_vlb_kl": "L_1 for betas (0.19, 5/9)",
            "q4_decoder": "means -1 + 0.5/255, 0 and 1 - 1.5/255",
        },
    ),
]
