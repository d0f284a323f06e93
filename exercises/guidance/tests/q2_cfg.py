from otter.test_files import test_case

OK_FORMAT = False

name = "q2_cfg"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(cfg_eps, cfg_eps_diffusers):
    import torch
    from course_lib.grading import assert_close
    eps_c, eps_u = (torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 1.0]]))
    assert_close(cfg_eps(eps_c, eps_u, 3.0), torch.tensor([[5.0, -7.0]]), 'cfg_eps for eps_cond = (2, -1), eps_uncond = (1, 1), w = 3: (1 + 3) eps_cond - 3 eps_uncond')
    assert_close(cfg_eps(eps_c, eps_u, 0.0), eps_c, 'cfg_eps at w = 0 (the conditional model itself)')
    doubled = torch.cat([eps_u, eps_c])
    assert_close(cfg_eps_diffusers(doubled, 4.0), torch.tensor([[5.0, -7.0]]), 'cfg_eps_diffusers for the batch [eps_uncond = (1, 1), eps_cond = (2, -1)] and guidance_scale = 4: eps_uncond + 4 (eps_cond - eps_uncond)')
    assert_close(cfg_eps_diffusers(doubled, 1.0), eps_c, 'cfg_eps_diffusers at guidance_scale = 1 (no guidance)')

@test_case(points=0, hidden=False)
def test_shapes(cfg_eps, cfg_eps_diffusers):
    import torch
    from course_lib.grading import assert_tensor
    a, b = (torch.zeros(3, 1, 4, 4), torch.ones(3, 1, 4, 4))
    assert_tensor(cfg_eps(a, b, 1.5), 'cfg_eps on predictions [3, 1, 4, 4]', (3, 1, 4, 4))
    assert_tensor(cfg_eps_diffusers(torch.cat([a, b]), 2.5), 'cfg_eps_diffusers on the doubled batch [6, 1, 4, 4]', (3, 1, 4, 4))

