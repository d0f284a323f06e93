"""The LoRA and DreamBooth exercise set's test cases (exercises/source/lora).
Read by test_sets.py: the syllabus, partial answers (with what they must score), one plausible wrong answer per
autograded question and the public test's message that catches it."""

from helpers import quick

POSSIBLE = 14  # autograded points of the blank notebook (the written answer is graded by hand)
TOPICS = ("lora_forward", "merge", "count", "dreambooth_loss", "written", "lora_design")
MEASURED = "dreambooth_quality"  # the open-ended question's measured run, named in its hidden tests
PUBLIC_MENTIONS = ("check_lora_settings",)  # the budget is checked by a public test
HIDDEN_MENTIONS = ('"fidelity"', '"class_to_subject"', '"ordinary"')  # graded on the subject and on drift
EVERY_HIDDEN_MENTIONS = ("dreambooth_quality(LORA)",)  # every tier measures the same run

PARTIAL = {
    # the count right, the fraction over the base model's parameters only (the LoRA's own left out of the total): the
    # by-hand case fails, the hidden agreement of the count with inject_lora passes, the fraction's fails
    "lora_parameter_count": lambda source: source.replace("return lora / (total + lora)", "return lora / total"),
    # the loss right, but the prior half run (times 0) when prior_weight is 0: the by-hand case counts the U-Net's
    # calls and fails; the value and the gradient agree with dreambooth_loss_fn (hidden, 2 points)
    "dreambooth_loss": lambda source: source.replace(
        "    if prior_weight > 0:\n        loss = loss + prior_weight",
        "    if True:\n        loss = loss + prior_weight",
    ),
    # no prior term (lambda = 0): the subject is learned (fidelity 1.00, recontext 1.00: 2 points), but "a shape" becomes
    # the subject (class_to_subject 0.94) and the ordinary prompts drift (0.20): the two drift points lost
    "LORA": 'LORA = {"rank": 4, "targets": ["to_q", "to_k", "to_v", "to_out.0"], "steps": 300, "lr": 3e-3, '
    '"prior_weight": 0.0}',
}


# The partial case: the untouched student notebook with these answers (a callable edits the solution's cell), so
# it proves partial credit and, for every other question, that a blank answer scores 0.
PARTIAL_QUESTIONS = ("q3_count", "q4_dreambooth_loss", "q6_lora_design")


def check_partial(result, table):
    assert (
        result.scores["q3_count"] == 1 and "lora_fraction for the 40 LoRA parameters" in result.reasons["q3_count"]
    ), table
    assert (
        result.scores["q4_dreambooth_loss"] == 2 and "the model should run once" in result.reasons["q4_dreambooth_loss"]
    ), table
    if not quick():
        assert result.scores["q6_lora_design"] == 2 and "class_to_subject = " in result.reasons["q6_lora_design"], table


# Plausible wrong answers, one per question, each caught by a PUBLIC test of its question (the message quoted)
# and worth 0 points: a student who checks before handing in is told.
WRONG = {
    # Q1: the update scaled by alpha, not alpha / r
    "lora_forward": "def lora_forward(x, weight, bias, lora_A, lora_B, alpha):\n"
    "    y = x @ weight.T + (0 if bias is None else bias)\n"
    "    return y + alpha * (x @ lora_A.T) @ lora_B.T",
    # Q2: the scaling upside down, r / alpha
    "merged_weight": "def merged_weight(weight, lora_A, lora_B, alpha):\n"
    "    return weight + (lora_A.shape[0] / alpha) * (lora_B @ lora_A)",
    # Q3: targets matched as substrings ('to_k' also selects to_kv), fraction computed from that count
    "lora_parameter_count": "def lora_parameter_count(layers, targets, rank):\n"
    "    return sum(rank * (d_in + d_out) for name, (d_in, d_out) in layers.items()\n"
    "               if any(t in name for t in targets))\n\n\n"
    "def lora_fraction(layers, total, targets, rank):\n"
    "    lora = lora_parameter_count(layers, targets, rank)\n"
    "    return lora / (total + lora)",
    # Q4: one mean over both halves together (the prior's errors weighted by lambda), not a mean per half
    "dreambooth_loss": "def dreambooth_loss(eps_model, batch, alphas_cumprod, prior_weight, seed):\n"
    "    generator, errors = torch.Generator().manual_seed(seed), []\n"
    "    for z0, cond, w in ((batch[0], batch[1], 1.0), (batch[2], batch[3], prior_weight)):\n"
    "        t = torch.randint(0, len(alphas_cumprod), (len(z0),), generator=generator)\n"
    "        noise = torch.randn(z0.shape, generator=generator)\n"
    "        ab = alphas_cumprod[t].view(-1, 1, 1, 1)\n"
    "        pred = eps_model(ab.sqrt() * z0 + (1 - ab).sqrt() * noise, t, cond)\n"
    "        errors.append(w * (pred - noise).pow(2).flatten())\n"
    "    return torch.cat(errors).mean()",
    # Q6: rank 8 on every attention projection: about 3.9 % of the U-Net, twice the budget
    "LORA": 'LORA = {"rank": 8, "targets": ["to_q", "to_k", "to_v", "to_out.0"], "steps": 300, "lr": 3e-3, '
    '"prior_weight": 1.0}',
}
CAUGHT = {
    "q1_lora_forward": "lora_forward with W = I, A = I (rank 2)",
    "q2_merge": "merged_weight with W = I, A = I (rank 2)",
    "q3_count": "lora_parameter_count on attn.to_k (4 -> 6) and attn.to_out.0 (6 -> 4) at rank 2",
    "q4_dreambooth_loss": "dreambooth_loss with a model that predicts zeros, prior_weight 0.5",
    "q6_lora_design": "the budget is 2%",
}
