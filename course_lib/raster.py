"""A soft vector rasteriser in plain PyTorch: circles and convex polygons, for VectorFusion-style score distillation.

Papers: Jain et al. 2023 (VectorFusion) optimise SVG paths through diffvg (Li et al. 2020), a differentiable
rasteriser; here a much smaller one: each primitive's coverage of a pixel is a sigmoid of its signed distance,
    a(p) = sigmoid(d(p) * S / softness),  d > 0 inside,
and the primitives are painted back to front with Porter & Duff's (1984) "over", image <- a c + (1 - a) image.
Everything is differentiable in centres, radii, vertices and colours. ``to_svg`` writes the same primitives as an
SVG: hard edges, the softness -> 0 limit of the raster.

Conventions: coordinates are fractions of the image side, (0, 0) the top-left corner, x to the right and y DOWN
(as in SVG; pixel (row i, column j) has its centre at ((j + 0.5) / S, (i + 0.5) / S)); radii in the same unit;
colours RGB in [-1, 1] (the course's image range); softness in pixels. Primitives come in layers (``Circles``,
``Polygons``), painted in the order given, and inside a layer primitive 0 first (at the back). A layer's tensors
may have one leading batch dimension B, shared by all layers, for a batch of images.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import torch
from torch import Tensor


@dataclass(frozen=True)
class Circles:
    """K circles: centre ``[(B,) K, 2]`` (x, y), radius ``[(B,) K]`` > 0 for a visible disc, colour ``[(B,) K, 3]``."""

    centre: Tensor
    radius: Tensor
    colour: Tensor


@dataclass(frozen=True)
class Polygons:
    """K convex polygons of V >= 3 vertices: vertices ``[(B,) K, V, 2]`` (x, y, either winding), colour ``[(B,) K, 3]``.

    Coverage is that of the intersection of the edges' inner half-planes, which is the polygon exactly when it is
    convex (a non-convex one is drawn smaller than it is, without an error, so optimisation may pass through it).
    """

    vertices: Tensor
    colour: Tensor


Layer = Circles | Polygons


def _check_layer(layer: object, index: int) -> tuple[int, ...]:
    """Validate one layer and return its batch shape, () or (B,)."""
    if isinstance(layer, Circles):  # name -> (tensor, its shape after the (B,) K prefix)
        parts = {"centre": (layer.centre, (2,)), "radius": (layer.radius, ()), "colour": (layer.colour, (3,))}
        want = "centre [(B,) K, 2], radius [(B,) K], colour [(B,) K, 3]"
    elif isinstance(layer, Polygons):
        vertices = layer.vertices
        corners = vertices.shape[-2] if isinstance(vertices, Tensor) and vertices.ndim >= 3 else 0
        parts = {"vertices": (vertices, (max(corners, 3), 2)), "colour": (layer.colour, (3,))}
        want = "vertices [(B,) K, V, 2] with V >= 3, colour [(B,) K, 3]"
    else:
        raise ValueError(
            f"layer {index} must be a Circles or Polygons, got {type(layer).__name__}; "
            f"wrap tensors as Circles(centre, radius, colour) or Polygons(vertices, colour)."
        )
    for name, (x, _) in parts.items():
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ValueError(
                f"layer {index} ({type(layer).__name__}): {name} must be a float tensor, got "
                f"{getattr(x, 'dtype', type(x).__name__)}; expected {want}."
            )
    prefixes = {x.shape[: x.ndim - len(tail)] for x, tail in parts.values()}
    tails_ok = all(x.ndim >= len(tail) and x.shape[x.ndim - len(tail) :] == tail for x, tail in parts.values())
    batch = next(iter(prefixes))[:-1] if len(prefixes) == 1 else None
    if not tails_ok or batch is None or len(batch) + 1 != len(next(iter(prefixes))) or len(batch) > 1:
        got = ", ".join(f"{name} {tuple(x.shape)}" for name, (x, _) in parts.items())
        raise ValueError(
            f"layer {index} ({type(layer).__name__}) has mismatched shapes: {got}; expected {want}, "
            f"with the same K (and B) everywhere."
        )
    return tuple(batch)


def _pixel_centres(size: int, like: Tensor) -> Tensor:
    """``[S, S, 2]`` (x, y) centres of the pixels, in fractions of the side."""
    c = (torch.arange(size, dtype=like.dtype, device=like.device) + 0.5) / size
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x, y], dim=-1)


def circle_distance(centre: Tensor, radius: Tensor, points: Tensor) -> Tensor:
    """Signed distance radius - ||p - centre|| (> 0 inside): ``[..., K, H, W]`` for points ``[H, W, 2]``."""
    offset = points - centre[..., None, None, :]
    return radius[..., None, None] - offset.norm(dim=-1)


def polygon_distance(vertices: Tensor, points: Tensor) -> Tensor:
    """Signed distance to a convex polygon (> 0 inside), the minimum over edges of the distance to the edge's
    line: exact inside, a lower bound of the distance outside. ``[..., K, H, W]`` for points ``[H, W, 2]``."""
    start, edge = vertices, vertices.roll(-1, dims=-2) - vertices  # [..., K, V, 2]
    area2 = (start[..., 0] * edge[..., 1] - start[..., 1] * edge[..., 0]).sum(dim=-1)  # shoelace, twice the area
    winding = torch.where(area2 >= 0, 1.0, -1.0).to(vertices)  # makes "inside" positive for either winding
    rel = points[..., None, :] - start[..., None, None, :, :]  # [..., K, H, W, V, 2]
    cross = edge[..., None, None, :, 0] * rel[..., 1] - edge[..., None, None, :, 1] * rel[..., 0]
    length = edge.norm(dim=-1).clamp(min=1e-12)[..., None, None, :]
    return (winding[..., None, None, None] * cross / length).amin(dim=-1)


def rasterise(*layers: Layer, size: int = 32, softness: float = 0.5, background: float | Tensor = -1.0) -> Tensor:
    """Paint layers of soft primitives back to front with "over" onto a background.

    Args:
        *layers: ``Circles`` and ``Polygons``, the first at the back (see the module docstring for units).
        size: S, pixels per image side, >= 1.
        softness: the sigmoid's scale in pixels, > 0: coverage goes from 27 % to 73 % over +-``softness`` pixels
            around the edge (0.5 is close to anti-aliasing; larger values blur and spread the gradients).
        background: a number or RGB ``[3]`` in [-1, 1].

    Returns:
        ``[3, S, S]`` for unbatched layers or ``[B, 3, S, S]`` for batched ones, in [-1, 1] for colours in [-1, 1].
    """
    if not layers:
        raise ValueError("rasterise needs at least one layer, e.g. rasterise(Circles(centre, radius, colour)).")
    batches = {_check_layer(layer, i) for i, layer in enumerate(layers)}
    if len(batches) != 1:
        raise ValueError(f"all layers must share the same batch shape, () or (B,), got {sorted(batches)}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1 (pixels per side), got {size!r}; try 32.")
    if isinstance(softness, bool) or not isinstance(softness, (int, float)) or not softness > 0:
        raise ValueError(f"softness must be a number > 0 (pixels), got {softness!r}; try 0.5.")
    (batch,) = batches
    like = layers[0].colour
    points = _pixel_centres(size, like)
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if bg.shape not in ((), (3,)) or not bool(((bg >= -1) & (bg <= 1)).all()):
        raise ValueError(f"background must be a number or an RGB tensor [3] in [-1, 1], got {background!r}.")
    image = bg.expand(3)[:, None, None].expand(*batch, 3, size, size)
    for layer in layers:
        if isinstance(layer, Circles):
            distance = circle_distance(layer.centre, layer.radius, points)
        else:
            distance = polygon_distance(layer.vertices, points)
        alpha = torch.sigmoid(distance * size / softness)  # [(B,) K, S, S]
        for k in range(alpha.shape[-3]):
            a, c = alpha[..., k, None, :, :], layer.colour[..., k, :, None, None]
            image = a * c + (1.0 - a) * image  # Porter & Duff "over"
    return image


def _svg_colour(rgb: Tensor, what: str) -> str:
    if not bool(((rgb >= -1) & (rgb <= 1)).all()):
        raise ValueError(
            f"{what} must be RGB in [-1, 1] to be written as an SVG colour, got {rgb.tolist()}; "
            f"squash optimised colours with torch.tanh (or clamp them) first."
        )
    r, g, b = (round(v) for v in ((rgb.double() + 1.0) * 127.5).tolist())
    return f"rgb({r},{g},{b})"


def to_svg(*layers: Layer, size: int = 256, background: float | Tensor = -1.0) -> str:
    """The primitives of one (unbatched) image as an SVG document string, painted in the same order as ``rasterise``.

    A ``<rect>`` paints the background, then one ``<circle>`` or ``<polygon>`` per primitive; coordinates are in
    pixels of a ``size`` x ``size`` canvas (``viewBox="0 0 size size"``). Edges are hard (no softness); a negative
    radius, which ``rasterise`` draws as (nearly) nothing, is written as r="0".
    """
    if not layers:
        raise ValueError("to_svg needs at least one layer, e.g. to_svg(Circles(centre, radius, colour)).")
    for i, layer in enumerate(layers):
        if _check_layer(layer, i) != ():
            raise ValueError(
                f"to_svg writes one image: layer {i} has a batch dimension; pass one item, e.g. "
                f"Circles(c.centre[0], c.radius[0], c.colour[0])."
            )
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1 (pixels of the SVG canvas), got {size!r}; try 256.")
    bg = torch.as_tensor(background, dtype=torch.float64).expand(3)
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
        f'<rect x="0" y="0" width="{size}" height="{size}" fill={quoteattr(_svg_colour(bg, "background"))}/>',
    ]
    for layer in layers:
        colours = layer.colour.detach().cpu()
        if isinstance(layer, Circles):
            for (x, y), r, c in zip(
                (layer.centre.detach().cpu() * size).tolist(), (layer.radius.detach().cpu() * size).tolist(), colours
            ):
                lines.append(
                    f'<circle cx="{x:.3f}" cy="{y:.3f}" r="{max(r, 0.0):.3f}" '
                    f"fill={quoteattr(_svg_colour(c, 'circle colour'))}/>"
                )
        else:
            for vertices, c in zip((layer.vertices.detach().cpu() * size).tolist(), colours):
                points = " ".join(f"{x:.3f},{y:.3f}" for x, y in vertices)
                lines.append(f'<polygon points="{points}" fill={quoteattr(_svg_colour(c, "polygon colour"))}/>')
    return "\n".join([*lines, "</svg>"])
