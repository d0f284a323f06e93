from otter.test_files import test_case

OK_FORMAT = False

name = "q9_zero_snr"
points = 3

@test_case(points=None, hidden=False)
def test_by_hand(rescale_zero_terminal_snr):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    alpha_bar = torch.tensor([0.81, 0.49, 0.25], dtype=torch.float64)
    betas = 1 - torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    new = rescale_zero_terminal_snr(betas)
    assert_tensor(new, 'rescale_zero_terminal_snr(betas [3])', (3,))
    assert new.dtype == torch.float64, f'rescale_zero_terminal_snr should return float64, got {new.dtype}.'
    assert_close(new, torch.tensor([0.19, 0.75, 1.0], dtype=torch.float64), 'the rescaled betas for alpha_bar = (0.81, 0.49, 0.25): sqrt(alpha_bar) (0.9, 0.7, 0.5) -> (0.9, 0.45, 0)', rtol=1e-06, atol=1e-09, precision_hint=True)

@test_case(points=0, hidden=False)
def test_table_has_the_right_form(SNR_TABLE):
    assert isinstance(SNR_TABLE, dict) and sorted(SNR_TABLE) == [0, 250, 500, 750, 999], f'SNR_TABLE should have the keys 0, 250, 500, 750, 999; it has {(sorted(SNR_TABLE) if isinstance(SNR_TABLE, dict) else SNR_TABLE)!r}.'
    for t, pair in SNR_TABLE.items():
        assert len(pair) == 2 and all((isinstance(v, float) for v in pair)), f'SNR_TABLE[{t}] should be a pair of Python floats (before, after), not {pair!r}.'

