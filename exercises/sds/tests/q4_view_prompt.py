from otter.test_files import test_case

OK_FORMAT = False

name = "q4_view_prompt"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(view_prompt):
    import torch
    for eye, view, where in (((0.0, 0.0, 3.0), 'front', 'on +z'), ((3.0, 0.0, 0.0), 'side', 'on +x'), ((1.0, 0.0, -3.0), 'back', 'behind, azimuth about 162'), ((0.0, 3.0, 1.0), 'overhead', 'above, elevation about 72'), ((-1.0, 0.0, 3.0), 'front', 'azimuth about -18'), ((-2.0, 0.5, -1.0), 'side', 'azimuth about -117, elevation about 12')):
        got = view_prompt('a red cube', torch.tensor(eye))
        assert isinstance(got, str), f'view_prompt should return a str, got {type(got).__name__}.'
        assert got == f'a red cube, {view} view', f"view_prompt for a camera at {eye} ({where}) returned {got!r}, expected 'a red cube, {view} view'."

