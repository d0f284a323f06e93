"""The guidance exercise set's test cases (exercises/source/guidance).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

from helpers import quick

POSSIBLE = 15  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = ("guided_eps", "cfg", "label_dropout", "classifier_grad", "cg_is_cfg", "written", "guide")
MEASURED = "guided_digits_quality"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ("check_guidance_settings",)  # the budget is checked by a public test
HIDDEN_MENTIONS = ('"accuracy"', '"frechet"')  # graded on fidelity (accuracy) and the Frechet distance

PARTIAL = {
    # u <= p_uncond: the same as u < p_uncond except where u equals p_uncond, which only the by-hand case has
    "drop_labels": "def drop_labels(y, p_uncond, null_label, u):\n"
    "    return torch.where(u <= p_uncond, torch.full_like(y, null_label), y)",
    # the right gradient, by .backward(): it also accumulates .grad in the classifier's parameters at every call; the
    # by-hand values pass, every test that looks at the parameters fails
    "classifier_grad": "def classifier_grad(classifier, x, t, y):\n"
    "    with torch.enable_grad():\n"
    "        x_in = x.detach().requires_grad_(True)\n"
    "        torch.log_softmax(classifier(x_in, t), dim=1).gather(1, y[:, None]).sum().backward()\n"
    "    return x_in.grad",
    # a large scale: every digit as requested (the two accuracy points), collapsed towards one shape per class (no
    # Frechet point: 3.2 on the grader's seed)
    "GUIDE": 'GUIDE = {"scale": 10.0, "steps": 25}',
}


# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q3_label_dropout", "q4_classifier_grad", "q7_guide")


def check_partial(result, table):
    for q, reason in (("q3_label_dropout", "u = p keeps it"), ("q4_classifier_grad", "it called .backward()")):
        assert 0 < result.scores[q] < result.possible[q] and reason in result.reasons[q], table
    if not quick():  # scale 10: every digit as requested (the two accuracy points), no Frechet point
        assert result.scores["q7_guide"] == 2 and "frechet = " in result.reasons["q7_guide"], table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: the sign of the classifier term flipped (eps treated as if it were the score)
    "guided_eps": "def guided_eps(eps, grad, alpha_bar_t, s):\n"
    "    factor = (1 - alpha_bar_t).sqrt().reshape(-1, *[1] * (eps.ndim - 1))\n"
    "    return (eps + s * factor * grad).to(eps.dtype)",
    # Q2: diffusers' line with w in place of g = 1 + w (eps_u + w (eps_c - eps_u)); the diffusers half right
    "cfg_eps": "def cfg_eps(eps_cond, eps_uncond, w):\n"
    "    return eps_uncond + w * (eps_cond - eps_uncond)\n\n\n"
    "def cfg_eps_diffusers(noise_pred, guidance_scale):\n"
    "    eps_uncond, eps_cond = noise_pred.chunk(2)\n"
    "    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)",
    # Q3: keeps the label where u < p_uncond (drops with probability 1 - p_uncond)
    "drop_labels": "def drop_labels(y, p_uncond, null_label, u):\n"
    "    return torch.where(u > p_uncond, torch.full_like(y, null_label), y)",
    # Q4: the gradient of the logit, not of the log-probability (no log-softmax)
    "classifier_grad": "def classifier_grad(classifier, x, t, y):\n"
    "    with torch.enable_grad():\n"
    "        x_in = x.detach().requires_grad_(True)\n"
    "        logit = classifier(x_in, t).gather(1, y[:, None]).sum()\n"
    "        return torch.autograd.grad(logit, x_in)[0]",
    # Q5: the implied gradient with the sign of eps_c - eps_u kept (the score's minus forgotten), w taken equal to s, and
    # the spread as the RMS distance in the plane, not per coordinate
    "implied_classifier_grad": "def implied_classifier_grad(eps_cond, eps_uncond, alpha_bar_t):\n"
    "    factor = (1 - alpha_bar_t).sqrt().reshape(-1, *[1] * (eps_cond.ndim - 1))\n"
    "    return ((eps_cond - eps_uncond) / factor).to(eps_cond.dtype)\n\n\n"
    "def equivalent_weight(s):\n"
    "    return float(s), float(s)\n\n\n"
    "def tilted_spread(means, std, s, y=0):\n"
    "    axis = torch.linspace(-4, 4, 401, dtype=torch.float64)\n"
    "    grid = torch.cartesian_prod(axis, axis)\n"
    "    log_comp = -((grid[:, None, :] - means[None]) ** 2).sum(-1) / (2 * std ** 2)\n"
    "    log_p = torch.logsumexp(log_comp, 1)\n"
    "    w = torch.softmax(log_p + s * (log_comp[:, y] - log_p), 0)\n"
    "    centre = w @ grid\n"
    "    return math.sqrt((w @ ((grid - centre) ** 2).sum(1)).item())\n\n\n"
    "SPREAD = {s: tilted_spread(mixture_means(4, 0.6).double(), 0.3, s) for s in (0, 1, 2, 5, 10)}",
    # Q7: the chapter's gpu-profile 50 steps, over the budget of 25
    "GUIDE": 'GUIDE = {"scale": 2.0, "steps": 50}',
}
GUIDANCE_CAUGHT = {
    "q1_guided_eps": "eps_hat for eps = 1, grad = 2, s = 3",
    "q2_cfg": "cfg_eps for eps_cond = (2, -1)",
    "q3_label_dropout": "a label is dropped where u < p_uncond",
    "q4_classifier_grad": "the gradient of log p(y | x) at x = 0 for logits = W x",
    "q5_cg_is_cfg": "the implied gradient for eps_cond - eps_uncond = (1, -2)",
    "q7_guide": "steps must be an int in 1 ... 25",
}
CAUGHT = {
    "q1_guided_eps": "eps_hat for eps = 1, grad = 2, s = 3",
    "q2_cfg": "cfg_eps for eps_cond = (2, -1)",
    "q3_label_dropout": "a label is dropped where u < p_uncond",
    "q4_classifier_grad": "the gradient of log p(y | x) at x = 0 for logits = W x",
    "q5_cg_is_cfg": "the implied gradient for eps_cond - eps_uncond = (1, -2)",
    "q7_guide": "steps must be an int in 1 ... 25",
}
