"""The DDPM exercise set's test cases (exercises/source/ddpm).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

import re


POSSIBLE = 22  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = (
    "cosine",
    "q_sample",
    "embedding",
    "posterior",
    "reverse_step",
    "l_simple",
    "x0_and_score",
    "loss_weight",
    "zero_snr",
    "written",
    "train",
)
MEASURED = "ddpm_digits_quality"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ()
HIDDEN_MENTIONS = ()

PARTIAL = {
    # variance = beta_t (the "fixed_large" choice): the mean tests pass, the by-hand variance and hidden tests fail
    "q_posterior_mean_variance": """
def q_posterior_mean_variance(x0, xt, t, betas):
    betas = betas.double()
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    pick = lambda v: v[t].to(x0.dtype).view(-1, *[1] * (x0.ndim - 1))
    mean = (pick(betas * alpha_bar_prev.sqrt() / (1 - alpha_bar)) * x0
            + pick((1 - alpha_bar_prev) * (1 - betas).sqrt() / (1 - alpha_bar)) * xt)
    return mean, pick(torch.where(torch.arange(len(betas)) == 0, 0.0, betas))
""",
    "p_sample_step": "def p_sample_step(eps, xt, t, betas, noise):\n    ...",
    "l_simple": "def l_simple(model, x0, t, noise, alpha_bar):\n    return torch.tensor(float('nan'))",
    "make_model": lambda source: re.sub(r'"steps": \d+', '"steps": 10**6', source),  # over the budget
}


# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q4_posterior", "q5_reverse_step", "q6_l_simple", "q11_train")


def check_partial(result, table):
    assert 0 < result.scores["q4_posterior"] < result.possible["q4_posterior"], table
    for q in ("q5_reverse_step", "q6_l_simple", "q11_train"):
        assert result.scores[q] == 0, table
    assert "steps must be an int" in result.reasons["q11_train"], table  # the public budget check, in both modes


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: DDPM's linear betas instead of the cosine schedule (float64, right shape, valid, increasing)
    "cosine_betas": "def cosine_betas(T, s=0.008):\n    return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)",
    # Q2: alpha_bar where its square roots belong
    "q_sample": "def q_sample(x0, t, alpha_bar, noise):\n"
    "    ab = alpha_bar[t].to(x0.dtype).view(-1, *[1] * (x0.ndim - 1))\n"
    "    return ab * x0 + (1 - ab) * noise",
    # Q3: sines first (diffusers' default order, flip_sin_to_cos=False)
    "timestep_embedding": "def timestep_embedding(t, dim, max_period=10000):\n"
    "    n = dim // 2\n"
    "    freqs = torch.exp(-math.log(max_period) * torch.arange(n) / n)\n"
    "    args = t.float()[:, None] * freqs[None, :]\n"
    "    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)",
    # Q4: alpha_bar_t where alpha_bar_(t-1) belongs (the index shift forgotten)
    "q_posterior_mean_variance": "def q_posterior_mean_variance(x0, xt, t, betas):\n"
    "    betas = betas.double()\n"
    "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
    "    pick = lambda v: v[t].to(x0.dtype).view(-1, *[1] * (x0.ndim - 1))\n"
    "    mean = (pick(betas * alpha_bar.sqrt() / (1 - alpha_bar)) * x0\n"
    "            + pick((1 - alpha_bar) * (1 - betas).sqrt() / (1 - alpha_bar)) * xt)\n"
    "    return mean, pick(betas)",
    # Q5: the variance beta_tilde multiplies z instead of its square root
    "p_sample_step": "def p_sample_step(eps, xt, t, betas, noise):\n"
    "    betas = betas.double()\n"
    "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
    "    beta, ab = betas[t].item(), alpha_bar[t].item()\n"
    "    ab_prev = alpha_bar[t - 1].item() if t > 0 else 1.0\n"
    "    mean = (xt - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)\n"
    "    return mean if t == 0 else mean + (1 - ab_prev) / (1 - ab) * beta * noise",
    # Q6: the model is shown the clean image instead of x_t
    "l_simple": "def l_simple(model, x0, t, noise, alpha_bar):\n    return F.mse_loss(model(x0, t), noise)",
    # Q7: the scale factors dropped: x0_hat = x_t - sqrt(1 - alpha_bar) eps and score = -eps
    "predict_x0": "def predict_x0(xt, t, eps, alpha_bar):\n"
    "    ab = alpha_bar[t].to(xt.dtype).view(-1, *[1] * (xt.ndim - 1))\n"
    "    return xt - (1 - ab).sqrt() * eps\n\n\n"
    "def score_from_eps(eps, t, alpha_bar):\n    return -eps",
    # Q8: sigma_t^2 = beta_t (the other choice of Ho et al. Sec. 3.2, not the prompt's), read as "large t"
    "vlb_weight": "def vlb_weight(betas):\n"
    "    betas = betas.double()\n"
    "    alpha_bar = torch.cumprod(1 - betas, dim=0)\n"
    "    return betas ** 2 / (2 * betas * (1 - betas) * (1 - alpha_bar))\n\n\n"
    'DOWNWEIGHTED = "large t"\n'
    'FACTOR = float(vlb_weight(get_schedule("linear", 1000).betas)[1] / vlb_weight(get_schedule("linear", 1000).betas)[-1])',
    # Q9: alpha_bar shifted and scaled instead of sqrt(alpha_bar)
    "rescale_zero_terminal_snr": "def rescale_zero_terminal_snr(betas):\n"
    "    ab = torch.cumprod(1 - betas.double(), dim=0)\n"
    "    ab = (ab - ab[-1]) * ab[0] / (ab[0] - ab[-1])\n"
    "    return 1 - torch.cat([ab[:1], ab[1:] / ab[:-1]])\n\n\n"
    "def snr(betas):\n"
    "    alpha_bar = torch.cumprod(1 - betas.double(), dim=0)\n"
    "    return alpha_bar / (1 - alpha_bar)\n\n\n"
    'before, after = snr(get_schedule("scaled_linear").betas), '
    'snr(rescale_zero_terminal_snr(get_schedule("scaled_linear").betas))\n'
    "SNR_TABLE = {t: (before[t].item(), after[t].item()) for t in (0, 250, 500, 750, 999)}",
    # Q11: the MLP's output left flat, [B, 256] instead of [B, 1, 16, 16]
    "make_model": lambda source: source.replace("return self.out(F.silu(h)).view_as(xt)", "return self.out(F.silu(h))"),
}
DDPM_CAUGHT = {  # question: text of the public test's failure message
    "q1_cosine": "cosine_betas(3, s=0)",
    "q2_q_sample": "alpha_bar = [1, 0.25, 0]",
    "q3_embedding": "the embedding of t = 0 (cosine half first)",
    "q4_posterior": "the posterior mean at t = 0",
    "q5_reverse_step": "with betas (0.5, 0.5)",
    "q6_l_simple": "the loss of model(x_t, t) = x_t",
    "q7_x0_and_score": "x0_hat for alpha_bar = 0.25",
    "q8_loss_weight": "lambda_1 and lambda_2 for betas",
    "q9_zero_snr": "the rescaled betas for alpha_bar = (0.81, 0.49, 0.25)",
    "q11_train": "the predicted noise, has shape (2, 256)",
}
CAUGHT = {  # question: text of the public test's failure message
    "q1_cosine": "cosine_betas(3, s=0)",
    "q2_q_sample": "alpha_bar = [1, 0.25, 0]",
    "q3_embedding": "the embedding of t = 0 (cosine half first)",
    "q4_posterior": "the posterior mean at t = 0",
    "q5_reverse_step": "with betas (0.5, 0.5)",
    "q6_l_simple": "the loss of model(x_t, t) = x_t",
    "q7_x0_and_score": "x0_hat for alpha_bar = 0.25",
    "q8_loss_weight": "lambda_1 and lambda_2 for betas",
    "q9_zero_snr": "the rescaled betas for alpha_bar = (0.81, 0.49, 0.25)",
    "q11_train": "the predicted noise, has shape (2, 256)",
}
