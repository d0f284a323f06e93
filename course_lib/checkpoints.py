"""Shipped checkpoints: safetensors files plus a manifest with their SHA-256 and how they were made.

Loading verifies the hash against ``checkpoints/manifest.json`` and refuses anything else. Nothing is
ever unpickled: a safetensors file holds only named tensors and string metadata.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
MAX_BYTES = 5 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint is missing, unknown, or does not match its manifest."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(directory: str | Path = CHECKPOINT_DIR) -> dict:
    path = Path(directory) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def hardware() -> str:
    """A one-line description of the machine that trained a checkpoint."""
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def save_checkpoint(
    name: str,
    model: nn.Module | dict[str, Tensor],
    *,
    model_kind: str,
    config: dict,
    recipe: str,
    steps: int,
    wall_time_s: float,
    metrics: dict,
    directory: str | Path = CHECKPOINT_DIR,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``<name>.safetensors`` and its manifest entry; return the file's path.

    Args:
        model: the module whose ``state_dict()`` is saved, or a state dict itself (e.g. ``lora.lora_state_dict``).
        model_kind: the loader that rebuilds it ("unet", "classifier", "vae", ...).
        config: the keyword arguments of the model's config dataclass (JSON-serialisable).
        recipe: the command that re-creates it, e.g. "python -m course_lib.train ddpm_digits".
        metrics: what the checkpoint measured after training (e.g. {"sample_accuracy": 0.97}).
        dtype: storage dtype for floating tensors (float16 halves the file; loading casts back to float32).
        directory: where to write (the package's shipped checkpoints by default; a test or a long run of your own
            passes its own folder).

    Under ``accelerate launch`` only process 0 writes; on the other processes this warns and writes nothing, so a
    checkpoint and its manifest entry are written once (recipes skip the call there: ``TrainResult.is_main_process``).
    """
    from .trainer import process_index

    directory = Path(directory)
    if process_index() != 0:
        warnings.warn(
            f"save_checkpoint({name!r}) on process {process_index()} of a launched run wrote nothing: only "
            "process 0 writes checkpoints. Guard the call with `if result.is_main_process:`.",
            stacklevel=2,
        )
        return directory / f"{name}.safetensors"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.safetensors"
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in (model if isinstance(model, dict) else model.state_dict()).items()
    }
    save_file(state, str(path), metadata={"name": name, "model": model_kind})
    size = path.stat().st_size
    if size > MAX_BYTES:
        path.unlink()
        raise CheckpointError(
            f"{name} would be {size / 2**20:.1f} MiB; shipped checkpoints must be <= 5 MiB. "
            "Use a smaller model or dtype=torch.float16."
        )
    manifest = read_manifest(directory)
    manifest[name] = {
        "file": path.name,
        "sha256": sha256_file(path),
        "bytes": size,
        "model": model_kind,
        "config": config,
        "recipe": recipe,
        "steps": steps,
        "wall_time_s": round(wall_time_s, 1),
        "hardware": hardware(),
        "metrics": metrics,
        "torch": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load_verified(
    name: str, *, expected_model: str | None = None, directory: str | Path = CHECKPOINT_DIR
) -> tuple[dict[str, Tensor], dict]:
    """Return (state_dict as float32, manifest entry) after checking the file's SHA-256 against the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if name not in manifest:
        raise CheckpointError(
            f"No checkpoint named {name!r} in {directory / 'manifest.json'}; "
            f"available: {sorted(manifest)}. Re-create one with `python -m course_lib.train`."
        )
    entry = manifest[name]
    if expected_model is not None and entry["model"] != expected_model:
        raise CheckpointError(
            f"{name!r} holds a {entry['model']!r} model, not a {expected_model!r}; load it with the matching class."
        )
    path = directory / entry["file"]
    if not path.exists():
        raise CheckpointError(f"Checkpoint file {path} is missing; reinstall course_lib or run `{entry['recipe']}`.")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"SHA-256 of {path} is {digest[:12]}..., the manifest expects "
            f"{entry['sha256'][:12]}...; the file was changed or corrupted. Refusing to load it. "
            f"Reinstall course_lib or re-create it with `{entry['recipe']}`."
        )
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
    return state, entry
