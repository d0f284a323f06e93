"""A static scan of a submission's code, run in the grader process: writes to the grader, seen in the source.

The second, independent layer of tamper detection (``integrity`` is the first, inside the kernel, which the
submission shares with the tests and can reach). This one reads the notebook's cells as text before anything
runs, so nothing the notebook does at run time can hide from it what is written literally: an assignment or
``del`` whose target resolves, through the notebook's imports, to a protected module (``torch.allclose = ...``,
``g.assert_close.__code__ = ...`` after ``import course_lib.grading as g``), ``setattr`` / ``delattr`` on one,
mutating calls on its private state (``measured._MEASURED.update(...)``), ``sys.modules[...]`` writes, and writes
of ``COURSE_GRADING_*`` environment variables. Names computed at run time (``exec`` of a string, ``setattr``
with a variable) are out of its reach and left to ``integrity``; documented settings such as
``torch.backends.cudnn.benchmark = True`` are allowed.
"""

from __future__ import annotations

import ast
from typing import Iterable

PROTECTED = ("builtins", "course_lib", "diffusers", "inspect", "IPython", "math", "otter", "pickle", "signal", "torch")
ALLOWED = ("torch.backends.", "torch._dynamo.config.", "torch._inductor.config.")  # documented user settings
ENV_PREFIX = "COURSE_GRADING_"
_FUNCTION_PARTS = frozenset({"__code__", "__defaults__", "__kwdefaults__", "__closure__", "cell_contents"})
_MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear", "append", "extend", "insert", "remove",
                       "__setitem__", "__delitem__", "__setattr__", "__delattr__", "__ior__"})


def _protected(path: str | None) -> bool:
    return bool(path) and any(path == p or path.startswith(p + ".") for p in PROTECTED) \
        and not any(path.startswith(a) for a in ALLOWED)


def _python(source: str) -> str:
    """The cell as plain Python: IPython's own transformer turns ``%magic`` and ``!shell`` lines into calls."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 -- no IPython, or a cell it cannot read: drop the special lines
        return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def _const(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Scanner(ast.NodeVisitor):
    def __init__(self):
        self.aliases: dict[str, str] = {"__builtins__": "builtins"}
        self.found: set[str] = set()

    # --- what a name or an expression refers to -------------------------------------------------------
    def resolve(self, node) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript) and self.resolve(node.value) == "sys.modules":
            return _const(node.slice)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            if node.func.id == "getattr" and len(node.args) >= 2 and _const(node.args[1]):
                base = self.resolve(node.args[0])
                return f"{base}.{_const(node.args[1])}" if base else None
            if node.func.id == "vars":
                base = self.resolve(node.args[0])
                return f"{base}.__dict__" if base else None
            if node.func.id == "__import__" and _const(node.args[0]):
                return _const(node.args[0]).split(".")[0]
        if isinstance(node, ast.Call) and self.resolve(node.func) == "importlib.import_module" and node.args:
            return _const(node.args[0])
        return None

    def learn_aliases(self, trees: list) -> None:
        """Names that mean one protected object wherever the notebook uses them: bound by imports (or by
        ``g = torch``-style assignments) and never rebound to anything else."""
        imported, assigned, stores = {}, {}, {}
        for node in (n for tree in trees for n in ast.walk(tree)):
            if isinstance(node, ast.Import):
                for a in node.names:
                    name = a.asname or a.name.split(".")[0]
                    imported.setdefault(name, set()).add(a.name if a.asname else name)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name != "*":
                        imported.setdefault(a.asname or a.name, set()).add(f"{node.module}.{a.name}")
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                assigned.setdefault(node.targets[0].id, []).append(node.value)
            name = node.id if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) else \
                node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else \
                node.arg if isinstance(node, ast.arg) else None
            if name:
                stores[name] = stores.get(name, 0) + 1
        self.aliases.update({name: paths.pop() for name, paths in imported.items()
                             if len(paths) == 1 and not stores.get(name)})
        for name, values in assigned.items():
            paths = {self.resolve(v) for v in values} | imported.get(name, set())
            if len(paths) == 1 and None not in paths and stores.get(name) == len(values):
                self.aliases[name] = paths.pop()

    # --- writes ----------------------------------------------------------------------------------------
    def _flag(self, label: str | None, protected_base: str | None = None) -> None:
        if label and (_protected(label) or _protected(protected_base)):
            self.found.add(label)

    def target(self, node) -> None:
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        elif isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base:
                self._flag(f"{base}.{node.attr}", base if node.attr in _FUNCTION_PARTS else None)
        elif isinstance(node, ast.Subscript):
            self.container(self.resolve(node.value), [node.slice])

    def container(self, base: str | None, keys: list) -> None:
        """A write into the mapping ``base`` with the given key nodes (an item assignment or a mutating call)."""
        if not base:
            return
        names = [_const(k) for k in keys]
        if base == "os.environ":
            self.found.update(f"os.environ[{n!r}]" for n in names if n and n.startswith(ENV_PREFIX))
        elif base == "sys.modules":
            self.found.update(f"sys.modules[{n!r}]" for n in names if n is None or _protected(n))
        elif base.endswith(".__dict__") or base == "builtins":
            for n in names:
                self._flag(f"{base.removesuffix('.__dict__')}.{n or '<computed name>'}")
        elif base.rpartition(".")[2].startswith("_") or base.rpartition(".")[2].isupper():
            self._flag(base)  # private state or a constant of a protected module (a cache, a budget)

    def visit_Assign(self, node):
        for t in node.targets:
            self.target(t)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self.target(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.target(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node):
        for t in node.targets:
            self.target(t)
        self.generic_visit(node)

    def visit_For(self, node):
        self.target(node.target)
        self.generic_visit(node)

    def visit_Call(self, node):
        func, name = node.func, self.resolve(node.func) or ""
        plain = func.id if isinstance(func, ast.Name) else ""
        dunder = isinstance(func, ast.Attribute) and func.attr in ("__setattr__", "__delattr__")
        if dunder and not (isinstance(func.value, ast.Name) and func.value.id in ("object", "type")):
            self._set_attribute(self.resolve(func.value), node.args[:1])  # P.__setattr__("name", value)
        elif dunder or plain in ("setattr", "delattr") or name in ("builtins.setattr", "builtins.delattr"):
            self._set_attribute(self.resolve(node.args[0]) if node.args else None, node.args[1:2])
        elif name in ("os.putenv", "os.unsetenv"):
            self.container("os.environ", node.args[:1])
        elif isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
            keys = list(node.args[:1]) + [ast.Constant(k.arg) for k in node.keywords if k.arg]
            keys += [k for a in node.args if isinstance(a, ast.Dict) for k in a.keys if k is not None]
            self.container(self.resolve(func.value), keys)
        self.generic_visit(node)

    def _set_attribute(self, base: str | None, name_nodes: list) -> None:
        if base:
            name = _const(name_nodes[0]) if name_nodes else None
            self._flag(f"{base}.{name or '<computed name>'}", base)


def find_writes(sources: Iterable[str]) -> list[str]:
    """Dotted names of protected objects that the code in ``sources`` (notebook cells, in order) writes to."""
    trees = []
    for source in sources:
        try:
            trees.append(ast.parse(_python(source)))
        except SyntaxError:  # the cell fails when it runs; nothing it writes takes effect
            continue
    scanner = _Scanner()
    scanner.learn_aliases(trees)
    for tree in trees:
        scanner.visit(tree)
    return sorted(scanner.found)
