from otter.test_files import test_case

OK_FORMAT = False

name = "q4_train"
points = 6

@test_case(points=0, hidden=False)
def test_within_budget(make_model, TRAIN_CONFIG):
    import torch
    from course_lib.vae import VAE
    assert callable(make_model), 'make_model should be a function that returns a new VAE.'
    assert isinstance(TRAIN_CONFIG, dict) and set(TRAIN_CONFIG) == {'steps', 'batch_size', 'lr'}, 'TRAIN_CONFIG should be a dict with exactly the keys steps, batch_size and lr.'
    steps, batch_size, lr = (TRAIN_CONFIG['steps'], TRAIN_CONFIG['batch_size'], TRAIN_CONFIG['lr'])
    assert isinstance(steps, int) and 1 <= steps <= 1500, 'steps must be an int in 1 ... 1500.'
    assert isinstance(batch_size, int) and 1 <= batch_size <= 256, 'batch_size must be an int in 1 ... 256.'
    assert isinstance(lr, float) and 0 < lr <= 0.1, 'lr must be a float in (0, 0.1].'
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(make_model())
    model = models[0]
    assert type(model) is VAE, f'make_model() must return a course_lib.vae.VAE, not {type(model).__name__}.'
    c = model.config
    assert (c.in_channels, c.image_size, c.likelihood) == (1, 16, 'discretized_gaussian'), "the VAE must take 1-channel 16x16 images and keep likelihood='discretized_gaussian'."
    n = sum((p.numel() for p in model.parameters()))
    assert n <= 300000, f'the model has {n} parameters; the budget is 300 000.'
    assert not all((torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters()))), 'make_model() returned the same weights for two seeds: build a new, randomly initialised model.'

