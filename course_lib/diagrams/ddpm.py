"""Chapter 2 (DDPM): the forward and reverse chain with its images, and the U-Net drawn from its config."""

from __future__ import annotations


from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch


from ._draw import _arrow, _axes, _finish, _node


def ddpm_chain(ax: Axes | None = None, *, images=None, title: str | None = None) -> Figure:
    """The Markov chain of DDPM, x_T -> ... -> x_t -> x_{t-1} -> ... -> x_0 (Ho et al. 2020, Fig. 2).

    Solid arrows, left to right: the reverse process p_theta(x_{t-1} | x_t), learned, which generates. Dashed
    arrows, right to left (curved below): the forward process q(x_t | x_{t-1}), fixed (no parameters), which adds
    noise. x_0 is the data (shaded, as observed nodes are in graphical models). Paper indices t = 1 ... T.

    Args:
        ax: Axes to draw on; default: a new figure.
        images: optional four images for x_T, x_t, x_{t-1}, x_0 (each [H, W] or [1, H, W], values in [-1, 1],
            clipped for display), drawn above their nodes, as in Ho et al.'s figure.
        title: optional title.
    Returns:
        The Figure. Nodes: ``node:x_T``, ``node:dots_T``, ``node:x_t``, ``node:x_t-1``, ``node:dots_0``,
        ``node:x_0`` (the dots are the steps not drawn); arrows ``p:<a>-><b>`` (solid) between neighbours
        towards x_0 and ``q:<b>-><a>`` (dashed) back; images ``image:<node>``.
    Raises:
        ValueError: if ``images`` is not four 2-D images.
    """
    import numpy as np

    names = ["x_T", "dots_T", "x_t", "x_t-1", "dots_0", "x_0"]  # left to right, as in Ho et al.'s figure
    labels = [r"$\mathbf{x}_T$", r"$\cdots$", r"$\mathbf{x}_t$", r"$\mathbf{x}_{t-1}$", r"$\cdots$", r"$\mathbf{x}_0$"]
    xs = [0.0, 1.6, 3.2, 5.4, 7.0, 8.6]
    if images is not None:
        images = [np.asarray(getattr(im, "detach", lambda: im)(), dtype=float).squeeze() for im in images]
        if len(images) != 4 or any(im.ndim != 2 for im in images):
            raise ValueError(
                f"images must be four 2-D images (x_T, x_t, x_t-1, x_0), got "
                f"{[im.shape for im in images]}; pass e.g. [x[0, 0] for x in (xT, xt, xt1, x0)]."
            )
    ax = _axes(ax, (9.0, 3.4 if images is not None else 2.4))
    for name, x, text in zip(names, xs, labels):
        if name.startswith("dots"):
            ax.add_patch(Circle((x, 0.0), 0.3, fill=False, lw=0, gid=f"node:{name}"))
            ax.text(x, 0.0, text, ha="center", va="center", fontsize=14)
        else:
            _node(ax, name, (x, 0.0), text, radius=0.4, observed=name == "x_0")
    for (a, xa), (b, xb) in zip(zip(names, xs), zip(names[1:], xs[1:])):
        _arrow(ax, f"p:{a}->{b}", (xa, 0.0), (xb, 0.0), shrink=21)  # reverse: towards the data
        _arrow(ax, f"q:{b}->{a}", (xb, -0.15), (xa, -0.15), shrink=20, rad=-0.45, linestyle="--", color="0.35")
    middle = (xs[2] + xs[3]) / 2
    ax.text(middle, 0.22, r"$p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$", ha="center", va="bottom", fontsize=11)
    ax.text(middle, -0.78, r"$q(\mathbf{x}_t \mid \mathbf{x}_{t-1})$", ha="center", va="top", fontsize=11, color="0.35")
    ax.plot([], [], color="k", label=r"reverse process $p_\theta$: learned, generates")
    ax.plot([], [], color="0.35", ls="--", label=r"forward process $q$: fixed, adds noise")
    top = 0.9
    if images is not None:
        for name, im in zip(["x_T", "x_t", "x_t-1", "x_0"], images):
            x = xs[names.index(name)]
            ax.imshow(
                np.clip(im, -1, 1),
                cmap="gray",
                vmin=-1,
                vmax=1,
                extent=(x - 0.5, x + 0.5, 0.5, 1.5),
                interpolation="nearest",
                gid=f"image:{name}",
                zorder=1,
            )
        top = 1.9
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=8.5, frameon=False)
    return _finish(ax, (-0.6, 9.2), (-1.75, top), title)


def _unet_stages(config, image_size: int) -> list[tuple[str, str, int, int, int]]:
    """(stage, kind, level, channels, resolution) of every stage of ``unet.UNet(config)``, in execution order.

    The stage names are those of ``unet.stage_shapes``; ``level`` is the level a stage belongs to, the number in
    its name (0 = full resolution; the middle: ``len(channel_mults)``), and ``resolution`` that of its output.
    """
    ch = [config.base_channels * m for m in config.channel_mults]
    levels = len(ch)
    stages = [("conv_in", "conv", 0, ch[0], image_size)]
    for i, c in enumerate(ch):
        size = image_size // 2**i
        for j in range(config.num_res_blocks):
            stages.append((f"down {i}: ResBlock {j}", "res", i, c, size))
            if i in config.attention_levels:
                stages.append((f"down {i}: attention {j}", "attn", i, c, size))
        if i < levels - 1:
            stages.append((f"down {i}: downsample", "down", i, c, size // 2))
    low = image_size // 2 ** (levels - 1)
    stages += [
        ("middle: mid1", "res", levels, ch[-1], low),
        ("middle: mid_attn", "attn", levels, ch[-1], low),
        ("middle: mid2", "res", levels, ch[-1], low),
    ]
    for i in reversed(range(levels)):
        size = image_size // 2**i
        for j in range(config.num_res_blocks):
            stages.append((f"up {i}: ResBlock {j}", "res", i, ch[i], size))
            if i in config.attention_levels:
                stages.append((f"up {i}: attention {j}", "attn", i, ch[i], size))
        if i > 0:
            stages.append((f"up {i}: upsample", "up", i, ch[i], size * 2))
    stages.append(("conv_out", "conv", 0, config.out_channels or config.in_channels, image_size))
    return stages


_UNET_STYLE = {
    "conv": ("conv", "white"),
    "res": ("ResBlock", "#cfe2f3"),
    "attn": ("attention", "#fde9b8"),
    "down": ("downsample", "0.88"),
    "up": ("upsample", "0.88"),
}


def unet_diagram(config=None, image_size: int = 16, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """The block diagram of ``unet.UNet(config)`` on ``image_size`` x ``image_size`` inputs, drawn as a "U".

    The encoder runs down the left column and the decoder up the right one, one box per stage in the order of
    the forward pass, the middle along the bottom; a box's indent is its resolution (it halves from one indent
    to the next) and its label gives the stage's output shape, channels x H x W. The dashed horizontal arrows
    are the skip connections: the encoder's output at each resolution is concatenated onto the input of the
    decoder's first ResBlock there. Every ResBlock also receives the time embedding, as a per-channel scale
    and shift after a GroupNorm (Dhariwal & Nichol 2021).

    Args:
        config: a ``unet.UNetConfig`` (default: ``UNetConfig()``, the chapter's model).
        image_size: H = W of the input; divisible by 2 ** (len(channel_mults) - 1).
        ax: Axes to draw on; default: a new figure.
        title: optional title.
    Returns:
        The Figure. One box per stage of ``unet.stage_shapes``, gid ``node:<stage>`` (e.g.
        ``node:down 1: ResBlock 0``), labelled "<kind>\\n<C>x<H>x<W>"; arrows ``fwd:<stage>-><next stage>``
        along the forward pass and ``skip:<encoder stage>-><decoder ResBlock 0>``.
    Raises:
        ValueError: if ``image_size`` is not divisible by 2 ** (len(channel_mults) - 1).
    """
    from ..unet import UNetConfig

    config = UNetConfig() if config is None else config
    levels = len(config.channel_mults)
    factor = 2 ** (levels - 1)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < factor or image_size % factor:
        raise ValueError(
            f"image_size must be a positive int divisible by {factor} (the U-Net halves it "
            f"{levels - 1} times), got {image_size!r}."
        )
    stages = _unet_stages(config, image_size)
    first_mid = next(k for k, s in enumerate(stages) if s[0].startswith("middle"))
    n_side = first_mid  # stages per column: the decoder mirrors the encoder, conv_out for conv_in
    width, height, pitch, indent = 1.9, 0.62, 0.95, 0.9
    span = max(2 * (levels - 1) * indent + width + 2.6, 3 * (width + 0.35) + 0.4)  # between the column centres
    centres = {}
    for k, (name, kind, _, channels, size) in enumerate(stages):
        level = (image_size // size).bit_length() - 1  # the box's indent: 0 at full resolution
        if k < first_mid:
            xy = (level * indent, -k * pitch)
        elif k < first_mid + 3:
            xy = (span / 2 + (k - first_mid - 1) * (width + 0.35), -n_side * pitch)
        else:
            xy = (span - level * indent, -(n_side - 1 - (k - first_mid - 3)) * pitch)
        text, color = _UNET_STYLE[kind]
        centres[name] = (xy, f"{text}\n{channels}x{size}x{size}", color)
    ax = _axes(ax, (0.62 * (span + width + 0.6), 0.62 * ((n_side + 1) * pitch + 1.3)))
    for name, (xy, text, color) in centres.items():
        ax.add_patch(
            FancyBboxPatch(
                (xy[0] - width / 2, xy[1] - height / 2),
                width,
                height,
                gid=f"node:{name}",
                boxstyle="round,pad=0.03",
                facecolor=color,
                edgecolor="k",
                lw=1.0,
                zorder=3,
            )
        )
        ax.text(*xy, text, ha="center", va="center", fontsize=7.5, zorder=4, linespacing=1.1)
    centres = {name: xy for name, (xy, _, _) in centres.items()}

    def edge(a: tuple[float, float], b: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
        # tail and head on the boxes' edges: left/right when side by side, top/bottom otherwise
        (xa, ya), (xb, yb) = a, b
        if abs(ya - yb) < 1e-9:
            s = 1 if xb > xa else -1
            return (xa + s * width / 2, ya), (xb - s * width / 2, yb)
        s = 1 if yb > ya else -1
        return (xa, ya + s * height / 2), (xb, yb - s * height / 2)

    for (a, *_), (b, *_) in zip(stages, stages[1:]):
        _arrow(ax, f"fwd:{a}->{b}", *edge(centres[a], centres[b]), lw=1.0)
    for i in range(levels):  # what encoder level i hands over: its last stage before the downsampling
        enc = [s[0] for s in stages if s[0].startswith(f"down {i}:") and s[1] != "down"][-1]
        dec = f"up {i}: ResBlock 0"
        _arrow(ax, f"skip:{enc}->{dec}", *edge(centres[enc], centres[dec]), color="0.45", linestyle="--", lw=1.0)
    (x_in, y_in), (x_out, y_out) = centres["conv_in"], centres["conv_out"]
    ax.text(
        x_in,
        y_in + height / 2 + 0.12,
        r"$\mathbf{x}_t$: " f"{config.in_channels}x{image_size}x{image_size}",
        ha="center",
        va="bottom",
        fontsize=9,
    )
    ax.text(
        x_out,
        y_out + height / 2 + 0.12,
        r"$\boldsymbol{\epsilon}_\theta(\mathbf{x}_t, t)$",
        ha="center",
        va="bottom",
        fontsize=9,
    )
    below_first_skip = centres["up 0: ResBlock 0"][1] - 0.3
    ax.text(
        span / 2,
        below_first_skip,
        "time $t$ $\\to$ sinusoidal embedding $\\to$ MLP:\na scale and shift in "
        "every ResBlock\ndashed: skip connections (concatenated)",
        ha="center",
        va="top",
        fontsize=7.5,
    )
    return _finish(
        ax, (-width / 2 - 0.3, span + width / 2 + 0.3), (-n_side * pitch - height / 2 - 0.2, height / 2 + 0.6), title
    )
