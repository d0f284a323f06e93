"""Schematic figures the chapters' text refers to, drawn with matplotlib (no pasted images).

Chapter 1 (VAEs): the graphical model of Kingma & Welling 2014 (their Fig. 1: solid arrows the generative
model, dashed the variational approximation), the computation graph of the reparameterization trick (Kingma &
Welling 2014 Sec. 2.4; drawn as in Kingma & Welling 2019, "An Introduction to Variational Autoencoders",
Fig. 2.3), and log p(x) = ELBO + KL(q(z|x) || p(z|x)) as a stacked bar.

Conventions: every function draws on the Axes ``ax`` it is given, or on a new figure, and returns the Figure;
it never calls ``plt.show()``. Values are in nats. The artists a reader (or a test) may want to find carry a
``gid``: nodes ``"node:<name>"``, arrows ``"<kind>:<from>-><to>"`` (kind ``p``, ``q``, ``fwd`` or ``grad``),
bar segments by their meaning. Arrows are ``ax.annotate`` annotations: ``xy`` is the head, ``xyann`` the tail.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

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


# --- VAE (chapter 1) -----------------------------------------------------------------------------------


def vae_graphical_model(ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """The VAE as a graphical model (Kingma & Welling 2014, Fig. 1).

    The latent z (white) generates the observed image x (grey) through the decoder p_theta(x|z), a solid arrow;
    the encoder q_phi(z|x), the dashed arrow back from x to z, approximates the posterior. The plate says that
    every one of the N images has its own z; the parameters theta and phi, outside it, are shared.

    Args:
        ax: Axes to draw on; default: a new figure.
        title: optional title.
    Returns:
        The Figure. Nodes have gids ``node:z``, ``node:x``, ``node:theta``, ``node:phi``; the two arrows between
        z and x are ``p:z->x`` (solid) and ``q:x->z`` (dashed).
    """
    ax = _axes(ax, (4.6, 3.6))
    z, x = (0.0, 1.6), (0.0, 0.0)
    theta, phi = (1.75, 0.0), (-1.75, 1.6)
    _node(ax, "z", z, r"$\mathbf{z}$")
    _node(ax, "x", x, r"$\mathbf{x}$", observed=True)
    for name, xy, text in [("theta", theta, r"$\theta$"), ("phi", phi, r"$\phi$")]:  # parameters: dots
        _node(ax, name, xy, "", radius=0.09, color="k")
        ax.text(xy[0], xy[1] + 0.2, text, ha="center", va="bottom", fontsize=13)
    _arrow(ax, "p:z->x", (z[0] + 0.1, z[1]), (x[0] + 0.1, x[1]), shrink=21, rad=-0.35)
    _arrow(ax, "q:x->z", (x[0] - 0.1, x[1]), (z[0] - 0.1, z[1]), shrink=21, rad=-0.35, linestyle="--")
    _arrow(ax, "p:theta->x", theta, x, shrink=20)
    _arrow(ax, "q:phi->z", phi, z, shrink=20, linestyle="--")
    ax.text(0.4, 0.8, r"$p_\theta(\mathbf{x}\mid\mathbf{z})$" "\ndecoder", ha="left", va="center", fontsize=10)
    ax.text(-0.4, 0.8, r"$q_\phi(\mathbf{z}\mid\mathbf{x})$" "\nencoder", ha="right", va="center", fontsize=10)
    ax.text(
        z[0] + 0.4,
        z[1],
        "prior\n" r"$p(\mathbf{z}) = \mathcal{N}(\mathbf{0}, \mathbf{I})$",
        ha="left",
        va="center",
        fontsize=9,
    )
    ax.add_patch(Rectangle((-1.2, -0.55), 2.4, 2.65, fill=False, lw=1.0, gid="plate"))
    ax.text(1.1, -0.45, "$N$", ha="right", va="bottom", fontsize=11)
    return _finish(ax, (-2.3, 2.3), (-0.8, 2.6), title)


def reparameterization_graph(ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """The computation graph of the reparameterization trick (Kingma & Welling 2014, Sec. 2.4).

    The encoder (parameters phi) turns x into mu and sigma; the noise eps ~ N(0, I) is an *input* drawn outside
    the model; z = mu + sigma * eps is an ordinary differentiable function of all three, and the objective f(z)
    (e.g. log p_theta(x|z), or a loss) follows. Black arrows: the forward pass. Red dashed arrows: the gradient df/dz flowing back
    through z to mu and sigma and on to phi. No gradient is needed for eps, so it sits off the gradient path.

    Args:
        ax: Axes to draw on; default: a new figure.
        title: optional title.
    Returns:
        The Figure. Nodes: ``node:x``, ``node:encoder``, ``node:mu``, ``node:sigma``, ``node:eps``, ``node:z``,
        ``node:f``; forward arrows ``fwd:<a>-><b>``, gradient arrows ``grad:<a>-><b>`` (from the node whose
        gradient is known to the node it is passed to).
    """
    ax = _axes(ax, (9.0, 3.8))
    pos = {
        "x": (0.0, 1.2),
        "encoder": (1.7, 1.2),
        "mu": (3.5, 2.0),
        "sigma": (3.5, 0.4),
        "eps": (5.3, -0.8),
        "z": (5.6, 1.2),
        "f": (8.0, 1.2),
    }
    _node(ax, "x", pos["x"], r"$\mathbf{x}$", observed=True)
    _box(ax, "encoder", pos["encoder"], r"encoder $\phi$", width=1.4)
    _node(ax, "mu", pos["mu"], r"$\boldsymbol{\mu}$")
    _node(ax, "sigma", pos["sigma"], r"$\boldsymbol{\sigma}$")
    _node(ax, "eps", pos["eps"], r"$\boldsymbol{\epsilon}$", color="#fde9b8")
    _box(
        ax,
        "z",
        pos["z"],
        r"$\mathbf{z} = \boldsymbol{\mu} + \boldsymbol{\sigma} \odot \boldsymbol{\epsilon}$",
        width=2.0,
        height=0.7,
    )
    _box(ax, "f", pos["f"], r"$f(\mathbf{z})$", width=1.4)
    ax.text(
        pos["eps"][0] + 0.4,
        pos["eps"][1],
        r"$\sim \mathcal{N}(\mathbf{0}, \mathbf{I})$: a random input,"
        "\n"
        "outside the gradient path",
        ha="left",
        va="center",
        fontsize=9,
    )

    def port(name: str, toward: tuple[float, float]) -> tuple[float, float]:
        # where an edge leaves a round node: on its rim, towards the other end
        (cx, cy), (tx, ty) = pos[name], toward
        d = math.hypot(tx - cx, ty - cy)
        return cx + 0.32 * (tx - cx) / d, cy + 0.32 * (ty - cy) / d

    def edge(a: str, b: str, tail: tuple[float, float], head: tuple[float, float], gradient: bool = True):
        # the forward arrow a -> b and, shifted beside it, the gradient arrow b -> a
        dx, dy = head[0] - tail[0], head[1] - tail[1]
        nx, ny = -dy / math.hypot(dx, dy) * 0.07, dx / math.hypot(dx, dy) * 0.07
        shift = (nx, ny) if gradient else (0.0, 0.0)
        _arrow(
            ax,
            f"fwd:{a}->{b}",
            (tail[0] + shift[0], tail[1] + shift[1]),
            (head[0] + shift[0], head[1] + shift[1]),
            shrink=1,
        )
        if gradient:
            _arrow(
                ax,
                f"grad:{b}->{a}",
                (head[0] - nx, head[1] - ny),
                (tail[0] - nx, tail[1] - ny),
                color=GRADIENT_COLOR,
                linestyle="--",
                shrink=1,
            )

    edge("x", "encoder", port("x", (1.0, 1.2)), (0.93, 1.2), gradient=False)
    for name, y in (("mu", 1.4), ("sigma", 1.0)):
        edge("encoder", name, (2.47, y), port(name, (2.47, y)))
        edge(name, "z", port(name, (4.55, y)), (4.55, y))
    edge("eps", "z", port("eps", (pos["eps"][0], 0.8)), (pos["eps"][0], 0.8), gradient=False)
    edge("z", "f", (6.65, 1.2), (7.25, 1.2))
    ax.text(
        6.95, 1.38, r"$\partial f / \partial \mathbf{z}$", color=GRADIENT_COLOR, ha="center", va="bottom", fontsize=10
    )
    ax.text(
        3.5,
        2.4,
        r"$\partial f / \partial \boldsymbol{\mu} = \partial f / \partial \mathbf{z}$",
        color=GRADIENT_COLOR,
        ha="center",
        va="bottom",
        fontsize=9,
    )
    ax.text(
        3.5,
        0.0,
        r"$\partial f / \partial \boldsymbol{\sigma} = \boldsymbol{\epsilon} \odot \partial f / "
        r"\partial \mathbf{z}$",
        color=GRADIENT_COLOR,
        ha="center",
        va="top",
        fontsize=9,
    )
    ax.plot([], [], color="k", label="forward pass")
    ax.plot([], [], color=GRADIENT_COLOR, ls="--", label="gradient (backward pass)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return _finish(ax, (-0.5, 8.9), (-1.4, 2.9), title)


def elbo_gap_bar(
    log_px: float, elbo: float, ax: Axes | None = None, *, baseline: float | None = None, title: str | None = None
) -> Figure:
    """log p(x) = ELBO(x) + KL(q(z|x) || p(z|x)) as one stacked bar, in nats.

    The lower segment reaches the ELBO, the segment on top of it is the gap, KL(q || p(z|x)) = log p(x) - ELBO,
    and together they reach log p(x). Nats of a density can be negative and the gap is often small next to the
    ELBO, so the bar starts at ``baseline``, not necessarily at 0: read the values on the axis (they are also
    written beside the bar).

    Args:
        log_px: log p(x) in nats (e.g. by quadrature).
        elbo: the ELBO of the same x in nats; at most ``log_px``, since the gap is a KL divergence.
        ax: Axes to draw on; default: a new figure.
        baseline: where the bar starts, below ``elbo``; default: 0 when that leaves the gap visible (ELBO >= 0
            and gap >= 2 % of log p(x)), otherwise four gaps below the ELBO.
        title: optional title.
    Returns:
        The Figure. The segments are Rectangles with gids ``elbo`` (from ``baseline`` to ``elbo``) and ``gap``
        (from ``elbo`` to ``log_px``); the dashed line at log p(x) has gid ``log_px``.
    Raises:
        ValueError: if a value is not a finite number, if ``elbo > log_px`` (a Monte Carlo ELBO can exceed
            log p(x) by its own error: average it over more codes) or if ``baseline >= elbo``.
    """
    values = {"log_px": log_px, "elbo": elbo} | ({} if baseline is None else {"baseline": baseline})
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(
                f"{name} must be a finite number of nats, got {value!r}; pass a float (e.g. tensor.item())."
            )
    gap = log_px - elbo
    if gap < 0:
        raise ValueError(
            f"elbo ({elbo:.4g}) must not exceed log_px ({log_px:.4g}): the gap KL(q || p(z|x)) "
            "is >= 0. A Monte Carlo ELBO can overshoot by its own error; average it over more codes."
        )
    if baseline is None:
        visible = elbo >= 0 and gap >= 0.02 * abs(log_px)
        baseline = 0.0 if visible else elbo - 4 * (gap if gap > 0 else 1.0)
    elif baseline >= elbo:
        raise ValueError(f"baseline ({baseline:.4g}) must lie below elbo ({elbo:.4g}); the bar rises from it.")
    ax = _axes(ax, (3.8, 4.2))
    width = 0.5
    ax.add_patch(
        Rectangle(
            (-width / 2, baseline),
            width,
            elbo - baseline,
            facecolor="C0",
            gid="elbo",
            label=r"ELBO $= \mathbb{E}_q[\log p_\theta(\mathbf{x}\mid\mathbf{z})] - "
            r"D_{\mathrm{KL}}(q\,\Vert\,p(\mathbf{z}))$",
        )
    )
    ax.add_patch(
        Rectangle(
            (-width / 2, elbo),
            width,
            gap,
            facecolor=GRADIENT_COLOR,
            alpha=0.8,
            gid="gap",
            label=r"gap $= D_{\mathrm{KL}}(q(\mathbf{z}\mid\mathbf{x})\,\Vert\,"
            r"p_\theta(\mathbf{z}\mid\mathbf{x})) \geq 0$",
        )
    )
    ax.axhline(log_px, color="k", ls="--", lw=1, gid="log_px", label=r"$\log p_\theta(\mathbf{x})$")
    right = width / 2 + 0.05
    ax.text(right, elbo, f"ELBO = {elbo:.4g}", va="top" if gap > 0 else "center", fontsize=9)
    ax.text(right, log_px, f"log p(x) = {log_px:.4g}", va="bottom", fontsize=9)
    ax.text(right, elbo + gap / 2, f"gap = {gap:.3g}", va="center", fontsize=9, color=GRADIENT_COLOR)
    span = log_px - baseline
    ax.set(xlim=(-0.6, 1.6), ylim=(baseline, log_px + 0.45 * span), xticks=[], ylabel="nats")
    if baseline != 0:
        ax.set_xlabel(f"(the axis starts at {baseline:.4g}, not 0)", fontsize=8)
    ax.legend(loc="upper left", fontsize=7.5, frameon=False)
    if title:
        ax.set_title(title)
    return ax.figure


# --- DDPM (chapter 2) ----------------------------------------------------------------------------------


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
    from .unet import UNetConfig

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


# --- DDIM (chapter 4) ----------------------------------------------------------------------------------


def ddim_graphical_model(axes=None, *, title: str | None = None) -> Figure:
    """DDPM's Markov forward process next to DDIM's non-Markovian q_sigma (Song et al. 2021, Fig. 1), for T = 3.

    Both panels have the same generative process, solid arrows left to right: the Markov chain
    p_theta(x_{t-1} | x_t) from x_3 (noise) to x_0 (the data, shaded). They differ in the forward process, dashed:
    in DDPM (left) each x_t is drawn from q(x_t | x_{t-1}) alone; in DDIM's q_sigma (right, Eq. 7, seen forwards by
    Bayes' rule, Eq. 8) each x_t with t > 1 is drawn from q_sigma(x_t | x_{t-1}, x_0), so x_0 has an arrow
    (orange, curved below) into every x_t. Paper indices t = 0 ... 3.

    Args:
        axes: two Axes to draw on (DDPM, then DDIM); default: a new figure, 9.6 x 3.3 inches.
        title: optional title over both panels.
    Returns:
        The Figure. In each panel nodes ``node:x_3`` ... ``node:x_0``; arrows ``p:x_t->x_{t-1}`` (solid),
        ``q:x_{t-1}->x_t`` (dashed) and, in the DDIM panel only, ``q:x_0->x_t`` for t = 2, 3 (dashed).
    Raises:
        ValueError: if ``axes`` is not two matplotlib Axes.
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.3))
    elif len(axes) != 2 or not all(isinstance(a, Axes) for a in axes):
        raise ValueError(
            f"axes must be two matplotlib Axes (DDPM, DDIM) or None, got {axes!r}; pass e.g. plt.subplots(1, 2)[1]."
        )
    names = ["x_3", "x_2", "x_1", "x_0"]  # left to right, noise to data, as in ddpm_chain
    xs = dict(zip(names, [0.0, 1.7, 3.4, 5.1]))
    forward_color, x0_color = "0.35", "C1"
    panels = [
        (axes[0], False, "DDPM (Ho et al. 2020):\na Markov forward process"),
        (axes[1], True, "DDIM (Song et al. 2021):\nthe non-Markovian forward process " r"$q_\sigma$"),
    ]
    for ax, non_markov, panel_title in panels:
        for name in names:
            _node(ax, name, (xs[name], 0.0), rf"$\mathbf{{x}}_{name[-1]}$", radius=0.38, observed=name == "x_0")
        for a, b in zip(names, names[1:]):  # a is the noisier neighbour of b
            _arrow(ax, f"p:{a}->{b}", (xs[a], 0.0), (xs[b], 0.0), shrink=20)
            _arrow(
                ax,
                f"q:{b}->{a}",
                (xs[b], 0.12),
                (xs[a], 0.12),
                shrink=19,
                rad=0.45,
                linestyle="--",
                color=forward_color,
            )
        ax.text(
            (xs["x_2"] + xs["x_1"]) / 2,
            0.62,
            r"$q(\mathbf{x}_t \mid \mathbf{x}_{t-1})$"
            if not non_markov
            else r"$q_\sigma(\mathbf{x}_t \mid \mathbf{x}_{t-1}, \mathbf{x}_0)$",
            ha="center",
            va="bottom",
            fontsize=10,
            color=forward_color,
        )
        ax.text((xs["x_3"] + xs["x_2"]) / 2, -0.1, r"$p_\theta$", ha="center", va="top", fontsize=10)
        if non_markov:
            for t, rad in (("x_2", -0.42), ("x_3", -0.38)):
                _arrow(
                    ax,
                    f"q:x_0->{t}",
                    (xs["x_0"] - 0.1, -0.25),
                    (xs[t] + 0.1, -0.25),
                    shrink=12,
                    rad=rad,
                    linestyle="--",
                    color=x0_color,
                )
            ax.text(
                xs["x_1"],
                -1.55,
                r"every $\mathbf{x}_t$ also depends on $\mathbf{x}_0$",
                ha="center",
                va="top",
                fontsize=9,
                color=x0_color,
            )
        else:
            ax.text(
                xs["x_1"] - 0.85,
                -0.75,
                "each " r"$\mathbf{x}_t$ depends on $\mathbf{x}_{t-1}$ alone",
                ha="center",
                va="top",
                fontsize=9,
                color=forward_color,
            )
        _finish(ax, (-0.55, 5.65), (-2.0, 1.25), panel_title)
    axes[0].plot([], [], color="k", label=r"generative process $p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$")
    axes[0].plot([], [], color=forward_color, ls="--", label="forward process (adds noise)")
    fig = axes[0].figure
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.1, wspace=0.08)
    return fig


def _as_point(name: str, value) -> "torch.Tensor":
    """A point of the plane as float64 [2] (from a tensor, array or sequence of two numbers)."""
    import torch

    point = torch.as_tensor(getattr(value, "detach", lambda: value)(), dtype=torch.float64).reshape(-1)
    if point.numel() != 2 or not bool(torch.isfinite(point).all()):
        raise ValueError(
            f"{name} must be one finite point of the plane (2 numbers), got {value!r}; "
            "pass e.g. x[0] of a batch [B, 2]."
        )
    return point


def ddim_step_parts(xt, eps_hat, alpha_bar_t: float, alpha_bar_prev: float, *, eta: float = 0.0, z=None) -> dict:
    """The three terms of one DDIM step (Song et al. 2021, Eq. 12) for one point of the plane.

    The step itself is ``course_lib.ddim.ddim_step`` (on a one-index schedule whose alpha_bar is
    ``alpha_bar_t``, stepping to the data index -1 with ``alpha_bar_final=alpha_bar_prev``), so a drawing made
    from these parts cannot disagree with the sampler.

    Args:
        xt: x_t, 2 numbers. eps_hat: the noise prediction eps_theta(x_t, t), 2 numbers.
        alpha_bar_t, alpha_bar_prev: alpha_bar at the step's start and end, 0 < alpha_bar_t <= alpha_bar_prev <= 1.
        eta: sigma_t's multiplier (Eq. 16): 0 deterministic, 1 DDPM's posterior variance.
        z: the noise z ~ N(0, I), 2 numbers; needed when eta > 0.
    Returns:
        float64 tensors [2]: ``x0_hat`` (Eq. 12's "predicted x0"), ``x0_term`` = sqrt(ab_prev) x0_hat,
        ``direction`` = sqrt(1 - ab_prev - sigma^2) eps_hat ("direction pointing to x_t"), ``noise`` = sigma z,
        ``x_prev`` (the library's step: the sum of the three terms), and the float ``sigma``.
    Raises:
        ValueError: if a point is not 2 finite numbers, the alpha_bars are out of order, or eta > 0 without z.
    """
    import torch

    from .ddim import ddim_sigma
    from .ddim import ddim_step as library_step
    from .schedules import Schedule

    xt, eps_hat = _as_point("xt", xt), _as_point("eps_hat", eps_hat)
    sigma = ddim_sigma(float(alpha_bar_t), float(alpha_bar_prev), float(eta))  # checks the alpha_bars and eta
    if sigma > 0 and z is None:
        raise ValueError(f"eta = {eta} adds noise sigma_t z (sigma_t = {sigma:.3g}); pass z, 2 numbers.")
    z = torch.zeros(2, dtype=torch.float64) if z is None else _as_point("z", z)
    one_step = Schedule.from_betas("one DDIM step", torch.tensor([1.0 - alpha_bar_t], dtype=torch.float64))
    step = library_step(
        eps_hat[None], xt[None], 0, -1, one_step, eta=eta, noise=z[None], alpha_bar_final=float(alpha_bar_prev)
    )
    x0_hat = step.x0_hat[0]
    return {
        "x0_hat": x0_hat,
        "x0_term": math.sqrt(alpha_bar_prev) * x0_hat,  # Eq. 12
        "direction": math.sqrt(max(1 - alpha_bar_prev - sigma**2, 0.0)) * eps_hat,  # Eq. 12
        "noise": sigma * z,
        "x_prev": step.x[0],
        "sigma": sigma,
    }


def ddim_step(
    xt,
    eps_hat,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    *,
    eta: float = 0.0,
    z=None,
    ax: Axes | None = None,
    legend: bool = True,
    title: str | None = None,
) -> Figure:
    """One DDIM step (Song et al. 2021, Eq. 12) drawn as vectors in the plane, from the origin.

    Grey, thin: x_t itself as the forward process writes it, sqrt(ab_t) x0_hat + sqrt(1 - ab_t) eps_hat (exact, by
    the definition of x0_hat). Coloured, tip to tail: the new point x_{t-1} = sqrt(ab_prev) x0_hat ("predicted x0",
    blue) + sqrt(1 - ab_prev - sigma^2) eps_hat ("direction pointing to x_t", orange) + sigma z ("random noise",
    red, dashed; absent when eta = 0). A dotted grey line joins the origin to x0_hat, the direction both blue
    and grey first arrows take. The same two vectors, x0_hat and eps_hat, make up both points: the step
    moves weight from the noise to the predicted data. The numbers come from ``ddim_step_parts``, i.e. from the
    library's ``ddim.ddim_step``.

    Args:
        xt, eps_hat, alpha_bar_t, alpha_bar_prev, eta, z: as for ``ddim_step_parts``.
        ax: Axes to draw on; default: a new figure, 5 x 4.6 inches. With axes shared between panels (e.g.
            ``plt.subplots(1, 2, sharex=True, sharey=True)``) all panels get one window.
        legend: whether to name the arrows in a legend below the Axes (one is enough for several panels).
        title: optional title.
    Returns:
        The Figure. Points (Line2D markers) ``point:origin``, ``point:x_t``, ``point:x0_hat``, ``point:x_prev``;
        arrows ``xt:x0_term``, ``xt:noise`` (the decomposition of x_t) and ``step:x0_term``, ``step:direction``,
        ``step:noise`` (the step, tip to tail; the last only when sigma > 0).
    """
    import numpy as np

    parts = ddim_step_parts(xt, eps_hat, alpha_bar_t, alpha_bar_prev, eta=eta, z=z)
    xt = _as_point("xt", xt)
    ax = _axes(ax, (5.0, 4.6))
    origin = (0.0, 0.0)

    def xy(v) -> tuple[float, float]:
        return float(v[0]), float(v[1])

    xt_x0 = math.sqrt(alpha_bar_t) * parts["x0_hat"]
    ax.plot([0, float(parts["x0_hat"][0])], [0, float(parts["x0_hat"][1])], ls=":", color="0.6", lw=1, zorder=1)
    _arrow(ax, "xt:x0_term", origin, xy(xt_x0), color="0.6", lw=1.0)
    _arrow(ax, "xt:noise", xy(xt_x0), xy(xt), color="0.6", lw=1.0)
    end1 = parts["x0_term"]
    end2 = end1 + parts["direction"]
    _arrow(ax, "step:x0_term", origin, xy(end1), color="C0", lw=2.0)
    _arrow(ax, "step:direction", xy(end1), xy(end2), color="C1", lw=2.0)
    if parts["sigma"] > 0:
        _arrow(ax, "step:noise", xy(end2), xy(parts["x_prev"]), color="C3", lw=2.0, linestyle="--")
    for gid, v, marker, color, label, offset in (
        ("point:origin", origin, "o", "k", "0", (6, 5)),
        ("point:x_t", xt, "o", "0.45", r"$\mathbf{x}_t$", (6, 5)),
        ("point:x0_hat", parts["x0_hat"], "*", "C0", r"$\hat{\mathbf{x}}_0$", (4, -18)),  # below the arrows
        ("point:x_prev", parts["x_prev"], "o", "k", r"$\mathbf{x}_{t-1}$", (6, 5)),
    ):
        ax.plot(*xy(v), marker, color=color, ms=11 if marker == "*" else 6, zorder=5, gid=gid)
        ax.annotate(label, xy(v), xytext=offset, textcoords="offset points", fontsize=12, color=color, zorder=6)
    ax.plot([], [], color="C0", lw=2, label=r"$\sqrt{\bar\alpha_{t-1}}\,\hat{\mathbf{x}}_0$: predicted $\mathbf{x}_0$")
    ax.plot(
        [],
        [],
        color="C1",
        lw=2,
        label=r"$\sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,\hat{\boldsymbol{\epsilon}}$: "
        r"direction pointing to $\mathbf{x}_t$",
    )
    if parts["sigma"] > 0:
        ax.plot([], [], color="C3", lw=2, ls="--", label=r"$\sigma_t\mathbf{z}$: random noise")
    ax.plot(
        [],
        [],
        color="0.6",
        lw=1,
        label=r"$\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\hat{\mathbf{x}}_0 + "
        r"\sqrt{1-\bar\alpha_t}\,\hat{\boldsymbol{\epsilon}}$",
    )
    if legend:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=9, frameon=False)

    points = np.array([origin, xy(xt), xy(parts["x0_hat"]), xy(end1), xy(end2), xy(parts["x_prev"])])
    ax.update_datalim(points)
    ax.margins(0.15)
    ax.autoscale_view()
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure
