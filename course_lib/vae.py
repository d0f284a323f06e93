"""A small convolutional variational autoencoder and its evidence lower bound (ELBO).

Kingma & Welling 2014 ("Auto-Encoding Variational Bayes"); Burda et al. 2016 for the importance-weighted
bound; Rombach et al. 2022 (latent diffusion) for the KL-regularised autoencoder with a tiny KL weight.

The interface mirrors diffusers' ``AutoencoderKL`` so that the latent diffusion chapter can swap in Stable
Diffusion's autoencoder by changing one line::

    posterior = vae.encode(x).latent_dist          # DiagonalGaussian: .sample(generator=), .mode(), .kl()
    x_hat = vae.decode(posterior.sample()).sample  # [B, C, H, W]

Notation: x are images [B, C, H, W] in [-1, 1]; z are latents, either spatial [B, latent_channels, h, w]
(like Stable Diffusion's) or flat [B, latent_dim]; q(z|x) is the encoder's diagonal Gaussian, p(z) = N(0, I)
the prior, p(x|z) the decoder's likelihood. All log-likelihoods and KLs are in nats, summed over an example.
The model file reads bottom-up: distribution, blocks, encoder/decoder, VAE, then the ELBO.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_float
from .distributions import (
    bernoulli_log_likelihood,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    nats_to_bits_per_dim,
    normal_kl,
    randn,
    standard_normal_kl,
    sum_except_batch,
)

Likelihood = Literal["discretized_gaussian", "gaussian", "bernoulli"]


# --- the posterior q(z|x) ---------------------------------------------------------------------------


class DiagonalGaussian:
    """N(mean, diag(exp(logvar))), built like diffusers' ``DiagonalGaussianDistribution``.

    ``parameters`` [B, 2k, ...] holds the mean in its first k channels and the log-variance in the rest.
    As in diffusers, the log-variance is clipped to [-30, 20] so that exp() stays finite.
    """

    def __init__(self, parameters: Tensor, deterministic: bool = False):
        check_float("parameters", parameters)
        if parameters.ndim < 2 or parameters.shape[1] % 2:
            raise ValueError(
                f"parameters must be [B, 2k, ...] (mean and log-variance stacked on dim 1), "
                f"got shape {tuple(parameters.shape)}."
            )
        self.parameters = parameters
        self.mean, logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.deterministic = deterministic
        self.std = torch.zeros_like(self.mean) if deterministic else torch.exp(0.5 * self.logvar)
        self.var = self.std**2 if deterministic else torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """z = mean + std * eps, eps ~ N(0, I) drawn with ``generator``: the reparameterization trick."""
        eps = randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        """The most likely latent, the mean."""
        return self.mean

    def kl(self, other: "DiagonalGaussian | None" = None) -> Tensor:
        """KL(self || other) summed over the latent dimensions: [B] nats. ``other=None`` is N(0, I)."""
        if self.deterministic:
            return torch.zeros(self.mean.shape[0], device=self.mean.device, dtype=self.mean.dtype)
        if other is None:
            return sum_except_batch(standard_normal_kl(self.mean, self.logvar))
        return sum_except_batch(normal_kl(self.mean, self.logvar, other.mean, other.logvar))

    def nll(self, sample: Tensor) -> Tensor:
        """-log q(sample) summed over the latent dimensions: [B] nats."""
        return -sum_except_batch(gaussian_log_likelihood(sample, self.mean, self.logvar))


@dataclass
class EncoderOutput:
    latent_dist: DiagonalGaussian


@dataclass
class DecoderOutput:
    sample: Tensor


# --- building blocks --------------------------------------------------------------------------------


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(8 if ch % 8 == 0 else 1, ch)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2, self.conv2 = _norm(out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of the VAE. Each entry of ``channels`` is one resolution level; levels are separated by a factor
    2, so latents are ``image_size / 2**(len(channels) - 1)`` pixels wide.

    latent_dim: None gives spatial latents [latent_channels, h, w] (Stable Diffusion's kind); an integer gives
        flat latents [latent_dim] through a linear layer (the classic VAE, e.g. 2 for a plottable latent map).
    likelihood: the decoder p(x|z). "discretized_gaussian" (default) is a probability of 8-bit images, so its
        ELBO is in nats of 8-bit data; "gaussian" is a density; "bernoulli" treats pixels as on/off.
        Both Gaussians predict a mean and a log-variance for every pixel.
    scaling_factor: like diffusers' ``vae.config.scaling_factor``, what latents are multiplied by before a
        diffusion model sees them (1 / std of the training latents); it does not change the VAE itself.
    """

    in_channels: int = 1
    image_size: int = 16
    channels: tuple[int, ...] = (32, 64)
    blocks_per_level: int = 1
    latent_channels: int = 4
    latent_dim: int | None = None
    likelihood: Likelihood = "discretized_gaussian"
    scaling_factor: float = 1.0

    def __post_init__(self):
        factor = 2 ** (len(self.channels) - 1)
        if not self.channels or self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**(len(channels) - 1) = {factor}; "
                "use fewer levels in `channels` or another image size."
            )
        if self.likelihood not in ("discretized_gaussian", "gaussian", "bernoulli"):
            raise ValueError(
                f"likelihood must be 'discretized_gaussian', 'gaussian' or 'bernoulli', got {self.likelihood!r}."
            )

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent (without the batch dimension)."""
        if self.latent_dim is not None:
            return (self.latent_dim,)
        size = self.image_size // 2 ** (len(self.channels) - 1)
        return (self.latent_channels, size, size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


class Encoder(nn.Module):
    """x [B, C, H, W] -> parameters of q(z|x): [B, 2 latent_channels, h, w] or [B, 2 latent_dim].

    conv_in, then per level ``blocks_per_level`` ResBlocks and a stride-2 convolution to the next level's width.
    """

    def __init__(self, c: VAEConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(c.in_channels, c.channels[0], 3, padding=1)
        layers, prev = [], c.channels[0]
        for i, ch in enumerate(c.channels):
            for _ in range(c.blocks_per_level):
                layers.append(ResBlock(prev, ch))
                prev = ch
            if i < len(c.channels) - 1:
                layers += [nn.SiLU(), nn.Conv2d(prev, c.channels[i + 1], 3, stride=2, padding=1)]
                prev = c.channels[i + 1]
        self.blocks = nn.Sequential(*layers, _norm(prev), nn.SiLU())
        if c.latent_dim is None:
            self.out = nn.Conv2d(prev, 2 * c.latent_channels, 3, padding=1)
        else:
            size = c.image_size // 2 ** (len(c.channels) - 1)
            self.out = nn.Sequential(nn.Flatten(), nn.Linear(prev * size * size, 2 * c.latent_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(self.conv_in(x)))


class Decoder(nn.Module):
    """z -> per-pixel parameters of p(x|z): [B, 2C, H, W] (Gaussian means, then log-variances) or [B, C, H, W]
    (Bernoulli logits). The encoder mirrored, with 4x4 transposed convolutions (stride 2) to go up a level."""

    def __init__(self, c: VAEConfig):
        super().__init__()
        top = c.channels[-1]
        if c.latent_dim is None:
            self.inp = nn.Conv2d(c.latent_channels, top, 3, padding=1)
        else:
            size = c.image_size // 2 ** (len(c.channels) - 1)
            self.inp = nn.Sequential(nn.Linear(c.latent_dim, top * size * size), nn.Unflatten(1, (top, size, size)))
        layers, prev = [], top
        for i in reversed(range(len(c.channels))):
            for _ in range(c.blocks_per_level):
                layers.append(ResBlock(prev, c.channels[i]))
                prev = c.channels[i]
            if i > 0:
                layers += [nn.SiLU(), nn.ConvTranspose2d(prev, c.channels[i - 1], 4, stride=2, padding=1)]
                prev = c.channels[i - 1]
        out_channels = c.in_channels if c.likelihood == "bernoulli" else 2 * c.in_channels
        self.blocks = nn.Sequential(*layers, _norm(prev), nn.SiLU(), nn.Conv2d(prev, out_channels, 3, padding=1))

    def forward(self, z: Tensor) -> Tensor:
        return self.blocks(self.inp(z))


# --- the VAE ----------------------------------------------------------------------------------------


class VAE(nn.Module):
    """Encoder q(z|x), prior p(z) = N(0, I), decoder p(x|z); ``encode``/``decode`` as in diffusers' AutoencoderKL.

    The Gaussian decoders predict a mean and a log-variance per pixel (Kingma & Welling 2014, App. C.2). The
    log-variance is floored smoothly at ``DECODER_LOGVAR_MIN`` (sigma = 1/765, a sixth of an 8-bit bin): at that
    width the right bin already spans +-3 sigma and holds 99.7% of the mass, so narrowing further could gain at
    most -log 0.997 = 0.003 nats per pixel; and the floor keeps the continuous
    density from growing without bound on pixels the decoder gets exactly right (the background).
    """

    DECODER_LOGVAR_MIN = 2.0 * math.log(1.0 / 765.0)

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_images(self, x: Tensor) -> None:
        c = self.config
        check_float("x", x)
        expected = (c.in_channels, c.image_size, c.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"x must be images [B, {expected[0]}, {expected[1]}, {expected[2]}] for this VAE, "
                f"got {tuple(x.shape)}; resize the data or build a VAEConfig for it."
            )

    def encode(self, x: Tensor) -> EncoderOutput:
        """x [B, C, H, W] in [-1, 1] -> ``EncoderOutput(latent_dist=q(z|x))``."""
        self._check_images(x)
        return EncoderOutput(DiagonalGaussian(self.encoder(x)))

    def decoder_output(self, z: Tensor) -> Tensor:
        """The decoder network's raw output: [B, 2C, H, W] (means, raw log-variances) or [B, C, H, W] (logits)."""
        check_float("z", z)
        if tuple(z.shape[1:]) != self.config.latent_shape:
            raise ValueError(f"z must be [B, {', '.join(map(str, self.config.latent_shape))}], got {tuple(z.shape)}.")
        return self.decoder(z)

    def p_x_given_z(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance [B, C, H, W] of a Gaussian decoder p(x|z) (not defined for "bernoulli")."""
        if self.config.likelihood == "bernoulli":
            raise ValueError("a Bernoulli decoder has no mean/log-variance; use decoder_output(z) for its logits.")
        mean, raw_logvar = self.decoder_output(z).chunk(2, dim=1)
        return mean, self.DECODER_LOGVAR_MIN + F.softplus(raw_logvar - self.DECODER_LOGVAR_MIN)

    def decode(self, z: Tensor) -> DecoderOutput:
        """z [B, *latent_shape] -> ``DecoderOutput(sample=...)``, the mean of p(x|z) on the [-1, 1] scale.

        For the Gaussian decoders this is the Gaussian's mean, which may lie a little outside [-1, 1]
        (clip it for display); for the Bernoulli decoder it is 2 sigmoid(logits) - 1.
        """
        if self.config.likelihood == "bernoulli":
            return DecoderOutput(2.0 * torch.sigmoid(self.decoder_output(z)) - 1.0)
        return DecoderOutput(self.p_x_given_z(z)[0])

    def log_prob_x_given_z(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) summed over pixels: [B] nats, with the likelihood of ``config.likelihood``."""
        self._check_images(x)
        if self.config.likelihood == "bernoulli":
            return sum_except_batch(bernoulli_log_likelihood((x + 1.0) / 2.0, self.decoder_output(z)))
        mean, logvar = self.p_x_given_z(z)
        if self.config.likelihood == "gaussian":
            return sum_except_batch(gaussian_log_likelihood(x, mean, logvar))
        return sum_except_batch(discretized_gaussian_log_likelihood(x, mean, logvar))

    def forward(
        self, x: Tensor, sample_posterior: bool = False, generator: torch.Generator | None = None
    ) -> DecoderOutput:
        """Reconstruct x: decode the posterior mean (or a sample of it), like AutoencoderKL.forward."""
        posterior = self.encode(x).latent_dist
        return self.decode(posterior.sample(generator) if sample_posterior else posterior.mode())

    @torch.no_grad()
    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Generate images: z ~ p(z) = N(0, I), return the decoder means [num_samples, C, H, W]."""
        z = randn((num_samples, *self.config.latent_shape), generator=generator, device=self.device)
        return self.decode(z).sample

    @classmethod
    def from_pretrained(cls, name: str) -> "VAE":
        """Load a shipped checkpoint after verifying its SHA-256 (see ``checkpoints``)."""
        from .checkpoints import load_verified

        state, entry = load_verified(name, expected_model="vae")
        model = cls(VAEConfig.from_dict(entry["config"]))
        model.load_state_dict(state)
        return model.eval()


# --- the evidence lower bound ------------------------------------------------------------------------


@dataclass
class ELBOTerms:
    """Per-example terms of the negative ELBO, in nats: -ELBO = recon + kl (Kingma & Welling 2014, Eq. 3).

    recon: -log p(x|z) for one z ~ q(z|x), [B]. kl: KL(q(z|x) || p(z)), [B]. beta: the KL weight of ``loss``.
    """

    recon: Tensor
    kl: Tensor
    beta: float = 1.0

    @property
    def neg_elbo(self) -> Tensor:
        """-ELBO per example [B] nats, an upper bound on -log p(x) (whatever beta was used for training)."""
        return self.recon + self.kl

    @property
    def loss(self) -> Tensor:
        """The scalar to minimise: mean over the batch of recon + beta * kl (beta = 1: the negative ELBO)."""
        return (self.recon + self.beta * self.kl).mean()


def elbo(model: VAE, x: Tensor, *, beta: float = 1.0, generator: torch.Generator | None = None) -> ELBOTerms:
    """The two terms of the negative ELBO for a batch, with one reparameterized sample z per example.

    -ELBO(x) = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || p(z)) >= -log p(x). The expectation is estimated with a
    single z = mean + std * eps (the reparameterization trick); the KL is exact (closed form).

    Args:
        x: images [B, C, H, W] in [-1, 1] (on the 8-bit levels for the discretized likelihood).
        beta: weight of the KL in ``.loss`` (Higgins et al. 2017); it does not change the terms.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}.")
    posterior = model.encode(x).latent_dist
    z = posterior.sample(generator)
    return ELBOTerms(recon=-model.log_prob_x_given_z(x, z), kl=posterior.kl(), beta=beta)


def elbo_loss_fn(
    beta: float = 1.0, generator: torch.Generator | None = None, history: list[dict[str, float]] | None = None
) -> Callable:
    """A ``loss_fn(model, batch)`` for ``trainer.train``: ``elbo(...).loss`` on ``batch[0]`` (labels ignored).

    If ``history`` is a list, each call appends the batch means {"recon": ..., "kl": ...} in nats, so that the
    two terms can be plotted over training (the trainer itself records only their weighted sum).
    """

    def loss_fn(model, batch):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        terms = elbo(model, x, beta=beta, generator=generator)
        if history is not None:
            history.append({"recon": terms.recon.mean().item(), "kl": terms.kl.mean().item()})
        return terms.loss

    return loss_fn


def train_vae(
    model: VAE,
    images: Tensor,
    *,
    beta: float = 1.0,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 2e-3,
    ema_decay: float = 0.999,
    seed: int = 0,
    device: torch.device | str | None = None,
    history: list[dict[str, float]] | None = None,
    progress: bool = True,
):
    """The chapter's training procedure: ``trainer.train`` (AdamW, EMA) on ``elbo(...).loss`` over ``images``.

    The reparameterization noise comes from ``trainer.process_generator(seed)`` (``seed`` itself in one process) and
    the trainer shuffles with ``seed``, so a run is repeatable. Returns the trainer's ``TrainResult``; its
    ``ema_model`` is what the shipped checkpoints hold. ``history`` collects the two terms per step, as in
    ``elbo_loss_fn`` (launched, each process's own share of the batch).
    """
    from .trainer import process_generator, train

    loss_fn = elbo_loss_fn(beta, process_generator(seed), history)
    return train(
        model,
        loss_fn,
        (images,),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        ema_decay=ema_decay,
        seed=seed,
        device=device,
        progress=progress,
    )


@torch.no_grad()
def importance_weighted_bound(
    model: VAE, x: Tensor, num_samples: int, generator: torch.Generator | None = None
) -> Tensor:
    """log p(x) >= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): [B] nats. Burda et al. 2016, Eq. 8.

    With K = 1 this is the ELBO with a sampled KL; it tightens towards log p(x) as K grows.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    posterior = model.encode(x).latent_dist
    log_w = []
    for _ in range(num_samples):
        z = posterior.sample(generator)
        log_pz = sum_except_batch(gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z)))
        log_w.append(model.log_prob_x_given_z(x, z) + log_pz + posterior.nll(z))
    log_w = torch.stack(log_w)  # [K, B]
    return torch.logsumexp(log_w, dim=0) - torch.log(torch.tensor(float(num_samples)))


@dataclass(frozen=True)
class ELBOReport:
    """Averages over a data set. neg_elbo, recon and kl: nats per example. bits_per_dim = neg_elbo / (D ln 2)
    for the discretized likelihood (a code length of the 8-bit images), NaN for the others, whose nats are
    not probabilities of 8-bit data. mse: mean squared error per pixel between x and the decoded posterior
    mean clipped to [-1, 1]."""

    neg_elbo: float
    bits_per_dim: float
    recon: float
    kl: float
    mse: float
    num_examples: int


@torch.no_grad()
def evaluate(
    model: VAE, images: Tensor, *, batch_size: int = 500, generator: torch.Generator | None = None
) -> ELBOReport:
    """Held-out negative ELBO (one z sample per image), its split, bits/dim and reconstruction MSE."""
    was_training = model.training
    model.eval()
    device = model.device
    totals = torch.zeros(4, dtype=torch.float64)
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        terms = elbo(model, x, generator=generator)
        x_hat = model(x).sample.clamp(-1.0, 1.0)
        mse = ((x_hat - x) ** 2).reshape(x.shape[0], -1).mean(dim=1)
        totals += torch.stack([terms.neg_elbo.sum(), terms.recon.sum(), terms.kl.sum(), mse.sum()]).cpu().double()
    model.train(was_training)
    neg_elbo, recon, kl, mse = (totals / images.shape[0]).tolist()
    num_dims = images[0].numel()
    discrete = model.config.likelihood == "discretized_gaussian"
    bpd = nats_to_bits_per_dim(neg_elbo, num_dims) if discrete else float("nan")
    return ELBOReport(neg_elbo, bpd, recon, kl, mse, images.shape[0])
