"""Tests of course_lib.plotting: grid geometry and values, figures' layout, the animation's frames, the fallbacks."""

from __future__ import annotations

import base64
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from IPython.display import HTML, Image  # noqa: E402

from course_lib import plotting  # noqa: E402
from course_lib.samplers import SampleStep  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _images(b=10, c=1, h=4, w=5, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- image_grid -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("b,c,nrow,padding", [(10, 1, 4, 1), (3, 3, 8, 2), (8, 1, 8, 0), (1, 3, 5, 1)])
def test_image_grid_shape(b, c, nrow, padding):
    h, w = 4, 5
    grid = plotting.image_grid(_images(b, c, h, w), nrow=nrow, padding=padding)
    ncol = min(nrow, b)
    rows = -(-b // ncol)
    assert grid.shape == (rows * (h + padding) + padding, ncol * (w + padding) + padding, c)
    assert grid.dtype == np.float32 and grid.min() >= 0 and grid.max() <= 1


def test_image_grid_places_each_image_mapped_to_0_1():
    x = _images(6, 1, 4, 5)
    grid = plotting.image_grid(x, nrow=4, padding=1, pad_value=0.25)
    # image 5 sits in row 1, column 1
    np.testing.assert_allclose(grid[6:10, 7:12, 0], (x[5, 0].numpy() + 1) / 2, atol=1e-6)
    assert np.all(grid[0] == 0.25) and np.all(grid[6:10, 13:18] == 0.25)  # border and the empty slots


def test_image_grid_clips_for_display_only_and_accepts_numpy():
    x = np.array([[[[-3.0, 0.0], [1.0, 5.0]]]], dtype=np.float32)
    grid = plotting.image_grid(x, padding=0)
    np.testing.assert_allclose(grid[..., 0], [[0.0, 0.5], [1.0, 1.0]])
    assert x.max() == 5.0  # the input is untouched


@pytest.mark.parametrize(
    "bad", [torch.zeros(2, 4, 4), torch.zeros(2, 2, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.uint8)]
)
def test_image_grid_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        plotting.image_grid(bad)


def test_show_images_draws_one_image_on_given_axes():
    fig, ax = plt.subplots()
    out = plotting.show_images(_images(5), nrow=5, title="five", ax=ax)
    assert out is ax and len(ax.images) == 1 and ax.get_title() == "five"


def test_show_images_writes_one_label_at_the_middle_of_each_row():
    fig, ax = plt.subplots()
    plotting.show_images(_images(6), nrow=3, ax=ax, row_labels=["S = 10", "S = 50"])
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    assert texts == {"S = 10": (-0.01, 0.75), "S = 50": (-0.01, 0.25)}  # rows from the top, in axes fractions
    fig.canvas.draw()  # the labels sit left of the grid, inside the figure once laid out
    grid = ax.get_window_extent()
    assert all(t.get_window_extent().x1 <= grid.x0 for t in ax.texts)
    plt.close(fig)


def test_show_images_rejects_a_label_count_that_is_not_the_row_count():
    with pytest.raises(ValueError, match="one label per row of the grid: 2 rows"):
        plotting.show_images(_images(6), nrow=3, row_labels=["only one"])


# --- trajectory strip -------------------------------------------------------------------------------------


def _trajectory(n_frames=4, b=5):
    return [SampleStep(t, _images(b, seed=t), _images(b, seed=100 + t)) for t in range(n_frames * 100, -1, -100)]


def test_trajectory_strip_rows_are_samples_columns_are_frames():
    frames = _trajectory()
    fig = plotting.trajectory_strip(frames, n_samples=3)
    axes = np.array(fig.axes).reshape(3, len(frames))
    assert [ax.get_title() for ax in axes[0]] == [f"t = {f.t}" for f in frames]
    np.testing.assert_allclose(axes[2, 1].images[0].get_array(), (frames[1].x[2, 0].numpy() + 1) / 2, atol=1e-6)
    fig = plotting.trajectory_strip(frames, n_samples=2, field="x0_hat")
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), (frames[0].x0_hat[0, 0].numpy() + 1) / 2, atol=1e-6)


def test_trajectory_strip_accepts_pairs_and_rejects_points():
    fig = plotting.trajectory_strip([(10, _images(2)), (0, _images(2))])
    assert len(fig.axes) == 4
    with pytest.raises(ValueError):
        plotting.trajectory_strip([(0, torch.zeros(5, 2))])
    with pytest.raises(ValueError):
        plotting.trajectory_strip([(0, _images(2))], field="x0_hat")


def _frame_ids(anim):
    """The frame numbers embedded in a to_jshtml() player (each frame is stored as `frames[i] = ...`)."""
    return {int(i) for i in re.findall(r"frames\[(\d+)\]", anim.data)}


# --- animate -----------------------------------------------------------------------------------------------


def test_animate_images_gives_html_with_every_frame_and_a_static_figure():
    frames = _trajectory(n_frames=4)  # t = 400, 300, 200, 100, 0
    anim = plotting.animate(frames, kind="images", n_stills=3, nrow=5, size=1.5, dpi=30)
    assert isinstance(anim, HTML)
    assert "<script" in anim.data and _frame_ids(anim) == set(range(len(frames)))
    assert [ax.get_title() for ax in anim.figure.axes] == ["t = 400", "t = 200", "t = 0"]


def test_animate_points_with_background_and_pairs():
    g = torch.Generator().manual_seed(0)
    frames = [(t, torch.randn(50, 2, generator=g) * (1 + t / 10)) for t in (20, 10, 0)]
    anim = plotting.animate(
        frames, kind="points", background=torch.randn(30, 2, generator=g), lim=3.0, n_stills=2, size=1.5, dpi=30
    )
    assert _frame_ids(anim) == {0, 1, 2}
    first = anim.figure.axes[0]
    assert first.get_title() == "t = 20" and first.get_xlim() == (-3.0, 3.0) and len(first.collections) == 2


def test_animate_keeps_a_pairs_label_as_given():
    frames = [(s, torch.zeros(4, 2)) for s in (0.0, 0.5, torch.tensor(7.5))]
    anim = plotting.animate(frames, kind="points", lim=1.0, n_stills=3, size=1.0, dpi=30, title="s = {t:g}")
    assert [ax.get_title() for ax in anim.figure.axes] == ["s = 0", "s = 0.5", "s = 7.5"]


@pytest.mark.parametrize("kind,x", [("points", _images(2)), ("images", torch.zeros(5, 2)), ("video", _images(2))])
def test_animate_rejects_mismatched_frames(kind, x):
    with pytest.raises(ValueError):
        plotting.animate([(0, x)], kind=kind)


def test_animate_rejects_empty_frames():
    with pytest.raises(ValueError):
        plotting.animate([])


def test_display_shows_static_figure_then_player(monkeypatch):
    shown = []
    monkeypatch.setattr(plotting, "display", lambda obj: shown.append(obj))
    anim = plotting.animate(_trajectory(n_frames=2), size=1.0, dpi=20)
    anim._ipython_display_()
    assert isinstance(shown[0], Image) and shown[0].format == "png"  # the key frames, whatever the backend
    assert isinstance(shown[1], HTML) and shown[1].data == anim.data


# --- slider ------------------------------------------------------------------------------------------------


def _recording_fn(calls):
    def fn(value, ax):
        calls.append(value)
        ax.plot([0, 1], [0, value])
        ax.set_title(f"v = {value}")

    return fn


def test_slider_draws_static_values_and_precomputes_a_player():
    calls = []
    s = plotting.slider(_recording_fn(calls), range(0, 100, 10), static_values=[0, 50, 90], ncols=2)
    assert calls == [0, 50, 90, *range(0, 100, 10)]  # static panels, then one frame per value
    assert [ax.get_title() for ax in s.figure.axes[:3]] == ["v = 0", "v = 50", "v = 90"]
    assert len(s.figure.axes) == 4 and not s.figure.axes[3].axison  # 2 x 2 grid, the spare panel hidden
    assert s.values == list(range(0, 100, 10))
    html = s.data
    assert 'type="range"' in html and 'max="9"' in html and "<script>" in html
    frames = re.search(r"var frames = (\[.*?\]), labels", html).group(1)
    pngs = [base64.b64decode(f) for f in json.loads(frames)]
    assert len(pngs) == 10 and all(p.startswith(b"\x89PNG") for p in pngs)
    assert len(set(pngs)) == 10, "each position must show its own frame"


def test_slider_keeps_at_most_max_frames_with_both_ends():
    calls = []
    s = plotting.slider(_recording_fn(calls), range(1000), static_values=[0], max_frames=5)
    assert len(s.values) == 5 and s.values[0] == 0 and s.values[-1] == 999 and s.values == sorted(set(s.values))
    with pytest.raises(ValueError, match="max_frames"):
        plotting.slider(lambda v, ax: None, [1, 2], max_frames=1)


def test_slider_escapes_its_label_and_ids_are_unique():
    a = plotting.slider(lambda v, ax: None, [1, 2], label='t"</script>')
    b = plotting.slider(lambda v, ax: None, [1, 2])
    assert '</script>"' not in a.data and a.data.count("</script>") == 1
    assert re.search(r'id="(slider-\w+)"', a.data).group(1) != re.search(r'id="(slider-\w+)"', b.data).group(1)


def test_slider_displays_the_static_figure_then_the_player(monkeypatch):
    shown = []
    monkeypatch.setattr(plotting, "display", lambda obj: shown.append(obj))
    s = plotting.slider(lambda v, ax: ax.plot([0, v]), [1, 2, 3])
    s._ipython_display_()
    assert isinstance(shown[0], Image) and "course-slider" in shown[1].data


def test_slider_rejects_empty_values():
    with pytest.raises(ValueError):
        plotting.slider(lambda v, ax: None, [])


def test_animation_player_loads_nothing_from_the_web():
    """matplotlib's player links Font Awesome from a CDN; the course's players must work offline."""
    anim = plotting.animate([(t, torch.rand(4, 1, 8, 8) * 2 - 1) for t in range(3)])
    assert "https://" not in anim.data and 'class="fa ' not in anim.data
    assert anim.data.count('<span aria-hidden="true">') == 9  # every button still has its symbol


def test_plot_tradeoff_draws_the_four_panels_of_a_sweep():
    import matplotlib.pyplot as plt
    import pandas as pd

    from course_lib.plotting import plot_tradeoff

    table = pd.DataFrame(
        {
            "accuracy": [0.1, 0.9],
            "precision": [0.8, 0.9],
            "recall": [0.9, 0.5],
            "within-class diversity": [5.0, 3.0],
            "FD": [2.0, 4.0],
        },
        index=pd.Index([0.0, 2.0], name="s"),
    )
    fig = plot_tradeoff(table, "scale s", reference_fd=1.0)
    assert len(fig.axes) == 4 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "2"]
    assert len(fig.axes[1].lines) == 2 and len(fig.axes[3].lines) == 2  # precision and recall; FD and the reference
    plt.close(fig)
    with pytest.raises(ValueError, match="lacks the columns"):
        plot_tradeoff(table.drop(columns="FD"), "scale s")
