"""The drawing primitives every diagram shares: nodes, boxes, arrows with a ``gid``, the finished Axes."""

from __future__ import annotations


import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch


GRADIENT_COLOR = "C3"  # backward pass (gradients) in every diagram


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the Axes of a new figure of ``figsize`` inches."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    elif not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}; pass e.g. plt.subplots()[1].")
    return ax


def _node(
    ax: Axes,
    name: str,
    xy: tuple[float, float],
    text: str,
    *,
    radius: float = 0.3,
    observed: bool = False,
    color: str = "white",
) -> Circle:
    """A round node: grey when ``observed`` (the convention of graphical models), labelled in its centre."""
    circle = Circle(
        xy, radius, facecolor="0.8" if observed else color, edgecolor="k", lw=1.5, zorder=3, gid=f"node:{name}"
    )
    ax.add_patch(circle)
    ax.text(*xy, text, ha="center", va="center", fontsize=14, zorder=4)
    return circle


def _box(
    ax: Axes,
    name: str,
    xy: tuple[float, float],
    text: str,
    *,
    width: float = 1.3,
    height: float = 0.6,
    color: str = "white",
) -> FancyBboxPatch:
    """A rounded box (an operation or a network) centred at ``xy``."""
    box = FancyBboxPatch(
        (xy[0] - width / 2, xy[1] - height / 2),
        width,
        height,
        boxstyle="round,pad=0.05",
        facecolor=color,
        edgecolor="k",
        lw=1.2,
        zorder=3,
        gid=f"node:{name}",
    )
    ax.add_patch(box)
    ax.text(*xy, text, ha="center", va="center", fontsize=11, zorder=4)
    return box


def _arrow(
    ax: Axes,
    gid: str,
    tail: tuple[float, float],
    head: tuple[float, float],
    *,
    color: str = "k",
    linestyle: str = "-",
    shrink: float = 0.0,
    rad: float = 0.0,
    lw: float = 1.5,
):
    """An arrow from ``tail`` to ``head``, pulled back by ``shrink`` points at both ends (to clear the nodes)."""
    return ax.annotate(
        "",
        xy=head,
        xytext=tail,
        gid=gid,
        zorder=2,
        arrowprops=dict(
            arrowstyle="-|>",
            color=color,
            lw=lw,
            linestyle=linestyle,
            shrinkA=shrink,
            shrinkB=shrink,
            mutation_scale=16,
            connectionstyle=f"arc3,rad={rad}",
        ),
    )


def _finish(ax: Axes, xlim: tuple[float, float], ylim: tuple[float, float], title: str | None) -> Figure:
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure
