from otter.test_files import test_case

OK_FORMAT = False

name = "q4_sdedit_start"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(sdedit_start):
    import torch
    from course_lib.grading import assert_close
    alphas_cumprod = torch.linspace(0.999, 0.01, 1000)
    alphas_cumprod[[0, 300, 600, 900]] = torch.tensor([0.99, 0.64, 0.36, 0.04])
    timesteps = torch.tensor([900, 600, 300, 0])
    z0, noise = (torch.ones(1, 4, 2, 2), torch.full((1, 4, 2, 2), -1.0))
    for strength, t0, (a, b) in [(0.5, 300, (0.8, 0.6)), (0.75, 600, (0.6, 0.8)), (1.0, 900, (0.2, 0.96 ** 0.5)), (0.3, 0, (0.99 ** 0.5, 0.01 ** 0.5))]:
        got_t0, z = sdedit_start(z0, noise, alphas_cumprod, timesteps, strength)
        assert isinstance(got_t0, int) and got_t0 == t0, f't0 for strength {strength} with timesteps [900, 600, 300, 0] is {got_t0!r}, expected {t0}: the pipeline keeps the last floor(4 * {strength}) = {int(4 * strength)} timesteps and starts at the first of them.'
        assert_close(z, torch.full((1, 4, 2, 2), a - b), f'z_t0 at t0 = {t0} (alpha_bar = {alphas_cumprod[t0]:.2f}) for z0 = 1, noise = -1: {a:.3f} z0 + {b:.3f} noise', rtol=1e-05, atol=1e-06)

@test_case(points=0, hidden=False)
def test_shapes(sdedit_start):
    import torch
    from course_lib.grading import assert_tensor
    from course_lib.text_to_image import make_scheduler
    scheduler = make_scheduler('ddim')
    scheduler.set_timesteps(10)
    t0, z = sdedit_start(torch.zeros(3, 4, 8, 8), torch.ones(3, 4, 8, 8), scheduler.alphas_cumprod, scheduler.timesteps, 0.6)
    assert isinstance(t0, int), f't0 should be a Python int, not {type(t0).__name__}.'
    assert_tensor(z, 'z_t0 for latents [3, 4, 8, 8]', (3, 4, 8, 8))

