"""The ddpm_digits recipe trains with recipes.DDPM_DIGITS, the settings the DDPM digits page reads: one source."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from course_lib import recipes, trainer


class _Stop(Exception):
    pass


def test_recipe_defaults_are_the_settings():
    params = inspect.signature(recipes.ddpm_digits).parameters
    for name in ("steps", "seed", "batch_size"):
        assert params[name].default == getattr(recipes.DDPM_DIGITS, name), name


def test_settings_are_keyword_arguments_of_the_trainer():
    accepted = inspect.signature(trainer.train).parameters
    assert set(recipes.DDPM_DIGITS.train_kwargs()) <= set(accepted)
    assert recipes.DDPM_DIGITS.train_kwargs() == dataclasses.asdict(recipes.DDPM_DIGITS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipes.DDPM_DIGITS.batch_size = 128  # type: ignore[misc]


@pytest.mark.parametrize("overrides", [{}, {"steps": 7, "batch_size": 16, "seed": 3}])
def test_recipe_passes_the_settings_to_the_trainer(monkeypatch, tmp_path, overrides):
    seen = {}

    def fake_train(model, loss_fn, data, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(trainer, "train", fake_train)
    with pytest.raises(_Stop):
        recipes.ddpm_digits(snapshot_dir=str(tmp_path), **overrides)
    expected = dataclasses.replace(recipes.DDPM_DIGITS, **overrides).train_kwargs()
    assert {k: seen[k] for k in expected} == expected
