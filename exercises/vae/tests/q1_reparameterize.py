from otter.test_files import test_case

OK_FORMAT = False

name = "q1_reparameterize"
points = 2

@test_case(points=0, hidden=False)
def test_zero_noise_gives_the_mean(reparameterize):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    mean, logvar = (torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.0, 1.0, -3.0]]))
    z = reparameterize(mean, logvar, torch.zeros(1, 3))
    assert_tensor(z, 'reparameterize(mean [1, 3], logvar, zero noise)', (1, 3))
    assert_close(z, mean, 'z for noise = 0 (it should be the mean)')

@test_case(points=None, hidden=False)
def test_by_hand(reparameterize):
    import math
    import torch
    from course_lib.grading import assert_close
    z = reparameterize(torch.tensor([1.0]), torch.tensor([math.log(4.0)]), torch.tensor([0.5]))
    assert_close(z, torch.tensor([2.0]), 'z for mean 1, variance 4 (sigma = 2) and noise 0.5')

