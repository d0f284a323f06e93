from otter.test_files import test_case

OK_FORMAT = False

name = "q3_embedding"
points = 2

@test_case(points=None, hidden=False)
def test_shape_and_t0(timestep_embedding):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    emb = timestep_embedding(torch.tensor([0, 1, 2]), 8)
    assert_tensor(emb, 'timestep_embedding(t of shape [3], 8)', (3, 8))
    assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4), 'the embedding of t = 0 (cosine half first)')

