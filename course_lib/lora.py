"""LoRA (Hu et al. 2021): fine-tune a frozen linear map W through a low-rank update, W + (alpha / r) B A.

A ``LoRALinear`` wraps an ``nn.Linear`` (``base``, frozen) and adds two small maps, ``lora_A`` (in -> r) and
``lora_B`` (r -> out). B starts at zero, so a freshly injected model computes exactly what it computed before;
training moves only A and B, r (in + out) numbers per wrapped layer instead of in x out. After training the
update can be folded into W (``merge``) so inference costs nothing extra, and taken out again (``unmerge``).

The module and parameter names follow peft's (``<layer>.lora_A.weight``, ``<layer>.lora_B.weight``), so a state
dict converts to the format diffusers' ``load_lora_weights`` reads by adding a prefix (``peft_state_dict``).

    lora = inject_lora(unet, targets=ATTENTION_TARGETS, rank=4)      # {name: LoRALinear}, base frozen
    print(count_parameters(unet))                                     # trainable vs total
    ... train ...                                                     # only A and B receive gradients
    merge_lora(unet)                                                  # W <- W + (alpha / r) B A
    concat_lora_state_dicts(subject, style)                           # two LoRAs stacked: one of rank r1 + r2
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

# The attention projections of a diffusers U-Net (self- and cross-attention): the targets of diffusers' LoRA scripts.
ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


class LoRALinear(nn.Module):
    """``y = W x + b + scale * (alpha / r) * B (A x)`` around a frozen ``nn.Linear`` (x: ``[..., in]``, y: ``[..., out]``).

    Args:
        base: the layer to adapt; its weight and bias are frozen (``requires_grad=False``) and never changed, except
            by ``merge`` / ``unmerge``.
        rank: r, the rank of the update B A; 1 <= r <= min(in, out).
        alpha: the update is multiplied by alpha / r (default alpha = r: scaling 1). With a fixed alpha, changing r
            keeps the size of the initial update's effect about the same, so a learning rate tuned at one rank still
            works at another (Hu et al. 2021, Sec. 4.1).
        dropout: dropout on the LoRA branch's input (peft's ``lora_dropout``).

    ``A`` is initialised as ``nn.Linear``'s default (Kaiming-uniform, as peft and Hu et al.'s code do) and ``B`` at
    zero. ``scale`` multiplies the update at inference (diffusers' ``cross_attention_kwargs={"scale": s}``).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        in_features, out_features = base.in_features, base.out_features
        if not isinstance(rank, int) or not 1 <= rank <= min(in_features, out_features):
            raise ValueError(
                f"rank must be an integer in [1, min(in, out)] = [1, {min(in_features, out_features)}] "
                f"for a {in_features} -> {out_features} layer, got {rank!r}. A rank of min(in, out) "
                f"already spans every update; pick a smaller one."
            )
        self.base = base.requires_grad_(False)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scale = 1.0
        self.merged = False
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, out_features, bias=False)
        self.lora_A.to(base.weight)
        self.lora_B.to(base.weight)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    @property
    def scaling(self) -> float:
        """The factor in front of B A: scale * alpha / r."""
        return self.scale * self.alpha / self.rank

    def delta_weight(self) -> Tensor:
        """The update ``scaling * B A``, ``[out, in]``: what ``merge`` adds to W."""
        return self.scaling * (self.lora_B.weight @ self.lora_A.weight)

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scaling * self.lora_B(self.lora_A(self.dropout(x)))

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into W (W <- W + scaling B A); the layer then costs what the base layer costs."""
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of W again (exact up to float rounding)."""
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight)
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scale={self.scale:g}, merged={self.merged}"


def _matches(name: str, targets: Sequence[str]) -> bool:
    """peft's rule for a list of target names: the module's full name is a target or ends in "." + target."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _targeted_linears(model: nn.Module, targets: Sequence[str]) -> dict[str, nn.Linear]:
    """{name: nn.Linear} of the layers that ``targets`` select (peft's rule); a target matching no linear layer is
    refused, naming what it matches instead and what a target looks like."""
    if isinstance(targets, str):
        targets = (targets,)
    linear = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    for target in targets:
        if not any(_matches(name, (target,)) for name in linear):
            other = [f"{name} ({type(m).__name__})" for name, m in model.named_modules() if _matches(name, (target,))]
            raise ValueError(
                f"target {target!r} matches no nn.Linear of the model"
                + (f"; it matches {other[:2]}, which LoRALinear cannot wrap" if other else "")
                + f". A target is a linear layer's full name or its last parts, e.g. {list(linear)[:2]} "
                f"(the model has {len(linear)} linear layers)."
            )
    return {name: m for name, m in linear.items() if _matches(name, targets)}


def inject_lora(
    model: nn.Module,
    targets: Sequence[str] = ATTENTION_TARGETS,
    rank: int = 4,
    alpha: float | None = None,
    dropout: float = 0.0,
) -> dict[str, LoRALinear]:
    """Wrap every ``nn.Linear`` of ``model`` whose name matches ``targets`` in a ``LoRALinear`` (in place) and freeze
    every other parameter of the model. Returns {module name: LoRALinear}.

    ``targets`` are matched as peft matches a list (``"to_q"`` matches ``down_blocks.0...attn1.to_q``;
    ``"attn2.to_k"`` only cross-attention keys). A model that already holds LoRA layers is refused.
    """
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError(
            "the model already holds LoRA layers; call remove_lora(model) first, or train the ones it has."
        )
    names = list(_targeted_linears(model, targets))
    model.requires_grad_(False)
    layers = {}
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layers[name] = LoRALinear(getattr(parent, child), rank, alpha, dropout)
        setattr(parent, child, layers[name])
    return layers


def count_lora_parameters(model: nn.Module, targets: Sequence[str] = ATTENTION_TARGETS, rank: int = 4) -> int:
    """The trainable parameters ``inject_lora(model, targets, rank)`` would add, r (in + out) per targeted layer,
    computed from the layers' shapes without changing the model (so it also works on a model built on the meta
    device, e.g. Stable Diffusion's U-Net without its weights). Divide by the model's parameter count plus this
    number for ``count_parameters``' fraction after injection."""
    layers = _targeted_linears(model, targets)
    too_small = [
        name
        for name, m in layers.items()
        if not isinstance(rank, int) or not 1 <= rank <= min(m.in_features, m.out_features)
    ]
    if too_small:
        raise ValueError(
            f"rank must be an integer from 1 to min(in, out) of every targeted layer, got {rank!r}; "
            f"{len(too_small)} layers are narrower (e.g. {too_small[:1]}). Pick a smaller rank."
        )
    return sum(rank * (m.in_features + m.out_features) for m in layers.values())


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """{name: LoRALinear} for every LoRA layer in ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _require_lora(model: nn.Module) -> dict[str, LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model holds no LoRA layers; add them with inject_lora(model, targets, rank).")
    return layers


def remove_lora(model: nn.Module, merge: bool = False) -> None:
    """Put the base layers back in place of the LoRA layers (folding the updates into them if ``merge``)."""
    for name, layer in _require_lora(model).items():
        layer.merge() if merge else layer.unmerge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.base)


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRA update into its base weight (``LoRALinear.merge``)."""
    for layer in _require_lora(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Take every LoRA update out of its base weight again."""
    for layer in _require_lora(model).values():
        layer.unmerge()


def set_lora_scale(model: nn.Module, scale: float) -> None:
    """Multiply every LoRA update by ``scale`` at inference (0: the base model, 1: as trained)."""
    for layer in _require_lora(model).values():
        if layer.merged:
            raise ValueError("change the scale of unmerged layers only: call unmerge_lora(model) first.")
        layer.scale = float(scale)


@torch.no_grad()
def randomise_lora_b(model: nn.Module, std: float, generator: torch.Generator | None = None) -> None:
    """Draw every B from N(0, std^2), layer by layer in module order (A is kept): a stand-in for a trained update,
    so that pages and tests can compare LoRA implementations on an update with a visible effect, without training.
    """
    if std < 0:
        raise ValueError(f"std must be >= 0 (0: B = 0, the model unchanged), got {std}.")
    for layer in _require_lora(model).values():
        weight = layer.lora_B.weight
        weight.copy_(torch.randn(weight.shape, generator=generator) * std)


def lora_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    """The A and B weights of every LoRA layer: what an optimiser should train."""
    for layer in _require_lora(model).values():
        yield layer.lora_A.weight
        yield layer.lora_B.weight


def count_parameters(model: nn.Module) -> dict[str, float]:
    """{"trainable", "total", "fraction"}: parameters with ``requires_grad``, all parameters (base and LoRA), and
    trainable / total."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total, "fraction": trainable / total}


def low_rank_energy(delta: Tensor, ranks: Sequence[int]) -> list[float]:
    """For each r in ``ranks``, the fraction of ||delta||_F^2 that the best rank-r approximation of the update
    ``delta`` ``[out, in]`` keeps: the sum of the r largest squared singular values over the sum of all
    (Eckart-Young). 1.0 at r >= rank(delta). The benchmark for "no low-rank structure" is a matrix of the same
    shape with independent Gaussian entries (for 64 x 64 it keeps about 0.22 at r = 4, more than r / 64 because its
    singular values spread out, Marchenko-Pastur)."""
    if delta.ndim != 2:
        raise ValueError(f"delta must be a weight update [out, in], got shape {tuple(delta.shape)}.")
    energy = torch.linalg.svdvals(delta.detach().double()).square()
    total = energy.sum()
    if total == 0:
        raise ValueError("delta is all zeros: there is no update to decompose (was the layer trained?).")
    kept = energy.cumsum(0) / total
    return [kept[min(r, len(kept)) - 1].item() for r in ranks]


# --- state dicts: ours, and the peft / diffusers format ------------------------------------------------------------


def lora_state_dict(model: nn.Module, prefix: str = "") -> dict[str, Tensor]:
    """The LoRA weights as ``{"<prefix>.<layer>.lora_A.weight": [r, in], "<prefix>.<layer>.lora_B.weight": [out, r]}``.

    With ``prefix="unet"`` this is the key format of peft and of diffusers' ``save_lora_weights`` /
    ``load_lora_weights`` for a Stable Diffusion U-Net; pass alpha separately (``lora_config``), since alpha is not a
    tensor."""
    head = f"{prefix}." if prefix else ""
    out = {}
    for name, layer in _require_lora(model).items():
        out[f"{head}{name}.lora_A.weight"] = layer.lora_A.weight.detach().clone()
        out[f"{head}{name}.lora_B.weight"] = layer.lora_B.weight.detach().clone()
    return out


def lora_config(model: nn.Module) -> dict:
    """The settings a peft ``LoraConfig`` needs to rebuild the model's LoRA layers: rank r, lora_alpha and the
    target module names. All layers must share r and alpha (as one ``inject_lora`` call makes them)."""
    layers = _require_lora(model)
    ranks = {layer.rank for layer in layers.values()}
    alphas = {layer.alpha for layer in layers.values()}
    if len(ranks) > 1 or len(alphas) > 1:
        raise ValueError(
            f"the LoRA layers differ in rank {sorted(ranks)} or alpha {sorted(alphas)}; one LoraConfig "
            "describes one rank and one alpha."
        )
    return {"r": ranks.pop(), "lora_alpha": alphas.pop(), "target_modules": sorted(layers)}


def load_lora_state_dict(model: nn.Module, state_dict: dict[str, Tensor], prefix: str = "") -> None:
    """Copy A and B weights from a state dict in ``lora_state_dict``'s format (keys with ``prefix``) into the model's
    LoRA layers. Every layer must be present with matching shapes; a state dict of another rank or for other layers
    is refused with the first mismatch named."""
    head = f"{prefix}." if prefix else ""
    layers = _require_lora(model)
    expected = {
        f"{head}{name}.lora_{ab}.weight": getattr(layer, f"lora_{ab}").weight
        for name, layer in layers.items()
        for ab in "AB"
    }
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"the state dict does not fit the model's LoRA layers: {len(missing)} keys missing (e.g. "
            f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}). Was it saved from "
            f"a model with the same targets, and with prefix {prefix!r}?"
        )
    for key, weight in expected.items():
        if state_dict[key].shape != weight.shape:
            raise ValueError(
                f"{key}: the state dict holds {tuple(state_dict[key].shape)}, the model's layer is "
                f"{tuple(weight.shape)}. It was saved at another rank: inject_lora with "
                f"rank={min(state_dict[key].shape)}."
            )
    with torch.no_grad():
        for key, weight in expected.items():
            weight.copy_(state_dict[key])


# --- two LoRAs at once: the naive merge and where the updates overlap ----------------------------------------------


def lora_updates(state_dict: dict[str, Tensor], scaling: float = 1.0) -> dict[str, Tensor]:
    """The update of every layer of a LoRA state dict (``lora_state_dict``'s format, any prefix): ``{layer:
    scaling * B A}``, ``[out, in]`` each, keyed by the layer's name with its prefix. ``scaling`` is the layer's
    alpha / r (1 for the default alpha = r), which the state dict does not hold."""
    layers = sorted(key[: -len(".lora_A.weight")] for key in state_dict if key.endswith(".lora_A.weight"))
    if not layers or any(f"{name}.lora_B.weight" not in state_dict for name in layers):
        raise ValueError(
            "the state dict must hold a <layer>.lora_A.weight and a <layer>.lora_B.weight per layer, as "
            f"lora_state_dict(model) returns; got keys like {sorted(state_dict)[:2]}."
        )
    return {
        name: scaling * (state_dict[f"{name}.lora_B.weight"] @ state_dict[f"{name}.lora_A.weight"]) for name in layers
    }


def concat_lora_state_dicts(
    first: dict[str, Tensor], second: dict[str, Tensor], weights: tuple[float, float] = (1.0, 1.0)
) -> dict[str, Tensor]:
    """Two LoRAs of the same layers as one LoRA of rank r1 + r2: A = [A1; A2] (stacked rows), B = [w1 B1, w2 B2]
    (side by side), so that B A = w1 B1 A1 + w2 B2 A2 exactly. This is the naive merge W + w1 dW1 + w2 dW2 that
    stacking adapters computes (ZipLoRA's "direct merge", diffusers' ``set_adapters`` with ``adapter_weights``).

    Load the result with ``inject_lora(model, targets, rank=r1 + r2)`` and ``load_lora_state_dict``. The default
    alpha = r gives that layer the scaling 1, so both LoRAs must have been trained with scaling 1 too (alpha = r, the
    default); for another alpha, multiply its weight by alpha / r.
    """
    if set(first) != set(second):
        raise ValueError(
            f"the two LoRAs adapt different layers ({len(set(first) ^ set(second))} keys differ, e.g. "
            f"{sorted(set(first) ^ set(second))[:2]}); inject both with the same targets and prefix."
        )
    w1, w2 = weights
    out = {}
    for key in first:
        if key.endswith(".lora_A.weight"):
            out[key] = torch.cat([first[key], second[key]], dim=0)
        elif key.endswith(".lora_B.weight"):
            out[key] = torch.cat([w1 * first[key], w2 * second[key]], dim=1)
        else:
            raise ValueError(f"unexpected key {key!r}: a LoRA state dict holds only <layer>.lora_A/B.weight.")
    return out


def column_cosine(first: Tensor, second: Tensor) -> Tensor:
    """The cosine between column j of two updates of one layer, ``[out, in]`` each -> ``[in]`` in [-1, 1].

    Column j is what input feature j adds to the output. ZipLoRA (Shah et al. 2023) observes that the
    naive merge of two LoRAs suffers where these columns are aligned (cosine far from 0). A zero column gives 0."""
    if first.ndim != 2 or first.shape != second.shape:
        raise ValueError(
            f"expected two updates [out, in] of the same layer, got shapes {tuple(first.shape)} and "
            f"{tuple(second.shape)}; use lora_updates(state_dict) of two LoRAs with the same targets."
        )
    return torch.nn.functional.cosine_similarity(first.double(), second.double(), dim=0, eps=1e-30).float()
