from otter.test_files import test_case

OK_FORMAT = False

name = "q4_elbo_gap"
points = 3

@test_case(points=None, hidden=False)
def test_by_hand(exact_posterior, log_evidence):
    import math
    import torch
    from course_lib.grading import assert_close, assert_tensor
    x = torch.tensor([2.0, 0.0])
    mean, logvar = exact_posterior(x, 1.0, 1.0)
    assert_tensor(mean, 'the posterior mean for x [2]', (2,))
    assert_tensor(logvar, 'the posterior logvar for x [2]', (2,))
    assert_close(mean, torch.tensor([1.0, 0.0]), 'the posterior mean for w = 1, s2 = 1 at x = 2 and x = 0', rtol=1e-05)
    assert_close(logvar, torch.full((2,), math.log(0.5)), 'the posterior logvar for w = 1, s2 = 1 (variance 1/2)', rtol=1e-05)
    assert_close(log_evidence(x, 1.0, 1.0), torch.tensor([-0.5 * math.log(4 * math.pi) - 1.0, -0.5 * math.log(4 * math.pi)]), 'log p(x) for w = 1, s2 = 1 at x = 2 and x = 0 (x ~ N(0, 2))', rtol=1e-05)

@test_case(points=0, hidden=False)
def test_gap_has_the_right_form(GAP_AT_PRIOR):
    assert isinstance(GAP_AT_PRIOR, float) and GAP_AT_PRIOR >= 0, f'GAP_AT_PRIOR should be a Python float >= 0 (a KL divergence), not {GAP_AT_PRIOR!r}.'

