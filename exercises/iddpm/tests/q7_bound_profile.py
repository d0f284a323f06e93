from otter.test_files import test_case

OK_FORMAT = False

name = "q7_bound_profile"
points = 3

@test_case(points=0, hidden=False)
def test_answers_have_the_right_form(BOUND, SHARE_FIRST_TEN, SHARE_LAST):
    for name, value in (('BOUND', BOUND), ('SHARE_FIRST_TEN', SHARE_FIRST_TEN), ('SHARE_LAST', SHARE_LAST)):
        assert isinstance(value, float), f'{name} should be a Python float, not {value!r}.'
    assert 0 < BOUND < 8, f'BOUND = {BOUND:.4g}: it should be in bits per dimension (nats / (256 ln 2)); this model codes the 8-bit digits in far fewer than the 8 bits per pixel of the raw bytes.'
    assert 0 <= SHARE_LAST <= 1 and 0 <= SHARE_FIRST_TEN <= 1 and (SHARE_FIRST_TEN + SHARE_LAST <= 1), f'the shares should be fractions of BOUND that add up to at most 1, got {SHARE_FIRST_TEN:.3g} and {SHARE_LAST:.3g}.'

