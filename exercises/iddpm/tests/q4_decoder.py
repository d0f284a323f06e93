from otter.test_files import test_case

OK_FORMAT = False

name = "q4_decoder"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(decoder_nll):
    import math
    import torch
    from course_lib.grading import assert_close, assert_tensor
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    x0 = torch.tensor([[-1.0, 1 / 255, 1.0]])
    nll = decoder_nll(x0, x0.clone(), torch.full((1, 3), 2 * math.log(1 / 255)))
    assert_tensor(nll, 'decoder_nll(x0 [1, 3], ...)', (1,))
    expected = -2 * math.log(phi(1)) - math.log(phi(1) - phi(-1))
    assert_close(nll, torch.tensor([expected]), 'decoder_nll of the levels -1, 1/255 and 1 with the mean on the level and sigma = 1/255: -log(Phi(1) - Phi(-1)) in the middle, -log Phi(1) at each end (those bins reach -inf and +inf)', rtol=1e-05, atol=1e-06)
    d = (-0.5, 1.0, 1.5)
    mean = x0 - torch.tensor([d]) / 255
    nll = decoder_nll(x0, mean, torch.full((1, 3), 2 * math.log(1 / 255)))
    expected = -math.log(phi(d[0] + 1)) - math.log(phi(d[1] + 1) - phi(d[1] - 1)) - math.log(1 - phi(d[2] - 1))
    assert_close(nll, torch.tensor([expected]), 'decoder_nll of the levels -1, 1/255 and 1 with sigma = 1/255 and the means -1 + 0.5/255, 0 and 1 - 1.5/255: -log Phi(0.5) - log(Phi(2) - Phi(0)) - log(1 - Phi(0.5))', rtol=1e-05, atol=1e-06)

@test_case(points=0, hidden=False)
def test_image_shape(decoder_nll):
    import torch
    from course_lib.grading import assert_tensor
    x0 = torch.full((2, 1, 4, 4), -1.0)
    nll = decoder_nll(x0, torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 1, 1))
    assert_tensor(nll, 'decoder_nll(x0 [2, 1, 4, 4], ..., log_variance [2, 1, 1, 1])', (2,))

