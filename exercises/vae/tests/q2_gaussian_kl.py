from otter.test_files import test_case

OK_FORMAT = False

name = "q2_gaussian_kl"
points = 2

@test_case(points=0, hidden=False)
def test_kl_of_a_gaussian_with_itself_is_zero(gaussian_kl):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    mean, logvar = (torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.0, 1.5, -2.0]))
    kl = gaussian_kl(mean, logvar, mean, logvar)
    assert_tensor(kl, 'gaussian_kl of [3] tensors', (3,))
    assert_close(kl, torch.zeros(3), 'KL(p || p)', atol=1e-06)

@test_case(points=None, hidden=False)
def test_by_hand(gaussian_kl):
    import math
    import torch
    from course_lib.grading import assert_close
    zero = torch.zeros(())
    kl = gaussian_kl(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]), zero, zero)
    assert_close(kl, torch.tensor([0.5, 0.5 * (math.exp(2.0) - 3.0)]), 'KL(N(1, 1) || N(0, 1)) and KL(N(0, e^2) || N(0, 1))', rtol=1e-05)

@test_case(points=None, hidden=False)
def test_by_hand_wide_second_gaussian(gaussian_kl):
    import math
    import torch
    from course_lib.grading import assert_close
    kl = gaussian_kl(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([math.log(4.0)]))
    assert_close(kl, torch.tensor([math.log(2.0) - 0.25]), 'KL(N(1, 1) || N(0, 4)) = log 2 - 1/4', rtol=1e-05)

