from otter.test_files import test_case

OK_FORMAT = False

name = "q2_ddim_step"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(ddim_step):
    import math
    import torch
    from course_lib.grading import assert_close
    one = torch.ones(1, 3)
    x0_hat = 2 - math.sqrt(3)
    out = ddim_step(one, one, 0.25, 1.0, 1.0, one)
    assert isinstance(out, tuple) and len(out) == 2, f'ddim_step should return the pair (x_prev, x0_hat), not {out!r:.60}.'
    x_prev, x0 = out
    assert_close(x0, torch.full((1, 3), x0_hat), 'x0_hat for alpha_bar_t = 0.25, x_t = 1, eps = 1: (1 - sqrt(0.75)) / 0.5')
    assert_close(x_prev, torch.full((1, 3), x0_hat), 'the step into the data (alpha_bar_prev = 1, eta = 1) from x_t = 1, eps = 1: x0_hat itself')
    x_prev, _ = ddim_step(one, one, 0.25, 0.5, 0.0, one)
    assert_close(x_prev, torch.full((1, 3), math.sqrt(0.5) * (x0_hat + 1)), 'the step 0.25 -> 0.5 with eta = 0: sqrt(0.5) x0_hat + sqrt(0.5) eps')
    x_prev, _ = ddim_step(one, one, 0.25, 0.5, 1.0, one)
    assert_close(x_prev, torch.full((1, 3), math.sqrt(0.5) * x0_hat + math.sqrt(1 / 6) + 1 / math.sqrt(3)), 'the step 0.25 -> 0.5 with eta = 1 and z = 1: sigma^2 = 1/3, so sqrt(0.5) x0_hat + sqrt(1/6) + sqrt(1/3)')
    xt, eps, z = (torch.full((1, 3), 2.0), torch.full((1, 3), -1.0), torch.full((1, 3), 0.5))
    x_prev, x0 = ddim_step(eps, xt, 0.36, 0.75, 1.0, z)
    x0_hat = (2 - math.sqrt(1 - 0.36) * -1) / math.sqrt(0.36)
    assert_close(x0, torch.full((1, 3), x0_hat), 'x0_hat for alpha_bar_t = 0.36, x_t = 2, eps = -1: (2 + sqrt(0.64)) / 0.6 = 14/3')
    sigma2 = (1 - 0.75) / (1 - 0.36) * (1 - 0.36 / 0.75)
    expected = math.sqrt(0.75) * x0_hat + math.sqrt(1 - 0.75 - sigma2) * -1 + math.sqrt(sigma2) * 0.5
    assert_close(x_prev, torch.full((1, 3), expected), 'the step 0.36 -> 0.75 with eta = 1 from x_t = 2, eps = -1, z = 0.5: sigma^2 = 13/64, so sqrt(0.75) 14/3 + sqrt(3/64) (-1) + sqrt(13/64) 0.5')

@test_case(points=0, hidden=False)
def test_shapes_and_determinism(ddim_step):
    import torch
    from course_lib.grading import assert_close, assert_tensor
    g = torch.Generator().manual_seed(0)
    eps, xt = (torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g))
    out = ddim_step(eps, xt, 0.3, 0.6, 0.0, torch.randn(2, 1, 4, 4, generator=g))
    assert isinstance(out, tuple) and len(out) == 2, 'ddim_step should return the pair (x_prev, x0_hat).'
    assert_tensor(out[0], 'x_prev', (2, 1, 4, 4))
    assert_tensor(out[1], 'x0_hat', (2, 1, 4, 4))
    assert out[0].dtype == torch.float32, f"x_prev should keep xt's dtype (float32), got {out[0].dtype}."
    again = ddim_step(eps, xt, 0.3, 0.6, 0.0, torch.randn(2, 1, 4, 4, generator=g))
    assert_close(again[0], out[0], 'x_prev for two different noises with eta = 0 (the step must be deterministic)')

