"""Figures for the notebooks: image grids, trajectory strips, and animations and sliders that survive print.

The website is made by executing each notebook once; no kernel runs behind the published page, and a PDF
has no JavaScript at all. So each moving or interactive figure here comes with a static one: ``animate``
and ``slider`` return an object that, when a notebook cell displays it, shows a static figure of a few key
frames *and* the interactive version, a JavaScript player whose frames are drawn when the cell runs (so it
works on the published site, in Colab and in Jupyter alike).

Conventions: images are tensors or arrays [B, C, H, W] with C = 1 or 3 and values in [-1, 1] (values outside
are clipped for display only, never in the data); 2-D points are [N, 2]. A trajectory is a list of frames,
each a ``samplers.SampleStep`` or a ``(t, x)`` pair, and a frame is labelled with its ``t`` as given.
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import json
import re
import uuid
from typing import Any, Callable, Literal, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, Image, display
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .samplers import SampleStep

# The widest figure the website shows without shrinking its labels: its column is 688 px, and a figure drawn below
# 70 % of its width has its 10 pt labels (14 px in a 100 dpi PNG) under 10 px (issue 26; tools/site_test.py checks
# it). 960 px: 9.6 inches at the 100 dpi of the notebooks' figures, with a little room for bbox_inches="tight".
MAX_FIGURE_PX = 960


def _to_numpy(x: Any, name: str = "x") -> np.ndarray:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        x = x.detach().float().cpu().numpy()
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"{name} must be a float tensor or array, got {type(x).__name__} "
            f"{getattr(x, 'dtype', '')}; images are floats in [-1, 1] (use x / 127.5 - 1 for uint8)."
        )
    return x.astype(np.float32)


def _unpack(frames: Sequence, field: str = "x") -> list[tuple[Any, np.ndarray]]:
    """Frames (SampleStep or (t, x) pairs) -> [(t, array)], reading ``field`` ("x" or "x0_hat") of a SampleStep.

    A SampleStep's t is its int timestep; a pair's label is kept as given (a 0-d tensor becomes its number), so a
    title such as "s = {t}" can show a float guidance scale or a word."""
    if field not in ("x", "x0_hat"):
        raise ValueError(f"field must be 'x' or 'x0_hat', got {field!r}.")
    if len(frames) == 0:
        raise ValueError("frames is empty; pass a list of SampleStep or (t, x) pairs, e.g. from keep_frames().")
    out = []
    for i, frame in enumerate(frames):
        if isinstance(frame, SampleStep):
            out.append((int(frame.t), _to_numpy(getattr(frame, field), f"frames[{i}].{field}")))
        elif isinstance(frame, (tuple, list)) and len(frame) == 2 and field == "x":
            label = frame[0].item() if isinstance(frame[0], torch.Tensor) else frame[0]
            out.append((label, _to_numpy(frame[1], f"frames[{i}][1]")))
        else:
            raise ValueError(
                f"frames[{i}] must be a SampleStep or a (t, x) pair (field='x' only), got {type(frame).__name__}."
            )
    return out


def _key_indices(n: int, k: int) -> list[int]:
    """k indices spread evenly over 0 ... n-1, always including the first and the last."""
    k = min(k, n)
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})


def _png(fig: Figure) -> Image:
    """The figure as a PNG image: it displays under any matplotlib backend (also Agg, with no inline support)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")


# --- images ---------------------------------------------------------------------------------------------


def image_grid(x: Any, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile a batch of images into one array, ``nrow`` images per row.

    Args:
        x: images [B, C, H, W], C = 1 or 3, in [-1, 1] (tensor or array; clipped to [-1, 1] for display).
        nrow: images per row; the last row is filled up with ``pad_value``.
        padding: pixels between images and around the border.
        pad_value: colour of the padding, in [0, 1] (1 = white).
    Returns:
        float32 [rows * (H + padding) + padding, nrow' * (W + padding) + padding, C] in [0, 1], where
        rows = ceil(B / nrow') and nrow' = min(nrow, B). Show it with ``plt.imshow(grid.squeeze(-1))``.
    """
    x = _to_numpy(x)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] < 1:
        raise ValueError(
            f"x must be images [B, C, H, W] with C = 1 or 3, got shape {x.shape}; "
            "add a batch axis with x[None] for one image."
        )
    if nrow < 1 or padding < 0:
        raise ValueError(f"nrow must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}.")
    B, C, H, W = x.shape
    ncol = min(nrow, B)
    rows = -(-B // ncol)
    grid = np.full((rows * (H + padding) + padding, ncol * (W + padding) + padding, C), pad_value, np.float32)
    images = (np.clip(x, -1.0, 1.0) + 1.0) / 2.0  # [-1, 1] -> [0, 1]
    for i in range(B):
        r, c = divmod(i, ncol)
        top, left = padding + r * (H + padding), padding + c * (W + padding)
        grid[top : top + H, left : left + W] = images[i].transpose(1, 2, 0)
    return grid


def _imshow(ax: Axes, grid: np.ndarray):
    gray = grid.shape[-1] == 1
    artist = ax.imshow(
        grid[..., 0] if gray else grid, cmap="gray" if gray else None, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    ax.set_axis_off()
    return artist


def show_images(
    x: Any,
    nrow: int = 8,
    title: str | None = None,
    ax: Axes | None = None,
    row_labels: Sequence[str] | None = None,
) -> Axes:
    """Draw images [B, C, H, W] in [-1, 1] as one grid on ``ax`` (a new figure if None); return the Axes.

    ``row_labels``: one label per row of the grid (ceil(B / nrow) of them), written left of the row. The grid has
    no axes (``set_axis_off``), so ``ax.set_ylabel`` would not show; this does."""
    grid = image_grid(x, nrow)
    rows = -(-len(x) // min(nrow, len(x)))
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(
            f"row_labels needs one label per row of the grid: {rows} rows ({len(x)} images, {nrow} per row), "
            f"got {len(row_labels)} labels."
        )
    if ax is None:
        width = min(0.8 * min(nrow, len(x)), MAX_FIGURE_PX / 100)  # about 0.8 inch per image, within the column
        _, ax = plt.subplots(figsize=(width, width * grid.shape[0] / grid.shape[1]))
    _imshow(ax, grid)
    for i, label in enumerate(row_labels or []):
        ax.text(-0.01, 1 - (i + 0.5) / rows, label, transform=ax.transAxes, ha="right", va="center")
    if title:
        ax.set_title(title)
    return ax


def trajectory_strip(
    frames: Sequence,
    n_samples: int = 6,
    field: Literal["x", "x0_hat"] = "x",
    cell: float = 0.9,
    title: str | None = None,
) -> Figure:
    """Rows = samples, columns = frames (labelled "t = ..."): how each sample changes along the trajectory.

    Args:
        frames: SampleStep or (t, x) pairs with images x [B, C, H, W] in [-1, 1], e.g. from ``keep_frames``.
        n_samples: rows to draw, the first ``n_samples`` of the batch.
        field: "x" (the current sample) or "x0_hat" (the model's estimate of the clean image; SampleStep only).
        cell: size of one image in inches (smaller if the strip would be wider than ``MAX_FIGURE_PX``).
    Returns:
        The figure (n_samples x len(frames) axes).
    """
    unpacked = _unpack(frames, field)
    if any(x.ndim != 4 for _, x in unpacked):
        raise ValueError("trajectory_strip draws images [B, C, H, W]; use animate(kind='points') for 2-D points.")
    n = min(n_samples, min(x.shape[0] for _, x in unpacked))
    cell = min(cell, MAX_FIGURE_PX / 100 / len(unpacked))
    fig, axes = plt.subplots(n, len(unpacked), figsize=(cell * len(unpacked), cell * n + 0.4), squeeze=False)
    for col, (t, x) in enumerate(unpacked):
        for row in range(n):
            _imshow(axes[row, col], image_grid(x[row : row + 1], padding=0))
        axes[0, col].set_title(f"t = {t}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- animations and sliders with a static figure --------------------------------------------------------


class Animation(HTML):
    """A JavaScript player (this object's HTML) and ``figure``, a static strip of key frames.

    Displayed by a notebook cell it shows both, the static figure first, so that the page, a PDF and a
    reader without JavaScript all see the process. ``display(anim.figure)`` or ``anim.data`` give each part.
    """

    def __init__(self, html: str, figure: Figure):
        super().__init__(html)
        self.figure = figure

    def _ipython_display_(self) -> None:
        display(_png(self.figure))
        display(HTML(self.data))


def _draw_frame(ax: Axes, x: np.ndarray, kind: str, nrow: int, lim: float, background: np.ndarray | None):
    """Draw one frame on ``ax`` and return the artist that later frames update."""
    if kind == "images":
        return _imshow(ax, image_grid(x, nrow))
    if background is not None:
        ax.scatter(background[:, 0], background[:, 1], s=2, c="0.8", zorder=0)
    artist = ax.scatter(x[:, 0], x[:, 1], s=3, c="C0", zorder=1)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    return artist


def animate(
    frames: Sequence,
    kind: Literal["images", "points"] = "images",
    *,
    n_stills: int = 5,
    nrow: int = 8,
    background: Any = None,
    lim: float | None = None,
    interval: int = 120,
    size: float = 3.5,
    dpi: int = 72,
    title: str = "t = {t}",
) -> Animation:
    """Animate a trajectory and draw its key frames, in one call.

    Args:
        frames: SampleStep or (t, x) pairs, in the order to play. x is images [B, C, H, W] in [-1, 1]
            (``kind="images"``, drawn as a grid of ``nrow`` columns) or points [N, 2] (``kind="points"``).
        n_stills: how many key frames (first and last included) the static figure shows.
        background: points [M, 2] drawn in grey under every frame (e.g. the real data); points only.
        lim: half-width of the square plot window for points; default: covers 99.5 % of all frames' points.
        interval: milliseconds per frame of the player.
        size, dpi: inches and resolution of one panel (the player's size grows the page: keep both small). The
            static figure has panels of the same pixels (fewer if its row would be wider than ``MAX_FIGURE_PX``),
            drawn at 100 dpi like the other figures.
        title: format string for each panel's title, given ``t``.
    Returns:
        An ``Animation`` (an ``IPython.display.HTML`` of ``FuncAnimation.to_jshtml()``) whose ``figure``
        holds the key frames; make it a cell's last expression to show both.
    """
    if kind not in ("images", "points"):
        raise ValueError(f"kind must be 'images' or 'points', got {kind!r}.")
    unpacked = _unpack(frames)
    want = 4 if kind == "images" else 2
    for t, x in unpacked:
        if x.ndim != want or (kind == "points" and x.shape[1] != 2):
            raise ValueError(
                f"kind={kind!r} needs frames of shape {'[B, C, H, W]' if want == 4 else '[N, 2]'}, "
                f"got {x.shape} at t = {t}."
            )
    bg = None if background is None else _to_numpy(background, "background")
    if kind == "points" and lim is None:
        lim = 1.05 * float(max(np.percentile(np.abs(x), 99.5) for _, x in unpacked))
    lim = float(lim or 1.0)

    keys = _key_indices(len(unpacked), n_stills)
    # the key frames at the 100 dpi of the other figures, so that their titles are as readable; each panel as many
    # pixels as the player's frames, fewer if the row would be wider than MAX_FIGURE_PX
    still_size = min(size * dpi, MAX_FIGURE_PX / len(keys)) / 100
    still, axes = plt.subplots(1, len(keys), figsize=(still_size * len(keys), still_size + 0.3), dpi=100, squeeze=False)
    for ax, k in zip(axes[0], keys):
        t, x = unpacked[k]
        _draw_frame(ax, x, kind, nrow, lim, bg)
        ax.set_title(title.format(t=t))
    still.tight_layout(w_pad=0.2)
    plt.close(still)  # shown by Animation._ipython_display_, not by the inline backend a second time

    fig, ax = plt.subplots(figsize=(size, size), dpi=dpi)
    artist = _draw_frame(ax, unpacked[0][1], kind, nrow, lim, bg)
    label = ax.set_title(title.format(t=unpacked[0][0]))
    fig.tight_layout()

    def update(i: int):
        t, x = unpacked[i]
        if kind == "images":
            grid = image_grid(x, nrow)
            artist.set_data(grid[..., 0] if grid.shape[-1] == 1 else grid)
        else:
            artist.set_offsets(x)
        label.set_text(title.format(t=t))
        return artist, label

    player = FuncAnimation(fig, update, frames=len(unpacked), interval=interval, blit=False)
    html = _self_contained(player.to_jshtml(default_mode="once"))
    plt.close(fig)
    return Animation(html, still)


# matplotlib's player draws its buttons with Font Awesome 4 from a CDN: blank buttons offline. Plain symbols
# draw everywhere (the website offline, Colab, Jupyter).
_PLAYER_ICONS = {
    "fa fa-minus": "\u2212",
    "fa fa-fast-backward": "\u23ee",
    "fa fa-step-backward": "\u23f4\u2223",
    "fa fa-play fa-flip-horizontal": "\u25c0",
    "fa fa-pause": "\u23f8",
    "fa fa-play": "\u25b6",
    "fa fa-step-forward": "\u2223\u23f5",
    "fa fa-fast-forward": "\u23ed",
    "fa fa-plus": "+",
}


def _self_contained(html: str) -> str:
    """``FuncAnimation.to_jshtml()`` output without the Font Awesome stylesheet it fetches from a CDN."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">', "", html)
    for icon, symbol in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="{icon}"></i>', f'<span aria-hidden="true">{symbol}</span>')
    if "https://" in html or 'class="fa ' in html:
        raise RuntimeError(
            "matplotlib's animation player changed: it still loads from the web or uses an icon "
            "font; update plotting._self_contained."
        )
    return html


class Slider(HTML):
    """A slider player (this object's HTML: every frame precomputed, no kernel needed) and ``figure``, the
    static panels at the chosen values. A cell that displays it shows the figure, then the player."""

    def __init__(self, html: str, figure: Figure, values: list):
        super().__init__(html)
        self.figure, self.values = figure, values

    def _ipython_display_(self) -> None:
        display(_png(self.figure))
        display(HTML(self.data))


_SLIDER_HTML = """<div class="course-slider" id="{id}" style="font-family: sans-serif; font-size: 0.9em">
<label for="{id}-input">{label} = <output id="{id}-value">{first}</output></label><br>
<input type="range" id="{id}-input" min="0" max="{last}" step="1" value="0" style="width: {width}px">
<br><img id="{id}-img" alt="{label} = {first}" src="data:image/png;base64,{src0}">
<script>
(function () {{
  var frames = {frames}, labels = {labels}, name = {name};
  var input = document.getElementById("{id}-input"), img = document.getElementById("{id}-img"),
      value = document.getElementById("{id}-value");
  input.addEventListener("input", function () {{
    var i = parseInt(input.value, 10);
    img.src = "data:image/png;base64," + frames[i];
    img.alt = name + " = " + labels[i];
    value.textContent = labels[i];
  }});
}})();
</script></div>"""


def _js(value: Any) -> str:
    """``value`` as a JavaScript literal that is safe inside an HTML <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def slider(
    fn: Callable[[Any, Axes], None],
    values: Sequence,
    static_values: Sequence | None = None,
    *,
    label: str = "t",
    ncols: int | None = None,
    panel_size: tuple[float, float] = (3.0, 3.0),
    max_frames: int = 40,
    dpi: int = 72,
) -> Slider:
    """Explore ``fn`` over ``values`` with a slider, and draw it at ``static_values`` for the static page.

    The slider is a small JavaScript player over frames drawn now, so it works where no kernel runs: on the
    published website, in Colab and in Jupyter alike (there is no ipywidgets slider to go dead).

    Args:
        fn: draws one value on the Axes it is given: ``fn(value, ax)``; it should set its own title.
        values: the slider's positions (any sequence, e.g. ``range(0, 1000, 10)``); at most ``max_frames``
            of them, spread evenly with the first and last kept, are drawn.
        static_values: values drawn side by side in the static figure; default: 4 spread over ``values``.
        label: the slider's caption.
        ncols: panels per row of the static figure (default: all in one row, at most 4).
        panel_size: inches of one panel (width, height), for both the static figure and the player; the static
            figure's panels shrink (keeping their shape) if a row would be wider than ``MAX_FIGURE_PX`` at 100 dpi.
        max_frames: the most frames the player holds (each is a PNG inside the page: keep the page small).
        dpi: resolution of the player's frames.
    Returns:
        A ``Slider`` (an ``IPython.display.HTML``) whose ``figure`` holds the static panels and ``values`` the
        values the player can show.
    """
    values = list(values)
    if not values:
        raise ValueError("values is empty; pass the slider's positions, e.g. range(0, 1000, 10).")
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2 (the first and last value), got {max_frames}.")
    static_values = [values[i] for i in _key_indices(len(values), 4)] if static_values is None else list(static_values)
    if not static_values:
        raise ValueError("static_values is empty; pass at least one value to draw on the static page.")
    ncols = ncols or min(len(static_values), 4)
    nrows = -(-len(static_values) // ncols)
    shrink = min(1.0, MAX_FIGURE_PX / 100 / (panel_size[0] * ncols))
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(shrink * panel_size[0] * ncols, shrink * panel_size[1] * nrows), squeeze=False
    )
    for ax in axes.flat[len(static_values) :]:
        ax.set_axis_off()
    for ax, value in zip(axes.flat, static_values):
        fn(value, ax)
    figure.tight_layout()
    plt.close(figure)

    shown = [values[i] for i in _key_indices(len(values), max_frames)]
    frames = []
    for value in shown:
        fig, ax = plt.subplots(figsize=panel_size, dpi=dpi)
        fn(value, ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        frames.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    labels = [str(v) for v in shown]
    html = _SLIDER_HTML.format(
        id=f"slider-{uuid.uuid4().hex[:12]}",
        label=html_lib.escape(label),
        first=html_lib.escape(labels[0]),
        last=len(shown) - 1,
        src0=frames[0],
        width=int(panel_size[0] * dpi),
        frames=json.dumps(frames),
        labels=_js(labels),
        name=_js(label),
    )
    return Slider(html, figure, shown)


# --- guidance sweeps ---------------------------------------------------------------------------------

TRADEOFF_PANELS = (
    (("accuracy",), "fidelity to the label"),
    (("precision", "recall"), "precision / recall"),
    (("within-class diversity",), "diversity"),
    (("FD",), "Fréchet distance"),
)


def plot_tradeoff(table: Any, xlabel: str, reference_fd: float | None = None) -> Figure:
    """The four panels of a guidance sweep: accuracy, precision and recall, within-class diversity, FD.

    Args:
        table: a pandas DataFrame with one row per guidance setting (its index: the scale, e.g. s or w) and the
            columns of ``metrics.guidance_report`` ("accuracy", "precision", "recall", "within-class diversity",
            "FD"). The settings are spaced evenly on the x-axis and labelled with their values.
        xlabel: the x-axis label, e.g. "scale s" or "guidance weight w".
        reference_fd: if given, a dotted line at this FD in the last panel (e.g. real digits against real ones).
    Returns:
        the figure (1 x 4 panels); the caller shows it.
    """
    missing = [c for cols, _ in TRADEOFF_PANELS for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}; pass the DataFrame of metrics.guidance_report rows.")
    fig, axes = plt.subplots(1, 4, figsize=(9.6, 2.8))
    x = np.arange(len(table))
    for ax, (cols, title) in zip(axes, TRADEOFF_PANELS):
        for c in cols:
            ax.plot(x, table[c], "o-", label=c)
        ax.set_xticks(x, [f"{v:g}" for v in table.index])
        ax.set(xlabel=xlabel, title=title)
    axes[1].legend(fontsize=8)
    if reference_fd is not None:
        axes[3].axhline(reference_fd, color="0.6", ls=":", label="real digits")
        axes[3].legend(fontsize=8)
    fig.tight_layout()
    return fig
