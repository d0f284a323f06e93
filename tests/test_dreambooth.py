"""DreamBooth's measurements on real renders, its data and its bad input."""

import pytest
import torch

from course_lib import dreambooth as D
from course_lib.data import render_captions
from course_lib.judge import ShapesJudge


@pytest.fixture(scope="module")
def judge():
    return ShapesJudge.from_pretrained()


def test_subject_scores_read_renders(judge):
    captions = [
        "a large red heart at the bottom right",
        "a small blue heart at the top left",
        "a large blue circle at the bottom right",
    ]
    images = render_captions(captions)
    assert D.subject_scores(judge, images, ["a sks shape at the bottom right"] * 3) == pytest.approx(
        {"shape": 2 / 3, "position": 2 / 3, "all": 1 / 3}
    )
    assert D.subject_scores(judge, images, ["a blue sks shape"] * 3) == pytest.approx(
        {"shape": 2 / 3, "colour": 2 / 3, "all": 1 / 3}
    )
    with pytest.raises(ValueError, match="one prompt per image"):
        D.subject_scores(judge, images, ["a sks shape"])


def test_subject_captions_are_the_held_out_shape_in_one_colour(judge):
    captions = D.subject_captions(5, seed=1)
    assert len(set(captions)) == 5 and all(" red heart at the " in c for c in captions)
    assert D.subject_scores(judge, render_captions(captions), captions)["all"] == 1.0


def test_mean_pairwise_distance():
    a = torch.zeros(2, 3, 4, 4)
    a[1] += 0.5  # 48 pixels apart by 0.5: distance 0.5 * sqrt(48)
    assert D.mean_pairwise_distance(a) == pytest.approx(0.5 * 48**0.5)
    with pytest.raises(ValueError, match="at least two"):
        D.mean_pairwise_distance(a[:1])


def test_dreambooth_data_rows():
    from course_lib.text_to_image import load_pipeline

    pipe = load_pipeline(scheduler="ddim")
    subject = render_captions(D.subject_captions(3))
    prior = render_captions(["a small green star at the center"] * 4)
    z_s, c_s, z_p, c_p = D.dreambooth_data(pipe, subject, prior)
    assert z_s.shape == z_p.shape == (4, 4, 8, 8) and c_s.shape == c_p.shape == (4, 16, 64)
    assert torch.equal(z_s[3], z_s[0])  # the 3 subject images repeat to the prior set's length
    assert not torch.equal(c_s[0], c_p[0])
    with pytest.raises(ValueError, match="4 prior images but 2 class prompts"):
        D.dreambooth_data(pipe, subject, prior, class_prompts=["a shape", "a shape"])
