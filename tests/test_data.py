"""Tests of course_lib.data: ranges, shapes, determinism, splits, captions, and torchvision loading offline."""

from __future__ import annotations

import hashlib
import pickle
import socket
from collections import Counter
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from course_lib import data

# --- digits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split,count", [("train", None), ("test", None), ("all", 1797)])
@pytest.mark.parametrize("image_size", [4, 8, 16, 28])
def test_digits_shapes_dtypes_ranges(split, count, image_size):
    x, y = data.digits(split, image_size=image_size)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape[1:] == (1, image_size, image_size) and y.shape == (len(x),)
    assert count is None or len(x) == count
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1 and x.max() > 0.5
    assert set(y.tolist()) == set(range(10))


def test_digits_at_8_are_the_raw_sklearn_pixels_mapped_to_minus1_1():
    from sklearn.datasets import load_digits

    raw = torch.from_numpy(load_digits().images).float()
    x, y = data.digits("all", image_size=8)
    torch.testing.assert_close(x[:, 0], raw / 8 - 1)
    assert torch.equal(y, torch.from_numpy(load_digits().target).long())


def test_digits_resize_keeps_mean_ink():
    small, _ = data.digits("all", image_size=8)
    big, _ = data.digits("all", image_size=16)
    assert (small.mean((1, 2, 3)) - big.mean((1, 2, 3))).abs().max() < 0.05


def _rows(x: torch.Tensor) -> Counter:
    return Counter(row.numpy().tobytes() for row in x.flatten(1))


def test_digits_split_is_a_deterministic_stratified_partition():
    (xtr, ytr), (xte, yte), (xall, yall) = (data.digits(s, image_size=8) for s in ("train", "test", "all"))
    assert len(xtr) + len(xte) == 1797 and len(xte) == 360
    assert _rows(xtr) + _rows(xte) == _rows(xall)  # a partition, even if some images occur twice
    expected = 0.2 * torch.bincount(yall)
    assert (torch.bincount(yte, minlength=10) - expected).abs().max() <= 1.0
    again = data.digits("test", image_size=8)
    assert torch.equal(again[0], xte) and torch.equal(again[1], yte)
    assert _rows(data.digits("test", image_size=8, seed=1)[0]) != _rows(xte)
    assert len(data.digits("test", image_size=8, test_fraction=0.5)[0]) == 899


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"split": "val"}, "'train', 'test', 'all'"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": 16.0}, "image_size"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"test_fraction": 0.001}, "at least 10"),
    ],
)
def test_digits_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        data.digits(**kwargs)


# --- toy 2D sets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["swiss_roll", "moons", "8gaussians"])
def test_toy2d_is_standardised_and_deterministic(name):
    x = data.toy2d(name, n=20000, seed=0)
    assert x.shape == (20000, 2) and x.dtype == torch.float32
    assert x.mean(0).abs().max() < 0.05
    assert abs(x.var(0).mean().item() - 1.0) < 0.05
    assert ((x.std(0) > 0.6) & (x.std(0) < 1.4)).all()
    assert torch.equal(x, data.toy2d(name, n=20000, seed=0))
    assert not torch.allclose(x[:100], data.toy2d(name, n=100, seed=1))
    assert torch.equal(x[:100], data.toy2d(name, n=100, seed=0))  # draws do not depend on n


def test_toy2d_leaves_global_random_state_alone():
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    data.toy2d("moons", n=100)
    data.gaussian_mixture(n=100)
    data.shapes(4)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state[1], np.random.get_state()[1])


def test_8gaussians_without_noise_are_8_points_on_a_circle():
    x = data.toy2d("8gaussians", n=2000, noise=0.0)
    points = torch.unique(x.round(decimals=4), dim=0)
    assert len(points) == 8
    torch.testing.assert_close(points.norm(dim=1), torch.full((8,), 2**0.5), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"name": "spiral"}, "swiss_roll"),
        ({"name": "moons", "n": 0}, "n must"),
        ({"name": "moons", "noise": -0.1}, "noise"),
        ({"name": "moons", "seed": -1}, "seed"),
    ],
)
def test_toy2d_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        data.toy2d(**kwargs)


# --- gaussian mixture ----------------------------------------------------------------------------------------


def test_gaussian_mixture_labels_match_nearest_component():
    x, y = data.gaussian_mixture(n=4000, num_classes=4, seed=0)
    means = data.mixture_means(4)
    assert x.shape == (4000, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert means.shape == (4, 2)
    nearest = torch.cdist(x, means).argmin(dim=1)
    assert (nearest == y).float().mean() > 0.98
    assert torch.bincount(y, minlength=4).min() > 800  # equal weights
    for k in range(4):  # each component is centred on its mean
        assert (x[y == k].mean(0) - means[k]).norm() < 0.05
    xs, ys = data.gaussian_mixture(n=4000, num_classes=4, seed=0)
    assert torch.equal(xs, x) and torch.equal(ys, y)
    assert not torch.equal(data.gaussian_mixture(n=100, seed=1)[0], x[:100])
    assert torch.equal(data.gaussian_mixture(n=100, seed=0)[1], y[:100])  # draws do not depend on n


def test_gaussian_mixture_bad_input():
    with pytest.raises(ValueError, match="num_classes"):
        data.gaussian_mixture(num_classes=0)
    with pytest.raises(ValueError, match="std"):
        data.gaussian_mixture(std=0.0)


# --- shapes ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_data():
    return data.shapes(400, seed=0)


def test_shapes_tensors(shapes_data):
    d = shapes_data
    assert d.images.shape == (400, 3, 32, 32) and d.images.dtype == torch.float32
    assert d.images.min() >= -1 and d.images.max() <= 1
    for attr, vocab in [
        ("shape", data.SHAPES),
        ("colour", data.COLOURS),
        ("size", data.SIZES),
        ("position", data.POSITIONS),
    ]:
        values = getattr(d, attr)
        assert values.dtype == torch.int64 and values.shape == (400,)
        assert set(values.tolist()) == set(range(len(vocab)))  # every value drawn
    assert len(d.captions) == 400
    edge = ((d.images > -0.99) & (d.images < (d.images.amax((2, 3), keepdim=True) - 0.01))).any()
    assert edge  # anti-aliased: partial coverage at the borders


def test_shapes_deterministic(shapes_data):
    again = data.shapes(100, seed=0)
    assert torch.equal(again.images, shapes_data.images[:100]) and again.captions == shapes_data.captions[:100]
    assert not torch.equal(data.shapes(100, seed=1).images, again.images)


def test_captions_agree_with_attributes(shapes_data):
    d = shapes_data
    for i, text in enumerate(d.captions):
        attrs = data.parse_caption(text)
        assert attrs == {k: int(getattr(d, k)[i]) for k in ("shape", "colour", "size", "position")}
        assert data.caption(**attrs) == text


def test_encode_decode_round_trip(shapes_data):
    ids = data.encode_captions(shapes_data.captions, max_len=10)
    assert ids.shape == (400, 10) and ids.dtype == torch.int64
    assert [data.decode_caption(row) for row in ids] == list(shapes_data.captions)
    assert data.VOCAB[0] == "<pad>" and len(set(data.VOCAB)) == len(data.VOCAB)
    assert torch.equal(data.encode_captions([""]), torch.zeros(1, 12, dtype=torch.int64))  # null prompt
    assert torch.equal(data.encode_captions(["A Small Red Circle"]), data.encode_captions(["a small red circle"]))
    assert data.decode_caption(data.encode_captions(["a small sks circle"])[0]) == "a small sks circle"


def test_rendered_colour_and_position_match_the_caption(shapes_data):
    d = shapes_data
    rgb = torch.tensor(list(data.COLOUR_RGB.values())) / 127.5 - 1
    cover = (d.images + 1).amax(1) / 2  # black background: fraction of the pixel the shape covers, roughly
    for i in range(len(d.images)):
        img, s = d.images[i], 32
        inside = (img + 1).sum(0) >= (img + 1).sum(0).max() - 1e-4  # fully covered pixels
        assert inside.sum() >= 4
        torch.testing.assert_close(img[:, inside].mean(1), rgb[d.colour[i]], atol=1e-5, rtol=0)
        ys, xs = torch.nonzero(cover[i] > 0.5, as_tuple=True)
        cx, cy = xs.float().mean() + 0.5, ys.float().mean() + 0.5
        name = data.POSITIONS[d.position[i]]
        if name == "center":
            assert abs(cx - s / 2) < 0.12 * s and abs(cy - s / 2) < 0.12 * s
        else:
            assert (cy < s / 2) == name.startswith("top") and (cx < s / 2) == name.endswith("left")


def test_large_shapes_are_larger(shapes_data):
    d = shapes_data
    area = ((d.images + 1).amax(1) / 2).sum((1, 2))
    for k in range(len(data.SHAPES)):
        small, large = area[(d.shape == k) & (d.size == 0)], area[(d.shape == k) & (d.size == 1)]
        assert small.max() < large.min()


def test_render_shape_draws_the_named_caption():
    img = data.render_shape("triangle", "green", "large", "bottom right", image_size=32)
    assert img.shape == (3, 32, 32)
    full = (img + 1).sum(0) >= (img + 1).sum(0).max() - 1e-4
    torch.testing.assert_close(img[:, full].mean(1), torch.tensor(data.COLOUR_RGB["green"]) / 127.5 - 1)
    ys, xs = torch.nonzero(full, as_tuple=True)
    assert ys.float().mean() > 16 and xs.float().mean() > 16
    assert (img[:, 0, :] == -1).all() and (img[:, :, 0] == -1).all()  # background stays black
    bigger = data.render_shape("triangle", "green", "large", "bottom right", image_size=64)
    assert bigger.shape == (3, 64, 64)


def test_shapes_can_hold_concepts_out():
    d = data.shapes(300, seed=0, include_shapes=("circle", "square"), include_colours=("red",))
    assert set(d.shape.tolist()) == {0, 1} and set(d.colour.tolist()) == {0}
    assert all("red" in c and "heart" not in c for c in d.captions)


def test_shapes_bad_input():
    with pytest.raises(ValueError, match="image_size"):
        data.shapes(4, image_size=8)
    with pytest.raises(ValueError, match="heart"):  # the message lists the valid shapes
        data.shapes(4, include_shapes=("hexagon",))
    with pytest.raises(ValueError, match="colour"):
        data.render_shape("circle", "pink", "small", "center")
    with pytest.raises(ValueError, match=r"'dog'.*vocabulary is"):
        data.encode_captions(["a small red dog"])
    with pytest.raises(ValueError, match="list of strings"):
        data.encode_captions("a small red circle")
    with pytest.raises(ValueError, match="max_len"):
        data.encode_captions(["a small red circle at the top left"], max_len=4)
    with pytest.raises(ValueError, match="int64"):
        data.decode_caption(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="cannot parse"):
        data.parse_caption("a red circle")


# --- torchvision loaders on fake files ---------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx-ubyte format: magic (0, 0, 0x08 = uint8, ndim), big-endian int32 dims, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, folder: str, rng: np.random.RandomState) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for prefix, n in [("train", 12), ("t10k", 5)]:
        images = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = rng.randint(0, 10, size=n).astype(np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = (images, labels)
    return arrays


@pytest.mark.parametrize("loader,folder", [(data.mnist, "MNIST"), (data.fashion_mnist, "FashionMNIST")])
def test_mnist_like_loads_fake_idx_files(tmp_path, no_network, loader, folder):
    arrays = _fake_mnist(tmp_path, folder, np.random.RandomState(0))
    for split, prefix in [("train", "train"), ("test", "t10k")]:
        x, y = loader(split, root=tmp_path)  # download=True must find the files and not download
        images, labels = arrays[prefix]
        assert x.shape == (len(images), 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert x[0, 0, 0, 0] == -1 and x[0, 0, 0, 1] == 1
        torch.testing.assert_close(x[:, 0], torch.from_numpy(images).float() / 127.5 - 1)
        assert torch.equal(y, torch.from_numpy(labels).long())
    x16, _ = loader("train", root=tmp_path, image_size=16, download=False)
    assert x16.shape == (12, 1, 16, 16) and x16.min() >= -1 and x16.max() <= 1


def test_cifar10_loads_fake_python_batches(tmp_path, no_network, monkeypatch):
    from torchvision.datasets import CIFAR10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.randint(0, 256, size=(2, 3, 32, 32)).astype(np.uint8)
        labels = rng.randint(0, 10, size=2).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": images.reshape(2, -1), "labels": labels}))
        batches[name] = (images, labels)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    # torchvision verifies each file's md5; point it at our fake files' md5s so the real check still runs.
    md5 = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in folder.iterdir()}
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]})
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))  # root=None falls back to the env variable

    x, y = data.cifar10("train")
    expected = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(x, torch.from_numpy(expected).float() / 127.5 - 1)
    assert y.tolist() == sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    xt, yt = data.load("cifar10", split="test", image_size=16)
    assert xt.shape == (2, 3, 16, 16) and yt.tolist() == batches["test_batch"][1]


@pytest.mark.parametrize(
    "loader,module,alternative",
    [
        (data.mnist, "mnist", "course_lib.data.digits()"),
        (data.fashion_mnist, "mnist", "course_lib.data.digits()"),
        (data.cifar10, "cifar", "course_lib.data.shapes()"),
    ],
)
def test_download_failure_names_the_offline_alternative(tmp_path, no_network, monkeypatch, loader, module, alternative):
    def fail(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(f"torchvision.datasets.{module}.download_and_extract_archive", fail)
    with pytest.raises(data.DatasetUnavailableError) as info:
        loader("train", root=tmp_path)
    message = str(info.value)
    assert alternative in message and "offline" in message and str(tmp_path) in message
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(data.DatasetUnavailableError, match="not found"):  # download=False, files absent
        loader("test", root=tmp_path / "empty", download=False)


def test_torchvision_bad_split(tmp_path):
    with pytest.raises(ValueError, match="'train', 'test'"):
        data.mnist("all", root=tmp_path)


# --- load ------------------------------------------------------------------------------------------------------


def test_load_dispatches_by_name():
    x, y = data.load("digits")
    ref = data.digits("train")
    assert torch.equal(x, ref[0]) and torch.equal(y, ref[1]) and x.shape[-1] == 16
    assert data.load("digits", split="test", image_size=8)[0].shape[1:] == (1, 8, 8)
    with pytest.raises(ValueError, match="fashion_mnist"):
        data.load("imagenet")
