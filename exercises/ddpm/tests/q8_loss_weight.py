from otter.test_files import test_case

OK_FORMAT = False

name = "q8_loss_weight"
points = 3

@test_case(points=None, hidden=False)
def test_by_hand(vlb_weight):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    weights = vlb_weight(torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64))
    assert_tensor(weights[1:], 'vlb_weight(betas [3])[1:]', (2,))
    assert weights.dtype == torch.float64, f'vlb_weight should return float64, got {weights.dtype}.'
    assert_close(weights[1:], torch.tensor([1.0, 2 / 3], dtype=torch.float64), 'lambda_1 and lambda_2 for betas (0.5, 0.5, 0.5), with sigma_t^2 = beta_tilde_t', rtol=1e-06, precision_hint=True)

@test_case(points=0, hidden=False)
def test_answers_have_the_right_form(DOWNWEIGHTED, FACTOR):
    assert DOWNWEIGHTED in ('small t', 'large t'), f'DOWNWEIGHTED should be "small t" or "large t", not {DOWNWEIGHTED!r}.'
    assert isinstance(FACTOR, float) and FACTOR > 0, f'FACTOR should be a positive Python float, not {FACTOR!r}.'

