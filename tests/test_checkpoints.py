"""Checkpoints: safetensors round trip, SHA-256 verification, and the shipped files against their manifest."""

import json

import pytest
import torch

from course_lib.checkpoints import (
    CHECKPOINT_DIR,
    CheckpointError,
    load_verified,
    read_manifest,
    save_checkpoint,
    sha256_file,
)
from course_lib.unet import UNet, UNetConfig

CONFIG = UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,))


def _save(tmp_path, name="tiny", **kw):
    model = UNet(CONFIG)
    path = save_checkpoint(
        name,
        model,
        model_kind="unet",
        config=CONFIG.to_dict(),
        recipe="test",
        steps=1,
        wall_time_s=0.0,
        metrics={},
        directory=tmp_path,
        **kw,
    )
    return model, path


def test_round_trip(tmp_path):
    model, path = _save(tmp_path)
    state, entry = load_verified("tiny", directory=tmp_path, expected_model="unet")
    assert entry["sha256"] == sha256_file(path) and entry["config"]["base_channels"] == 8
    for k, v in model.state_dict().items():
        torch.testing.assert_close(state[k], v)


def test_float16_storage_halves_the_file(tmp_path):
    _, p32 = _save(tmp_path, "a")
    _, p16 = _save(tmp_path, "b", dtype=torch.float16)
    assert p16.stat().st_size < 0.6 * p32.stat().st_size
    state, _ = load_verified("b", directory=tmp_path)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_tampered_file_is_refused(tmp_path):
    _, path = _save(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_verified("tiny", directory=tmp_path)


def test_unknown_missing_and_wrong_kind_are_refused(tmp_path):
    _, path = _save(tmp_path)
    with pytest.raises(CheckpointError, match="No checkpoint named"):
        load_verified("nope", directory=tmp_path)
    with pytest.raises(CheckpointError, match="not a 'vae'"):
        load_verified("tiny", directory=tmp_path, expected_model="vae")
    path.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_verified("tiny", directory=tmp_path)


def test_shipped_checkpoints_match_their_manifest():
    manifest = read_manifest()
    assert manifest, "no shipped checkpoints"
    files = {p.name for p in CHECKPOINT_DIR.glob("*.safetensors")}
    assert files == {e["file"] for e in manifest.values()}, "every file has exactly one manifest entry"
    for name, entry in manifest.items():
        path = CHECKPOINT_DIR / entry["file"]
        assert sha256_file(path) == entry["sha256"], name
        assert path.stat().st_size <= 5 * 1024 * 1024, name
        for key in ("recipe", "steps", "wall_time_s", "hardware", "metrics", "config", "model"):
            assert key in entry, f"{name} lacks {key}"
        assert not path.read_bytes()[:2] == b"\x80\x02", "pickles are not allowed"


def test_shipped_models_load():
    manifest = read_manifest()
    if "ddpm_digits" in manifest:
        model = UNet.from_pretrained("ddpm_digits")
        assert model(torch.zeros(1, 1, 16, 16), torch.tensor([5])).shape == (1, 1, 16, 16)


def test_shipped_guidance_models_load_and_take_their_inputs():
    manifest = read_manifest()
    if "noisy_digit_classifier" in manifest:
        from course_lib.noisy_classifier import NoisyClassifier

        clf = NoisyClassifier.from_pretrained("noisy_digit_classifier")
        assert clf(torch.zeros(2, 1, 16, 16), torch.tensor([0, 999])).shape == (2, 10)
    if "cfg_digits" in manifest:
        model = UNet.from_pretrained("cfg_digits")
        assert model.config.num_classes == 10
        eps = model(torch.zeros(2, 1, 16, 16), torch.tensor([5, 5]), torch.tensor([3, 10]))  # a digit, the null label
        assert eps.shape == (2, 1, 16, 16)
