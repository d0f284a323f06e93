"""The score distillation exercise set's test cases (exercises/source/sds).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

from helpers import quick

POSSIBLE = 14  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = ("sds_gradient", "surrogate", "ray", "view_prompt", "written", "sds_design")
MEASURED = "sds_adherence"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ("check_sds_settings",)  # the budget is checked by a public test
HIDDEN_MENTIONS = ('"all"', '"colour_error"')  # graded on prompt adherence and on colour
EVERY_HIDDEN_MENTIONS = ("sds_adherence(SDS)",)  # every tier measures the same run

PARTIAL = {
    # the weights right, the colour without the background term: both weight tests pass (2 points), both colour tests
    # fail (the by-hand case on a black background says why)
    "ray_colour": lambda source: source.replace(
        "return (w[:, None] * rgb).sum(0) + (1 - w.sum()) * background", "return (w[:, None] * rgb).sum(0)"
    ),
    # a sampling-sized guidance scale: every image follows its prompt (all 1.00) but the colours shift (colour_error
    # 26-28 on seeds 0 and 1, the bar is 20): 3 of 4 points
    "SDS": 'SDS = {"guidance_scale": 7.5, "lr": 0.03, "steps": 300, "t_range": [0.02, 0.98]}',
}

# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q3_ray", "q6_sds_design")


def check_partial(result, table):
    assert result.scores["q3_ray"] == 2 and "the background shows where the ray" in result.reasons["q3_ray"], table
    if not quick():
        assert result.scores["q6_sds_design"] == 3 and "colour_error = " in result.reasons["q6_sds_design"], table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: the weight upside down, w(t) = ab_t (large for little noise) instead of 1 - ab_t
    "sds_grad": "def sds_grad(eps_cond, eps_uncond, z, t, noise, alphas_cumprod, omega):\n"
    "    ab = alphas_cumprod[t].view(-1, *([1] * (z.ndim - 1)))\n"
    "    z_t = ab.sqrt() * z + (1 - ab).sqrt() * noise\n"
    "    eps_u, eps_c = eps_uncond(z_t, t), eps_cond(z_t, t)\n"
    "    return ab * (eps_u + omega * (eps_c - eps_u) - noise)",
    # Q2: no stop-gradient: z - (z - grad) is grad, but its derivative in z is 0, so nothing reaches the renderer
    "sds_loss": "def sds_loss(z, grad):\n    return 0.5 * (z - (z - grad)).pow(2).sum()",
    # Q3: the transmittance counts sample i's own segment (an inclusive cumsum)
    "ray_colour": "def ray_weights(sigma, deltas):\n"
    "    tau = sigma * deltas\n"
    "    return torch.exp(-torch.cumsum(tau, 0)) * (1 - torch.exp(-tau))\n\n\n"
    "def ray_colour(sigma, deltas, rgb, background):\n"
    "    w = ray_weights(sigma, deltas)\n"
    "    return (w[:, None] * rgb).sum(0) + (1 - w.sum()) * background",
    # Q4: the azimuth measured from the x axis, atan2(z, x), instead of from the front (+z), atan2(x, z)
    "view_prompt": "def view_prompt(prompt, eye):\n"
    "    x, y, z = (float(v) for v in eye)\n"
    "    azimuth = math.degrees(math.atan2(z, x))\n"
    "    elevation = math.degrees(math.asin(y / math.sqrt(x * x + y * y + z * z)))\n"
    "    if elevation > 60:\n"
    "        return f'{prompt}, overhead view'\n"
    "    a = abs((azimuth + 180) % 360 - 180)\n"
    "    return f\"{prompt}, {'front' if a < 45 else 'side' if a < 135 else 'back'} view\"",
    # Q6: DreamFusion's 10,000 steps cut to 1000: over the step budget of 400
    "SDS": 'SDS = {"guidance_scale": 100.0, "lr": 0.01, "steps": 1000, "t_range": [0.02, 0.98]}',
}
CAUGHT = {
    "q1_sds_gradient": "sds_grad with ab = (0.64, 0.36), t = (0, 1), z = 1, eps = 0",
    "q2_surrogate": "the gradient of sds_loss with respect to z = (1, 2)",
    "q3_ray": "ray_weights with sigma = (0, ln 2, ln 2)",
    "q4_view_prompt": "view_prompt for a camera at",
    "q6_sds_design": "steps must be an int in [1, 400]",
}
