from otter.test_files import test_case

OK_FORMAT = False

name = "q3_vlb_kl"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(vlb_kl):
    import math
    import torch
    from course_lib.grading import assert_close, assert_tensor
    from course_lib.schedules import Schedule
    schedule = Schedule.from_betas('two steps', torch.tensor([0.5, 0.5], dtype=torch.float64))
    x0, zero, t = (torch.ones(1, 2), torch.zeros(1, 2), torch.tensor([1]))
    kl = vlb_kl(x0, zero, t, zero, torch.full((1, 2), math.log(1 / 3)), schedule)
    assert_tensor(kl, 'vlb_kl(x0 [1, 2], ...)', (1,))
    assert_close(kl, torch.tensor([2 / 3]), 'L_1 for betas (0.5, 0.5), x0 = 1, x_t = 0, eps = 0 and Sigma = beta_tilde_1 = 1/3: (2/9) / (2/3) = 1/3 per pixel, two pixels', rtol=1e-05, atol=1e-06)
    kl = vlb_kl(x0, zero, t, zero, torch.full((1, 2), math.log(1 / 2)), schedule)
    per_pixel = 0.5 * (math.log(1.5) + 2 / 3 + 4 / 9 - 1)
    assert_close(kl, torch.tensor([2 * per_pixel]), 'L_1 for the same inputs and Sigma = beta_1 = 1/2: 1/2 [log(3/2) + (1/3 + 2/9) / (1/2) - 1] per pixel, two pixels', rtol=1e-05, atol=1e-06)
    beta = 5 / 9
    schedule = Schedule.from_betas('asymmetric', torch.tensor([0.19, beta], dtype=torch.float64))
    x0_hat = (0.5 - math.sqrt(1 - 0.36) * -0.5) / math.sqrt(0.36)
    c1 = math.sqrt(0.81) * beta / (1 - 0.36)
    beta_tilde = (1 - 0.81) / (1 - 0.36) * beta
    per_pixel = 0.5 * (math.log(beta / beta_tilde) + beta_tilde / beta + (c1 * (-1 - x0_hat)) ** 2 / beta - 1)
    kl = vlb_kl(torch.full((1, 2), -1.0), torch.full((1, 2), 0.5), t, torch.full((1, 2), -0.5), torch.full((1, 2), math.log(beta)), schedule)
    assert_close(kl, torch.tensor([2 * per_pixel]), 'L_1 for betas (0.19, 5/9), x0 = -1, x_t = 0.5, eps = -0.5 and Sigma = beta_1 = 5/9: x0_hat = 1.5, mu_tilde - mu_theta = c1 (x0 - x0_hat) with c1 = 25/32, beta_tilde_1 = (0.19 / 0.64) (5/9); 1/2 [log(Sigma / beta_tilde_1) + beta_tilde_1 / Sigma + (mu_tilde - mu_theta)^2 / Sigma - 1] per pixel, two pixels', rtol=1e-05, atol=1e-06)

@test_case(points=0, hidden=False)
def test_image_shape(vlb_kl):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.schedules import get_schedule
    x = torch.zeros(3, 1, 4, 4)
    kl = vlb_kl(x, x, torch.tensor([1, 50, 999]), x, torch.zeros(3, 1, 4, 4), get_schedule('cosine'))
    assert_tensor(kl, 'vlb_kl(x0 [3, 1, 4, 4], ...)', (3,))

