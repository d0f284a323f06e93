from otter.test_files import test_case

OK_FORMAT = False

name = "q5_cg_is_cfg"
points = 3

@test_case(points=1, hidden=False)
def test_by_hand(implied_classifier_grad, equivalent_weight, tilted_spread):
    import math
    import torch
    from course_lib.data import mixture_means
    from course_lib.grading import assert_close
    got = implied_classifier_grad(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([0.75], dtype=torch.float64))
    assert_close(got, torch.tensor([[-2.0, 4.0]]), 'the implied gradient for eps_cond - eps_uncond = (1, -2) at alpha_bar_t = 0.75: -(1, -2) / 0.5')
    pair = equivalent_weight(1.0)
    assert isinstance(pair, tuple) and len(pair) == 2 and ([float(v) for v in pair] == [0.0, 1.0]), f'equivalent_weight(1.0) = {pair!r}; expected (w, g) = (0.0, 1.0): classifier guidance at s = 1 by the exact classifier is the conditional model, no guidance in either convention.'
    means = mixture_means(4, 0.6).double()
    for s, expected, why in [(1.0, 0.3, 'one component: sigma itself'), (0.0, math.sqrt(0.3 ** 2 + 0.6 ** 2 / 2), 'the whole mixture: sqrt(0.3^2 + 0.6^2 / 2)')]:
        spread = tilted_spread(means, 0.3, s)
        assert isinstance(spread, float), f'tilted_spread should return a Python float, not {type(spread).__name__}.'
        assert abs(spread - expected) < 0.0001, f'tilted_spread(mixture_means(4, 0.6), 0.3, s = {s:g}) = {spread:.5f}, expected {expected:.5f} ({why}).'

@test_case(points=0, hidden=False)
def test_spread_table_has_the_right_form(SPREAD):
    assert isinstance(SPREAD, dict) and sorted(SPREAD) == [0, 1, 2, 5, 10], f'SPREAD should have the keys 0, 1, 2, 5, 10; it is {SPREAD!r:.80}.'
    assert all((isinstance(v, float) and v > 0 for v in SPREAD.values())), f"SPREAD's values should be positive floats: {SPREAD}."

