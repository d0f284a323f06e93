"""Scale-out through Hugging Face accelerate: two CPU processes (DDP over gloo) train as one process does.

``test_two_cpu_processes_train_like_one`` launches this file with ``accelerate launch`` (2 processes on the CPU);
there it runs a tiny recipe twice (plain, then with 2 gradient-accumulation steps) and process 0 writes each
checkpoint. The test compares them with one plain process: the checkpoint loads with its SHA check, and the EMA
weights, the trained weights and the loss curve equal the one-process run's to float tolerance.

Why equality is expected: the tiny recipe draws its noise (t, eps) once per example, with the data, so its loss is a
function of the weights and the batch alone; the two processes split every global batch of the shared permutation,
and DDP's average of the two half-batch mean gradients is the one-process gradient of the whole batch.

Note: ``accelerate launch --cpu --num_processes 2`` starts ONE process in accelerate 1.15 unless an MPI hostfile is
configured (its simple launcher; huggingface/accelerate#2741). Two gloo processes come from the torchrun launcher:
``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2``, which is what the test runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from course_lib.checkpoints import load_verified, save_checkpoint
from course_lib.losses import l_simple
from course_lib.schedules import get_schedule
from course_lib.trainer import PROCESS_SEED_STRIDE, process_generator, tensor_batches, train

T, STEPS, BATCH, SEED, WIDTH = 100, 30, 32, 0, 32
SCHEDULE = get_schedule("linear", T)


class TinyDenoiser(nn.Module):
    """eps_theta(x_t, t) for 2-D points: an MLP on (x_t, t / T). x_t [B, 2], t int64 [B] in 0..T-1 -> [B, 2]."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )

    def forward(self, xt, t):
        return self.net(torch.cat([xt, t[:, None].float() / T], 1))


def tiny_data(seed: int, n: int = 256):
    """(x0 [n, 2] on two blobs at +-(0.5, -0.5), t [n], eps [n, 2]): the noise is drawn once, per example."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, (n, 1), generator=g) * 2 - 1
    x0 = torch.randn(n, 2, generator=g) * 0.1 + sign * torch.tensor([0.5, -0.5])
    return x0, torch.randint(0, T, (n,), generator=g), torch.randn(n, 2, generator=g)


def loss_fn(model, batch):
    x0, t, eps = batch
    return l_simple(model, x0, SCHEDULE, t=t, noise=eps)


def tiny_recipe(directory: Path, *, accumulation: int = 1, name: str = "tiny"):
    """A recipe in miniature: seed, build, ``train``, and on the main process save a checkpoint (EMA) plus the
    trained weights and the last step's gradients (``<name>_model.safetensors``, not a checkpoint). Returns the
    ``TrainResult``."""
    torch.manual_seed(SEED)
    result = train(
        TinyDenoiser(),
        loss_fn,
        tiny_data(SEED + 1),
        steps=STEPS,
        batch_size=BATCH,
        lr=3e-3,
        ema_decay=0.9,
        gradient_accumulation_steps=accumulation,
        seed=SEED,
        device="cpu",
        progress=False,
    )
    if result.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        grads = {f"grad.{k}": p.grad for k, p in result.model.named_parameters()}
        save_file({**result.model.state_dict(), **grads}, str(directory / f"{name}_model.safetensors"))
        save_checkpoint(
            name,
            result.ema_model,
            model_kind="tiny_denoiser",
            config={"width": WIDTH},
            recipe="tests/test_scale_out.py",
            steps=STEPS,
            wall_time_s=result.wall_time_s,
            metrics={"losses": result.losses, "num_processes": result.num_processes},
            directory=directory,
        )
    return result


# --- in one process ------------------------------------------------------------------------------------------


def test_shards_of_all_processes_and_micro_steps_are_the_one_process_batch():
    x = torch.arange(48)
    whole = tensor_batches((x,), 12, torch.Generator().manual_seed(0))
    shards = [
        tensor_batches((x,), 12, torch.Generator().manual_seed(0), num_processes=2, process_index=r, micro_batches=3)
        for r in range(2)
    ]
    for _ in range(6):  # 1.5 epochs
        batch = next(whole)[0]  # micro-step j of process r holds rows (2 j + r) * 2 ... (2 j + r) * 2 + 1
        micro = [[next(shards[r])[0] for r in range(2)] for _ in range(3)]
        assert all(p.shape == (2,) for m in micro for p in m)
        torch.testing.assert_close(torch.cat([p for m in micro for p in m]), batch)


def test_batch_size_must_split_over_processes_and_accumulation_steps():
    with pytest.raises(ValueError, match=r"multiple of 6\. Use batch_size=30"):
        next(tensor_batches((torch.arange(64),), 32, torch.Generator(), num_processes=3, micro_batches=2))
    with pytest.raises(ValueError, match="process_index"):
        next(tensor_batches((torch.arange(64),), 32, torch.Generator(), num_processes=2, process_index=2))
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        train(
            nn.Linear(2, 2),
            lambda m, b: m(b[0]).sum(),
            (torch.randn(8, 2),),
            steps=1,
            batch_size=4,
            gradient_accumulation_steps=0,
            device="cpu",
            progress=False,
        )


def test_accumulation_in_one_process_equals_the_whole_batch(tmp_path):
    one, two = tiny_recipe(tmp_path / "a"), tiny_recipe(tmp_path / "b", accumulation=2)
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for a, b in zip(one.model.parameters(), two.model.parameters()):  # the last step's gradient: the 1/k is there
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(one.losses), torch.tensor(two.losses), atol=1e-6, rtol=1e-5)


def test_process_seeds_and_checkpoint_writes_follow_the_rank(monkeypatch, tmp_path):
    torch.testing.assert_close(
        torch.randn(3, generator=process_generator(5)), torch.randn(3, generator=torch.Generator().manual_seed(5))
    )
    monkeypatch.setenv("RANK", "1")
    torch.testing.assert_close(
        torch.randn(3, generator=process_generator(5)),
        torch.randn(3, generator=torch.Generator().manual_seed(5 + PROCESS_SEED_STRIDE)),
    )
    with pytest.warns(UserWarning, match="only process 0 writes"):
        save_checkpoint(
            "x",
            nn.Linear(2, 2),
            model_kind="linear",
            config={},
            recipe="-",
            steps=0,
            wall_time_s=0,
            metrics={},
            directory=tmp_path,
        )
    assert not any(tmp_path.iterdir())


def test_cli_refuses_a_batch_size_the_recipe_does_not_take(capsys):
    from course_lib.train import main

    with pytest.raises(SystemExit):
        main(["digit_classifier", "--batch-size", "64"])
    assert "fixed batch size" in capsys.readouterr().err


# --- two processes ----------------------------------------------------------------------------------------------


def test_two_cpu_processes_train_like_one(tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf")}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_MIXED_PRECISION"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
        __file__,
        str(tmp_path / "two"),
    ]
    start = time.perf_counter()
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    launch_s = time.perf_counter() - start
    assert run.returncode == 0, f"accelerate launch failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    reports = sorted(p.read_text() for p in (tmp_path / "two").glob("*.report"))  # files: stdout lines interleave
    assert reports == [
        "process 0 of 2: tiny saved",
        "process 0 of 2: tiny_accum saved",
        "process 1 of 2: tiny skipped saving",
        "process 1 of 2: tiny_accum skipped saving",
    ], run.stdout

    start = time.perf_counter()
    one = tiny_recipe(tmp_path / "one")
    one_s = time.perf_counter() - start
    assert sum(one.losses[-5:]) < 0.8 * sum(one.losses[:5]), "the tiny recipe should learn, or equality means little"
    gaps = {}
    for name in ("tiny", "tiny_accum"):
        ema, entry = load_verified(name, expected_model="tiny_denoiser", directory=tmp_path / "two")
        assert entry["metrics"]["num_processes"] == 2 and entry["steps"] == STEPS
        weights = load_file(str(tmp_path / "two" / f"{name}_model.safetensors"))
        # AdamW's step hardly depends on the gradient's scale, so equal weights would not reveal a sum instead of a
        # mean over processes, or a missing 1/k: the last step's gradients (left in .grad) are compared too.
        grads = {k[5:]: weights.pop(k) for k in list(weights) if k.startswith("grad.")}
        ref_grads = {k: p.grad for k, p in one.model.named_parameters()}
        for mine, theirs in ((ema, one.ema_model.state_dict()), (weights, one.model.state_dict()), (grads, ref_grads)):
            assert mine.keys() == theirs.keys()
            for key in mine:
                torch.testing.assert_close(mine[key], theirs[key], atol=1e-5, rtol=1e-4)
        losses = torch.tensor(entry["metrics"]["losses"])
        torch.testing.assert_close(losses, torch.tensor(one.losses), atol=1e-6, rtol=1e-5)
        gaps[name] = {
            "max_abs_weight_diff": max((weights[k] - one.model.state_dict()[k]).abs().max().item() for k in weights),
            "max_abs_ema_diff": max((ema[k] - one.ema_model.state_dict()[k]).abs().max().item() for k in ema),
            "max_abs_grad_diff": max((grads[k] - ref_grads[k]).abs().max().item() for k in grads),
            "max_abs_grad": max(g.abs().max().item() for g in ref_grads.values()),
            "max_abs_loss_diff": (losses - torch.tensor(one.losses)).abs().max().item(),
            "train_wall_s_two_processes": entry["wall_time_s"],
        }
    print(
        json.dumps(
            {
                "launch_wall_s": round(launch_s, 1),
                "one_process_recipe_s": round(one_s, 2),
                "train_wall_s_one_process": round(one.wall_time_s, 2),
                **gaps,
            },
            indent=1,
        )
    )


if __name__ == "__main__":  # what each launched process runs: python tests/test_scale_out.py OUT_DIR
    from course_lib.trainer import process_index

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, accumulation in (("tiny", 1), ("tiny_accum", 2)):
        result = tiny_recipe(out, accumulation=accumulation, name=name)
        (out / f"{name}.{process_index()}.report").write_text(
            f"process {process_index()} of {result.num_processes}: {name} "
            f"{'saved' if result.is_main_process else 'skipped saving'}"
        )
