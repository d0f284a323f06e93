"""Chapter 1 (VAEs): the graphical model (Kingma & Welling 2014, Fig. 1), the computation graph of the
reparameterization trick (Kingma & Welling 2019, Fig. 2.3) and log p(x) = ELBO + KL as a stacked bar."""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


from ._draw import GRADIENT_COLOR, _arrow, _axes, _box, _finish, _node


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
