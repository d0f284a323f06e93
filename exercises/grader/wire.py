"""What crosses between the grader and the submission's process: plain data, framed on a socket. Never pickle.

A message is a JSON header (the structure) followed by binary blobs (tensors as safetensors). Encoded:

- ``None``, ``bool``, ``int``, ``float``, ``str`` as JSON (a ``float`` or ``int`` subclass leaves as the plain
  number it holds, so an object that "compares equal to anything" cannot cross);
- ``list``; ``tuple`` as ``{"$tuple": [...]}``; ``dict`` (keys: numbers, strings, tuples) as ``{"$dict": [[k, v], ...]}``;
- ``torch.Tensor`` as ``{"$tensor": i}`` with blob ``i`` a safetensors file (dtype, shape and bytes only: a tensor
  subclass arrives as a plain tensor, without autograd history); a numpy array as ``{"$ndarray": i}``;
- ``torch.dtype`` as ``{"$dtype": "float64"}``; a ``course_lib`` dataclass (a ``Schedule``) by its class name and
  fields, rebuilt on arrival (no other class crosses);
- anything else is the sender's business: ``encode`` calls ``other(obj, enc)``, which returns a JSON-able marker
  (a handle to an object that stays in the submission's process, a callback to a function in the grader; ``enc``
  encodes values nested in the marker) or raises ``WireError``; ``decode`` calls ``other(marker, dec)``.

Both sides import this module; it imports nothing from the course.
"""

from __future__ import annotations

import json
import math
import numbers
import socket
import struct
from typing import Any, Callable

MAX_MESSAGE_BYTES = 1 << 30  # one tensor message may carry up to 1 GiB (a batch of samples is a few MB)


class WireError(TypeError):
    """A value that cannot cross the process boundary, or a malformed message."""


def _tensor_bytes(t) -> bytes:
    from safetensors.torch import save

    return save({"t": t.detach().cpu().contiguous().clone()})


def _tensor_from(blob: bytes):
    from safetensors.torch import load

    return load(blob)["t"]


def encode(
    obj: Any, other: Callable[[Any, Callable], Any] | None = None, grad_tensors: list | None = None
) -> tuple[Any, list[bytes]]:
    """(JSON-able structure, blobs) for ``obj``; ``other`` handles values that are not plain data.

    With ``grad_tensors`` (a list), a tensor that requires grad is marked ``"$grad": true`` and appended to it, in
    the order of the structure: the two sides use that order to pass gradients back (``sandbox``, ``worker``).
    """
    blobs: list[bytes] = []

    def enc(x, depth=0):
        if depth > 20:
            raise WireError("the value is nested more than 20 levels deep")
        if x is None or isinstance(x, bool):
            return None if x is None else bool(x)
        if isinstance(x, numbers.Integral) and not _is_array(x):
            return int(x)
        if isinstance(x, numbers.Real) and not _is_array(x):
            f = float(x)
            return f if math.isfinite(f) else {"$float": repr(f)}
        if isinstance(x, str):
            return str(x)
        if isinstance(x, (list, tuple)) and type(x).__name__ not in ("Size",):
            items = [enc(v, depth + 1) for v in list(x)]
            return items if isinstance(x, list) else {"$tuple": items}
        if _is_torch_size(x):
            return {"$tuple": [int(v) for v in x]}
        if isinstance(x, dict):
            pairs = []
            for k, v in list(x.items()):
                if not _plain_key(k):
                    raise WireError(
                        f"a dict key of type {type(k).__name__} (keys must be numbers, strings or tuples of them)"
                    )
                pairs.append([enc(k, depth + 1), enc(v, depth + 1)])
            return {"$dict": pairs}
        if _is_tensor(x):
            blobs.append(_tensor_bytes(x))
            if grad_tensors is not None and x.requires_grad:
                grad_tensors.append(x)
                return {"$tensor": len(blobs) - 1, "$grad": True}
            return {"$tensor": len(blobs) - 1}
        if _is_ndarray(x):
            import torch

            blobs.append(_tensor_bytes(torch.from_numpy(x.copy())))
            return {"$ndarray": len(blobs) - 1}
        if _is_dtype(x):
            return {"$dtype": str(x).removeprefix("torch.")}
        if _is_course_dataclass(x):
            import dataclasses

            fields = {f.name: getattr(x, f.name) for f in dataclasses.fields(x) if f.init}
            return {"$dataclass": f"{type(x).__module__}:{type(x).__qualname__}", "$fields": enc(fields, depth + 1)}
        if other is None:
            raise WireError(f"a value of type {type(x).__name__} cannot cross to the other process")
        return other(x, enc)

    return enc(obj), blobs


def decode(
    data: Any,
    blobs: list[bytes],
    other: Callable[[dict, Callable], Any] | None = None,
    grad_tensors: list | None = None,
) -> Any:
    """The value ``encode`` described; ``other`` turns markers it does not know (handles, callbacks) into objects.

    A tensor marked ``"$grad"`` arrives as a leaf that requires grad (appended to ``grad_tensors`` when given).
    """

    def dec(x):
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict) or not x or not all(isinstance(k, str) and k.startswith("$") for k in x):
            raise WireError(f"malformed value on the wire: {str(x)[:80]}")
        if "$tuple" in x:
            return tuple(dec(v) for v in x["$tuple"])
        if "$dict" in x:
            return {_hashable(dec(k)): dec(v) for k, v in x["$dict"]}
        if "$float" in x:
            return float(x["$float"])
        if "$tensor" in x:
            t = _tensor_from(blobs[x["$tensor"]])
            if x.get("$grad") and (t.is_floating_point() or t.is_complex()):
                t.requires_grad_(True)
                if grad_tensors is not None:
                    grad_tensors.append(t)
            return t
        if "$ndarray" in x:
            return _tensor_from(blobs[x["$ndarray"]]).numpy()
        if "$dtype" in x:
            import torch

            dtype = getattr(torch, x["$dtype"], None)
            if not isinstance(dtype, torch.dtype):
                raise WireError(f"unknown dtype {x['$dtype']!r}")
            return dtype
        if "$dataclass" in x:
            return _course_dataclass(x["$dataclass"], dec(x["$fields"]))
        if other is None:
            raise WireError(f"unexpected marker on the wire: {str(x)[:80]}")
        return other(x, dec)

    return dec(data)


def _is_course_dataclass(x) -> bool:
    import dataclasses

    return dataclasses.is_dataclass(x) and not isinstance(x, type) and type(x).__module__.startswith("course_lib.")


def _course_dataclass(name: str, fields: dict):
    """An instance of a ``course_lib`` dataclass (e.g. ``schedules.Schedule``) rebuilt from its fields."""
    import dataclasses
    import importlib

    module, _, qualname = str(name).partition(":")
    if not module.startswith("course_lib.") or "." in qualname:
        raise WireError(f"refused dataclass {name!r}: only course_lib's dataclasses cross")
    cls = getattr(importlib.import_module(module), qualname, None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or not isinstance(fields, dict):
        raise WireError(f"{name!r} is not a course_lib dataclass")
    return cls(**fields)


def _plain_key(k) -> bool:
    if k is None or isinstance(k, (bool, str, numbers.Real)) and not _is_array(k):
        return True
    return isinstance(k, tuple) and all(_plain_key(v) for v in k)


def _hashable(k):
    if isinstance(k, (list, dict)) or _is_array(k):
        raise WireError("a dict key that is not a number, a string or a tuple of them")
    return k


def _is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _is_torch_size(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Size)


def _is_dtype(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.dtype)


def _is_ndarray(x) -> bool:
    import sys

    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _is_array(x) -> bool:
    return _is_tensor(x) or _is_ndarray(x)


def _torch():
    import sys

    return sys.modules.get("torch")


# --- framing ---------------------------------------------------------------------------------------------


def send(sock: socket.socket, header: dict, blobs: list[bytes] = ()) -> None:
    """One message: the header's length and bytes, the number of blobs, each blob's length and bytes."""
    raw = json.dumps(header, allow_nan=False).encode()
    parts = [struct.pack("!QI", len(raw), len(blobs)), raw]
    for b in blobs:
        parts += [struct.pack("!Q", len(b)), b]
    sock.sendall(b"".join(parts))


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    if n > MAX_MESSAGE_BYTES:
        raise WireError(f"a message of {n} bytes (the limit is {MAX_MESSAGE_BYTES})")
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other process closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> tuple[dict, list[bytes]]:
    """(header, blobs) of the next message; ``EOFError`` when the other side is gone."""
    size, count = struct.unpack("!QI", _recv_exactly(sock, 12))
    if count > 10_000:
        raise WireError(f"a message with {count} blobs")
    header = json.loads(_recv_exactly(sock, size))
    if not isinstance(header, dict):
        raise WireError("a message header that is not an object")
    blobs = [_recv_exactly(sock, struct.unpack("!Q", _recv_exactly(sock, 8))[0]) for _ in range(count)]
    return header, blobs
