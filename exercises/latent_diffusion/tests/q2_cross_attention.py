from otter.test_files import test_case

OK_FORMAT = False

name = "q2_cross_attention"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(multi_head_cross_attention):
    import math
    import torch
    from course_lib.grading import assert_close
    eye = torch.eye(4)
    x = torch.tensor([[[2 * math.log(3), 0.0, 0.0, 0.0]]])
    context = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    out, weights = multi_head_cross_attention(x, context, eye, eye, eye, eye, torch.tensor([0.0, 0.0, 0.0, 1.0]), 1)
    assert_close(weights, torch.tensor([[[[0.75, 0.25]]]]), 'the weights of one head, C = D = 4, identity projections, query (2 ln 3, 0, 0, 0), keys (1, 0, 0, 0) and 0: scores ln 3 and 0 after dividing by sqrt(d) = 2', rtol=1e-05, atol=1e-06)
    assert_close(out, torch.tensor([[[0.75, 0.0, 0.0, 1.0]]]), "out for the same case with b_out = (0, 0, 0, 1): 3/4 of the first token's value plus the bias", rtol=1e-05, atol=1e-06)
    eye8 = torch.eye(8)
    x = torch.zeros(1, 1, 8)
    x[0, 0, 0] = 2 * math.log(3)
    context = torch.zeros(1, 2, 8)
    context[0, 0, 0] = 1.0
    w_v = torch.zeros(8, 8)
    w_v[0, 0] = w_v[4, 0] = 1.0
    out, weights = multi_head_cross_attention(x, context, eye8, eye8, w_v, eye8, torch.zeros(8), 2)
    assert_close(weights, torch.tensor([[[[0.75, 0.25]], [[0.5, 0.5]]]]), 'the weights of two heads of d = 4 on C = 8 (head 0: scores ln 3 and 0 after dividing by sqrt(4); head 1: a zero query, equal weights)', rtol=1e-05, atol=1e-06)
    assert_close(out, torch.tensor([[[0.75, 0, 0, 0, 0.5, 0, 0, 0]]]), "out for the same two heads (token 0's value: 1 in channel 0 of head 0 and channel 4 of head 1)", rtol=1e-05, atol=1e-06)

@test_case(points=0, hidden=False)
def test_shapes(multi_head_cross_attention):
    import torch
    from course_lib.grading import assert_tensor
    g = torch.Generator().manual_seed(0)
    x, context = (torch.randn(2, 16, 32, generator=g), torch.randn(2, 5, 12, generator=g))
    out, weights = multi_head_cross_attention(x, context, torch.randn(24, 32, generator=g), torch.randn(24, 12, generator=g), torch.randn(24, 12, generator=g), torch.randn(32, 24, generator=g), torch.zeros(32), 3)
    assert_tensor(out, "out for x [2, 16, 32], context [2, 5, 12], C' = 24 in 3 heads", (2, 16, 32))
    assert_tensor(weights, 'weights for the same', (2, 3, 16, 5))

