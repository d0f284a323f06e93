"""Tests of the chapter-2 diagrams in course_lib.diagrams: the DDPM chain (Ho et al. 2020, Fig. 2) has its arrows
the right way round and in the right style, and the U-Net block diagram draws exactly the stages, shapes and skip
connections that unet.stage_shapes measures on the real model."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from course_lib import diagrams  # noqa: E402
from course_lib.unet import UNet, UNetConfig, stage_shapes  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _nodes(fig: Figure) -> dict:
    ax = fig.axes[0]
    return {p.get_gid().removeprefix("node:"): p for p in ax.patches if (p.get_gid() or "").startswith("node:")}


def _arrows(fig: Figure, prefix: str) -> dict[str, Annotation]:
    return {
        a.get_gid(): a
        for a in fig.axes[0].texts
        if isinstance(a, Annotation) and (a.get_gid() or "").startswith(prefix)
    }


def _centre(patch) -> tuple[float, float]:
    if hasattr(patch, "center"):
        return tuple(patch.center)
    return patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2


def _nearest(fig: Figure, point) -> str:
    nodes = _nodes(fig)
    return min(nodes, key=lambda name: math.dist(_centre(nodes[name]), point))


def _text(fig: Figure) -> str:
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
    return " ".join([t.get_text() for t in ax.texts] + legend + [ax.get_title()])


# --- the chain x_T -> ... -> x_0 ------------------------------------------------------------------------------

ORDER = ["x_T", "dots_T", "x_t", "x_t-1", "dots_0", "x_0"]


def test_chain_draws_its_nodes_left_to_right_from_noise_to_data():
    fig = diagrams.ddpm_chain(title="DDPM")
    fig.canvas.draw()  # mathtext errors only show when rendered
    nodes = _nodes(fig)
    assert list(nodes) == ORDER
    xs = [_centre(nodes[n])[0] for n in ORDER]
    assert xs == sorted(xs)
    text = _text(fig)
    for label in (
        r"p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)",
        r"q(\mathbf{x}_t \mid \mathbf{x}_{t-1})",
        "learned",
        "fixed",
        "DDPM",
        r"\mathbf{x}_T",
        r"\mathbf{x}_0",
    ):
        assert label in text, label
    assert nodes["x_0"].get_facecolor()[:3] != nodes["x_t"].get_facecolor()[:3]  # the data are shaded


def test_chain_p_arrows_are_solid_towards_the_data_and_q_arrows_dashed_towards_the_noise():
    fig = diagrams.ddpm_chain()
    p, q = _arrows(fig, "p:"), _arrows(fig, "q:")
    assert len(p) == len(q) == len(ORDER) - 1
    for a, b in zip(ORDER, ORDER[1:]):
        forward, reverse = q[f"q:{b}->{a}"], p[f"p:{a}->{b}"]
        assert (_nearest(fig, reverse.xyann), _nearest(fig, reverse.xy)) == (a, b)  # p: x_t -> x_{t-1}
        assert (_nearest(fig, forward.xyann), _nearest(fig, forward.xy)) == (b, a)  # q: x_{t-1} -> x_t
        assert reverse.arrow_patch.get_linestyle() == "-" and forward.arrow_patch.get_linestyle() == "--"
        assert reverse.xy[0] > reverse.xyann[0] and forward.xy[0] < forward.xyann[0]


def test_chain_puts_each_image_above_its_node():
    images = [torch.randn(16, 16), torch.randn(1, 16, 16), np.zeros((16, 16)), -np.ones((1, 16, 16))]
    fig = diagrams.ddpm_chain(images=images)
    fig.canvas.draw()
    nodes, ax = _nodes(fig), fig.axes[0]
    shown = {im.get_gid().removeprefix("image:"): im for im in ax.images}
    assert set(shown) == {"x_T", "x_t", "x_t-1", "x_0"}
    for name, im in shown.items():
        left, right, bottom, _ = im.get_extent()
        x, y = _centre(nodes[name])
        assert (left + right) / 2 == pytest.approx(x) and bottom > y + nodes[name].radius
    assert np.array_equal(shown["x_0"].get_array(), -np.ones((16, 16)))
    with pytest.raises(ValueError, match="four 2-D images"):
        diagrams.ddpm_chain(images=images[:3])
    with pytest.raises(ValueError, match="four 2-D images"):
        diagrams.ddpm_chain(images=[np.zeros((2, 4, 4))] * 4)


def test_chain_draws_on_a_given_axes():
    fig, axes = plt.subplots(1, 2)
    assert diagrams.ddpm_chain(ax=axes[0]) is fig and axes[0].patches and not axes[1].patches
    with pytest.raises(ValueError, match="Axes"):
        diagrams.ddpm_chain(ax=1)


# --- the U-Net block diagram against the real model -------------------------------------------------------

CONFIGS = [
    (UNetConfig(), 16),  # the chapter's model
    (UNetConfig(base_channels=16, channel_mults=(1, 2, 4), num_res_blocks=2, attention_levels=(1, 2)), 16),
    (UNetConfig(base_channels=8, channel_mults=(1, 1, 2, 2), attention_levels=(), num_classes=3), 32),
]


def _measured(config: UNetConfig, size: int) -> list[dict]:
    torch.manual_seed(0)
    return stage_shapes(UNet(config).eval(), torch.randn(2, config.in_channels, size, size), torch.tensor([3, 700]))


@pytest.mark.parametrize("config,size", CONFIGS)
def test_unet_diagram_has_one_box_per_stage_labelled_with_its_measured_shape(config, size):
    stages = _measured(config, size)
    fig = diagrams.unet_diagram(config, size)
    fig.canvas.draw()
    boxes, ax = _nodes(fig), fig.axes[0]
    assert list(boxes) == [s["stage"] for s in stages]
    for s in stages:
        _, c, h, w = s["output shape"]
        centre = _centre(boxes[s["stage"]])
        inside = [t.get_text() for t in ax.texts if math.dist(t.get_position(), centre) < 1e-6]
        assert inside and inside[0].endswith(f"\n{c}x{h}x{w}"), (s, inside)
    assert "scale and shift" in _text(fig)


@pytest.mark.parametrize("config,size", CONFIGS)
def test_unet_diagram_arrows_follow_the_forward_pass_and_skips_join_equal_resolutions(config, size):
    stages = _measured(config, size)
    fig = diagrams.unet_diagram(config, size)
    names = [s["stage"] for s in stages]
    fwd, skips = _arrows(fig, "fwd:"), _arrows(fig, "skip:")
    assert set(fwd) == {f"fwd:{a}->{b}" for a, b in zip(names, names[1:])}
    for gid, arrow in fwd.items():  # each arrow leaves the box it names and enters the next one
        a, b = gid.removeprefix("fwd:").split("->")
        assert (_nearest(fig, arrow.xyann), _nearest(fig, arrow.xy)) == (a, b), gid
    assert len(skips) == len(config.channel_mults)
    shape = {s["stage"]: s["output shape"] for s in stages}
    for gid, arrow in skips.items():
        src, dst = gid.removeprefix("skip:").split("->")
        assert src.startswith("down") and dst.startswith("up") and dst.endswith("ResBlock 0"), gid
        assert shape[src][2:] == shape[dst][2:], gid  # concatenated at the same resolution
        assert (_nearest(fig, arrow.xyann), _nearest(fig, arrow.xy)) == (src, dst), gid
        assert arrow.xy[1] == pytest.approx(arrow.xyann[1]) and arrow.xy[0] > arrow.xyann[0]  # across the U
        assert arrow.arrow_patch.get_linestyle() == "--"


def test_unet_diagram_indents_boxes_by_resolution():
    fig = diagrams.unet_diagram()
    boxes = _nodes(fig)
    x = {name: _centre(box)[0] for name, box in boxes.items()}
    assert x["conv_in"] == x["down 0: ResBlock 0"] < x["down 1: ResBlock 0"] < x["down 2: ResBlock 0"]
    assert x["conv_out"] == x["up 0: ResBlock 0"] > x["up 1: ResBlock 0"] > x["up 2: ResBlock 0"]
    assert max(x[n] for n in x if n.startswith("down")) < min(x[n] for n in x if n.startswith("up"))


def test_unet_diagram_rejects_a_size_the_unet_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 4"):
        diagrams.unet_diagram(UNetConfig(), 18)
