"""The latent-diffusion exercise set's test cases (exercises/source/latent_diffusion).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

from helpers import quick

POSSIBLE = 15  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = ("scaling_factor", "cross_attention", "text_cfg", "sdedit", "kl_weight", "written", "sampler")
MEASURED = "prompt_adherence"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ("check_sampling_settings",)  # the budget is checked by a public test
HIDDEN_MENTIONS = ('"all"', '"frechet"')  # graded on adherence (all four attributes) and the Frechet distance
EVERY_HIDDEN_MENTIONS = ("prompt_adherence(SAMPLER)",)  # every tier measures the same run

PARTIAL = {
    # text_cfg right, cfg_batch with the halves the other way round (the prompt's states first): the by-hand case and
    # the loop against the pipeline fail, the agreement with diffusers' guider (text_cfg alone) passes
    "text_cfg": "def text_cfg(eps_uncond, eps_cond, guidance_scale):\n"
    "    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)\n\n\n"
    "def cfg_batch(latents, cond, uncond):\n"
    "    return torch.cat([latents, latents]), torch.cat([cond, uncond])",
    # the toy right, posterior_stats with the noise as the mean posterior std instead of its root mean square: the
    # by-hand point is lost (its second case has two stds), the toy's hidden point kept, the shipped autoencoder's lost
    "toy_optimum": lambda source: source.replace("var.mean().sqrt().item()", "std.double().mean().item()"),
    # a larger scale than needed: every image as asked (both adherence points and frechet below 50: 44.9 on the
    # grader's seed), but the images of one prompt too alike for the last point (frechet below 35)
    "SAMPLER": 'SAMPLER = {"scheduler": "ddim", "steps": 10, "guidance_scale": 4.0}',
}


# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q3_text_cfg", "q5_kl_weight", "q7_sampler")


def check_partial(result, table):
    assert 0 < result.scores["q3_text_cfg"] < result.possible["q3_text_cfg"], table
    assert "the empty prompt's states (the unconditional half) first" in result.reasons["q3_text_cfg"], table
    assert result.scores["q5_kl_weight"] == 1 and "posterior_stats['noise']" in result.reasons["q5_kl_weight"], table
    if not quick():  # g = 4: all 1.00, frechet 44.9: three points, not the last (frechet below 35)
        assert result.scores["q7_sampler"] == 3 and "frechet = " in result.reasons["q7_sampler"], table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: the posterior means alone, no sample (what latent.encode scales): the noise std 3 case gives 1 / 0
    "scaling_factor": "def scaling_factor(posterior, images, seed):\n"
    "    mean, std = posterior(images)\n"
    "    return 1.0 / mean.std().item()",
    # Q2: the scores divided by sqrt(C') of all heads together instead of sqrt(d) of one head
    "multi_head_cross_attention": "def multi_head_cross_attention(x, context, w_q, w_k, w_v, w_out, b_out, heads):\n"
    "    b, n, _ = x.shape\n"
    "    q = (x @ w_q.T).view(b, n, heads, -1).transpose(1, 2)\n"
    "    k = (context @ w_k.T).view(b, context.shape[1], heads, -1).transpose(1, 2)\n"
    "    v = (context @ w_v.T).view(b, context.shape[1], heads, -1).transpose(1, 2)\n"
    "    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w_q.shape[0]), dim=-1)\n"
    "    return (weights @ v).transpose(1, 2).reshape(b, n, -1) @ w_out.T + b_out, weights",
    # Q3: Ho & Salimans' line with w = g (chapter 5's convention mixed up with diffusers'); cfg_batch right
    "text_cfg": "def text_cfg(eps_uncond, eps_cond, guidance_scale):\n"
    "    return (1 + guidance_scale) * eps_cond - guidance_scale * eps_uncond\n\n\n"
    "def cfg_batch(latents, cond, uncond):\n"
    "    return torch.cat([latents, latents]), torch.cat([uncond, cond])",
    # Q4: the first floor(S * strength) timesteps counted from the start (the noisy end) instead of the last ones
    "sdedit_start": "def sdedit_start(z0, noise, alphas_cumprod, timesteps, strength):\n"
    "    t0 = int(timesteps[min(int(len(timesteps) * strength), len(timesteps) - 1)])\n"
    "    alpha_bar = alphas_cumprod[t0]\n"
    "    return t0, alpha_bar.sqrt() * z0 + (1 - alpha_bar).sqrt() * noise",
    # Q5: the encoder's slope left at a = 1 (only the noise s^2 = lambda / 2 paid for, no collapse), and the KL with
    # ln s for ln s^2
    "toy_optimum": "def toy_optimum(kl_weight):\n"
    "    return 1.0, math.sqrt(kl_weight / 2), kl_weight / 2 / (1 + kl_weight / 2)\n\n\n"
    "def posterior_stats(posterior, images):\n"
    "    mean, std = posterior(images)\n"
    "    kl = 0.5 * (mean ** 2 + std ** 2 - 1 - std.log())\n"
    "    return {'signal': mean.std().item(), 'noise': std.pow(2).mean().sqrt().item(),\n"
    "            'kl': kl.mean().item()}",
    # Q7: 20 steps guided: 40 U-Net evaluations per image, twice the budget
    "SAMPLER": 'SAMPLER = {"scheduler": "ddim", "steps": 20, "guidance_scale": 4.0}',
}
CAUGHT = {
    "q1_scaling_factor": "scaling_factor for means of +1 and -1 and std 3 everywhere",
    "q2_cross_attention": "the weights of two heads of d = 4 on C = 8",
    "q3_text_cfg": "text_cfg for eps_uncond = (1, 0), eps_cond = (2, -1), guidance_scale = 7.5",
    "q4_sdedit_start": "with timesteps [900, 600, 300, 0] is",
    "q5_kl_weight": "a = s = sqrt(1/2), error 1/2",
    "q7_sampler": "cost 40 U-Net evaluations per image",
}
