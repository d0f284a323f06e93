from otter.test_files import test_case

OK_FORMAT = False

name = "q3_timesteps"
points = 1

@test_case(points=None, hidden=False)
def test_by_hand(ddim_timesteps):
    for T, S, spacing, expected in [(10, 5, 'leading', [8, 6, 4, 2, 0]), (10, 5, 'trailing', [9, 7, 5, 3, 1]), (10, 3, 'leading', [6, 3, 0]), (10, 3, 'trailing', [9, 6, 2]), (10, 6, 'leading', [5, 4, 3, 2, 1, 0]), (10, 6, 'trailing', [9, 7, 6, 4, 2, 1])]:
        taus = ddim_timesteps(T, S, spacing)
        assert isinstance(taus, (list, tuple)), f'ddim_timesteps should return a list of ints, not {taus!r:.60}.'
        got = [int(t) for t in taus]
        assert got == expected, f'tau by hand for T = {T}, S = {S}, {spacing!r}: got {got}, expected {expected}.'

@test_case(points=0, hidden=False)
def test_form(ddim_timesteps):
    for spacing in ('leading', 'trailing'):
        taus = ddim_timesteps(1000, 20, spacing)
        assert isinstance(taus, list) and all((isinstance(t, int) for t in taus)), f'ddim_timesteps should return a list of Python ints, got {type(taus).__name__} ({taus!r:.60}).'
        assert len(taus) == 20 and all((a > b for a, b in zip(taus, taus[1:]))) and (0 <= taus[-1]) and (taus[0] < 1000), f'{spacing}: tau must hold 20 strictly decreasing indices in 0 ... 999, got {taus}.'

