"""Tests of the chapter-4 diagrams in course_lib.diagrams: DDIM's graphical model has the edges of Song et al.'s
Fig. 1 (x_0 into every x_t only in the non-Markovian panel), and the drawn DDIM step is the library's step."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from course_lib import diagrams  # noqa: E402
from course_lib.ddim import ddim_sigma, ddim_step  # noqa: E402
from course_lib.schedules import get_schedule  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _arrows(ax) -> dict[str, Annotation]:
    return {a.get_gid(): a for a in ax.texts if isinstance(a, Annotation) and a.get_gid()}


def _nodes(ax) -> dict:
    return {p.get_gid().removeprefix("node:"): p for p in ax.patches if (p.get_gid() or "").startswith("node:")}


def _nearest(ax, point) -> str:
    nodes = _nodes(ax)
    return min(nodes, key=lambda name: math.dist(nodes[name].center, point))


# --- the graphical model ------------------------------------------------------------------------------------


def test_graphical_model_draws_two_panels_within_the_column():
    fig = diagrams.ddim_graphical_model(title="two forward processes")
    fig.canvas.draw()  # mathtext errors only show when rendered
    assert len(fig.axes) == 2 and fig.get_size_inches()[0] * fig.dpi <= 960
    for ax in fig.axes:
        nodes = _nodes(ax)
        assert list(nodes) == ["x_3", "x_2", "x_1", "x_0"]
        assert [nodes[n].center[0] for n in nodes] == sorted(nodes[n].center[0] for n in nodes)
        assert nodes["x_0"].get_facecolor()[:3] != nodes["x_1"].get_facecolor()[:3]  # the data are shaded
    assert "Markov" in fig.axes[0].get_title() and r"q_\sigma" in fig.axes[1].get_title()


def test_only_ddim_has_arrows_from_x0_to_every_later_xt():
    ddpm, ddim = diagrams.ddim_graphical_model().axes
    chain = {"q:x_0->x_1", "q:x_1->x_2", "q:x_2->x_3"}
    generative = {"p:x_3->x_2", "p:x_2->x_1", "p:x_1->x_0"}
    assert set(_arrows(ddpm)) == chain | generative
    assert set(_arrows(ddim)) == chain | generative | {"q:x_0->x_2", "q:x_0->x_3"}
    for ax in (ddpm, ddim):
        for gid, arrow in _arrows(ax).items():  # drawn from the node its gid names to the other one
            a, b = gid[2:].split("->")
            assert (_nearest(ax, arrow.xyann), _nearest(ax, arrow.xy)) == (a, b), gid
            assert arrow.arrow_patch.get_linestyle() == ("--" if gid.startswith("q:") else "-"), gid


def test_graphical_model_rejects_wrong_axes():
    with pytest.raises(ValueError, match="two matplotlib Axes"):
        diagrams.ddim_graphical_model(axes=[plt.subplots()[1]])


# --- one DDIM step ------------------------------------------------------------------------------------------

SCHEDULE = get_schedule("linear", 1000)


@pytest.mark.parametrize("t,t_prev", [(250, 100), (999, 899), (500, 0), (40, -1)])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_drawn_step_ends_where_the_library_step_goes(t, t_prev, eta):
    g = torch.Generator().manual_seed(t + 7)
    xt, eps, z = torch.randn(3, 2, generator=g, dtype=torch.float64)
    ab = SCHEDULE.alpha_bar
    ab_t, ab_prev = ab[t].item(), 1.0 if t_prev < 0 else ab[t_prev].item()
    library = ddim_step(eps[None], xt[None], t, t_prev, SCHEDULE, eta=eta, noise=z[None])
    fig = diagrams.ddim_step(xt, eps, ab_t, ab_prev, eta=eta, z=z)
    fig.canvas.draw()
    ax = fig.axes[0]
    arrows = _arrows(ax)
    step = [arrows[g] for g in ("step:x0_term", "step:direction", "step:noise") if g in arrows]
    assert ("step:noise" in arrows) == (eta > 0 and ab_prev < 1)  # sigma = 0 on the step to the data
    assert step[0].xyann == pytest.approx((0.0, 0.0))
    for a, b in zip(step, step[1:]):  # tip to tail
        assert b.xyann == pytest.approx(a.xy)
    close = dict(rel=1e-9, abs=1e-12)  # float64 rounding, amplified by 1 / sqrt(ab_t) at t = 999
    assert step[-1].xy == pytest.approx(library.x[0].tolist(), **close)
    point = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    assert point["point:x_prev"].get_xydata()[0] == pytest.approx(library.x[0].tolist(), **close)
    assert point["point:x0_hat"].get_xydata()[0] == pytest.approx(library.x0_hat[0].tolist(), **close)
    # the terms are those of Eq. 12: sqrt(ab_prev) x0_hat, then a multiple of eps_hat, then sigma z
    sigma = ddim_sigma(ab_t, ab_prev, eta)
    x0_term = (math.sqrt(ab_prev) * library.x0_hat[0]).tolist()
    assert np.subtract(step[0].xy, step[0].xyann) == pytest.approx(x0_term, **close)
    direction = np.subtract(step[1].xy, step[1].xyann)
    assert direction == pytest.approx((math.sqrt(1 - ab_prev - sigma**2) * eps).tolist(), abs=1e-12)
    if sigma > 0:
        assert np.subtract(step[2].xy, step[2].xyann) == pytest.approx((sigma * z).tolist(), **close)
    # the grey decomposition of x_t ends at x_t: x_t = sqrt(ab_t) x0_hat + sqrt(1 - ab_t) eps_hat
    assert arrows["xt:noise"].xy == pytest.approx(xt.tolist(), abs=1e-12)


def test_step_parts_sum_to_the_step_and_eta_zero_has_no_noise():
    parts = diagrams.ddim_step_parts([2.0, 1.0], [1.6, 1.1], 0.52, 0.9, eta=0.0)
    assert parts["sigma"] == 0.0 and torch.equal(parts["noise"], torch.zeros(2, dtype=torch.float64))
    total = parts["x0_term"] + parts["direction"] + parts["noise"]
    assert torch.allclose(total, parts["x_prev"], atol=1e-12)
    fig = diagrams.ddim_step([2.0, 1.0], [1.6, 1.1], 0.52, 0.9, eta=0.0, legend=False)
    assert "step:noise" not in _arrows(fig.axes[0]) and fig.axes[0].get_legend() is None


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(alpha_bar_t=0.9, alpha_bar_prev=0.5), "alpha_bar_t <= alpha_bar_prev"),
        (dict(eta=1.0), "pass z"),
        (dict(xt=[1.0, 2.0, 3.0]), "one finite point"),
        (dict(eps_hat=[float("nan"), 0.0]), "one finite point"),
    ],
)
def test_step_rejects_bad_arguments(kwargs, match):
    args = dict(xt=[2.0, 1.0], eps_hat=[1.6, 1.1], alpha_bar_t=0.52, alpha_bar_prev=0.9) | kwargs
    with pytest.raises(ValueError, match=match):
        diagrams.ddim_step(**args)
