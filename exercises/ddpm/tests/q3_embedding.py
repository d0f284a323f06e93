from otter.test_files import test_case

OK_FORMAT = False

name = "q3_embedding"
points = 1

@test_case(points=0, hidden=False)
def test_shape_and_t0(timestep_embedding):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    emb = timestep_embedding(torch.tensor([0, 1, 2]), 8)
    assert_tensor(emb, 'timestep_embedding(t of shape [3], 8)', (3, 8))
    assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4), 'the embedding of t = 0 (cosine half first)')

@test_case(points=None, hidden=False)
def test_by_hand(timestep_embedding):
    import math
    import torch
    from course_lib.grading import assert_close
    expected = torch.tensor([[math.cos(1.0), math.cos(0.01), math.sin(1.0), math.sin(0.01)]])
    assert_close(timestep_embedding(torch.tensor([1]), 4), expected, 'timestep_embedding(t = [1], dim = 4): frequencies 1 and 10000 ** (-1/2) = 0.01, cosines first', rtol=1e-05, atol=1e-06)

