from otter.test_files import test_case

OK_FORMAT = False

name = "q3_label_dropout"
points = 1

@test_case(points=None, hidden=False)
def test_by_hand(drop_labels):
    import torch
    y = torch.tensor([3, 1, 4, 1, 5])
    u = torch.tensor([0.05, 0.5, 0.25, 0.95, 0.125], dtype=torch.float64)
    for p, expected in [(0.25, [10, 1, 4, 1, 10]), (0.0, [3, 1, 4, 1, 5]), (1.0, [10] * 5)]:
        got = drop_labels(y, p, 10, u)
        assert isinstance(got, torch.Tensor), f'drop_labels should return a tensor, not {type(got).__name__}.'
        assert got.tolist() == expected, f'drop_labels(y = {y.tolist()}, p_uncond = {p}, null_label = 10, u = {u.tolist()}) = {got.tolist()}, expected {expected}: a label is dropped where u < p_uncond (u = p keeps it).'

@test_case(points=0, hidden=False)
def test_form(drop_labels):
    import torch
    y = torch.arange(8) % 4
    before = y.clone()
    out = drop_labels(y, 0.5, 4, torch.linspace(0, 0.99, 8))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64 and (out.shape == (8,)), f"drop_labels should return an int64 tensor [8], got {getattr(out, 'dtype', type(out))} {tuple(getattr(out, 'shape', ()))}."
    assert torch.equal(y, before), 'drop_labels changed its input y in place; return a new tensor.'

