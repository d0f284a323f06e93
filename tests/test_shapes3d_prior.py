"""Chapter 7's prior and its judge: the generalised judge still is the shipped 2-D judge, the 3-D judge has the 3-D
heads, and the three 3-D recipes run end to end on tiny data into a folder of their own, resume, and write
checkpoints their manifests verify."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from course_lib.checkpoints import load_verified, sha256_file
from course_lib.data import ATTRIBUTES, COLOURS, POSITIONS, SHAPES, SIZES, caption, render_shape
from course_lib.judge import JudgeConfig, ShapesJudge, adherence
from course_lib.judge3d import ATTRIBUTES3D, JUDGE3D, adherence3d, load_judge3d
from course_lib.recipes import RECIPES
from course_lib.recipes.shapes3d import shapes3d_autoencoder, shapes3d_data, shapes3d_judge, tiny_sd3d


def test_the_generalised_judge_is_the_shipped_2d_judge():
    """The checkpoint's config names no attributes, so the judge gets the 2-D heads; the state loads strictly, each
    head's logits are the stored linear layer of the shared features, and canonical renders are read back."""
    judge = ShapesJudge.from_pretrained()
    state, entry = load_verified("shapes_judge", expected_model="shapes_judge")
    assert "attributes" not in entry["config"]
    assert judge.attributes == ATTRIBUTES and list(judge.heads) == list(ATTRIBUTES)
    assert set(judge.state_dict()) == set(state)
    prompts = [(s, c, z, p) for s in SHAPES for c in COLOURS[:2] for z in SIZES for p in POSITIONS[:3]]
    images = torch.stack([render_shape(*prompt) for prompt in prompts])
    with torch.no_grad():
        logits, features = judge(images), judge.features(images)
    for name in ATTRIBUTES:
        expected = F.linear(features, state[f"heads.{name}.weight"], state[f"heads.{name}.bias"])
        torch.testing.assert_close(logits[name], expected)
    captions = [
        caption(SHAPES.index(s), COLOURS.index(c), SIZES.index(z), POSITIONS.index(p)) for s, c, z, p in prompts
    ]
    assert adherence(judge, images, captions)["all"] >= 0.97


def test_the_3d_judge_has_the_3d_heads_in_order_through_a_sorted_manifest():
    judge = ShapesJudge(JUDGE3D)
    assert list(judge.heads) == ["shape", "colour", "view"]
    assert {k: h.out_features for k, h in judge.heads.items()} == {k: len(v) for k, v in ATTRIBUTES3D.items()}
    again = JudgeConfig(**json.loads(json.dumps(JUDGE3D.to_dict(), sort_keys=True)))
    assert again == JUDGE3D and list(ShapesJudge(again).heads) == ["shape", "colour", "view"]
    out = judge(torch.zeros(2, 3, 32, 32))
    assert [tuple(v.shape) for v in out.values()] == [(2, 4), (2, 6), (2, 4)]


def test_judges_refuse_the_other_worlds_captions():
    judge2d, judge3d = ShapesJudge(), ShapesJudge(JUDGE3D)
    images = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="this judge reads"):
        adherence3d(judge2d, images, ["a red cube, side view"])
    with pytest.raises(ValueError, match="cannot parse caption"):
        adherence(judge3d, images, ["a red cube, side view"])
    with pytest.raises(ValueError, match="distinct names"):
        JudgeConfig(attributes=(("shape", ("cube",)),))
    assert set(adherence3d(judge3d, images, ["a red cube, side view"])) == {"shape", "colour", "view", "all"}


def test_the_3d_recipes_run_end_to_end_resume_and_verify(tmp_path):
    from course_lib.text_to_image import generate, load_pipeline, verify_pipeline

    assert {"shapes3d_judge", "shapes3d_autoencoder", "tiny_sd3d"} <= set(RECIPES)
    runs, out = tmp_path / "runs", tmp_path / "checkpoints"
    tiny = dict(snapshot_dir=str(runs), out_dir=str(out), batch_size=8)
    metrics = shapes3d_judge(steps=2, train_images=16, test_images=16, **tiny)
    assert set(metrics["real_adherence"]) == {"shape", "colour", "view", "all"}
    assert (runs / "shapes3d_16_0.safetensors").exists()  # the renders, cached for a resumed run
    cached, fresh = shapes3d_data(16, 0, runs), shapes3d_data(16, 0)
    assert torch.equal(cached.images, fresh.images) and cached.captions == fresh.captions
    shapes3d_judge(steps=3, train_images=16, test_images=16, resume=True, **tiny)  # one more step from the state
    entry = json.loads((out / "manifest.json").read_text())["shapes3d_judge"]
    assert entry["steps"] == 3 and entry["sha256"] == sha256_file(out / entry["file"])
    assert load_judge3d(directory=out).attributes == ATTRIBUTES3D
    with pytest.raises(FileNotFoundError, match="--resume"):
        shapes3d_judge(steps=3, resume=True, train_images=16, snapshot_dir=str(tmp_path / "elsewhere"))

    metrics = shapes3d_autoencoder(steps=2, train_images=16, test_images=8, **tiny)
    assert metrics["psnr_db"] > 0 and "reconstruction_adherence" in metrics

    metrics = tiny_sd3d(steps=2, train_images=16, samples_per_prompt=1, num_inference_steps=1, **tiny)
    for g in ("g1", "g2", "g4"):
        assert set(metrics[g]) == {"shape", "colour", "view", "all", "view_by_word"}
    manifest = verify_pipeline(out / "tiny_sd3d")
    assert manifest["recipe"] == "python -m course_lib.train tiny_sd3d" and manifest["steps"] == 2
    assert all((out / "tiny_sd3d" / f).stat().st_size <= 5 * 2**20 for f in manifest["files"])
    pipe = load_pipeline(out / "tiny_sd3d", scheduler="ddim")
    image = generate(
        pipe,
        ["a red cube, front view"],
        guidance_scale=2.0,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert image.shape == (1, 3, 32, 32)
