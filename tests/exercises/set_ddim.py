"""The DDIM exercise set's test cases (exercises/source/ddim).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

from helpers import quick

POSSIBLE = 15  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = ("sigma", "ddim_step", "timesteps", "invert_step", "same_model", "sigma_hat", "written", "sampler")
MEASURED = "ddim_digits_quality"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ("check_ddim_sampler",)  # the budget is checked by a public test
HIDDEN_MENTIONS = ()

PARTIAL = {
    # trailing rounds halves up (floor(x + 0.5)) instead of to even: the by-hand cases have no halves and pass, the
    # hidden agreement tests (S = 16 of 1000, T = 999 with S = 6) do not
    "ddim_timesteps": "def ddim_timesteps(T, S, spacing):\n"
    "    if spacing == 'leading':\n"
    "        return [i * (T // S) for i in range(S)][::-1]\n"
    "    return [math.floor(T - i * T / S + 0.5) - 1 for i in range(S)]",
    # alpha_bar[t] also at t = -1, where Python reads the last entry: right for every step from t >= 0, wrong for the
    # first step from the data, which the public by-hand test reports
    "ddim_invert_step": "def ddim_invert_step(eps, x, t, t_next, alpha_bar):\n"
    "    ab_t, ab_next = alpha_bar[t].item(), alpha_bar[t_next].item()\n"
    "    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)\n"
    "    return math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_next) * eps",
    # DDPM's amount of noise (eta = 1) on the best spacing: real digits (the first tier), but too blurred for the others
    "SAMPLER": 'SAMPLER = {"steps": 6, "eta": 1.0, "spacing": "trailing"}',
}


# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q3_timesteps", "q4_invert_step", "q8_sampler")


def check_partial(result, table):
    for q, reason in (("q3_timesteps", "diffusers"), ("q4_invert_step", "from the data x = 1 (t = -1")):
        assert 0 < result.scores[q] < result.possible[q] and reason in result.reasons[q], table
    if not quick():  # eta = 1: recognised digits (the first tier), too blurred for the others
        assert result.scores["q8_sampler"] == 1 and "frechet_ratio" in result.reasons["q8_sampler"], table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: (1 - alpha_bar_t) where (1 - alpha_bar_prev) belongs: sigma^2 exceeds 1 - alpha_bar_prev, the square root of
    # Eq. 12 gets a negative argument (and the step into the data divides by 0)
    "ddim_sigma": "def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta):\n"
    "    return eta * ((1 - alpha_bar_t) / (1 - alpha_bar_prev)).sqrt() * (1 - alpha_bar_t / alpha_bar_prev).sqrt()",
    # Q2: x0_hat without the division by sqrt(alpha_bar_t)
    "ddim_step": "def ddim_step(eps, xt, alpha_bar_t, alpha_bar_prev, eta, noise):\n"
    "    sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev))\n"
    "    x0_hat = xt - math.sqrt(1 - alpha_bar_t) * eps\n"
    "    x_prev = math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(1 - alpha_bar_prev - sigma ** 2) * eps\n"
    "    return x_prev + sigma * noise, x0_hat",
    # Q3: trailing without the - 1: it starts at T, one past the last index
    "ddim_timesteps": "def ddim_timesteps(T, S, spacing):\n"
    "    if spacing == 'leading':\n"
    "        return [i * (T // S) for i in range(S)][::-1]\n"
    "    return [round(T - i * T / S) for i in range(S)]",
    # Q4: the alpha_bar of the wrong index in the direction term: sqrt(1 - alpha_bar_t) eps, the step's start
    "ddim_invert_step": "def ddim_invert_step(eps, x, t, t_next, alpha_bar):\n"
    "    ab_t = 1.0 if t < 0 else alpha_bar[t].item()\n"
    "    ab_next = alpha_bar[t_next].item()\n"
    "    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)\n"
    "    return math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_t) * eps",
    # Q5: the fresh noise z forgotten: r_(t-1) taken as a multiple of r_t (variance below 1, correlation 1)
    "noise_moments": "def noise_moments(alpha_bar_t, alpha_bar_prev, sigma):\n"
    "    keep = ((1 - alpha_bar_prev - sigma ** 2) / (1 - alpha_bar_prev)).sqrt()\n"
    "    return keep ** 2, torch.ones_like(keep)\n\n\n"
    "ab = get_schedule('linear', 1000).alpha_bar\n"
    "NOISE_MEMORY = {eta: noise_moments(ab[1:], ab[:-1], ddim_sigma(ab[1:], ab[:-1], eta))[1].prod().item()\n"
    "                for eta in (0.0, 0.5, 1.0)}",
    # Q6: sigma_hat read as eta = 1 (the chapter's warning), so its grain computed with sigma(1)
    "eta_of_sigma_hat": "def eta_of_sigma_hat(alpha_bar_t, alpha_bar_prev):\n"
    "    return torch.ones_like(alpha_bar_t)\n\n\n"
    "def sigma_hat_grain(alpha_bar, taus):\n"
    "    a, b = alpha_bar[taus[-2]], alpha_bar[taus[-1]]\n"
    "    return (ddim_sigma(a, b, 1.0) / (1 - b).sqrt()).item()\n\n\n"
    "_taus = {s: ddim_timesteps(1000, 10, s) for s in ('leading', 'trailing')}\n"
    "_taus['quadratic'] = [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]\n"
    "GRAIN = {s: sigma_hat_grain(get_schedule('linear', 1000).alpha_bar, t) for s, t in _taus.items()}",
    # Q8: the chapter's 10 steps, over the budget of 6 network evaluations
    "SAMPLER": 'SAMPLER = {"steps": 10, "eta": 0.0, "spacing": "leading"}',
}
DDIM_CAUGHT = {
    "q1_sigma": "sigma(eta = 1) for the steps 0.25 -> 0.5",
    "q2_ddim_step": "x0_hat for alpha_bar_t = 0.25",
    "q3_timesteps": "tau by hand for T = ",
    "q4_invert_step": "the first step, from the data x = 1 (t = -1",
    "q5_same_model": "the variance of r_{t-1} for alpha_bar_t = 0.25",
    "q6_sigma_hat": "the eta of sigma_hat for",
    "q8_sampler": "steps must be an int in 1 ... 6",
}
CAUGHT = {
    "q1_sigma": "sigma(eta = 1) for the steps 0.25 -> 0.5",
    "q2_ddim_step": "x0_hat for alpha_bar_t = 0.25",
    "q3_timesteps": "tau by hand for T = ",
    "q4_invert_step": "the first step, from the data x = 1 (t = -1",
    "q5_same_model": "the variance of r_{t-1} for alpha_bar_t = 0.25",
    "q6_sigma_hat": "the eta of sigma_hat for",
    "q8_sampler": "steps must be an int in 1 ... 6",
}


# More plausible wrong answers, each of which passed every public test until its question got a by-hand case with
# asymmetric inputs (issue 24 item 6): rounds of (answers, the public message that catches each), at most one wrong
# answer per question in a round, since each round is one graded notebook (the other questions left blank). Each
# loses points, not always all of them: a test that it passes (e.g. of the other function of its question) counts.
MORE_WRONG = [
    (
        {
            # Q1: sqrt(alpha_bar_t / alpha_bar_prev) for sqrt(1 - alpha_bar_t / alpha_bar_prev): equal at 0.25 -> 0.5
            "ddim_sigma": "def ddim_sigma(alpha_bar_t, alpha_bar_prev, eta):\n"
            "    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t)).sqrt() * (alpha_bar_t / alpha_bar_prev).sqrt()",
            # Q2: eps and xt swapped (the arguments read in the wrong order): the same when x_t = eps = 1
            "ddim_step": "def ddim_step(eps, xt, alpha_bar_t, alpha_bar_prev, eta, noise):\n"
            "    eps, xt = xt, eps\n"
            "    sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev))\n"
            "    x0_hat = (xt - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)\n"
            "    x_prev = math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(max(1 - alpha_bar_prev - sigma ** 2, 0)) * eps\n"
            "    return x_prev + sigma * noise, x0_hat",
            # Q3: leading with k = round(T / S): the same as floor(T / S) for T = 10, S = 3 and S = 5
            "ddim_timesteps": "def ddim_timesteps(T, S, spacing):\n"
            "    if spacing == 'leading':\n"
            "        return [i * round(T / S) for i in range(S)][::-1]\n"
            "    return [round(T - i * T / S) - 1 for i in range(S)]",
            # Q4: eps and x swapped: the same when x = eps = 1
            "ddim_invert_step": "def ddim_invert_step(eps, x, t, t_next, alpha_bar):\n"
            "    eps, x = x, eps\n"
            "    ab_t = 1.0 if t < 0 else alpha_bar[t].item()\n"
            "    ab_next = alpha_bar[t_next].item()\n"
            "    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)\n"
            "    return math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_next) * eps",
            # Q6: sigma_hat of the first step of tau instead of the last noisy one: the same step when tau has two elements
            # (eta_of_sigma_hat, in the same cell, right: the by-hand test checks it first)
            "sigma_hat_grain": "def eta_of_sigma_hat(alpha_bar_t, alpha_bar_prev):\n"
            "    return ((1 - alpha_bar_t) / (1 - alpha_bar_prev)).sqrt()\n\n\n"
            "def sigma_hat_grain(alpha_bar, taus):\n"
            "    ab_t, ab_last = alpha_bar[taus[0]].item(), alpha_bar[taus[1]].item()\n"
            "    return math.sqrt(1 - ab_t / ab_last) / math.sqrt(1 - ab_last)",
        },
        {
            "q1_sigma": "sigma(eta = 1) for the step 0.3 -> 0.9",
            "q2_ddim_step": "x0_hat for alpha_bar_t = 0.36",
            "q3_timesteps": "tau by hand for T = ",
            "q4_invert_step": "the step from index 0 to 2",
            "q6_sigma_hat": "tau = [2, 1, 0]",
        },
    ),
    (
        {
            # Q2: sigma eps instead of sigma z: the same when z = eps = 1 (and deterministic for eta = 0)
            "ddim_step": "def ddim_step(eps, xt, alpha_bar_t, alpha_bar_prev, eta, noise):\n"
            "    sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev))\n"
            "    x0_hat = (xt - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)\n"
            "    x_prev = math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(max(1 - alpha_bar_prev - sigma ** 2, 0)) * eps\n"
            "    return x_prev + sigma * eps, x0_hat",
            # Q3: leading as floor(i T / S): the same as i floor(T / S) for T = 10, S = 3 and S = 5
            "ddim_timesteps": "def ddim_timesteps(T, S, spacing):\n"
            "    if spacing == 'leading':\n"
            "        return [i * T // S for i in range(S)][::-1]\n"
            "    return [round(T - i * T / S) - 1 for i in range(S)]",
            # Q4: alpha_bar[t + 1] for alpha_bar[t_next]: the same on steps to the next index
            "ddim_invert_step": "def ddim_invert_step(eps, x, t, t_next, alpha_bar):\n"
            "    ab_t = 1.0 if t < 0 else alpha_bar[t].item()\n"
            "    ab_next = alpha_bar[t + 1].item()\n"
            "    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)\n"
            "    return math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_next) * eps",
        },
        {
            "q2_ddim_step": "the step 0.36 -> 0.75 with eta = 1",
            "q3_timesteps": "tau by hand for T = ",
            "q4_invert_step": "the step from index 0 to 2",
        },
    ),
    (
        {
            # Q2: the direction term without eps: the same when eps = 1
            "ddim_step": "def ddim_step(eps, xt, alpha_bar_t, alpha_bar_prev, eta, noise):\n"
            "    sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev))\n"
            "    x0_hat = (xt - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)\n"
            "    x_prev = math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(max(1 - alpha_bar_prev - sigma ** 2, 0))\n"
            "    return x_prev + sigma * noise, x0_hat",
            # Q4: alpha_bar[t_next - 1] for alpha_bar[t] (the step taken to start one index below t_next): the same on
            # steps to the next index
            "ddim_invert_step": "def ddim_invert_step(eps, x, t, t_next, alpha_bar):\n"
            "    ab_t = 1.0 if t_next == 0 else alpha_bar[t_next - 1].item()\n"
            "    ab_next = alpha_bar[t_next].item()\n"
            "    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)\n"
            "    return math.sqrt(ab_next) * x0_hat + math.sqrt(1 - ab_next) * eps",
        },
        {
            "q2_ddim_step": "the step 0.36 -> 0.75 with eta = 1",
            "q4_invert_step": "the step from index 0 to 2",
        },
    ),
]
