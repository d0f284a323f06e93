from otter.test_files import test_case

OK_FORMAT = False

name = "q5_same_model"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(noise_moments):
    import math
    import torch
    from course_lib.grading import assert_close
    f64 = lambda *v: torch.tensor(v, dtype=torch.float64)
    out = noise_moments(f64(0.25, 0.25), f64(0.5, 0.5), f64(0.5, 0.0))
    assert isinstance(out, tuple) and len(out) == 2, f'noise_moments should return the pair (variance, correlation), not {out!r:.60}.'
    variance, correlation = out
    assert_close(variance, f64(1.0, 1.0), 'the variance of r_{t-1} for alpha_bar_t = 0.25, alpha_bar_prev = 0.5 and sigma = 0.5 or 0', rtol=1e-09, atol=1e-12, precision_hint=True)
    assert_close(correlation, f64(math.sqrt(0.5), 1.0), 'corr(r_{t-1}, r_t) for alpha_bar_t = 0.25, alpha_bar_prev = 0.5 and sigma = 0.5 or 0', rtol=1e-09, atol=1e-12, precision_hint=True)

@test_case(points=0, hidden=False)
def test_memory_has_the_right_form(NOISE_MEMORY):
    assert isinstance(NOISE_MEMORY, dict) and sorted(NOISE_MEMORY) == [0.0, 0.5, 1.0], f'NOISE_MEMORY should have the keys 0.0, 0.5, 1.0; it is {NOISE_MEMORY!r:.80}.'
    for eta, value in NOISE_MEMORY.items():
        assert isinstance(value, float) and -1 <= value <= 1, f'NOISE_MEMORY[{eta}] should be a correlation, a Python float in [-1, 1], not {value!r}.'

