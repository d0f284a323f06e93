"""Chapter 4 (DDIM): DDPM's Markov chain beside the non-Markov q_sigma (Song et al. 2021, Fig. 1), and one DDIM
step (Eq. 12) drawn as its three arrows."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure


from ._draw import _arrow, _axes, _finish, _node


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

    from ..ddim import ddim_sigma
    from ..ddim import ddim_step as library_step
    from ..schedules import Schedule

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
