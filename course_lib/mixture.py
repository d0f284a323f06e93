"""An exactly solvable diffusion: data from a mixture of isotropic Gaussians, noised by the forward process.

If x_0 ~ N(mu_k, s^2 I) for component k, then x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps is N(sqrt(ab_t) mu_k, v_t I),
v_t = ab_t s^2 + 1 - ab_t, so q(x_t), its score, the ideal noise predictor E[eps | x_t] (Tweedie's formula) and
the class posterior p(k | x_t) are all known in closed form. The 2-D pages use it as a model with no training
error: DDIM's process family and its ODE (chapter 4), guidance (chapter 5). The data are ``data.gaussian_mixture``
with means ``data.mixture_means``. Index convention t = 0 ... T-1 (``schedules``); everything in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class NoisedGaussianMixture:
    """Exact eps, scores and class posteriors of q(x_t) for data from an equal-weight Gaussian mixture.

    If x_0 ~ N(mu_k, s^2 I) for class k, then x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps is N(sqrt(ab_t) mu_k,
    v_t I) with v_t = ab_t s^2 + 1 - ab_t. So log q(x_t | y) and log q(x_t) (a log-sum-exp over k) are exact,
    p(y | x_t) is a softmax of the component log-likelihoods, and the ideal noise predictor is
    eps*(x_t, t) = -sqrt(1 - ab_t) grad log q(x_t) (Tweedie). Everything is computed in float64.

    Args:
        means: [K, D] component means (``data.mixture_means``); std: the component std s; schedule: the process.
    Shapes: x [B, D]; t int64 [B]; y int64 [B] in 0 ... K-1. The callables have the model signature.
    """

    def __init__(self, means: Tensor, std: float, schedule):
        self.means, self.std, self.schedule = means.double(), float(std), schedule

    def _component_log_probs(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ab = self.schedule.alpha_bar[t.cpu()].to(x.device)[:, None, None]  # [B, 1, 1]
        centres = ab.sqrt() * self.means.to(x.device)[None]  # [B, K, D]
        v = ab * self.std**2 + 1 - ab
        diff = x.double()[:, None, :] - centres
        log_p = -0.5 * (diff**2).sum(-1) / v[..., 0] - 0.5 * x.shape[1] * torch.log(2 * math.pi * v[..., 0])
        return log_p, diff, v  # log q(x_t | k) [B, K]

    def logits(self, x: Tensor, t: Tensor) -> Tensor:
        """log q(x_t | k) [B, K]: the logits of the exact classifier p(y | x_t) (equal class weights)."""
        return self._component_log_probs(x, t)[0].to(x.dtype)

    def eps(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """eps*(x_t, t) = -sqrt(1 - ab_t) grad log q(x_t) [B, D]; with labels ``y``, of q(x_t | y) instead.

        Label K (the number of components) is the null label: that row gets the unconditional eps, as a
        classifier-free model's null label does.
        """
        log_p, diff, v = self._component_log_probs(x, t)
        K = self.means.shape[0]
        weights = torch.softmax(log_p, dim=1)  # p(k | x_t)
        if y is not None:
            if int(y.min()) < 0 or int(y.max()) > K:
                raise ValueError(f"labels must lie in 0 ... {K - 1} (or {K}, the null label), got {y.tolist()[:8]}.")
            y = y.to(x.device)
            onehot = torch.nn.functional.one_hot(y.clamp(max=K - 1), K).double()
            weights = torch.where((y == K)[:, None], weights, onehot)
        weights = weights[..., None]
        score = -(weights * diff).sum(1) / v[:, 0]  # grad_x log q
        ab = self.schedule.alpha_bar[t.cpu()].to(x.device)[:, None]
        return (-(1 - ab).sqrt() * score).to(x.dtype)
