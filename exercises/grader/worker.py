"""The submission's side of grading: runs the notebook's cells, then answers the grader's calls. Runs sandboxed.

Started by ``sandbox.Sandbox`` as an unprivileged user, in a fresh directory that holds nothing of the grader's,
with process-wide limits, as ``python -I -S worker.py SOCKET_FD SITE_DIR [SITE_DIR ...]``. It holds no test, no
expected value and no grade: the grader sends it code to run and values to call the submission's functions with,
and compares what comes back in its own process. Whatever the submission does here (patch torch, replace this
file's functions, start processes, read files) changes only what it answers, never how the answer is judged.

Requests (``wire`` messages, one at a time; each gets one reply ``{"ok": true, "value": ...}`` or
``{"ok": false, "error": "..."}``):

- ``run_cells``: execute code cells in one IPython namespace, each with a time limit; reply with each cell's error;
- ``get``: a global of the notebook (plain data crosses as data, anything else as a handle);
- ``call``: call a global, a handle or a handle's method with decoded arguments; tensor arguments changed in place
  (values, ``requires_grad``, ``.grad``) are reported back so the grader can mirror them on its own copies;
- ``run_function``: call a ``course_lib.grading`` function by name with handles resolved (the measured questions'
  training runs here, under this process's CPU limit);
- ``exit``.

While a call runs, the submission may call back into functions the grader passed as arguments (a model, a
classifier): ``callback`` and, for gradients through them, ``vjp`` requests go the other way.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def _setup_path(site_dirs: list[str]) -> None:
    import site

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    for d in site_dirs:
        site.addsitedir(d)


class _Timeout(BaseException):
    """A cell or call ran past its time limit (BaseException: a bare ``except Exception`` does not swallow it)."""


def _alarm(seconds: float):
    def handler(signum, frame):
        raise _Timeout(f"stopped after its time limit of {seconds:g} s")

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


def _short_error(e: BaseException) -> str:
    """``Type: message`` of an exception raised by the submission, one line, at most 400 characters."""
    text = str(e) if isinstance(e, AssertionError) and str(e).strip() else f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    return text[:400]


class Worker:
    def __init__(self, sock: socket.socket):
        import wire

        self.wire, self.sock = wire, sock
        self.handles: dict[int, object] = {}
        self.kept: dict[int, tuple] = {}
        self.leaves: list = []
        self.shell = None

    # --- values across the wire ---------------------------------------------------------------------------
    def _handle_of(self, obj, enc=None) -> dict:
        key = id(obj)
        self.handles[key] = obj
        return {"$handle": key, "$type": type(obj).__name__[:60]}

    def encode(self, value, grad_tensors: list | None = None):
        return self.wire.encode(value, other=self._handle_of, grad_tensors=grad_tensors)

    def decode(self, data, blobs, grad_tensors: list | None = None):
        def other(marker, dec):
            if "$handle" in marker:
                if marker["$handle"] not in self.handles:
                    raise self.wire.WireError("an unknown handle")
                return self.handles[marker["$handle"]]
            if "$callback" in marker:
                return _make_callback(self, marker, dec)
            raise self.wire.WireError(f"an unknown marker {sorted(marker)}")

        return self.wire.decode(data, blobs, other=other, grad_tensors=grad_tensors)

    def reply(self, value=None, outputs: list | None = None, **extra) -> None:
        """``{"ok": true, "value": (value, extra)}``; an answer that cannot cross is the submission's error.

        With ``outputs`` (a list), the answer's tensors that require grad are marked and collected there."""
        try:
            data, blobs = self.encode((value, extra), grad_tensors=outputs)
        except Exception as e:  # noqa: BLE001 -- the submission returned something that cannot cross
            return self.fail(f"the answer cannot be sent to the grader: {_short_error(e)}")
        header = {"ok": True, "value": data}
        if outputs:
            header["grad_id"] = self._keep(outputs)
        self.wire.send(self.sock, header, blobs)

    def fail(self, message: str) -> None:
        self.wire.send(self.sock, {"ok": False, "error": message})

    # --- requests -----------------------------------------------------------------------------------------
    def run_cells(self, cells: list[str], timeout: float) -> list[str]:
        from IPython.core.interactiveshell import InteractiveShell

        if self.shell is None:
            self.shell = InteractiveShell.instance()
        errors = []
        for source in cells:
            _alarm(timeout)
            try:
                result = self.shell.run_cell(source, store_history=False)
                err = result.error_before_exec or result.error_in_exec
                errors.append(_short_error(err) if err is not None else "")
            except _Timeout as e:
                errors.append(f"timed out: the cell {e}")
            finally:
                _disarm()
            sys.stdout.flush()
        return errors

    def target(self, spec: dict):
        if "name" in spec:
            ns = self.shell.user_ns if self.shell is not None else {}
            if spec["name"] not in ns:
                raise NameError(f"name {spec['name']!r} is not defined")
            obj = ns[spec["name"]]
        else:
            obj = self.handles[spec["handle"]]
        if spec.get("attr"):
            obj = getattr(obj, spec["attr"])
        return obj

    def call(self, header: dict, blobs: list[bytes]) -> None:
        import torch

        fn = self.target(header["target"])
        _CALLBACKS_OF_CALL.clear()
        self.leaves = []  # copies of the grader's tensors that require grad, in the grader's order
        args, kwargs = self.decode(header["args"], blobs, grad_tensors=self.leaves)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        before = [(t.detach().clone(), t.requires_grad, t.grad is not None) for t in tensors]
        _alarm(header.get("timeout", 60.0))
        try:
            with torch.set_grad_enabled(bool(header.get("grad_enabled", True))):
                value = fn(*args, **kwargs)
        except _Timeout as e:
            return self.fail(f"timed out: the call {e}")
        except BaseException as e:  # noqa: BLE001 -- the submission's error (SystemExit too) is the grader's message
            return self.fail(_short_error(e))
        finally:
            _disarm()
        changed = []
        for i, (t, (values, requires_grad, had_grad)) in enumerate(zip(tensors, before)):
            same = t.shape == values.shape and torch.equal(t.detach(), values)
            if not same or t.requires_grad != requires_grad or (t.grad is not None) != had_grad:
                changed.append(
                    [
                        i,
                        None if same else t.detach().clone(),
                        bool(t.requires_grad),
                        None if t.grad is None else t.grad.detach().clone(),
                    ]
                )
        backward_called = [cb.callback_id for cb in _CALLBACKS_OF_CALL if cb.anchor.grad is not None]
        self.reply(value, outputs=[], changed=changed, backward_called=backward_called)

    def _keep(self, outputs: list) -> int:
        """Keep a differentiable answer's graph for the grader's ``backward`` request; its id."""
        key = len(self.kept) + 1
        self.kept[key] = (list(outputs), list(self.leaves), [cb.anchor for cb in _CALLBACKS_OF_CALL])
        return key

    def backward(self, header: dict, blobs: list[bytes]) -> None:
        """Gradients of a kept answer: to the copies of the grader's tensors (returned) and, through the grader's
        functions it called, to the grader's parameters (computed there, in the callbacks' vector-Jacobian products)."""
        import torch

        outputs, leaves, anchors = self.kept[header["id"]]
        grads = self.decode(header["grads"], blobs)
        pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None]
        inputs = leaves + [a for a in anchors if a.requires_grad]
        if not pairs or not inputs:
            return self.reply([None] * len(leaves))
        got = torch.autograd.grad(
            [o for o, _ in pairs], inputs, [g for _, g in pairs], allow_unused=True, retain_graph=True
        )
        self.reply(list(got[: len(leaves)]))

    def run_function(self, header: dict, blobs: list[bytes]) -> None:
        import importlib

        module_name, _, qualname = header["function"].partition(":")
        if not module_name.startswith("course_lib.grading."):
            return self.fail(f"refused: {module_name} is not a grading module")
        fn = importlib.import_module(module_name)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        args, kwargs = self.decode(header["args"], blobs)
        _alarm(header.get("timeout", 600.0))
        try:
            value = fn(*args, **kwargs)
        except _Timeout as e:
            return self.fail(f"timed out: the measured run {e}")
        except BaseException as e:  # noqa: BLE001
            return self.fail(_short_error(e))
        finally:
            _disarm()
        self.reply(value)

    def serve(self) -> None:
        while True:
            try:
                header, blobs = self.wire.recv(self.sock)
            except EOFError:
                return
            op = header.get("op")
            try:
                if op == "refuse":
                    self.reply(refuse(header["names"]))
                elif op == "run_cells":
                    self.reply(self.run_cells(header["cells"], header["timeout"]))
                elif op == "get":
                    self.reply(self.target(header["target"]))
                elif op == "call":
                    self.call(header, blobs)
                elif op == "run_function":
                    self.run_function(header, blobs)
                elif op == "backward":
                    self.backward(header, blobs)
                elif op == "forget":
                    self.handles.pop(header.get("handle"), None)
                    self.reply(None)
                elif op == "exit":
                    self.reply(None)
                    return
                else:
                    self.fail(f"unknown request {op!r}")
            except (KeyError, NameError, AttributeError) as e:
                self.fail(_short_error(e))
            except _Timeout as e:
                self.fail(f"the request {e}")


# --- callbacks: the grader's functions (models, classifiers) called from the submission ---------------------

_CALLBACKS_OF_CALL: list = []  # callbacks passed to the call in progress


def _make_callback(worker: "Worker", marker: dict, dec):
    """A ``torch.nn.Module`` standing for the grader's function ``marker["$callback"]``.

    Evaluating it asks the grader. When gradients are on, its output is differentiable: backward sends the output's
    gradient to the grader, which returns the gradient to the inputs and keeps the one to its own parameters. The
    module has one parameter of its own, the *anchor*: ``.backward()`` leaves a (zero) gradient on it and
    ``torch.autograd.grad(out, x)`` does not, which tells the grader whether to put the parameters' gradients on
    its parameters. A module's parameters are also mirrored (``.parameters()``, ``.eval()``, ``requires_grad_``
    work here) but gradients never reach the copies.
    """
    import torch

    class _Attach(torch.autograd.Function):
        @staticmethod
        def forward(ctx, cb, call_id, value, anchor, *leaves):
            ctx.cb, ctx.call_id, ctx.n = cb, call_id, len(leaves)
            return value.clone()

        @staticmethod
        def backward(ctx, grad_out):
            grads = ctx.cb.vjp(ctx.call_id, grad_out)
            return (None, None, None, torch.zeros(()), *(list(grads) + [None] * ctx.n)[: ctx.n])

    class Callback(torch.nn.Module):
        def __init__(self, callback_id: int, parameters: list, requires_grad: list):
            super().__init__()
            self.callback_id = callback_id
            self.anchor = torch.nn.Parameter(torch.zeros(()))
            for i, (p, flag) in enumerate(zip(parameters, requires_grad)):
                self.register_parameter(f"p{i}", torch.nn.Parameter(p.detach().clone(), requires_grad=False))

        def forward(self, *args, **kwargs):
            leaves: list = []
            grad = torch.is_grad_enabled()
            data, blobs = worker.encode((tuple(args), dict(kwargs)), grad_tensors=leaves if grad else None)
            worker.wire.send(
                worker.sock, {"op": "callback", "id": self.callback_id, "args": data, "grad_enabled": grad}, blobs
            )
            header, rblobs = worker.wire.recv(worker.sock)
            if not header.get("ok"):
                raise RuntimeError(header.get("error", "the grader's function failed"))
            value = worker.decode(header["value"], rblobs)
            if header.get("call_id") is None or not isinstance(value, torch.Tensor):
                return value
            return _Attach.apply(self, header["call_id"], value, self.anchor, *leaves)

        def vjp(self, call_id, grad_out):
            data, blobs = worker.encode(grad_out)
            worker.wire.send(worker.sock, {"op": "vjp", "call_id": call_id, "grad": data}, blobs)
            header, rblobs = worker.wire.recv(worker.sock)
            if not header.get("ok"):
                raise RuntimeError(header.get("error", "the grader's gradient failed"))
            return worker.decode(header["value"], rblobs)

    cb = Callback(int(marker["$callback"]), dec(marker.get("$parameters", [])), marker.get("$requires_grad", []))
    _CALLBACKS_OF_CALL.append(cb)
    return cb


def refuse(names: list[str]) -> list[str]:
    """Make each ``module:function`` of ``course_lib`` refuse calls from the notebook's code (``policy``); calls from
    inside ``course_lib`` go through. Replaces the name in every loaded ``course_lib`` module that holds it.
    Returns the names it could not find."""
    import functools
    import importlib

    import course_lib

    library = os.path.dirname(os.path.abspath(course_lib.__file__)) + os.sep
    missing = []
    for name in names:
        module_name, _, attr = name.partition(":")
        try:
            original = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            missing.append(name)
            continue

        def guard(*args, __original=original, __name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if os.path.abspath(caller).startswith(library):
                return __original(*args, **kwargs)
            dotted = __name.replace(":", ".")
            raise PermissionError(
                f"{dotted} is the course's answer to a question of this set, and graded code may "
                "not call it: write the formula yourself (exercises/README.md, Rules)."
            )

        functools.update_wrapper(guard, original)
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("course_lib") and getattr(module, attr, None) is original:
                setattr(module, attr, guard)
    return missing


class _CappedStream:
    """stdout/stderr that keep the first ``limit`` characters and drop the rest (the grader never reads them all)."""

    def __init__(self, stream, limit: int = 1_000_000):
        self.stream, self.left = stream, limit

    def write(self, text) -> int:
        text = str(text)
        if self.left > 0:
            self.stream.write(text[: self.left])
            self.left -= len(text)
            if self.left <= 0:
                self.stream.write("\n[output cut: the grader keeps the first 1,000,000 characters]\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv: list[str]) -> int:
    fd, site_dirs = int(argv[1]), argv[2:]
    sys.stdout, sys.stderr = _CappedStream(sys.stdout), _CappedStream(sys.stderr)
    _setup_path(site_dirs)
    sock = socket.socket(fileno=fd)
    os.environ.setdefault("MPLBACKEND", "Agg")
    Worker(sock).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
