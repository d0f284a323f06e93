"""Tests of the chapter-1 diagrams in course_lib.diagrams: they draw, their arrows point the right way and have
the right style, and the ELBO bar's segments add up to the numbers passed in."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from course_lib import diagrams  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _by_gid(fig: Figure, prefix: str = "") -> dict:
    found = {}
    for ax in fig.axes:
        for artist in [*ax.patches, *ax.texts, *ax.lines]:
            gid = artist.get_gid()
            if gid and gid.startswith(prefix):
                found[gid] = artist
    return found


def _centre(patch: Patch) -> tuple[float, float]:
    box = patch.get_extents().transformed(patch.axes.transData.inverted())
    return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2


def _nearest_node(fig: Figure, point: tuple[float, float]) -> str:
    nodes = _by_gid(fig, "node:")
    return min(nodes, key=lambda g: math.dist(_centre(nodes[g]), point)).removeprefix("node:")


def _arrows(fig: Figure) -> dict[str, Annotation]:
    return {gid: a for gid, a in _by_gid(fig).items() if isinstance(a, Annotation)}


def _all_text(fig: Figure) -> str:
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    texts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    return " ".join(texts + [ax.get_title() for ax in fig.axes])


def _draws(fig: Figure) -> None:
    fig.canvas.draw()  # mathtext errors only show when the labels are rendered


# --- the graphical model ---------------------------------------------------------------------------------


def test_graphical_model_draws_with_its_nodes_and_labels():
    fig = diagrams.vae_graphical_model(title="the VAE")
    _draws(fig)
    assert isinstance(fig, Figure)
    assert {"node:z", "node:x", "node:theta", "node:phi"} <= set(_by_gid(fig, "node:"))
    text = _all_text(fig)
    for label in (r"p_\theta(\mathbf{x}\mid\mathbf{z})", r"q_\phi(\mathbf{z}\mid\mathbf{x})", "prior", "the VAE"):
        assert label in text, label


def test_graphical_model_observed_x_is_shaded_and_latent_z_is_not():
    nodes = _by_gid(diagrams.vae_graphical_model(), "node:")
    assert nodes["node:x"].get_facecolor()[:3] != nodes["node:z"].get_facecolor()[:3]
    assert nodes["node:z"].get_facecolor()[:3] == (1.0, 1.0, 1.0)


def test_graphical_model_decoder_points_down_solid_and_encoder_points_up_dashed():
    fig = diagrams.vae_graphical_model()
    arrows = _arrows(fig)
    p, q = arrows["p:z->x"], arrows["q:x->z"]
    assert _nearest_node(fig, p.xyann) == "z" and _nearest_node(fig, p.xy) == "x"
    assert _nearest_node(fig, q.xyann) == "x" and _nearest_node(fig, q.xy) == "z"
    assert p.arrow_patch.get_linestyle() == "-"
    assert q.arrow_patch.get_linestyle() == "--"
    # phi belongs to the encoder (dashed, into z), theta to the decoder (solid, into x)
    assert _nearest_node(fig, arrows["q:phi->z"].xy) == "z" and arrows["q:phi->z"].arrow_patch.get_linestyle() == "--"
    assert _nearest_node(fig, arrows["p:theta->x"].xy) == "x"


def test_graphical_model_draws_on_a_given_axes():
    fig, axes = plt.subplots(1, 2)
    out = diagrams.vae_graphical_model(ax=axes[1])
    assert out is fig and axes[1].patches and not axes[0].patches
    with pytest.raises(ValueError, match="Axes"):
        diagrams.vae_graphical_model(ax="left")


# --- the reparameterization graph ---------------------------------------------------------------------------


def test_reparameterization_graph_draws_with_the_formula():
    fig = diagrams.reparameterization_graph()
    _draws(fig)
    text = _all_text(fig)
    assert r"\mathbf{z} = \boldsymbol{\mu} + \boldsymbol{\sigma} \odot \boldsymbol{\epsilon}" in text
    assert r"\mathcal{N}(\mathbf{0}, \mathbf{I})" in text and "gradient" in text


def test_reparameterization_gradients_reach_mu_and_sigma_but_not_eps():
    fig = diagrams.reparameterization_graph()
    arrows = _arrows(fig)
    grads = {g: a for g, a in arrows.items() if g.startswith("grad:")}
    heads = {_nearest_node(fig, a.xy) for a in grads.values()}
    tails = {_nearest_node(fig, a.xyann) for a in grads.values()}
    assert {"mu", "sigma", "z", "encoder"} <= heads, heads
    assert "eps" not in heads | tails, "eps is an input outside the gradient path"
    for gid, a in grads.items():  # each arrow is drawn between the nodes its gid names, in that direction
        src, dst = gid.removeprefix("grad:").split("->")
        assert (_nearest_node(fig, a.xyann), _nearest_node(fig, a.xy)) == (src, dst), gid
        assert a.arrow_patch.get_linestyle() == "--"


def test_reparameterization_forward_pass_feeds_eps_mu_sigma_into_z():
    fig = diagrams.reparameterization_graph()
    fwd = {g: a for g, a in _arrows(fig).items() if g.startswith("fwd:")}
    into_z = {_nearest_node(fig, a.xyann) for a in fwd.values() if _nearest_node(fig, a.xy) == "z"}
    assert into_z == {"mu", "sigma", "eps"}
    assert "fwd:z->f" in fwd and all(a.arrow_patch.get_linestyle() == "-" for a in fwd.values())


# --- log p(x) = ELBO + gap ----------------------------------------------------------------------------------


def _segments(fig: Figure) -> tuple[Rectangle, Rectangle]:
    found = _by_gid(fig)
    return found["elbo"], found["gap"]


@pytest.mark.parametrize("log_px,elbo", [(300.0, 250.0), (-480.0, -495.0), (12.5, 12.5), (3.0, -2.0)])
def test_bar_segments_stack_to_log_px(log_px, elbo):
    fig = diagrams.elbo_gap_bar(log_px, elbo)
    _draws(fig)
    low, high = _segments(fig)
    assert low.get_y() + low.get_height() == pytest.approx(elbo)
    assert high.get_y() == pytest.approx(elbo)
    assert high.get_height() == pytest.approx(log_px - elbo)
    assert low.get_height() + high.get_height() == pytest.approx(log_px - low.get_y())  # parts sum to log p
    assert _by_gid(fig)["log_px"].get_ydata()[0] == pytest.approx(log_px)
    lo, hi = fig.axes[0].get_ylim()
    assert lo <= low.get_y() and hi >= log_px


def test_bar_baseline_is_zero_when_the_gap_shows_and_zooms_when_it_is_small():
    assert _segments(diagrams.elbo_gap_bar(300.0, 250.0))[0].get_y() == 0.0
    low, high = _segments(diagrams.elbo_gap_bar(300.0, 299.0))  # 1 nat of 300: zoom so that it shows
    assert 0.0 < low.get_y() < 299.0 and high.get_height() / (300.0 - low.get_y()) > 0.1
    low, _ = _segments(diagrams.elbo_gap_bar(10.0, 8.0, baseline=5.0))
    assert low.get_y() == 5.0 and low.get_height() == pytest.approx(3.0)


def test_bar_writes_the_numbers_and_names_the_terms():
    text = _all_text(diagrams.elbo_gap_bar(-480.0, -495.0, title="one digit"))
    assert "-495" in text and "-480" in text and "gap = 15" in text and "one digit" in text
    assert "ELBO" in text and r"D_{\mathrm{KL}}" in text


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(log_px=1.0, elbo=2.0), "must not exceed"),
        (dict(log_px=float("nan"), elbo=0.0), "finite"),
        (dict(log_px="1", elbo=0.0), "finite"),
        (dict(log_px=2.0, elbo=1.0, baseline=1.5), "below elbo"),
    ],
)
def test_bar_rejects_bad_numbers(kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagrams.elbo_gap_bar(**kwargs)
