"""The VAE set's measured run: train a student's VAE on 16x16 digits and bound the held-out likelihood.

Kingma & Welling 2014 (the ELBO), scored in bits per dimension of 8-bit images (discretized Gaussian decoder,
Ho et al. 2020 Sec. 3.3). ``check_vae_config`` enforces ``VAE_BUDGET`` before anything trains.
"""

from __future__ import annotations

import json
from typing import Callable

import torch

from .measured import _final_loss, _fresh_models, _measured, _require, quick_mode, where_it_lives

VAE_BUDGET = {"max_steps": 1500, "max_batch_size": 256, "max_parameters": 300_000}
# How much better than on 360 of its training digits a model may code the 360 held-out ones (bits/dim) before it is
# taken to have trained on them: an honest model fits its training data at least as well, up to noise.
HELD_OUT_MARGIN = 0.25


def check_vae_config(make_model: Callable[[], torch.nn.Module], config: dict) -> dict:
    """Validate a student's ``make_model`` and ``TRAIN_CONFIG`` (steps, batch_size, lr) against ``VAE_BUDGET``.

    ``make_model()`` must build a new, randomly initialised ``course_lib.vae.VAE`` for 1-channel 16x16 images
    with the discretized Gaussian likelihood (so that its ELBO is a code length of 8-bit images).
    """
    if hasattr(type(make_model), "__run_function__"):  # the grader's proxy: check where the model is built
        return where_it_lives(check_vae_config, make_model, config)
    from ..vae import VAE

    if not callable(make_model):
        raise AssertionError(
            f"make_model should be a function that returns a new VAE; it is {type(make_model).__name__}."
        )
    if not isinstance(config, dict) or set(config) != {"steps", "batch_size", "lr"}:
        raise AssertionError(
            f"TRAIN_CONFIG should be a dict with exactly the keys steps, batch_size and lr; it is {config!r}."
        )
    b = VAE_BUDGET
    _require(
        [
            (
                isinstance(config["steps"], int) and 1 <= config["steps"] <= b["max_steps"],
                f"steps must be an int in 1 ... {b['max_steps']}",
            ),
            (
                isinstance(config["batch_size"], int) and 1 <= config["batch_size"] <= b["max_batch_size"],
                f"batch_size must be an int in 1 ... {b['max_batch_size']}",
            ),
            (isinstance(config["lr"], float) and 0 < config["lr"] <= 0.1, "lr must be a float in (0, 0.1]"),
        ]
    )

    def is_vae(model):
        if type(model) is not VAE:
            raise AssertionError(f"make_model() must return a course_lib.vae.VAE, not {type(model).__name__}.")
        c = model.config
        if (c.in_channels, c.image_size, c.likelihood) != (1, 16, "discretized_gaussian"):
            raise AssertionError(
                "the VAE must take 1-channel 16x16 images and keep "
                f"likelihood='discretized_gaussian'; it has in_channels={c.in_channels}, "
                f"image_size={c.image_size}, likelihood={c.likelihood!r}."
            )

    n = sum(p.numel() for p in _fresh_models(make_model, is_vae)[0].parameters())
    if n > b["max_parameters"]:
        raise AssertionError(f"the model has {n} parameters; the budget is {b['max_parameters']}.")
    return dict(config)


def train_digits_vae(
    make_model: Callable[[], torch.nn.Module], config: dict, seed: int, steps: int
) -> tuple[dict, dict, dict]:
    """The training half of ``vae_digits_elbo`` (in the grader: in the submission's process).

    Checks ``make_model`` and ``config`` (``check_vae_config``: a ``course_lib.vae.VAE``), trains it for ``steps``
    steps on the 1437 training digits rounded to 256 levels; returns the EMA model as plain data (its config as a
    dict, its state dict) and ``params``, ``train_s``, ``final_loss``.
    """
    import dataclasses

    from ..data import digits
    from ..distributions import quantize
    from ..vae import train_vae

    cfg = check_vae_config(make_model, config)
    torch.manual_seed(seed)
    model = make_model()
    x_train = quantize(digits("train", image_size=16)[0])
    result = train_vae(
        model, x_train, steps=steps, batch_size=cfg["batch_size"], lr=cfg["lr"], seed=seed, device="cpu", progress=False
    )
    ema = result.ema_model
    return (
        dataclasses.asdict(ema.config),
        {k: v.detach().clone() for k, v in ema.state_dict().items()},
        dict(
            params=sum(p.numel() for p in model.parameters()),
            train_s=round(result.wall_time_s, 1),
            final_loss=_final_loss(result),
        ),
    )


def vae_digits_elbo(make_model: Callable[[], torch.nn.Module], config: dict, *, seed: int = 0) -> dict:
    """Train ``make_model()`` on the 16x16 training digits and bound the held-out likelihood.

    Fixed procedure (the grader's): ``vae.train_vae`` with beta = 1 on the 1437 training digits rounded to 256
    grey levels, on the CPU with one thread and ``seed``; then ``vae.evaluate`` of the EMA model on the 360
    held-out digits with ``torch.Generator().manual_seed(seed)``. Repeated calls return (a copy of) the cached
    report.

    Returns:
        ``bits_per_dim`` (held-out -ELBO / (256 ln 2)), ``neg_elbo``, ``recon``, ``kl`` (nats per image),
        ``params``, ``train_s``, ``final_loss`` and ``quick``.
    """
    from ..data import digits
    from ..distributions import quantize
    from ..vae import VAE, VAEConfig, evaluate

    def run() -> dict:
        if not isinstance(config, dict) or not isinstance(config.get("steps"), int):
            raise AssertionError(f"TRAIN_CONFIG should be a dict with an int 'steps'; it is {config!r}.")
        steps = min(config["steps"], 10) if quick_mode() else config["steps"]
        vae_config, weights, stats = where_it_lives(train_digits_vae, make_model, dict(config), seed, steps)
        model = VAE(VAEConfig(**vae_config))  # the course's VAE, rebuilt from plain data: evaluated by this code
        model.load_state_dict(weights)
        c, n = model.config, sum(p.numel() for p in model.parameters())
        if (c.in_channels, c.image_size, c.likelihood) != (1, 16, "discretized_gaussian") or n > VAE_BUDGET[
            "max_parameters"
        ]:
            raise AssertionError(
                f"the trained VAE has {n} parameters (budget {VAE_BUDGET['max_parameters']}) and "
                f"in_channels={c.in_channels}, image_size={c.image_size}, likelihood={c.likelihood!r}"
                " (1, 16, 'discretized_gaussian' expected)."
            )
        x_test = quantize(digits("test", image_size=16)[0])
        ev = evaluate(model, x_test, generator=torch.Generator().manual_seed(seed))
        seen = evaluate(
            model,
            quantize(digits("train", image_size=16)[0][: len(x_test)]),
            generator=torch.Generator().manual_seed(seed),
        )
        if ev.bits_per_dim < seen.bits_per_dim - HELD_OUT_MARGIN:
            raise AssertionError(
                f"the model codes the held-out digits in {ev.bits_per_dim:.2f} bits/dim and its own "
                f"training digits in {seen.bits_per_dim:.2f}: a model fits what it was trained on "
                "best, so this one has seen the held-out digits."
            )
        return dict(
            bits_per_dim=ev.bits_per_dim,
            neg_elbo=ev.neg_elbo,
            recon=ev.recon,
            kl=ev.kl,
            train_bits_per_dim=seen.bits_per_dim,
            **{**stats, "params": n},
            quick=quick_mode(),
        )

    key = ("vae_digits_elbo", id(make_model), json.dumps(config, sort_keys=True, default=str), seed, quick_mode())
    return _measured(key, run)
