from otter.test_files import test_case

OK_FORMAT = False

name = "q5_kl_weight"
points = 3

@test_case(points=1, hidden=False)
def test_by_hand(toy_optimum, posterior_stats):
    import math
    import torch
    for kl_weight, expected, why in [(1.0, (math.sqrt(0.5), math.sqrt(0.5), 0.5), 'a = s = sqrt(1/2), error 1/2'), (4.0, (0.0, 1.0, 1.0), 'the edge a = 0: the encoder ignores x, s = 1, error 1')]:
        got = toy_optimum(kl_weight)
        assert isinstance(got, tuple) and len(got) == 3 and all((isinstance(v, float) for v in got)), f'toy_optimum should return a tuple of three Python floats (a, s, error), got {got!r:.80}.'
        assert all((abs(g - e) < 1e-06 for g, e in zip(got, expected))), f'toy_optimum({kl_weight:g}) = {tuple((round(v, 5) for v in got))}, expected {tuple((round(v, 5) for v in expected))} ({why}).'
    signs = (torch.arange(2 * 4 * 8 * 8) % 2 * 2 - 1).float().view(2, 4, 8, 8)
    std = torch.where(torch.arange(2 * 4 * 8 * 8).view(2, 4, 8, 8) < 256, 0.3, 0.4)
    for sigma, noise, kl in [(torch.full_like(signs, 0.5), 0.5, 0.5 * (1 + 0.25 - 1 - math.log(0.25))), (std, math.sqrt((0.09 + 0.16) / 2), 0.25 * (2 + 0.09 + 0.16 - 2 - math.log(0.09) - math.log(0.16)))]:
        stats = posterior_stats(lambda x: (signs, sigma), torch.zeros(2, 3, 32, 32))
        assert isinstance(stats, dict) and set(stats) == {'signal', 'noise', 'kl'}, f'posterior_stats should return a dict with the keys signal, noise and kl, got {stats!r:.80}.'
        expected = {'signal': signs.std().item(), 'noise': noise, 'kl': kl}
        for key in expected:
            assert abs(stats[key] - expected[key]) < 1e-05, f'posterior_stats[{key!r}] for means of +1 and -1 and posterior std {sigma.unique().tolist()} (half each): {stats[key]:.5f}, expected {expected[key]:.5f}.'

