"""The grader's side of the process boundary: start the submission's process unprivileged, talk to it, end it.

``Sandbox`` starts ``worker.py`` in a fresh directory that holds nothing of the grader's:

- as a user of its own (a uid no other process has) when the grader is root, so that it cannot read what only the
  grader can (``protect`` makes the course's solutions, bundles and grading tests readable by their owner only),
  cannot signal or trace the grader, and every process it starts can be found and killed by its uid;
- in a new session, with process-wide limits: CPU seconds over all its threads (``RLIMIT_CPU``), address space,
  file size, number of processes, no core files;
- talking over a socket pair (``wire``: plain data and safetensors, never pickle); its stdout and stderr go to a
  capped log that only the grader reads.

A grader that is not root cannot change user: the run is then *not isolated* (the submission can read what the
grader can), and ``isolation`` says so; the process-wide limits and the process boundary still hold.

``Remote`` stands for an object that lives in the submission's process (a function, a model): calling it sends
the arguments across and returns the answer as plain data. Functions of the grader's passed as arguments (a test's
model or classifier) stay here and are called back.
"""

from __future__ import annotations

import functools
import os
import random
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from . import wire

WORKER = Path(__file__).resolve().with_name("worker.py")
LOG_LIMIT = 200_000  # characters of the submission's output kept for the grader's messages


class SubmissionError(AssertionError):
    """The submission's code raised, returned something that cannot cross, or its process died. An AssertionError,
    so that a test fails with this message, as it would for a wrong value."""


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can reach ``path`` (every folder above it traversable by others)."""
    path = Path(path).resolve()
    for parent in list(path.parents)[::-1]:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & (stat.S_IROTH | stat.S_IXOTH))


@functools.lru_cache(maxsize=1)
def _python_for_others() -> str:
    """A Python of this version that an unprivileged user can run (this one, or a system one of the same version)."""
    major, minor = sys.version_info[:2]
    candidates = [
        Path(os.path.realpath(sys.executable)),
        Path(f"/usr/bin/python{major}.{minor}"),
        Path(f"/usr/local/bin/python{major}.{minor}"),
    ]
    for c in candidates:
        if c.exists() and _reachable_by_others(c):
            out = subprocess.run(
                [str(c), "-I", "-S", "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
            )
            if out.stdout.strip() == str((major, minor)):
                return str(c)
    raise RuntimeError(
        f"no Python {major}.{minor} that an unprivileged user can run: {sys.executable} lies under a "
        "folder only its owner can enter (e.g. /root). Install Python "
        f"{major}.{minor} system-wide (e.g. /usr/bin/python{major}.{minor}) or grade as a non-root user."
    )


def make_reachable(paths: list[Path]) -> list[str]:
    """Let other users pass through the folders above ``paths`` (add o+x, never read) where the grader owns them.

    The submission's uid must reach the interpreter, site-packages, ``course_lib`` and ``worker.py``; a clone made
    by ``mktemp -d`` (mode 700) would stop it. Passing through is not listing: what lies in those folders stays
    unreadable unless its own mode allows it (``protect`` closes the folders that hold secrets). Returns the
    folders it changed; raises when a folder owned by someone else blocks the way.
    """
    changed = []
    for path in paths:
        for folder in list(Path(path).resolve().parents)[::-1]:
            mode = folder.stat().st_mode
            if mode & stat.S_IXOTH:
                continue
            if folder.stat().st_uid != os.geteuid():
                raise RuntimeError(
                    f"{folder} (mode {stat.filemode(mode)}) stops the submission's user from reaching "
                    f"{path}; let others pass through it (chmod o+x) or install the course elsewhere."
                )
            folder.chmod(mode | stat.S_IXOTH)
            changed.append(str(folder))
    return changed


def _site_dirs() -> list[str]:
    """The grader's site-packages, where the worker finds torch, course_lib (its .pth files) and safetensors."""
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _free_uid() -> int:
    """A uid in 61000-64999 that no process has now (one per grading run, so that its processes can be found)."""
    used = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    used.add(int(line.split()[1]))
        except OSError:
            continue
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(1000):
        uid = rng.randrange(61000, 65000)
        if uid not in used:
            return uid
    raise RuntimeError("no free uid in 61000-64999")


def processes_of(uid: int) -> list[int]:
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Uid:") and int(line.split()[1]) == uid:
                pids.append(int(status.parent.name))
                break
    return pids


def protect(paths: list[Path]) -> list[str]:
    """Make folders the submission must not read (solutions, bundles, grading tests) readable by their owner only.

    Returns the ones that stay readable by others (owned by someone else): the grading table reports them.
    """
    open_ = []
    for p in paths:
        if not p.exists():
            continue
        try:
            if p.stat().st_uid == os.geteuid():
                p.chmod(p.stat().st_mode & ~0o077)
        except OSError:
            pass
        if p.stat().st_mode & 0o005:
            open_.append(str(p))
    return open_


class Sandbox:
    """One submission's process. Use as a context manager; ``close`` kills everything it started."""

    def __init__(
        self,
        *,
        cpu_s: float = 1800,
        memory_gb: float = 16,
        threads: int = 1,
        max_processes: int = 128,
        file_mb: int = 64,
    ):
        self.limits = dict(
            cpu_s=cpu_s, memory_gb=memory_gb, threads=threads, max_processes=max_processes, file_mb=file_mb
        )
        self.root = os.geteuid() == 0
        self.uid = _free_uid() if self.root else os.geteuid()
        self.isolation = (
            "isolated: the submission runs as uid {uid}, in a fresh folder, with process-wide limits"
            if self.root
            else "NOT ISOLATED: the grader is not root and cannot run the submission as another user, so the "
            "submission can read and write what you can (grade as root, e.g. in a container, to isolate it)"
        )
        self.isolation = self.isolation.format(uid=self.uid)
        self.proc: subprocess.Popen | None = None
        self.dead: str = ""
        self.deadline = time.monotonic() + 60.0  # of the test in progress; the runner sets it
        self.callbacks: dict[int, object] = {}
        self.kept: dict[int, tuple] = {}  # call id -> (callback id, output, inputs, leaves): graphs for vjp
        self.pending: list[list] = [[]]  # gradients to the grader's leaves, per request in progress
        self._next_id = 1

    # --- life cycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self.private = Path(tempfile.mkdtemp(prefix="grader-"))  # 0700: the log, only the grader reads it
        self.work = Path(tempfile.mkdtemp(prefix="submission-"))
        if self.root:
            os.chown(self.work, self.uid, self.uid)
        self.work.chmod(0o700)
        python = _python_for_others() if self.root else sys.executable
        if self.root:
            import course_lib

            make_reachable([Path(python), *map(Path, _site_dirs()), Path(course_lib.__file__).parent, WORKER])
        parent, child = socket.socketpair()
        self.sock = parent
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.work),
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(self.work / ".matplotlib"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": str(self.limits["threads"]),
            "MKL_NUM_THREADS": str(self.limits["threads"]),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "TQDM_DISABLE": "1",
        }
        limits = self.limits

        def preexec():  # in the child, before exec: limits that bind the whole process and everything it starts
            cpu = int(limits["cpu_s"])
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
            memory = int(limits["memory_gb"] * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            size = limits["file_mb"] * 2**20
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if self.root:
                resource.setrlimit(resource.RLIMIT_NPROC, (limits["max_processes"], limits["max_processes"]))
            os.umask(0o077)

        self.log = open(self.private / "output.log", "w+b")
        kwargs = dict(user=self.uid, group=self.uid, extra_groups=[]) if self.root else {}
        self.proc = subprocess.Popen(
            [python, "-I", "-S", str(WORKER), str(child.fileno()), *_site_dirs()],
            cwd=self.work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            pass_fds=(child.fileno(),),
            start_new_session=True,
            preexec_fn=preexec,
            **kwargs,
        )
        child.close()

    def close(self) -> None:
        """Ask the worker to stop, then kill its session and (when isolated) every process of its uid."""
        if self.proc is not None and self.proc.poll() is None and not self.dead:
            try:
                self.sock.settimeout(5)
                wire.send(self.sock, {"op": "exit"})
                wire.recv(self.sock)
            except Exception:  # noqa: BLE001 -- it is being killed anyway
                pass
        self.kill()
        self.sock.close()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.private, ignore_errors=True)

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.root:  # processes that left the session (setsid, double fork) still have the uid
            for _ in range(100):
                pids = processes_of(self.uid)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.02)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def time_left(self) -> float:
        """Seconds left for the submission's side of the test in progress (``deadline``, set by the runner)."""
        return max(0.5, self.deadline - time.monotonic())

    def output(self) -> str:
        """The last characters the submission printed (for messages)."""
        self.log.flush()
        self.log.seek(0, os.SEEK_END)
        size = self.log.tell()
        self.log.seek(max(0, size - LOG_LIMIT))
        return self.log.read().decode(errors="replace")

    def cpu_seconds(self) -> float:
        """CPU time of the worker (all threads) and its waited-for children, read from /proc by the grader."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    # --- requests ---------------------------------------------------------------------------------------------
    def _encode(self, value, grad_tensors: list | None = None, callbacks: list | None = None):
        import torch

        def other(obj, enc):
            if isinstance(obj, Remote):
                if obj._sandbox is not self:
                    raise wire.WireError("an object of another submission")
                return obj._spec_marker()
            if callable(obj):
                key = self._next_id
                self._next_id += 1
                self.callbacks[key] = obj
                marker = {"$callback": key}
                if isinstance(obj, torch.nn.Module):
                    params = list(obj.parameters())
                    marker["$parameters"] = [enc(p.detach()) for p in params]
                    marker["$requires_grad"] = [p.requires_grad for p in params]
                if callbacks is not None:
                    callbacks.append(key)
                return marker
            raise wire.WireError(f"a {type(obj).__name__} cannot be sent to the submission")

        return wire.encode(value, other=other, grad_tensors=grad_tensors)

    def _decode(self, data, blobs, grad_tensors: list | None = None):
        def other(marker, dec):
            if "$handle" in marker:
                return Remote(self, {"handle": marker["$handle"]}, str(marker.get("$type", "object")))
            raise wire.WireError(f"unexpected marker from the submission: {sorted(marker)}")

        return wire.decode(data, blobs, other=other, grad_tensors=grad_tensors)

    def request(self, header: dict, blobs: list[bytes] = (), timeout: float = 60.0, grad_tensors: list | None = None):
        """Send one request and serve the submission's callbacks until its reply: (value, reply header)."""
        if self.dead:
            raise SubmissionError(f"the submission's process is gone ({self.dead})")
        deadline = time.monotonic() + timeout + 30  # the worker stops itself at `timeout`; this is the backstop
        try:
            wire.send(self.sock, header, list(blobs))
            while True:
                self.sock.settimeout(max(0.1, deadline - time.monotonic()))
                reply, rblobs = wire.recv(self.sock)
                if reply.get("op") == "callback":
                    self._serve_callback(reply, rblobs)
                elif reply.get("op") == "vjp":
                    self._serve_vjp(reply, rblobs)
                elif reply.get("ok"):
                    return self._decode(reply["value"], rblobs, grad_tensors), reply
                else:
                    raise SubmissionError(str(reply.get("error", "failed"))[:500])
        except (socket.timeout, TimeoutError):
            self._die(f"it did not answer within {timeout + 30:.0f} s and was stopped")
        except (EOFError, ConnectionError, OSError) as e:
            self._die(self._death_reason(e))
        except wire.WireError as e:
            self._die(f"it sent a malformed message ({e})")
        except SubmissionError:
            raise
        except BaseException:  # the grader's own limit stopped this request mid-way: the stream is out of step
            self.dead = "it did not stop at its time limit and was stopped"
            self.kill()
            raise

    def _death_reason(self, e: BaseException) -> str:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            rc = self.proc.returncode
            if rc is not None and rc < 0:
                sig = signal.Signals(-rc).name
                if -rc == signal.SIGXCPU or (-rc == signal.SIGKILL and self.cpu_seconds() >= self.limits["cpu_s"]):
                    return f"it used its {self.limits['cpu_s']:.0f} s of CPU time and was stopped ({sig})"
                return f"it was killed by {sig}"
            if rc is not None:
                return f"it exited with code {rc}"
        return f"the connection broke: {type(e).__name__}"

    def _die(self, reason: str):
        self.dead = reason
        self.kill()
        raise SubmissionError(f"the submission's process is gone ({reason})")

    def _serve_callback(self, header: dict, blobs: list[bytes]) -> None:
        """The submission calls a function of the grader's. With gradients on, keep the graph for ``vjp``."""
        import torch

        try:
            fn = self.callbacks[header["id"]]
            inputs: list = []
            args, kwargs = self._decode(header["args"], blobs, grad_tensors=inputs)
            grad = bool(header.get("grad_enabled"))
            with torch.set_grad_enabled(grad):
                out = fn(*args, **kwargs)
            call_id = None
            if grad and isinstance(out, torch.Tensor) and out.requires_grad:
                call_id = self._next_id
                self._next_id += 1
                ids = {id(t) for t in inputs}
                self.kept[call_id] = (header["id"], out, inputs, [p for p in _leaves(out) if id(p) not in ids])
            data, rblobs = self._encode(out.detach() if isinstance(out, torch.Tensor) else out)
            wire.send(self.sock, {"ok": True, "value": data, "call_id": call_id}, rblobs)
        except Exception as e:  # noqa: BLE001 -- the submission called the test's function wrongly
            wire.send(self.sock, {"ok": False, "error": f"{type(e).__name__}: {e}"[:400]})

    def _serve_vjp(self, header: dict, blobs: list[bytes]) -> None:
        """The gradient through a kept call: to its inputs (sent back) and to the grader's own leaves (kept in
        ``self.pending`` until the submission's call or the grader's backward says where they go)."""
        import torch

        try:
            callback_id, out, inputs, leaves = self.kept[header["call_id"]]
            grad_out = self._decode(header["grad"], blobs)
            grads = torch.autograd.grad(out, inputs + leaves, grad_out, allow_unused=True, retain_graph=True)
            self.pending[-1].append((callback_id, leaves, grads[len(inputs) :]))
            data, rblobs = self._encode(tuple(grads[: len(inputs)]))
            wire.send(self.sock, {"ok": True, "value": data}, rblobs)
        except Exception as e:  # noqa: BLE001
            wire.send(self.sock, {"ok": False, "error": f"{type(e).__name__}: {e}"[:400]})

    # --- what the runner uses ---------------------------------------------------------------------------------
    def refuse(self, names: list[str]) -> list[str]:
        """``policy``: these ``course_lib`` functions refuse calls from the notebook's code; the unknown ones."""
        (value, _), _ = self.request({"op": "refuse", "names": list(names)}, timeout=120)
        return list(value)

    def run_cells(self, cells: list[str], timeout: float, total: float | None = None) -> list[str]:
        """Execute the notebook's code cells, each within ``timeout`` seconds and all within ``total``; each cell's
        error ("" when it ran)."""
        whole = timeout * max(1, len(cells)) if total is None else min(total, timeout * max(1, len(cells)))
        (value, _), _ = self.request({"op": "run_cells", "cells": cells, "timeout": timeout}, timeout=whole)
        return list(value)

    def get(self, name: str):
        """The notebook's global ``name``: plain data as data, anything else as a ``Remote``; missing: ``None``."""
        try:
            (value, _), _ = self.request({"op": "get", "target": {"name": name}})
        except SubmissionError as e:
            if "is not defined" in str(e) and not self.dead:
                return None
            raise
        return value

    def call(self, spec: dict, args: tuple, kwargs: dict, timeout: float = 60.0):
        """Call the submission's function; mirror what it did to tensor arguments; a differentiable answer stays
        differentiable here (w.r.t. the grader's tensors that required grad and the parameters of the grader's
        functions it called)."""
        import torch

        sent: list = []  # the grader's tensors that require grad, in the order the submission received them
        data, blobs = self._encode((tuple(args), dict(kwargs)), grad_tensors=sent)
        first_kept = self._next_id
        self.pending.append([])
        try:
            outputs: list = []
            (value, extra), reply = self.request(
                {
                    "op": "call",
                    "target": spec,
                    "args": data,
                    "timeout": timeout,
                    "grad_enabled": torch.is_grad_enabled(),
                },
                blobs,
                timeout,
                grad_tensors=outputs,
            )
        finally:
            pending = self.pending.pop()
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        for i, values, requires_grad, grad in extra.get("changed", []):  # mirror what the call did to its inputs
            t = tensors[i]
            if values is not None:
                with torch.no_grad():
                    if values.shape == t.shape:
                        t.copy_(values)
                    else:
                        t.data = values.to(t.dtype)
            if t.is_leaf and t.requires_grad != requires_grad:
                t.requires_grad_(requires_grad)
            if t.is_leaf:
                t.grad = grad
        backward_called = set(extra.get("backward_called", []))  # .backward() inside the submission's code
        for callback_id, leaves, grads in pending:
            if callback_id in backward_called:
                for p, g in zip(leaves, grads):
                    if g is not None and p.requires_grad:
                        p.grad = g.clone() if p.grad is None else p.grad + g
        if outputs and reply.get("grad_id") is not None:
            leaves = {id(p): p for key, (_, _, _, ls) in self.kept.items() if key >= first_kept for p in ls}
            value = _attach(self, reply["grad_id"], value, outputs, sent, list(leaves.values()))
        return value

    def backward(self, grad_id: int, grads: list, n_sent: int, leaves: list) -> list:
        """Gradients of a kept answer: to the grader's tensors that were sent (``n_sent``) and to ``leaves``."""
        data, blobs = self._encode(list(grads))
        self.pending.append([])
        try:
            (got, _), _ = self.request({"op": "backward", "id": grad_id, "grads": data}, blobs, timeout=120)
        finally:
            pending = self.pending.pop()
        got = list(got) + [None] * (n_sent - len(got))
        by_leaf: dict[int, object] = {}
        for _, ls, gs in pending:
            for p, g in zip(ls, gs):
                if g is not None:
                    by_leaf[id(p)] = g if id(p) not in by_leaf else by_leaf[id(p)] + g
        return got[:n_sent] + [by_leaf.get(id(p)) for p in leaves]

    def run_function(self, fn, args: tuple, kwargs: dict, timeout: float):
        """``fn(*args, **kwargs)`` in the submission's process (a ``course_lib.grading`` function, by name)."""
        name = f"{fn.__module__}:{fn.__qualname__}"
        data, blobs = self._encode((tuple(args), dict(kwargs)))
        (value, _), _ = self.request(
            {"op": "run_function", "function": name, "args": data, "timeout": timeout}, blobs, timeout
        )
        return value


def _leaves(out) -> list:
    """The leaf tensors (parameters, inputs that require grad) that ``out``'s autograd graph reaches."""
    seen, leaves, stack = set(), [], [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            leaves.append(variable)
        stack.extend(n for n, _ in node.next_functions)
    return leaves


def _attach(box: Sandbox, grad_id: int, value, outputs: list, sent: list, leaves: list):
    """``value`` with its tensors in ``outputs`` made differentiable w.r.t. ``sent`` and ``leaves`` (the gradient
    is the submission's backward, run on request)."""
    import torch

    class FromSubmission(torch.autograd.Function):
        @staticmethod
        def forward(ctx, n_out, *tensors):
            return tuple(t.clone() for t in tensors[:n_out])

        @staticmethod
        def backward(ctx, *grads):
            got = box.backward(grad_id, list(grads), len(sent), leaves)
            return (None, *([None] * len(outputs)), *got)

    attached = FromSubmission.apply(len(outputs), *[o.detach() for o in outputs], *sent, *leaves)
    swap = {id(o): a for o, a in zip(outputs, attached)}

    def replace(x):
        if isinstance(x, torch.Tensor):
            return swap.get(id(x), x)
        if isinstance(x, (list, tuple)):
            return type(x)(replace(v) for v in x)
        if isinstance(x, dict):
            return {k: replace(v) for k, v in x.items()}
        return x

    return replace(value)


class Remote:
    """An object that lives in the submission's process: a function, a model, a value that is not plain data."""

    __slots__ = ("_sandbox", "_spec", "_type")

    def __init__(self, sandbox: Sandbox, spec: dict, type_name: str):
        self._sandbox, self._spec, self._type = sandbox, spec, type_name

    def _spec_marker(self) -> dict:
        if "attr" in self._spec:
            raise wire.WireError("a method of the submission's object cannot be passed back")
        return {"$handle": self._spec["handle"]}

    def __call__(self, *args, **kwargs):
        return self._sandbox.call(self._spec, args, kwargs, timeout=self._sandbox.time_left())

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Remote(self._sandbox, {**self._spec, "attr": attr}, f"{self._type}.{attr}")

    def __run_function__(self, fn, *args, **kwargs):
        """``fn(<this object>, *args, **kwargs)`` run in the submission's process (measured questions)."""
        return self._sandbox.run_function(fn, (self, *args), kwargs, self._sandbox.time_left())

    def __repr__(self) -> str:
        return f"<the submission's {self._type}>"
