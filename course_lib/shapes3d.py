"""The 3-D shapes world: coloured primitives as voxel radiance fields, rendered from random cameras with captions.

The data set of chapter 7 (score distillation): a tiny text-to-image model trained on these renders is the frozen
prior that DreamFusion's SDS (Poole et al. 2022) distils into a field. Its prompts carry the view, as in DreamFusion
Sec. 3.2: "a red cube, side view".

The FRONT of every object carries a white "nose", a small ball half sunk into the surface on the +z side. Without
something asymmetric a sphere, cube, cylinder or cone of one colour looks the same from the front and the back, the
view words would be noise, and no prior could learn what "front view" means: the Janus problem (a face on every
side) would then be the right answer. With the nose, "front view" means the nose is in the middle, "back view"
that it is hidden, "side view" that it sticks out at one edge. The colour also carries baked light from above and
the front (Lambertian, fixed in the texture, so it does not move with the camera): faces differ in brightness and
the shapes read as 3-D, not as flat silhouettes.

Conventions: fields, cameras and images as in ``course_lib.render`` (+y up, the front faces +z, images float32
``[N, 3, S, S]`` in [-1, 1] on black); colours are ``course_lib.data.COLOUR_RGB``; labels are int64 ``[N]``
indices into ``SHAPES3D``, ``data.COLOURS`` and ``render.VIEWS``. Deterministic given the seed.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from .data import COLOUR_RGB, COLOURS, _check_choice, _check_int, _uniform_rows
from .render import VIEWS, grid_points, render_views, view_label

SHAPES3D = ("sphere", "cube", "cylinder", "cone")  # the words chapter 7's tokenizer knows (text.shapes_words)
NOSE_RGB = (255, 255, 255)
NOSE_RADIUS = 0.16  # world units; about 2.5 pixels across at the default camera and 32x32 images
SIGMA_INSIDE = 60.0  # density inside an object, per unit length: ~4 optical depths per voxel, so opaque
LIGHT = (0.3, 1.0, 0.6)  # direction towards the baked light: above, slightly right and in front
AMBIENT = 0.45  # shade = AMBIENT + (1 - AMBIENT) max(n . light, 0)
_FRONT_Z = {"sphere": 0.6, "cube": 0.48, "cylinder": 0.5, "cone": 0.3}  # the surface's z at x = y = 0


# --- signed distances (negative inside), world units ----------------------------------------------------------


def _box2(a: Tensor, b: Tensor) -> Tensor:
    """Signed distance of the 2-D box |a| <= 0, |b| <= 0 given the per-axis excesses a, b."""
    return torch.sqrt(a.clamp(min=0) ** 2 + b.clamp(min=0) ** 2) + torch.maximum(a, b).clamp(max=0)


def shape_sdf(shape: str, points: Tensor) -> Tensor:
    """Signed distance ``[...]`` (< 0 inside) of a primitive at points ``[..., 3]``; exact for the sphere, cube
    and cylinder, a close bound for the cone (apex up). All fit in a ball of radius 0.85 around the origin."""
    _check_choice("shape", shape, SHAPES3D)
    x, y, z = points.unbind(-1)
    rho = torch.sqrt(x**2 + z**2)  # distance from the vertical axis
    if shape == "sphere":
        return points.norm(dim=-1) - 0.6
    if shape == "cube":
        q = points.abs() - 0.48
        return q.clamp(min=0).norm(dim=-1) + q.amax(dim=-1).clamp(max=0)
    if shape == "cylinder":
        return _box2(rho - 0.5, y.abs() - 0.55)
    slope = math.atan2(0.6, 1.2)  # base radius 0.6, height 1.2: the side's angle from the axis
    side = (rho - 0.6 * (0.6 - y) / 1.2) * math.cos(slope)
    return torch.maximum(side, y.abs() - 0.6)


def shape_field(shape: str, colour: str, resolution: int = 32, nose: bool = True) -> Tensor:
    """The radiance field of one object: float32 ``[4, R, R, R]`` for ``render.render_views``.

    Density SIGMA_INSIDE * sigmoid(-sdf / voxel): opaque inside, a soft surface about one voxel thick. Colour:
    the ``data.COLOUR_RGB`` colour (the nose white) times the baked shade, in [-1, 1].
    """
    _check_choice("colour", colour, COLOURS)
    _check_int("resolution", resolution, 8, 256)
    points = grid_points(resolution)
    body = shape_sdf(shape, points)
    voxel = 2.0 / (resolution - 1)
    if nose:
        nose_sdf = (points - torch.tensor([0.0, 0.0, _FRONT_Z[shape]])).norm(dim=-1) - NOSE_RADIUS
        sdf, nose_weight = torch.minimum(body, nose_sdf), torch.sigmoid((body - nose_sdf) / voxel)
    else:
        sdf, nose_weight = body, torch.zeros_like(body)
    density = SIGMA_INSIDE * torch.sigmoid(-sdf / voxel)
    # the outward normal is the sdf's gradient; its light term is Lambert's cosine law
    normal = torch.stack(torch.gradient(sdf, spacing=voxel, dim=(2, 1, 0)), dim=-1)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    light = torch.tensor(LIGHT) / torch.tensor(LIGHT).norm()
    shade = AMBIENT + (1.0 - AMBIENT) * (normal @ light).clamp(min=0)
    base = torch.tensor(COLOUR_RGB[colour], dtype=torch.float32) / 255.0
    albedo = base + nose_weight[..., None] * (torch.tensor(NOSE_RGB) / 255.0 - base)
    rgb = (2.0 * albedo * shade[..., None] - 1.0).permute(3, 0, 1, 2)
    return torch.cat([density[None], rgb])


@functools.lru_cache(maxsize=64)
def _cached_field(shape: str, colour: str, resolution: int, nose: bool) -> Tensor:
    return shape_field(shape, colour, resolution, nose)


# --- captions --------------------------------------------------------------------------------------------


def caption3d(shape: int, colour: int, view: int) -> str:
    """Caption of indices into ``SHAPES3D``, ``COLOURS``, ``VIEWS``: "a red cube, side view"."""
    return f"a {COLOURS[colour]} {SHAPES3D[shape]}, {VIEWS[view]} view"


def parse_caption3d(text: str) -> dict[str, int]:
    """Inverse of ``caption3d``: indices ``{"shape", "colour", "view"}`` of a caption."""
    match = re.fullmatch(r"a (\w+) (\w+), (\w+) view", text.strip())
    if match is None or match[1] not in COLOURS or match[2] not in SHAPES3D or match[3] not in VIEWS:
        raise ValueError(
            f"cannot parse caption {text!r}: expected 'a <colour> <shape>, <view> view' with colour in "
            f"{COLOURS}, shape in {SHAPES3D}, view in {VIEWS}."
        )
    return {"shape": SHAPES3D.index(match[2]), "colour": COLOURS.index(match[1]), "view": VIEWS.index(match[3])}


# --- the data set ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shapes3DData:
    """Output of ``shapes3d``: images, int64 ``[n]`` attribute indices, the cameras, captions."""

    images: Tensor  # float32 [n, 3, S, S] in [-1, 1]
    shape: Tensor  # index into SHAPES3D
    colour: Tensor  # index into data.COLOURS
    view: Tensor  # index into render.VIEWS, from view_label(azimuth, elevation)
    azimuth: Tensor  # float32 [n], degrees in [-180, 180)
    elevation: Tensor  # float32 [n], degrees
    captions: tuple[str, ...]


def shapes3d(
    n: int,
    seed: int = 0,
    size: int = 32,
    resolution: int = 32,
    num_samples: int = 48,
    elevation_range: tuple[float, float] = (-10.0, 80.0),
    radius: float = 3.5,
    fov_deg: float = 40.0,
    nose: bool = True,
) -> Shapes3DData:
    """Renders of random coloured primitives from random cameras, captioned with the view.

    Shape, colour, azimuth (uniform in [-180, 180)) and elevation (uniform in ``elevation_range``, degrees) are
    drawn independently per image; the first images do not depend on n. With the default range about 2/9 of the
    views are "overhead" (elevation > 60); of the rest 1/4 front, 1/2 side, 1/4 back.

    Args:
        n: number of images, >= 1 (2,000 at 32x32 take about 11 s on one CPU thread).
        seed: seed of the draws.
        size: S, pixels per side, >= 8; resolution: voxels per side of the fields, 8..256.
        num_samples: samples per ray; radius, fov_deg: the camera, as in ``render.camera_rays``.
        nose: False drops the front marker, e.g. to show that views then cannot be told apart.

    Returns:
        ``Shapes3DData`` with images float32 ``[n, 3, S, S]`` in [-1, 1] on black.
    """
    _check_int("n", n, 1)
    _check_int("seed", seed, 0)
    _check_int("size", size, 8, 512)
    low, high = elevation_range
    if not -90.0 < low <= high < 90.0:
        raise ValueError(
            f"elevation_range must be (low, high) with -90 < low <= high < 90 degrees, got "
            f"{elevation_range!r}; try (-10.0, 80.0)."
        )
    u = _uniform_rows(n, 4, seed)
    shape = (u[:, 0] * len(SHAPES3D)).long()
    colour = (u[:, 1] * len(COLOURS)).long()
    azimuth = (360.0 * u[:, 2] - 180.0).float()
    elevation = (low + (high - low) * u[:, 3]).float()
    view = torch.tensor(
        [VIEWS.index(view_label(a, e)) for a, e in zip(azimuth.tolist(), elevation.tolist())], dtype=torch.int64
    )
    images = torch.empty(n, 3, size, size)
    for s in range(len(SHAPES3D)):
        for c in range(len(COLOURS)):
            idx = ((shape == s) & (colour == c)).nonzero().squeeze(1)
            if len(idx) == 0:
                continue
            field = _cached_field(SHAPES3D[s], COLOURS[c], resolution, bool(nose))
            for chunk in idx.split(128):
                images[chunk] = render_views(
                    field, azimuth[chunk], elevation[chunk], radius, size, fov_deg, num_samples, background=-1.0
                )
    images.clamp_(-1.0, 1.0)  # compositing is a convex combination; this only removes rounding error
    captions = tuple(caption3d(*map(int, a)) for a in zip(shape, colour, view))
    return Shapes3DData(images, shape, colour, view, azimuth, elevation, captions)
