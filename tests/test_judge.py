"""The shapes world's judge, checked before it judges any generated image: real renders are read back almost
perfectly, the same renders paired with other captions score at chance, and bad input is refused with a message."""

from __future__ import annotations

import pytest
import torch

from course_lib.data import COLOURS, POSITIONS, SHAPES, SIZES, caption, render_shape, shapes
from course_lib.judge import ShapesJudge, adherence, prompt_attributes


@pytest.fixture(scope="module")
def judge():
    return ShapesJudge.from_pretrained()


@pytest.fixture(scope="module")
def held_out():
    return shapes(600, seed=4242)  # a seed no recipe trains on


def test_real_renders_follow_their_captions(judge, held_out):
    report = adherence(judge, held_out.images, held_out.captions)
    assert report["all"] >= 0.97 and min(report[k] for k in ("shape", "colour", "size", "position")) >= 0.98, report


def test_every_canonical_render_is_read_back(judge):
    """All 6 x 6 x 2 x 5 prompts, drawn without jitter: the judge names each attribute of each one."""
    prompts = [(s, c, z, p) for s in SHAPES for c in COLOURS for z in SIZES for p in POSITIONS]
    images = torch.stack([render_shape(*prompt) for prompt in prompts])
    captions = [
        caption(SHAPES.index(s), COLOURS.index(c), SIZES.index(z), POSITIONS.index(p)) for s, c, z, p in prompts
    ]
    assert adherence(judge, images, captions)["all"] >= 0.97


def test_wrong_captions_score_at_chance(judge, held_out):
    """Shuffled captions: each attribute agrees about as often as two independent draws do (1/K), all four almost
    never. A judge that ignored the image, or read the caption's own statistics, would not look like this."""
    shuffled = [
        held_out.captions[i] for i in torch.randperm(len(held_out.captions), generator=torch.Generator().manual_seed(0))
    ]
    report = adherence(judge, held_out.images, shuffled)
    want = prompt_attributes(shuffled)
    for name, values in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("position", POSITIONS)):
        chance = sum(
            (want[name] == k).float().mean().item() * (getattr(held_out, name) == k).float().mean().item()
            for k in range(len(values))
        )
        assert abs(report[name] - chance) < 0.06, (name, report[name], chance)
    assert report["all"] < 0.03, report


def test_bad_input_says_what_is_wrong(judge, held_out):
    with pytest.raises(ValueError, match="one caption per image"):
        adherence(judge, held_out.images[:3], held_out.captions[:2])
    with pytest.raises(ValueError, match=r"RGB images \[B, 3, 32, 32\]"):
        adherence(judge, held_out.images[:2, :1], held_out.captions[:2])
    with pytest.raises(ValueError, match="cannot parse caption"):
        adherence(judge, held_out.images[:1], ["a red thing"])
    with pytest.raises(ValueError, match="wrap it"):
        prompt_attributes("a large red circle at the top left")
    with pytest.raises(ValueError, match="no images"):
        adherence(judge, held_out.images[:0], [])


def test_render_captions_draws_what_the_captions_say_with_jitter(judge):
    from course_lib.data import render_captions

    captions = list(shapes(200, seed=31).captions)
    images = render_captions(captions, seed=2)
    assert adherence(judge, images, captions)["all"] >= 0.97
    again = render_captions(captions[:2] * 2, seed=5)
    assert (again[0] - again[2]).abs().max() > 0  # the same caption twice: jittered, not identical
    with pytest.raises(ValueError, match="cannot parse caption"):
        render_captions(["a big red circle"])
