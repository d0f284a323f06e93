"""Cross-attention: how Stable Diffusion's U-Net reads the prompt (Rombach et al. 2022, Eq. 3).

Every position of the image features asks a question (a query), every token of the prompt offers a key and a value:

    Q = phi(z) W_Q,   K = tau(y) W_K,   V = tau(y) W_V,   Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V

with phi(z) ``[N, C]`` the U-Net's features at N = h * w positions and tau(y) ``[L, D]`` the text encoder's L token
states. Each row of the softmax is one position's distribution over the prompt's tokens: an attention map per word.
Heads split C into ``heads`` slices of d = C / heads that attend independently; an output projection mixes them.

``cross_attention`` is that formula; ``record_cross_attention`` makes a diffusers U-Net compute its cross-attention
with it (self-attention is left to diffusers) and keeps the maps, which ``word_maps`` averages per token.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_attention(
    x: Tensor, context: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, w_out: Tensor, b_out: Tensor | None, heads: int
) -> tuple[Tensor, Tensor]:
    """Multi-head cross-attention from image features to text tokens.

    Args:
        x: image features ``[B, N, C]`` (N positions). context: token states ``[B, L, D]``.
        w_q ``[C', C]``, w_k and w_v ``[C', D]``: projections (``nn.Linear`` weights: y = x W^T), C' = heads * d.
        w_out ``[C, C']``, b_out ``[C]``: the output projection.
    Returns:
        ``(out [B, N, C], weights [B, heads, N, L])``; every row of ``weights`` sums to 1 over the L tokens.
    """
    b, n, _ = x.shape
    length = context.shape[1]
    if w_q.shape[0] % heads:
        raise ValueError(f"{w_q.shape[0]} query channels do not split into {heads} heads.")
    q = (x @ w_q.T).view(b, n, heads, -1).transpose(1, 2)  # [B, heads, N, d]
    k = (context @ w_k.T).view(b, length, heads, -1).transpose(1, 2)  # [B, heads, L, d]
    v = (context @ w_v.T).view(b, length, heads, -1).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)  # [B, heads, N, L]
    out = (weights @ v).transpose(1, 2).reshape(b, n, -1)  # heads side by side again: [B, N, C']
    return F.linear(out, w_out, b_out), weights


def cross_attention_of(attn, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
    """``cross_attention`` with the weights of a diffusers ``Attention`` module (``attn2`` of a transformer block)."""
    for name in ("to_q", "to_k", "to_v"):
        if getattr(attn, name).bias is not None:
            raise ValueError(
                f"this Attention has a bias in {name}; cross_attention takes bias-free projections "
                "(as Stable Diffusion's are)."
            )
    return cross_attention(
        x,
        context,
        attn.to_q.weight,
        attn.to_k.weight,
        attn.to_v.weight,
        attn.to_out[0].weight,
        attn.to_out[0].bias,
        attn.heads,
    )


class _RecordingProcessor:
    """A diffusers attention processor: cross-attention (``attn2``) through ``cross_attention``, its weights appended
    to ``maps[layer]``; self-attention through diffusers' default processor."""

    def __init__(self, name: str, maps: dict):
        from diffusers.models.attention_processor import AttnProcessor

        self.name, self.maps, self.default = name, maps, AttnProcessor()

    def __call__(
        self,
        attn,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        **kwargs,
    ) -> Tensor:
        if encoder_hidden_states is None or not self.name.endswith("attn2.processor"):
            return self.default(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError(
                "the recorder handles unmasked cross-attention on [B, N, C] features, as in Stable Diffusion's U-Net."
            )
        out, weights = cross_attention_of(attn, hidden_states, encoder_hidden_states)
        self.maps.setdefault(self.name, []).append(weights.detach().cpu())
        return attn.to_out[1](out) / attn.rescale_output_factor  # dropout (identity in eval), then the usual rescale


@contextlib.contextmanager
def record_cross_attention(unet):
    """Inside the block the U-Net computes its cross-attention with ``cross_attention`` and records the weights:
    yields ``maps``, ``{layer name: [weights [B, heads, N, L] per call]}``; the U-Net's own processors come back after.

        with record_cross_attention(pipe.unet) as maps:
            images = generate(pipe, prompts, ...)
        per_token = word_maps(maps, size=8)          # [B, L, 8, 8]
    """
    original, maps = unet.attn_processors, {}
    unet.set_attn_processor({name: _RecordingProcessor(name, maps) for name in original})
    try:
        yield maps
    finally:
        unet.set_attn_processor(original)


def word_maps(maps: dict, size: int = 8, batch_slice: slice | None = None) -> Tensor:
    """Each token's attention map ``[B, L, size, size]``: every recorded layer's weights averaged over heads,
    upsampled to ``size`` x ``size`` and averaged over layers and calls (denoising steps), as in Hertz et al.'s
    prompt-to-prompt figures. ``batch_slice`` keeps part of the batch (e.g. the conditional half under CFG)."""
    if not maps:
        raise ValueError("nothing recorded: run the U-Net (or pipeline) inside `with record_cross_attention(unet)`.")
    total, count = None, 0
    for calls in maps.values():
        for weights in calls:
            w = weights if batch_slice is None else weights[batch_slice]
            b, _, n, length = w.shape
            side = int(round(n**0.5))
            m = w.mean(1).transpose(1, 2).reshape(b, length, side, side)
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
            total, count = (m if total is None else total + m), count + 1
    return total / count


def attention_on_object(maps: Tensor, masks: Tensor) -> Tensor:
    """How much each token's attention falls on the object: for maps ``[B, L, s, s]`` and object masks
    ``[B, 1, H, W]`` (bool), the mean of the map inside the mask over its mean everywhere, averaged over B -> ``[L]``.
    1 means the token attends to the object no more than to the background; above 1, it looks at the object."""
    if maps.ndim != 4 or masks.ndim != 4 or len(maps) != len(masks):
        raise ValueError(
            f"expected maps [B, L, s, s] and masks [B, 1, H, W] of the same B, got {tuple(maps.shape)} "
            f"and {tuple(masks.shape)}."
        )
    up = F.interpolate(maps, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    inside = (up * masks).flatten(2).sum(-1) / masks.flatten(2).sum(-1).clamp_min(1)
    return (inside / up.flatten(2).mean(-1).clamp_min(1e-12)).mean(0)
