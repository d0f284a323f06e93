from otter.test_files import test_case

OK_FORMAT = False

name = "q3_text_cfg"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(text_cfg, cfg_batch):
    import torch
    from course_lib.grading import assert_close
    eps_u, eps_c = (torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, -1.0]]))
    assert_close(text_cfg(eps_u, eps_c, 7.5), torch.tensor([[8.5, -7.5]]), 'text_cfg for eps_uncond = (1, 0), eps_cond = (2, -1), guidance_scale = 7.5: eps_u + 7.5 (eps_c - eps_u)')
    assert_close(text_cfg(eps_u, eps_c, 1.0), eps_c, 'text_cfg at guidance_scale = 1 (the conditional model alone)')
    assert_close(text_cfg(eps_u, eps_c, 0.0), eps_u, "text_cfg at guidance_scale = 0 (the empty prompt's prediction)")
    latents = torch.arange(8.0).view(2, 1, 2, 2)
    cond, uncond = (torch.ones(2, 3, 4), torch.zeros(2, 3, 4))
    latent_input, context = cfg_batch(latents, cond, uncond)
    assert_close(latent_input, torch.cat([latents, latents]), "cfg_batch's latent_input for latents [2, 1, 2, 2]: the same latents in both halves")
    assert_close(context, torch.cat([uncond, cond]), "cfg_batch's context for cond = 1 and uncond = 0: the empty prompt's states (the unconditional half) first, as the pipeline orders them")

@test_case(points=0, hidden=False)
def test_shapes(text_cfg, cfg_batch):
    import torch
    from course_lib.grading import assert_tensor
    assert_tensor(text_cfg(torch.zeros(3, 4, 8, 8), torch.ones(3, 4, 8, 8), 4.0), 'text_cfg on predictions [3, 4, 8, 8]', (3, 4, 8, 8))
    latent_input, context = cfg_batch(torch.zeros(3, 4, 8, 8), torch.ones(3, 16, 64), torch.zeros(3, 16, 64))
    assert_tensor(latent_input, "cfg_batch's latent_input for latents [3, 4, 8, 8]", (6, 4, 8, 8))
    assert_tensor(context, "cfg_batch's context for text states [3, 16, 64]", (6, 16, 64))

