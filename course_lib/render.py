"""Volume rendering of a voxel radiance field, and the cameras that look at it (chapter 7, score distillation).

Papers: Mildenhall et al. 2020 (NeRF), Eq. 3: the quadrature of the volume rendering integral,
    C(r) = sum_i T_i (1 - exp(-sigma_i delta_i)) c_i,   T_i = exp(-sum_{j<i} sigma_j delta_j),
with stratified samples along each ray (their Eq. 2); Poole et al. 2022 (DreamFusion), Sec. 3.2: random cameras
and the view words "front", "side", "back", "overhead" added to the prompt; Lin et al. 2023 (Magic3D), Sec. 4.1:
the initial density blob tau(mu) = lambda (1 - ||mu|| / c).

Notation and conventions:
- A field is ONE tensor ``[4, R, R, R]``: channel 0 the density sigma >= 0 (per unit length of the world), channels
  1..3 the colour c in [-1, 1] (the course's image range). It fills the cube [-1, 1]^3. Voxel ``[:, k, j, i]``
  holds the value at the point (x_i, y_j, z_k) with x_i = -1 + 2 i / (R - 1): ``F.grid_sample``'s layout with
  ``align_corners=True``, so the first and last voxels sit on the cube's faces. Between voxels the field is
  trilinear; outside the cube the density is exactly 0. ``grid_points(R)`` gives the voxel points.
- World axes: right-handed, +y up. The object's FRONT faces +z.
- Camera at (azimuth, elevation) in degrees sits at radius * (cos(el) sin(az), sin(el), cos(el) cos(az)) and
  looks at the origin with +y up. Azimuth 0 sees the front (camera on +z), 180 the back (camera on -z), +90 and
  -90 the sides (camera on +x and -x); elevation 90 would look straight down (excluded: the up vector is undefined).
- Image pixels: row 0 at the top, column 0 at the left; images are ``[B, 3, S, S]`` in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

ALIGN_CORNERS = True  # voxel i sits at x = -1 + 2 i / (R - 1): the grid's corners are the cube's corners
CUBE_DIAGONAL = math.sqrt(3.0)  # half the cube's diagonal: every ray's near/far bound around the origin
VIEWS = ("front", "side", "back", "overhead")  # DreamFusion Sec. 3.2's view words, indices of view labels


def _check_number(name: str, value: object, low: float, high: float, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
        raise ValueError(f"{name} must be a number in ({low}, {high}), got {value!r}; {hint}")
    return float(value)


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1 (pixels per image side), got {size!r}; try 32.")
    return size


def check_field(field: Tensor) -> int:
    """Raise a ValueError unless ``field`` is a float ``[4, R, R, R]`` radiance field with density >= 0; return R."""
    if not isinstance(field, Tensor) or not field.is_floating_point() or field.ndim != 4 or field.shape[0] != 4:
        raise ValueError(
            f"field must be a float tensor [4, R, R, R] (density, then RGB), got "
            f"{getattr(field, 'dtype', type(field).__name__)} {tuple(getattr(field, 'shape', ()))}; "
            f"build one with torch.cat([density[None], colour])."
        )
    r = field.shape[1]
    if field.shape[2:] != (r, r) or r < 2:
        raise ValueError(
            f"field must be a cubic grid [4, R, R, R] with R >= 2, got {tuple(field.shape)}; "
            f"resample it to a cube, e.g. with F.interpolate(field[None], size=(R, R, R))."
        )
    if bool((field[0] < 0).any()):
        raise ValueError(
            f"field[0] is the density and must be >= 0, got a minimum of {float(field[0].min()):.3g}; "
            f"pass it through F.softplus or torch.relu (or clamp the optimised parameters)."
        )
    return r


def _check_background(background: float | Tensor, like: Tensor) -> Tensor:
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if bg.shape not in ((), (3,)) or not bool(((bg >= -1) & (bg <= 1)).all()):
        raise ValueError(
            f"background must be a number or an RGB tensor [3] in [-1, 1], got {background!r}; "
            f"-1.0 is black, 1.0 white."
        )
    return bg.expand(3)


# --- the field ------------------------------------------------------------------------------------------


def grid_points(resolution: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The points of the voxels: ``[R, R, R, 3]`` (x, y, z) in [-1, 1], indexed ``[k, j, i]`` like a field."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2 (voxels per side), got {resolution!r}; try 32.")
    axis = torch.linspace(-1.0, 1.0, resolution, dtype=dtype)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def density_blob(resolution: int = 32, lam: float = 10.0, c: float = 0.5) -> Tensor:
    """Magic3D's initial density tau(mu) = lam (1 - ||mu|| / c), clamped at 0: a soft ball of radius c.

    Returns float32 ``[R, R, R]``, per unit length, lam at the centre. Add a colour to make a field:
    ``torch.cat([density_blob(R)[None], colour])`` with colour ``[3, R, R, R]`` in [-1, 1].
    """
    _check_number("lam", lam, 0.0, math.inf, "Magic3D uses 10.")
    _check_number("c", c, 0.0, math.inf, "Magic3D uses 0.5 (half the cube's half-width).")
    return (lam * (1.0 - grid_points(resolution).norm(dim=-1) / c)).clamp(min=0.0)


class VoxelField(torch.nn.Module):
    """An optimisable radiance field: ``field()`` is ``[4, R, R, R]`` for ``render_views``, differentiable.

    The raw parameters are unconstrained; density = softplus(raw) >= 0 (DreamFusion's and Magic3D's choice) and
    colour = tanh(raw) in [-1, 1], so no Adam step can leave the valid range. The density starts as Magic3D's blob
    (``density_blob(resolution, lam, c)``), the colour as grey (raw 0).
    """

    def __init__(self, resolution: int = 32, lam: float = 10.0, c: float = 0.5):
        super().__init__()
        density = density_blob(resolution, lam, c).clamp(min=1e-4)  # softplus^-1 needs a positive density
        self.density_raw = torch.nn.Parameter(density + torch.log(-torch.expm1(-density)))  # softplus^-1
        self.colour_raw = torch.nn.Parameter(torch.zeros(3, resolution, resolution, resolution))

    @property
    def resolution(self) -> int:
        return self.density_raw.shape[0]

    def forward(self) -> Tensor:
        return torch.cat([F.softplus(self.density_raw)[None], torch.tanh(self.colour_raw)])


def sample_field(field: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """Trilinear lookup of a field at points: (sigma ``[...]``, rgb ``[..., 3]``) for points ``[..., 3]`` (x, y, z).

    Points outside the cube [-1, 1]^3 get density 0 (``grid_sample``'s zero padding alone would fade it over one
    voxel). Differentiable with respect to the field.
    """
    grid = points.reshape(1, 1, 1, -1, 3).to(field.dtype)
    values = F.grid_sample(field[None], grid, mode="bilinear", padding_mode="border", align_corners=ALIGN_CORNERS)
    values = values.reshape(4, *points.shape[:-1]).movedim(0, -1)
    inside = (points.abs() <= 1.0).all(dim=-1)
    return torch.where(inside, values[..., 0], torch.zeros_like(values[..., 0])), values[..., 1:]


# --- volume rendering -----------------------------------------------------------------------------------


def compositing_weights(sigma: Tensor, deltas: Tensor) -> Tensor:
    """NeRF Eq. 3's weights w_i = T_i (1 - exp(-sigma_i delta_i)), T_i = exp(-sum_{j<i} sigma_j delta_j).

    Args:
        sigma: density ``[N, S]`` >= 0 at S samples along N rays, nearest first (per unit length).
        deltas: lengths ``[N, S]`` >= 0 of the segments the samples stand for (same unit).

    Returns:
        weights ``[N, S]`` >= 0; along each ray they sum to 1 - exp(-sum_i sigma_i delta_i) <= 1 (the opacity).
    """
    if sigma.shape != deltas.shape or sigma.ndim != 2:
        raise ValueError(f"sigma and deltas must both be [N, S], got {tuple(sigma.shape)} and {tuple(deltas.shape)}.")
    tau = sigma * deltas  # optical depth of each segment
    alpha = -torch.expm1(-tau)  # 1 - exp(-tau), accurate for small tau
    depth_before = torch.cat([torch.zeros_like(tau[:, :1]), torch.cumsum(tau, dim=1)[:, :-1]], dim=1)
    return torch.exp(-depth_before) * alpha  # Eq. 3: T_i alpha_i


def render_rays(
    field: Tensor,
    origins: Tensor,
    directions: Tensor,
    near: float,
    far: float,
    num_samples: int = 48,
    background: float | Tensor = -1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Colour and opacity of N rays through a field: NeRF Eq. 3 composited over a background.

    The segment [near, far] of each ray x(t) = o + t d is cut into S equal strata; sample i lies at the stratum's
    midpoint, or uniformly inside it when a ``generator`` is given (NeRF Eq. 2: stratified sampling). Each sample
    stands for its stratum, so delta_i = (far - near) / S * ||d|| in world units.

    Args:
        field: ``[4, R, R, R]`` (see the module docstring).
        origins, directions: ``[N, 3]`` ray origins and directions (any length > 0; unit for ``camera_rays``).
        near, far: ray parameters, 0 <= near < far.
        num_samples: S, samples per ray, >= 1.
        background: a number or RGB ``[3]`` in [-1, 1], seen where the rays are not fully absorbed.
        generator: draws the jitter; None gives the deterministic midpoints.

    Returns:
        rgb ``[N, 3]`` = sum_i w_i c_i + (1 - sum_i w_i) background, in [-1, 1] for colours in [-1, 1];
        opacity ``[N]`` = sum_i w_i in [0, 1].
    """
    check_field(field)
    if (
        not isinstance(origins, Tensor)
        or origins.ndim != 2
        or origins.shape[1] != 3
        or not isinstance(directions, Tensor)
        or directions.shape != origins.shape
    ):
        raise ValueError(
            f"origins and directions must both be tensors [N, 3], got "
            f"{tuple(getattr(origins, 'shape', ()))} and {tuple(getattr(directions, 'shape', ()))}."
        )
    if (
        any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf for v in (near, far))
        or not near < far
    ):
        raise ValueError(
            f"near and far must be finite numbers with 0 <= near < far, and near must be smaller than "
            f"far; got near={near!r}, far={far!r}. Swap them or widen the range."
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}; try 32 to 64.")
    bg = _check_background(background, field)
    origins, directions = origins.to(field), directions.to(field)
    n, stratum = origins.shape[0], (far - near) / num_samples
    # 1. stratified sample positions t_i (NeRF Eq. 2)
    if generator is None:
        u = torch.full((n, num_samples), 0.5, dtype=field.dtype, device=field.device)
    else:
        u = torch.rand(n, num_samples, generator=generator, dtype=field.dtype).to(field.device)
    t = near + stratum * (torch.arange(num_samples, dtype=field.dtype, device=field.device) + u)
    # 2. the field at the points, and the segment lengths in world units
    sigma, rgb = sample_field(field, origins[:, None] + t[..., None] * directions[:, None])
    deltas = (stratum * directions.norm(dim=-1, keepdim=True)).expand(n, num_samples)
    # 3. composite (Eq. 3) over the background
    weights = compositing_weights(sigma, deltas)
    opacity = weights.sum(dim=1)
    return (weights[..., None] * rgb).sum(dim=1) + (1.0 - opacity)[:, None] * bg, opacity


# --- cameras ---------------------------------------------------------------------------------------------


def camera_rays(
    azimuth_deg: float,
    elevation_deg: float,
    radius: float = 3.5,
    size: int = 32,
    fov_deg: float = 40.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Rays of a pinhole camera looking at the origin, +y up (conventions in the module docstring).

    Args:
        azimuth_deg: any angle, degrees; 0 = front (camera on +z), 180 = back, +-90 = sides.
        elevation_deg: in (-90, 90) degrees above the horizontal plane.
        radius: distance to the origin, > sqrt(3) so the camera is outside the field's cube and its bounding sphere.
        size: S, pixels per image side; fov_deg: full field of view across the image, in (0, 180) degrees.

    Returns:
        origins, directions: ``[S * S, 3]`` (unit directions through pixel centres), in row-major pixel order
        (row 0 at the top of the image).
    """
    _check_number("elevation_deg", elevation_deg, -90.0, 90.0, "the camera cannot look straight up or down.")
    _check_number(
        "radius",
        radius,
        CUBE_DIAGONAL,
        math.inf,
        f"the camera must be outside the sphere around the cube [-1, 1]^3 (radius > {CUBE_DIAGONAL:.3f}); try 3.5.",
    )
    _check_number("fov_deg", fov_deg, 0.0, 180.0, "try 40.")
    _check_number("azimuth_deg", azimuth_deg, -math.inf, math.inf, "pass a finite angle in degrees.")
    size = _check_size(size)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = radius * torch.tensor(
        [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)], dtype=torch.float64
    )
    forward = -eye / radius
    right = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    half = math.tan(math.radians(fov_deg) / 2)
    offsets = ((torch.arange(size, dtype=torch.float64) + 0.5) / size * 2.0 - 1.0) * half  # pixel centres
    row, col = torch.meshgrid(offsets, offsets, indexing="ij")
    directions = forward + col.reshape(-1, 1) * right - row.reshape(-1, 1) * up  # rows grow downwards
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return eye.expand_as(directions).to(dtype), directions.to(dtype)


def _angles(name: str, values: Sequence[float] | Tensor) -> list[float]:
    flat = values.detach().reshape(-1).tolist() if isinstance(values, Tensor) else list(values)
    if isinstance(values, Tensor) and values.ndim != 1 or len(flat) == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D tensor or list of angles in degrees, got {values!r}; "
            f"wrap one angle: [{name}]."
        )
    return [float(v) for v in flat]


def render_views(
    field: Tensor,
    azimuth_deg: Sequence[float] | Tensor,
    elevation_deg: Sequence[float] | Tensor,
    radius: float = 3.5,
    size: int = 32,
    fov_deg: float = 40.0,
    num_samples: int = 48,
    background: float | Tensor = -1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Images of one field from B cameras (``camera_rays`` then ``render_rays``), differentiable in the field.

    Each ray is sampled on [radius - sqrt(3), radius + sqrt(3)], which covers the whole cube [-1, 1]^3.

    Args:
        field: ``[4, R, R, R]``.
        azimuth_deg, elevation_deg: ``[B]`` angles in degrees (tensors or lists of the same length).
        radius, size, fov_deg: as in ``camera_rays``; num_samples, background, generator: as in ``render_rays``.

    Returns:
        images ``[B, 3, S, S]`` in [-1, 1] (for colours and background in [-1, 1]), in the field's dtype.
    """
    azimuths, elevations = _angles("azimuth_deg", azimuth_deg), _angles("elevation_deg", elevation_deg)
    if len(azimuths) != len(elevations):
        raise ValueError(
            f"azimuth_deg and elevation_deg must have the same length B, got {len(azimuths)} and "
            f"{len(elevations)}; pass one (azimuth, elevation) pair per view."
        )
    check_field(field)
    rays = [camera_rays(a, e, radius, size, fov_deg, dtype=field.dtype) for a, e in zip(azimuths, elevations)]
    origins, directions = torch.cat([o for o, _ in rays]), torch.cat([d for _, d in rays])
    rgb, _ = render_rays(
        field, origins, directions, radius - CUBE_DIAGONAL, radius + CUBE_DIAGONAL, num_samples, background, generator
    )
    return rgb.reshape(len(azimuths), size, size, 3).permute(0, 3, 1, 2)


def sample_cameras(
    n: int, generator: torch.Generator | None = None, elevation_range: tuple[float, float] = (-10.0, 80.0)
) -> tuple[Tensor, Tensor]:
    """DreamFusion-style random cameras: azimuth uniform in [-180, 180), elevation uniform in ``elevation_range``.

    Returns float32 ``[n]`` azimuths and ``[n]`` elevations in degrees. The default range follows DreamFusion's
    [-10, 90] but stops at 80 so the camera never looks straight down.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1 (number of cameras), got {n!r}.")
    low, high = elevation_range
    if not -90.0 < low <= high < 90.0:
        raise ValueError(
            f"elevation_range must be (low, high) with -90 < low <= high < 90 degrees, got "
            f"{elevation_range!r}; try (-10.0, 80.0)."
        )
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return (360.0 * u[:, 0] - 180.0).float(), (low + (high - low) * u[:, 1]).float()


def view_label(azimuth_deg: float, elevation_deg: float) -> str:
    """The view word of a camera (DreamFusion Sec. 3.2): "overhead" above 60 degrees of elevation, else by azimuth
    wrapped to [-180, 180): "front" for |az| < 45, "side" for 45 <= |az| < 135, "back" for |az| >= 135."""
    _check_number("azimuth_deg", azimuth_deg, -math.inf, math.inf, "pass a finite angle in degrees.")
    _check_number("elevation_deg", elevation_deg, -90.0, 90.0, "elevations lie in (-90, 90) degrees.")
    az = (azimuth_deg + 180.0) % 360.0 - 180.0
    if elevation_deg > 60.0:
        return "overhead"
    return "front" if abs(az) < 45.0 else "side" if abs(az) < 135.0 else "back"


def view_prompt(prompt: str, azimuth_deg: float, elevation_deg: float) -> str:
    """DreamFusion's view-dependent prompt (Sec. 3.2): the camera's ``view_label`` appended, "a red cube, side view"
    for ``prompt="a red cube"`` (the captions the 3-D shapes world's prior was trained on, ``shapes3d.caption3d``)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string such as 'a red cube', got {prompt!r}.")
    return f"{prompt.strip()}, {view_label(azimuth_deg, elevation_deg)} view"
