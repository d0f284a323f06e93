"""The tiny VAE of chapter 1's first two pages: MLPs on flattened 16 x 16 digits and a 2-D code.

Kingma & Welling 2014 ("Auto-Encoding Variational Bayes"). Page 1 writes ``TinyVAE`` out in plain PyTorch to
teach it; page 2 imports it from here to measure its ELBO's gap, so that both pages train the same model
(``tests/test_tiny_vae.py`` checks that the page's class and this one agree, and that the hand-written formulas
equal ``course_lib.distributions``). The convolutional VAE of the later pages is ``course_lib.vae``.

Notation: x are flattened images [B, D] in [-1, 1]; z are codes [B, latent_dim]; q(z|x) = N(mean(x),
diag exp(logvar(x))) is the encoder, p(z) = N(0, I) the prior, p(x|z) the decoder: a Gaussian N(decoder(z), s^2 I)
with one (learned or fixed) log s^2, or a Bernoulli on the "ink" (x + 1) / 2. Log-likelihoods and KLs are in nats,
summed over an example; these are densities for the Gaussian decoder, so they can be negative.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from ._checks import check_float


def mlp(n_in: int, n_out: int, hidden: int = 128) -> nn.Sequential:
    """A three-layer perceptron ``n_in -> hidden -> hidden -> n_out`` with SiLU activations."""
    for name, value in (("n_in", n_in), ("n_out", n_out), ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out)
    )


def fit(
    module: nn.Module,
    loss_fn: Callable[[Tensor, torch.Generator], Tensor],
    data: Tensor,
    steps: int,
    *,
    lr: float = 3e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> list[float]:
    """Adam on random mini-batches of ``data``; deterministic given ``seed``.

    Args:
        module: the model whose parameters are trained.
        loss_fn: ``loss_fn(batch, generator)`` -> scalar loss; the generator is the one that draws the batches,
            for any noise the loss needs (e.g. the reparameterization's eps).
        data: training examples [N, ...]; a batch is ``batch_size`` rows drawn with replacement.
        steps: number of optimizer steps.
        lr, batch_size, seed: Adam's learning rate, the batch size, the seed of the weights' noise and batches.
    Returns:
        The loss of every step.
    """
    check_float("data", data)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}.")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(data[torch.randint(0, len(data), (batch_size,), generator=g)], g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


class TinyVAE(nn.Module):
    """q(z|x) = N(mean(x), diag exp(logvar(x))), p(z) = N(0, I), p(x|z) = N(decoder(z), s^2 I) or Bernoulli.

    Args:
        num_pixels: D, the length of a flattened image.
        latent_dim: length of the code z.
        likelihood: "gaussian" (mean ``decoder(z)``, variance s^2) or "bernoulli" (``decoder(z)`` are logits of
            the ink (x + 1) / 2).
        log_s2: initial log s^2 of the Gaussian decoder.
        learn_s: whether s is trained (else it stays at ``exp(log_s2 / 2)``).
    """

    def __init__(
        self,
        num_pixels: int,
        latent_dim: int = 2,
        likelihood: Literal["gaussian", "bernoulli"] = "gaussian",
        log_s2: float = 0.0,
        learn_s: bool = True,
    ):
        super().__init__()
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}.")
        self.likelihood, self.latent_dim = likelihood, latent_dim
        self.encoder, self.decoder = mlp(num_pixels, 2 * latent_dim), mlp(latent_dim, num_pixels)
        self.log_s2 = nn.Parameter(torch.tensor(float(log_s2)), requires_grad=learn_s)

    def log_px_given_z(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) in nats, summed over pixels: [M] for x [M, D] (or [1, D], one image) and z [M, latent_dim]."""
        check_float("x", x)
        check_float("z", z)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or x.ndim != 2 or x.shape[0] not in (1, z.shape[0]):
            raise ValueError(
                f"expected x [M, D] or [1, D] and z [M, {self.latent_dim}], got x {tuple(x.shape)} "
                f"and z {tuple(z.shape)}."
            )
        out = self.decoder(z)
        if self.likelihood == "bernoulli":  # pixels as ink probabilities: targets (x + 1) / 2 in [0, 1]
            t = (x + 1) / 2
            return (t * nn.functional.logsigmoid(out) + (1 - t) * nn.functional.logsigmoid(-out)).sum(1)
        return -0.5 * (math.log(2 * math.pi) + self.log_s2 + (x - out) ** 2 / self.log_s2.exp()).sum(1)

    def neg_elbo_terms(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """The two terms of -ELBO with one reparameterized code per image: ([B] -log p(x|z), [B] KL(q || p(z))).

        Args:
            x: images [B, D] in [-1, 1].
            generator: the source of eps in z = mean + exp(logvar / 2) * eps.
        """
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        eps = torch.randn(mean.shape, generator=generator)
        z = mean + torch.exp(0.5 * logvar) * eps  # Kingma & Welling 2014 Eq. 10: the reparameterization trick
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)  # their Appendix B
        return -self.log_px_given_z(x, z), kl
