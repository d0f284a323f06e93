"""Datasets for the course: small embedded ones that run offline, torchvision ones for the gpu profile.

Sources:
- ``digits``: the UCI optical handwritten digits (Alpaydin & Kaynak 1998), 1797 8x8 images in 10 classes,
  shipped with scikit-learn as ``sklearn.datasets.load_digits`` (no download).
- ``toy2d``: swiss roll, two moons (as in ``sklearn.datasets.make_swiss_roll`` / ``make_moons``) and the
  8 Gaussians of Grathwohl et al. 2019 (FFJORD), drawn here from a ``torch.Generator``.
- ``gaussian_mixture``: a labelled mixture of Gaussians on a circle, for class-conditional guidance.
- ``shapes``: procedural coloured shapes with captions (in the spirit of dSprites, Matthey et al. 2017),
  for conditional generation, text-to-image, DreamBooth/LoRA and score distillation.
- ``mnist``, ``fashion_mnist``, ``cifar10``: torchvision (LeCun et al. 1998; Xiao et al. 2017;
  Krizhevsky 2009), stored under ``$COURSE_DATA_DIR`` or ``~/.cache/course_lib/data``.

Conventions: images are float32 ``[N, C, H, W]`` in [-1, 1]; labels and attributes are int64 ``[N]``;
2D points are float32 ``[N, 2]``. Every function is deterministic given its ``seed``.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class DatasetUnavailableError(RuntimeError):
    """A torchvision dataset is neither on disk nor downloadable (e.g. no network)."""


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}; pass an int in that range.")
    return value


def _check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}; pick one of those.")
    return value  # type: ignore[return-value]


def _resize(images: Tensor, image_size: int) -> Tensor:
    """Bilinear resize of ``[N, C, H, W]`` images in [-1, 1] to ``image_size`` (antialiased when shrinking)."""
    if images.shape[-1] == image_size:
        return images
    out = F.interpolate(
        images,
        size=(image_size, image_size),
        mode="bilinear",
        align_corners=False,
        antialias=image_size < images.shape[-1],
    )
    return out.clamp_(-1.0, 1.0)  # both filters are convex combinations; this only removes rounding error


def _uniform_rows(n: int, k: int, seed: int) -> Tensor:
    """float64 ``[n, k]`` uniform in [0, 1), one row per sample, so the first rows do not depend on n."""
    return torch.rand(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _box_muller(u1: Tensor, u2: Tensor) -> Tensor:
    """Two independent standard normals ``[n, 2]`` from two uniforms ``[n]`` (Box & Muller 1958)."""
    radius = torch.sqrt(-2.0 * torch.log1p(-u1))  # log(1 - u1) is finite for u1 in [0, 1)
    return radius[:, None] * torch.stack([torch.cos(2 * math.pi * u2), torch.sin(2 * math.pi * u2)], dim=-1)


# --- digits (scikit-learn) ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def digits(
    split: Literal["train", "test", "all"] = "train", image_size: int = 16, test_fraction: float = 0.2, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Real handwritten digits from scikit-learn, as images in [-1, 1].

    Args:
        split: "train", "test" (a stratified ``test_fraction`` of every class, the same on every call
            with the same ``seed``) or "all" (all 1797 images, original order).
        image_size: output side S in pixels; the 8x8 originals are resized bilinearly (antialiased when
            shrinking). 16 is the course's working size.
        test_fraction: fraction of the 1797 images in the test split, in (0, 1).
        seed: seed of the stratified split.

    Returns:
        images: float32 ``[N, 1, S, S]`` in [-1, 1] (ink values 0..16 map linearly to -1..1).
        labels: int64 ``[N]`` in 0..9.
    """
    _check_choice("split", split, ("train", "test", "all"))
    _check_int("image_size", image_size, 2, 512)
    _check_int("seed", seed, 0)
    raw, target = _digits_arrays()
    if not isinstance(test_fraction, float) or not 10 <= math.ceil(test_fraction * len(raw)) <= len(raw) - 10:
        raise ValueError(
            f"test_fraction must be a float with at least 10 images (one per class) on each side "
            f"of the split of {len(raw)}, i.e. roughly 0.006 to 0.99; got {test_fraction!r}. Try 0.2."
        )
    index = np.arange(len(raw))
    if split != "all":
        from sklearn.model_selection import train_test_split

        train_idx, test_idx = train_test_split(index, test_size=test_fraction, stratify=target, random_state=seed)
        index = np.sort(train_idx if split == "train" else test_idx)
    images = torch.from_numpy(raw[index]).unsqueeze(1) / 8.0 - 1.0
    return _resize(images, image_size), torch.from_numpy(target[index])


# --- 2D toy sets ---------------------------------------------------------------------------------------


def _swiss_roll(u: Tensor) -> Tensor:
    t = 1.5 * math.pi * (1.0 + 2.0 * u)
    return torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=-1)


def _moons(u: Tensor) -> Tensor:
    upper = u < 0.5
    theta = math.pi * torch.where(upper, 2.0 * u, 2.0 * u - 1.0)
    x = torch.where(upper, torch.cos(theta), 1.0 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    return torch.stack([x, y], dim=-1)


def _eight_centres(u: Tensor) -> Tensor:
    angle = 2.0 * math.pi * torch.floor(8.0 * u) / 8.0
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


_TOY_CURVES: dict[str, Callable[[Tensor], Tensor]] = {
    "swiss_roll": _swiss_roll,
    "moons": _moons,
    "8gaussians": _eight_centres,
}


@functools.lru_cache(maxsize=None)
def _toy_moments(name: str) -> tuple[Tensor, Tensor]:
    """Population mean ``[2]`` and pooled std ``[]`` of a noiseless curve, by the midpoint rule over u."""
    grid = _TOY_CURVES[name]((torch.arange(40_000, dtype=torch.float64) + 0.5) / 40_000)
    return grid.mean(dim=0), grid.var(dim=0).mean().sqrt()


def toy2d(
    name: Literal["swiss_roll", "moons", "8gaussians"], n: int = 2000, seed: int = 0, noise: float = 0.1
) -> Tensor:
    """2D toy distribution: a noiseless curve (or 8 points) plus isotropic Gaussian noise.

    Scaling: the noiseless set is centred at its population mean and divided by ONE scalar, its population
    standard deviation averaged over both coordinates (computed on a fine grid of the curve parameter), so
    the shape is not distorted. Gaussian noise of std ``noise`` is added in those units and the result is
    divided by sqrt(1 + noise**2). So, in expectation, the set is centred at the origin with mean
    per-coordinate variance exactly 1 (E|x|^2 = 2); single coordinates have std between about 0.7 and 1.3.

    Args:
        name: "swiss_roll", "moons" or "8gaussians" (8 blobs at equal angles on a circle).
        n: number of points, >= 1.
        seed: seed of a private ``torch.Generator`` (no global or scikit-learn randomness).
        noise: noise std relative to the data's spread, >= 0.

    Returns:
        float32 ``[n, 2]``.
    """
    curve = _TOY_CURVES[_check_choice("name", name, tuple(_TOY_CURVES))]
    _check_int("n", n, 1)
    _check_int("seed", seed, 0)
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise < 10:
        raise ValueError(f"noise must be a number in [0, 10) (std relative to the spread), got {noise!r}; try 0.1.")
    mean, scale = _toy_moments(name)
    u = _uniform_rows(n, 3, seed)
    x = (curve(u[:, 0]) - mean) / scale + noise * _box_muller(u[:, 1], u[:, 2])
    return (x / math.sqrt(1.0 + noise**2)).float()


def mixture_means(num_classes: int = 4, radius: float = 1.25) -> Tensor:
    """Means of ``gaussian_mixture``: float32 ``[num_classes, 2]``, mean k at angle 2*pi*k/num_classes."""
    _check_int("num_classes", num_classes, 1, 64)
    angle = 2.0 * math.pi * torch.arange(num_classes, dtype=torch.float64) / num_classes
    return (radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)).float()


def gaussian_mixture(
    n: int = 2000, num_classes: int = 4, seed: int = 0, radius: float = 1.25, std: float = 0.3
) -> tuple[Tensor, Tensor]:
    """Labelled equal-weight mixture of isotropic Gaussians with means on a circle (guidance chapter).

    With the defaults (4 classes) neighbouring means are 5.9 stds apart, so the nearest mean
    (``mixture_means``) recovers the label of about 99.7 % of points (2 Phi(-2.95) ~ 0.3 % errors); each
    coordinate has std ~0.93.

    Args:
        n: number of points, >= 1.
        num_classes: number of components K, 1..64.
        seed: seed of a private ``torch.Generator``.
        radius: distance of every mean from the origin, > 0.
        std: standard deviation of every component, > 0.

    Returns:
        points: float32 ``[n, 2]``.
        labels: int64 ``[n]`` in 0..K-1 (the component each point was drawn from).
    """
    _check_int("n", n, 1)
    _check_int("seed", seed, 0)
    if not (radius > 0 and std > 0):
        raise ValueError(f"radius and std must be positive, got radius={radius!r}, std={std!r}. Try 1.25 and 0.3.")
    means = mixture_means(num_classes, radius)
    u = _uniform_rows(n, 3, seed)
    labels = (u[:, 0] * num_classes).long()
    return means[labels] + std * _box_muller(u[:, 1], u[:, 2]).float(), labels


# --- coloured shapes with captions -------------------------------------------------------------------

SHAPES = ("circle", "square", "triangle", "cross", "star", "heart")
COLOUR_RGB = {
    "red": (230, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 100, 240),
    "yellow": (240, 220, 40),
    "purple": (170, 70, 220),
    "cyan": (40, 210, 220),
}  # 0..255
COLOURS = tuple(COLOUR_RGB)
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center")
ATTRIBUTES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}  # a caption's four parts
BACKGROUND_RGB = (0, 0, 0)
_SIZE_RADIUS = (0.13, 0.24)  # shape half-width as a fraction of the image side
_POSITION_XY = ((0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7), (0.5, 0.5))  # centre, fraction of side
_JITTER_SIZE, _JITTER_POSITION = 0.1, 0.03  # relative radius jitter, centre jitter as fraction of side
# Captions read "a <size> <colour> <shape> at the <position>". Word id 0 pads, so "" (all padding) is the
# null prompt of classifier-free guidance; "sks" is never drawn, a free identifier for DreamBooth.
RARE_WORDS = ("sks",)
VOCAB = ("<pad>", "a", "at", "the", *SIZES, *COLOURS, *SHAPES, "top", "bottom", "left", "right", "center", *RARE_WORDS)
_WORD_ID = {word: i for i, word in enumerate(VOCAB)}


# Inside tests in units of the radius (u right, v up); every shape fits in the box |u|, |v| <= 1.
def _triangle(u: Tensor, v: Tensor) -> Tensor:
    return (v >= -0.8) & (u.abs() <= 0.95 * (0.95 - v) / 1.75)


def _star(u: Tensor, v: Tensor) -> Tensor:  # six-pointed: an up and a down triangle
    def up(v_: Tensor) -> Tensor:
        return (v_ >= -0.5) & (math.sqrt(3.0) * u.abs() + v_ <= 1.0)

    return up(v) | up(-v)


def _heart(u: Tensor, v: Tensor) -> Tensor:  # (x^2 + y^2 - 1)^3 = x^2 y^3 spans |x| <= 1.14, -1 <= y <= 1.24
    x, y = 1.14 * u, 1.12 * v + 0.12
    return (x**2 + y**2 - 1.0) ** 3 - x**2 * y**3 <= 0


_INSIDE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "circle": lambda u, v: u**2 + v**2 <= 1.0,
    "square": lambda u, v: torch.maximum(u.abs(), v.abs()) <= 0.85,
    "triangle": _triangle,
    "cross": lambda u, v: ((u.abs() <= 0.33) & (v.abs() <= 1.0)) | ((v.abs() <= 0.33) & (u.abs() <= 1.0)),
    "star": _star,
    "heart": _heart,
}


def _render(
    shape: Tensor, colour: Tensor, radius: Tensor, centre: Tensor, image_size: int, supersample: int = 4
) -> Tensor:
    """Draw one shape per image: ``[N]`` indices, radius ``[N]`` and centre ``[N, 2]`` (x, y) in pixels.

    Anti-aliased by evaluating the inside test on a ``supersample``-times finer grid and averaging.
    Returns float32 ``[N, 3, S, S]`` in [-1, 1].
    """
    fine = (torch.arange(image_size * supersample) + 0.5) / supersample  # sub-pixel centres, in pixels
    cover = torch.zeros(len(shape), 1, image_size, image_size)
    for k, name in enumerate(SHAPES):
        idx = (shape == k).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        r = radius[idx, None, None]
        u = (fine[None, None, :] - centre[idx, 0, None, None]) / r
        v = (centre[idx, 1, None, None] - fine[None, :, None]) / r  # image rows grow downwards
        cover[idx] = F.avg_pool2d(_INSIDE[name](u, v).float().unsqueeze(1), supersample)
    rgb = torch.tensor(list(COLOUR_RGB.values()), dtype=torch.float32) / 127.5 - 1.0
    background = torch.tensor(BACKGROUND_RGB, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1.0
    return background + cover * (rgb[colour].view(-1, 3, 1, 1) - background)


def _render_jittered(
    shape: Tensor, colour: Tensor, size: Tensor, position: Tensor, u: Tensor, image_size: int
) -> Tensor:
    """Draw ``[N]`` attribute indices with the world's jitter, from uniforms ``u`` ``[N, 3]`` (radius, x, y):
    the radius varies by +-``_JITTER_SIZE`` relative, the centre by +-``_JITTER_POSITION`` of the side."""
    radius = torch.tensor(_SIZE_RADIUS)[size] * (1.0 + _JITTER_SIZE * (2.0 * u[:, 0] - 1.0)).float() * image_size
    centre = (torch.tensor(_POSITION_XY)[position] + (_JITTER_POSITION * (2.0 * u[:, 1:] - 1.0)).float()) * image_size
    return torch.cat(
        [
            _render(shape[i : i + 256], colour[i : i + 256], radius[i : i + 256], centre[i : i + 256], image_size)
            for i in range(0, len(shape), 256)
        ]
    )


def render_shape(shape: str, colour: str, size: str, position: str, image_size: int = 32) -> Tensor:
    """Draw one shape at its canonical size and position (no jitter), e.g. to illustrate a caption.

    Args: names from ``SHAPES``, ``COLOURS``, ``SIZES``, ``POSITIONS``; ``image_size`` S >= 16.
    Returns: float32 ``[3, S, S]`` in [-1, 1] on a black background.
    """
    _check_int("image_size", image_size, 16, 512)
    s, c, z, p = (
        vocab.index(_check_choice(name, value, vocab))
        for name, value, vocab in [
            ("shape", shape, SHAPES),
            ("colour", colour, COLOURS),
            ("size", size, SIZES),
            ("position", position, POSITIONS),
        ]
    )
    centre, radius = torch.tensor([_POSITION_XY[p]]) * image_size, torch.tensor([_SIZE_RADIUS[z] * image_size])
    return _render(torch.tensor([s]), torch.tensor([c]), radius, centre, image_size)[0]


def caption(shape: int, colour: int, size: int, position: int) -> str:
    """Caption of an attribute tuple (indices into the vocab tuples): "a small red circle at the top left"."""
    return f"a {SIZES[size]} {COLOURS[colour]} {SHAPES[shape]} at the {POSITIONS[position]}"


def parse_caption(text: str) -> dict[str, int]:
    """Inverse of ``caption``: attribute indices ``{"shape", "colour", "size", "position"}`` of a caption."""
    match = re.fullmatch(r"a (\w+) (\w+) (\w+) at the (.+)", text.strip())
    if (
        match is None
        or match[1] not in SIZES
        or match[2] not in COLOURS
        or match[3] not in SHAPES
        or match[4] not in POSITIONS
    ):
        raise ValueError(
            f"cannot parse caption {text!r}: expected 'a <size> <colour> <shape> at the <position>' "
            f"with size in {SIZES}, colour in {COLOURS}, shape in {SHAPES}, position in {POSITIONS}."
        )
    return {
        "shape": SHAPES.index(match[3]),
        "colour": COLOURS.index(match[2]),
        "size": SIZES.index(match[1]),
        "position": POSITIONS.index(match[4]),
    }


@dataclass(frozen=True)
class ShapesData:
    """Output of ``shapes``: images, int64 ``[n]`` attribute indices into the vocab tuples, captions."""

    images: Tensor  # float32 [n, 3, S, S] in [-1, 1]
    shape: Tensor  # index into SHAPES
    colour: Tensor  # index into COLOURS
    size: Tensor  # index into SIZES
    position: Tensor  # index into POSITIONS
    captions: tuple[str, ...]


def shapes(
    n: int,
    seed: int = 0,
    image_size: int = 32,
    include_shapes: Sequence[str] = SHAPES,
    include_colours: Sequence[str] = COLOURS,
) -> ShapesData:
    """Procedural dataset: one coloured shape per image on a black background, with a caption.

    Attributes are drawn uniformly and independently; the radius is jittered by +-10 % and the centre by
    +-3 % of the side, so images of the same caption differ slightly. Restrict ``include_shapes`` /
    ``include_colours`` to hold a concept out (e.g. train without "heart", then teach it by DreamBooth).
    Attribute indices always refer to the full tuples ``SHAPES``, ``COLOURS``, ``SIZES``, ``POSITIONS``.

    Args:
        n: number of images, >= 1 (10k images at 32x32 take about a second).
        seed: seed of a private ``torch.Generator``.
        image_size: side S in pixels, >= 16.

    Returns:
        ``ShapesData`` with images float32 ``[n, 3, S, S]`` in [-1, 1] and int64 ``[n]`` attributes.
    """
    _check_int("n", n, 1)
    _check_int("seed", seed, 0)
    _check_int("image_size", image_size, 16, 512)
    shape_ids = torch.tensor([SHAPES.index(_check_choice("include_shapes item", s, SHAPES)) for s in include_shapes])
    colour_ids = torch.tensor(
        [COLOURS.index(_check_choice("include_colours item", c, COLOURS)) for c in include_colours]
    )
    if len(shape_ids) == 0 or len(colour_ids) == 0:
        raise ValueError("include_shapes and include_colours must each name at least one value; pass e.g. SHAPES.")
    u = _uniform_rows(n, 7, seed)
    shape, colour = shape_ids[(u[:, 0] * len(shape_ids)).long()], colour_ids[(u[:, 1] * len(colour_ids)).long()]
    size, position = (u[:, 2] * len(SIZES)).long(), (u[:, 3] * len(POSITIONS)).long()
    images = _render_jittered(shape, colour, size, position, u[:, 4:], image_size)
    captions = tuple(caption(*map(int, a)) for a in zip(shape, colour, size, position))
    return ShapesData(images, shape, colour, size, position, captions)


def render_captions(captions: Sequence[str], seed: int = 0, image_size: int = 32) -> Tensor:
    """Renders of given captions with ``shapes``' jitter (radius +-10 %, centre +-3 % of the side): real images of
    the prompts a model was asked for, e.g. the reference for the diversity of its samples. float32 ``[N, 3, S, S]``."""
    _check_int("seed", seed, 0)
    _check_int("image_size", image_size, 16, 512)
    if isinstance(captions, str) or len(captions) == 0:
        raise ValueError("captions must be a non-empty list of captions; wrap one caption: [caption].")
    attrs = [parse_caption(c) for c in captions]
    get = lambda name: torch.tensor([a[name] for a in attrs])
    shape, colour, size, position = get("shape"), get("colour"), get("size"), get("position")
    return _render_jittered(shape, colour, size, position, _uniform_rows(len(attrs), 3, seed), image_size)


def encode_captions(captions: Sequence[str], max_len: int = 12) -> Tensor:
    """Word ids of captions, padded with 0 (``<pad>``): int64 ``[B, max_len]``. "" encodes the null prompt."""
    if isinstance(captions, str):
        raise ValueError(f"captions must be a list of strings, got one string {captions!r}; wrap it: [caption].")
    _check_int("max_len", max_len, 1)
    ids = torch.zeros(len(captions), max_len, dtype=torch.int64)
    for row, text in enumerate(captions):
        words = text.lower().split()
        unknown = [w for w in words if w not in _WORD_ID or w == "<pad>"]
        if unknown:
            raise ValueError(f"unknown word {unknown[0]!r} in caption {text!r}; the vocabulary is {VOCAB[1:]}.")
        if len(words) > max_len:
            raise ValueError(f"caption {text!r} has {len(words)} words, more than max_len={max_len}; raise max_len.")
        ids[row, : len(words)] = torch.tensor([_WORD_ID[w] for w in words], dtype=torch.int64)
    return ids


def decode_caption(ids: Tensor) -> str:
    """Inverse of ``encode_captions`` for one row: int64 ``[L]`` word ids -> caption (padding dropped)."""
    if ids.ndim != 1 or ids.dtype != torch.int64 or (len(ids) and not 0 <= ids.min() <= ids.max() < len(VOCAB)):
        raise ValueError(
            f"ids must be an int64 [L] tensor with values in 0..{len(VOCAB) - 1}, got dtype "
            f"{ids.dtype}, shape {tuple(ids.shape)}; pass one row, e.g. encode_captions([c])[0]."
        )
    return " ".join(VOCAB[i] for i in ids.tolist() if i != 0)


# --- torchvision datasets (gpu profile) ---------------------------------------------------------------

# name -> (torchvision class, files' folder under root, offline alternative)
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw", "course_lib.data.digits()"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", "course_lib.data.digits()"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", "course_lib.data.shapes()"),
}


def _torchvision(
    name: str, split: str, root: str | os.PathLike | None, image_size: int | None, download: bool
) -> tuple[Tensor, Tensor]:
    import torchvision.datasets

    cls_name, folder, alternative = _TORCHVISION[name]
    _check_choice("split", split, ("train", "test"))
    if image_size is not None:
        _check_int("image_size", image_size, 2, 512)
    root = Path(root or os.environ.get("COURSE_DATA_DIR") or Path.home() / ".cache/course_lib/data").expanduser()
    try:
        ds = getattr(torchvision.datasets, cls_name)(root=str(root), train=split == "train", download=download)
    except Exception as err:
        raise DatasetUnavailableError(
            f"could not load {name} ({split}) from {root / folder} (download={download}). The course runs offline "
            f"on embedded data: use {alternative} instead. To use {name}, fetch it on a machine with network "
            f"(torchvision.datasets.{cls_name}(root, download=True)) and copy the files to {root / folder}, or "
            f"point COURSE_DATA_DIR (or root=) at the folder that contains {folder}. "
            f"Cause: {type(err).__name__}: {err}"
        ) from err
    data = torch.as_tensor(ds.data)  # uint8: [N, H, W] (MNIST) or [N, H, W, 3] (CIFAR-10)
    images = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
    images = images.float() / 127.5 - 1.0
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return (images if image_size is None else _resize(images, image_size)), labels


def mnist(
    split: Literal["train", "test"] = "train",
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """MNIST via torchvision: float32 ``[N, 1, S, S]`` in [-1, 1] (S = 28 unless ``image_size``), int64 ``[N]``.

    ``root`` defaults to ``$COURSE_DATA_DIR`` or ``~/.cache/course_lib/data``. Raises
    ``DatasetUnavailableError`` (naming ``digits()`` as the offline alternative) if it cannot be loaded.
    """
    return _torchvision("mnist", split, root, image_size, download)


def fashion_mnist(
    split: Literal["train", "test"] = "train",
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST via torchvision; same contract as ``mnist``."""
    return _torchvision("fashion_mnist", split, root, image_size, download)


def cifar10(
    split: Literal["train", "test"] = "train",
    root: str | os.PathLike | None = None,
    image_size: int | None = None,
    download: bool = True,
) -> tuple[Tensor, Tensor]:
    """CIFAR-10 via torchvision: float32 ``[N, 3, S, S]`` in [-1, 1] (S = 32 unless ``image_size``), int64 ``[N]``.

    Same root and errors as ``mnist``; the offline alternative is ``shapes()``.
    """
    return _torchvision("cifar10", split, root, image_size, download)


_LOADERS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "digits": digits,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
}


def load(
    name: Literal["digits", "mnist", "fashion_mnist", "cifar10"], split: str = "train", image_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """Labelled image dataset by name, e.g. ``load(pick(quick="digits", cpu="digits", gpu="mnist"))``.

    Returns ``(images, labels)``: float32 ``[N, C, S, S]`` in [-1, 1] and int64 ``[N]``. ``image_size=None``
    keeps each dataset's default (16 for digits, native otherwise).
    """
    loader = _LOADERS[_check_choice("name", name, tuple(_LOADERS))]
    return loader(split=split) if image_size is None else loader(split=split, image_size=image_size)
