"""The VAE exercise set's test cases (exercises/source/vae).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

POSSIBLE = 13  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = ("reparameterize", "kl", "elbo", "elbo_gap", "written", "train")
MEASURED = "vae_digits_elbo"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ()
HIDDEN_MENTIONS = ()

PARTIAL = {
    # forgets to divide the squared mean difference by sigma_2^2: right whenever the second Gaussian is N(0, 1)
    # (the first by-hand test, and question 3, which only needs the KL to the prior), wrong otherwise: the public
    # test against N(0, 4) says so
    "gaussian_kl": "def gaussian_kl(mean1, logvar1, mean2, logvar2):\n"
    "    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 - 1)",
    "make_model": lambda source: source.replace(
        "def make_model():", "def make_model():\n    return torch.nn.Linear(4, 4)"
    ),  # not a course_lib VAE
}


# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q2_gaussian_kl", "q6_train")


def check_partial(result, table):
    assert 0 < result.scores["q2_gaussian_kl"] < result.possible["q2_gaussian_kl"], table
    assert "KL(N(1, 1) || N(0, 4))" in result.reasons["q2_gaussian_kl"], table
    assert result.scores["q6_train"] == 0 and "course_lib.vae.VAE" in result.reasons["q6_train"], table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: exp(logvar) (the variance) used as sigma
    "reparameterize": "def reparameterize(mean, logvar, noise):\n    return mean + torch.exp(logvar) * noise",
    # Q2: the two Gaussians swapped: KL(N2 || N1)
    "gaussian_kl": "def gaussian_kl(mean1, logvar1, mean2, logvar2):\n"
    "    return 0.5 * (logvar1 - logvar2 + torch.exp(logvar2 - logvar1)"
    " + (mean1 - mean2) ** 2 * torch.exp(-logvar1) - 1)",
    # Q3: averages over the dimensions (the F.mse_loss habit) instead of summing them
    "negative_elbo": "def negative_elbo(x, mean, logvar, decode, noise):\n"
    "    z = reparameterize(mean, logvar, noise)\n"
    "    m, v = decode(z)\n"
    "    recon = 0.5 * (math.log(2 * math.pi) + v + (x - m) ** 2 * torch.exp(-v))\n"
    "    kl = gaussian_kl(mean, logvar, torch.zeros(()), torch.zeros(()))\n"
    "    return recon.flatten(1).mean(1), kl.flatten(1).mean(1)",
    # Q4: the prior forgotten: the posterior of z from x = w z + noise alone, and p(x) = N(0, s2)
    "exact_posterior": "def exact_posterior(x, w, s2):\n"
    "    return x / w, torch.full_like(x, math.log(s2 / w ** 2))\n\n\n"
    "def log_evidence(x, w, s2):\n"
    "    return -0.5 * (math.log(2 * math.pi * s2) + x ** 2 / s2)\n\n\n"
    "_post_mean, _post_logvar = exact_posterior(torch.tensor([1.0]), 2.0, 1.0)\n"
    "GAP_AT_PRIOR = gaussian_kl(torch.zeros(1), torch.zeros(1), _post_mean, _post_logvar).item()",
    # Q6: the Gaussian decoder of question 3 instead of the discretized one
    "make_model": lambda source: source.replace("latent_channels=4)", 'latent_channels=4, likelihood="gaussian")'),
}
VAE_CAUGHT = {
    "q1_reparameterize": "z for mean 1, variance 4",
    "q2_gaussian_kl": "KL(N(0, e^2) || N(0, 1))",
    "q3_negative_elbo": "recon for a perfect mean and unit variance",
    "q4_elbo_gap": "the posterior mean for w = 1",
    "q6_train": "likelihood='discretized_gaussian'",
}
CAUGHT = {
    "q1_reparameterize": "z for mean 1, variance 4",
    "q2_gaussian_kl": "KL(N(0, e^2) || N(0, 1))",
    "q3_negative_elbo": "recon for a perfect mean and unit variance",
    "q4_elbo_gap": "the posterior mean for w = 1",
    "q6_train": "likelihood='discretized_gaussian'",
}
