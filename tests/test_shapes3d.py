"""Tests of course_lib.shapes3d: captions agree with labels and cameras, the front marker makes views distinct,
the fields are valid radiance fields, determinism, and errors for bad input."""

from __future__ import annotations

import pytest
import torch

from course_lib import data, render, shapes3d
from course_lib.text import shapes_words


@pytest.fixture(scope="module")
def small():
    return shapes3d.shapes3d(24, seed=3, size=16, resolution=16, num_samples=24)


def test_types_shapes_and_range(small):
    assert small.images.shape == (24, 3, 16, 16) and small.images.dtype == torch.float32
    assert small.images.min() >= -1 and small.images.max() <= 1
    for labels in (small.shape, small.colour, small.view):
        assert labels.dtype == torch.int64 and labels.shape == (24,)
    assert len(small.captions) == 24
    assert small.azimuth.min() >= -180 and small.azimuth.max() < 180
    assert small.elevation.min() >= -10 and small.elevation.max() <= 80


def test_captions_parse_into_the_labels_and_views_match_the_cameras(small):
    for i, text in enumerate(small.captions):
        parsed = shapes3d.parse_caption3d(text)
        assert parsed == {"shape": int(small.shape[i]), "colour": int(small.colour[i]), "view": int(small.view[i])}
        assert render.VIEWS[parsed["view"]] == render.view_label(float(small.azimuth[i]), float(small.elevation[i]))
        assert shapes3d.caption3d(**parsed) == text


def test_caption_words_are_known_to_the_course_tokenizer():
    words = set(shapes_words())
    for s in range(len(shapes3d.SHAPES3D)):
        for v in range(len(render.VIEWS)):
            text = shapes3d.caption3d(s, 0, v)
            assert set(text.replace(",", " ,").split()) <= words, text


def test_images_are_renders_of_their_fields_and_the_first_rows_do_not_depend_on_n(small):
    more = shapes3d.shapes3d(30, seed=3, size=16, resolution=16, num_samples=24)
    assert torch.equal(more.images[:24], small.images) and more.captions[:24] == small.captions
    i = 5
    field = shapes3d.shape_field(shapes3d.SHAPES3D[small.shape[i]], data.COLOURS[small.colour[i]], resolution=16)
    again = render.render_views(field, small.azimuth[i : i + 1], small.elevation[i : i + 1], size=16, num_samples=24)
    torch.testing.assert_close(again[0].clamp(-1, 1), small.images[i])


@pytest.mark.parametrize("shape", shapes3d.SHAPES3D)
def test_the_nose_marks_the_front(shape):
    field = shapes3d.shape_field(shape, "blue", resolution=24)
    assert field.shape == (4, 24, 24, 24) and (field[0] >= 0).all() and field[1:].abs().max() <= 1
    front, back = render.render_views(field, [0.0, 180.0], [0.0, 0.0], size=16, num_samples=32)
    red_centre = (0, slice(7, 9), slice(7, 9))  # blue objects are dark in the red channel, the white nose is not
    assert front[red_centre].mean() > 0.1  # the nose is in the middle of the front view
    assert back[red_centre].max() < -0.3  # and hidden from behind
    plain = shapes3d.shape_field(shape, "blue", resolution=24, nose=False)
    assert render.render_views(plain, [0.0], [0.0], size=16, num_samples=32)[0][red_centre].max() < -0.3


@pytest.mark.parametrize("shape", shapes3d.SHAPES3D)
def test_signed_distances_have_the_right_sign(shape):
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, -0.3, 0.1], [0.95, 0.95, 0.95], [0.0, 0.99, 0.0]])
    sdf = shapes3d.shape_sdf(shape, points)
    assert (sdf[:2] < 0).all() and (sdf[2:] > 0).all()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: shapes3d.shapes3d(0), "n must be"),
        (lambda: shapes3d.shapes3d(4, size=4), "size"),
        (lambda: shapes3d.shapes3d(4, elevation_range=(10.0, 0.0)), "elevation_range"),
        (lambda: shapes3d.shape_field("torus", "red"), "shape"),
        (lambda: shapes3d.shape_field("cube", "pink"), "colour"),
        (lambda: shapes3d.parse_caption3d("a red cube, diagonal view"), "cannot parse"),
        (lambda: shapes3d.parse_caption3d("a large red cube at the center"), "cannot parse"),
    ],
)
def test_bad_input_raises_a_helpful_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
