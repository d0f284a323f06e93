"""Schematic figures the chapters' text refers to, drawn with matplotlib (no pasted images), one module per chapter.

- ``vae`` (chapter 1): the graphical model of Kingma & Welling 2014 (their Fig. 1: solid arrows the generative
  model, dashed the variational approximation), the computation graph of the reparameterization trick (Kingma &
  Welling 2014 Sec. 2.4; drawn as in Kingma & Welling 2019, "An Introduction to Variational Autoencoders",
  Fig. 2.3), and log p(x) = ELBO + KL(q(z|x) || p(z|x)) as a stacked bar.
- ``ddpm`` (chapter 2): the forward and reverse chain over a row of images, and a U-Net drawn from its config.
- ``ddim`` (chapter 4): DDPM's Markov forward process beside DDIM's non-Markovian q_sigma (Song et al. 2021,
  Fig. 1), and one DDIM step (Eq. 12) as its three arrows, computed by ``course_lib.ddim.ddim_step`` itself.

Conventions: every function draws on the Axes ``ax`` it is given, or on a new figure, and returns the Figure;
it never calls ``plt.show()``. Values are in nats. The artists a reader (or a test) may want to find carry a
``gid``: nodes ``"node:<name>"``, arrows ``"<kind>:<from>-><to>"`` (kind ``p``, ``q``, ``fwd`` or ``grad``),
bar segments by their meaning. Arrows are ``ax.annotate`` annotations: ``xy`` is the head, ``xyann`` the tail.
The shared primitives are in ``_draw``.
"""

from ._draw import GRADIENT_COLOR
from .ddim import ddim_graphical_model, ddim_step, ddim_step_parts
from .ddpm import ddpm_chain, unet_diagram
from .vae import elbo_gap_bar, reparameterization_graph, vae_graphical_model

__all__ = [
    "GRADIENT_COLOR",
    "ddim_graphical_model",
    "ddim_step",
    "ddim_step_parts",
    "ddpm_chain",
    "elbo_gap_bar",
    "reparameterization_graph",
    "unet_diagram",
    "vae_graphical_model",
]
