"""The snapshot behind tamper detection: what the tests rely on, by identity, and what differs from it later.

``take_snapshot`` records every entry of the namespaces of the protected modules (all loaded submodules of the
given packages, plus single modules such as ``builtins``) and of every class defined there; the ``__code__``,
``__defaults__``, ``__kwdefaults__`` and closed-over functions of every Python function found there; the
``COURSE_GRADING_*`` environment variables and the ``sys.modules`` entries of those modules. ``Snapshot.changes``
names what differs (``torch.allclose``, ``course_lib.grading.assert_close.__code__``,
``os.environ['COURSE_GRADING_QUICK']``), comparing a few hundred thousand references in a few tens of
milliseconds; ``Snapshot.restore`` puts them back. ``integrity`` uses it in the grading kernel.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter, is_, itemgetter
from typing import Callable, Iterable

ENV_PREFIX = "COURSE_GRADING_"
_MISSING = object()
# entries that change without anyone modifying the grader: caches Python fills in, IPython's own builtins
_VOLATILE = frozenset({"__warningregistry__", "__slotnames__", "_abc_impl", "__annotations__", "__doc__"})
_IPYTHON_BUILTINS = frozenset({"exit", "quit", "get_ipython", "display", "input", "_", "__", "___", "__IPYTHON__"})
_code, _defaults, _kwdefaults, _cell = (attrgetter(a) for a in ("__code__", "__defaults__", "__kwdefaults__",
                                                                 "cell_contents"))


@dataclass
class _Entries:
    """Entries of module and class namespaces at snapshot time, held (so that their ids stay unique).

    ``changes`` first asks, at C speed, whether every entry is still the very same object; only then does it
    look for which. A class counts added entries too (they would shadow inherited ones); a module may grow
    (importing a submodule adds it to its package).
    """

    spaces: list = field(default_factory=list)  # (label, owner, live mapping, keys, values)
    mappings: list = field(default_factory=list)  # the live mappings and an itemgetter of their keys, in order
    getters: list = field(default_factory=list)
    values: list = field(default_factory=list)  # every namespace's values, in order
    closed: list = field(default_factory=list)  # (label, class, live mapping, keys it may have)
    sizes: list = field(default_factory=list)  # len() of each closed mapping when last clean

    def add(self, label: str, owner, closed: bool, skip: frozenset = frozenset()) -> list[tuple[str, object]]:
        """Record the namespace of ``owner`` (a module or a class); return its (key, value) pairs."""
        space = vars(owner)
        keys = tuple(k for k in list(space.keys()) if isinstance(k, str) and k not in _VOLATILE and k not in skip)
        if keys:
            getter = itemgetter(*keys) if len(keys) > 1 else itemgetter(keys[0], keys[0])  # always a tuple
            values = getter(space)
            self.spaces.append((label, owner, space, keys, values))
            self.mappings.append(space)
            self.getters.append(getter)
            self.values.extend(values)
        if closed:
            self.closed.append((label, owner, space, frozenset(keys) | _VOLATILE | skip))
            self.sizes.append(len(space))
        return [(k, space[k]) for k in keys]

    def _same(self) -> bool:
        try:
            return all(map(is_, chain.from_iterable(map(_apply, self.getters, self.mappings)), self.values))
        except KeyError:  # an entry was deleted
            return False

    def changes(self) -> list[str]:
        found = [] if self._same() else [f"{label}.{k}" for label, _, space, keys, values in self.spaces
                                         for k, v in zip(keys, values) if space.get(k, _MISSING) is not v]
        sizes = [len(c[2]) for c in self.closed]
        if sizes != self.sizes:
            added = [f"{label}.{k}" for label, _, space, known in self.closed for k in list(space.keys())
                     if k not in known]
            if not added:  # only caches Python fills in (e.g. __slotnames__): the new sizes are clean
                self.sizes = sizes
            found += added
        return found

    def restore(self) -> None:
        for _, owner, space, keys, values in self.spaces:
            for k, v in zip(keys, values):
                if space.get(k, _MISSING) is not v:
                    _put(owner, space, k, v)
        for _, owner, space, known in self.closed:
            for k in [k for k in list(space.keys()) if k not in known]:
                _put(owner, space, k, _MISSING)


def _apply(getter, space):
    return getter(space)


def _put(owner, space, key: str, value) -> None:
    """Set one namespace entry back (``_MISSING``: delete it); a class's entries are set through the class."""
    try:
        if isinstance(space, dict):
            space.pop(key, None) if value is _MISSING else space.__setitem__(key, value)
        else:
            type.__delattr__(owner, key) if value is _MISSING else type.__setattr__(owner, key, value)
    except (TypeError, AttributeError):  # an immutable built-in type: nobody could have changed it either
        pass


@dataclass
class _Functions:
    """Code objects, defaults and closed-over functions of Python functions, by identity."""

    labels: list = field(default_factory=list)
    funcs: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    defaults: list = field(default_factory=list)
    kwdefaults: list = field(default_factory=list)  # (index, the dict, its items) for functions that have one
    cells: list = field(default_factory=list)  # (index, cell) of closure cells holding a function
    contents: list = field(default_factory=list)  # what those cells held
    seen: set = field(default_factory=set)

    def add(self, label: str, f) -> None:
        if type(f) is not types.FunctionType or id(f) in self.seen:
            return
        self.seen.add(id(f))
        i = len(self.funcs)
        self.labels.append(label)
        self.funcs.append(f)
        self.codes.append(f.__code__)
        self.defaults.append(f.__defaults__)
        if f.__kwdefaults__ is not None:
            self.kwdefaults.append((i, f.__kwdefaults__, tuple(f.__kwdefaults__.items())))
        for cell in f.__closure__ or ():
            contents = _cell_contents(cell)
            if type(contents) in (types.FunctionType, types.BuiltinFunctionType):  # counters may change, these not
                self.cells.append((i, cell))
                self.contents.append(contents)
        self.add(label + ".__wrapped__", f.__dict__.get("__wrapped__"))

    def changes(self) -> list[str]:
        found = []
        for attr, get, before in (("__code__", _code, self.codes), ("__defaults__", _defaults, self.defaults)):
            if not all(map(is_, map(get, self.funcs), before)):
                found += [f"{self.labels[i]}.{attr}" for i, (f, b) in enumerate(zip(self.funcs, before))
                          if get(f) is not b]
        if not self._same_kwdefaults():
            found += [f"{self.labels[i]}.__kwdefaults__" for i, d, items in self.kwdefaults
                      if self.funcs[i].__kwdefaults__ is not d or d != dict(items)
                      or any(d[k] is not v for k, v in items)]
        if not self._same_cells():
            found += [f"{self.labels[i]}.__closure__" for (i, cell), c in zip(self.cells, self.contents)
                      if _cell_contents(cell) is not c]
        return found

    def _same_kwdefaults(self) -> bool:
        funcs, dicts = [self.funcs[i] for i, _, _ in self.kwdefaults], [d for _, d, _ in self.kwdefaults]
        return (all(map(is_, map(_kwdefaults, funcs), dicts))
                and [len(d) for d in dicts] == [len(items) for _, _, items in self.kwdefaults]
                and all(all(map(is_, map(d.get, [k for k, _ in items]), [v for _, v in items]))
                        for _, d, items in self.kwdefaults))

    def _same_cells(self) -> bool:
        try:
            return all(map(is_, map(_cell, [c for _, c in self.cells]), self.contents))
        except ValueError:  # a cell was emptied
            return False

    def restore(self) -> None:
        for f, code, defaults in zip(self.funcs, self.codes, self.defaults):
            f.__code__, f.__defaults__ = code, defaults
        for i, d, items in self.kwdefaults:
            d.clear()
            d.update(items)
            self.funcs[i].__kwdefaults__ = d
        for (_, cell), contents in zip(self.cells, self.contents):
            cell.cell_contents = contents


def _cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell: a name not assigned yet
        return _MISSING


def _functions_of(value) -> list:
    """The Python functions behind a class attribute (plain, static, class method or property)."""
    if isinstance(value, (staticmethod, classmethod)):
        return [value.__func__]
    if isinstance(value, property):
        return [value.fget, value.fset, value.fdel]
    return [value]


@dataclass
class Snapshot:
    """What the tests rely on, as it was before the student's code ran (see the module docstring)."""

    modules: dict  # name -> module
    module_entries: _Entries
    class_entries: _Entries
    functions: _Functions
    environ: object
    env: dict
    watched: dict = field(default_factory=dict)  # label -> (fingerprint function, its value when genuine)
    extra: list = field(default_factory=list)  # callables returning more changed labels

    def changes(self) -> list[str]:
        """Dotted names of everything that differs from the snapshot (empty for an honest notebook)."""
        found = self.module_entries.changes() + self.class_entries.changes() + self.functions.changes()
        found += [f"sys.modules[{name!r}]" for name, m in self.modules.items() if sys.modules.get(name) is not m]
        if os.environ is not self.environ:
            found.append("os.environ")
        now = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
        found += [f"os.environ[{k!r}]" for k in sorted(set(now) | set(self.env)) if now.get(k) != self.env.get(k)]
        found += [label for label, (fingerprint, value) in self.watched.items() if _safe_call(fingerprint) != value]
        for check in self.extra:
            found += check()
        return sorted(set(found))

    def restore(self) -> None:
        """Put every recorded reference back (before the final tests run on a tampered submission)."""
        self.module_entries.restore()
        self.class_entries.restore()
        self.functions.restore()
        sys.modules.update(self.modules)
        os.environ = self.environ
        for k in [k for k in os.environ if k.startswith(ENV_PREFIX) and k not in self.env]:
            del os.environ[k]
        os.environ.update(self.env)


def _safe_call(fingerprint: Callable[[], str]) -> str:
    try:
        return fingerprint()
    except Exception as e:  # noqa: BLE001 -- a state that cannot be read any more has changed too
        return f"<failed: {e!r}>"


def _module_names(roots: Iterable[str], modules: Iterable[str]) -> list[str]:
    roots, modules = tuple(roots), set(modules)
    names = {n for n, m in list(sys.modules.items()) if isinstance(m, types.ModuleType)
             and (n in modules or any(n == r or n.startswith(r + ".") for r in roots))}
    return sorted(names, key=lambda n: (n.count("."), n))  # shortest names first: they label shared objects


def _defined_in(cls, names: set) -> bool:
    try:
        return vars(cls).get("__module__", getattr(cls, "__module__", None)) in names
    except Exception:  # noqa: BLE001 -- a class with a broken __module__ is none of ours
        return False


def _class_skip(cls) -> frozenset:
    """Class entries that their library replaces on first use: torch.optim wraps ``step`` of each optimizer class
    when the first instance is made (the student's model runs inside training anyway, so it protects nothing)."""
    optim = sys.modules.get("torch.optim")
    return frozenset({"step"}) if optim is not None and issubclass(cls, optim.Optimizer) else frozenset()


def take_snapshot(roots: Iterable[str], modules: Iterable[str] = ()) -> Snapshot:
    """Record every loaded module under ``roots`` and the ``modules`` named, their classes and functions."""
    names = _module_names(roots, modules)
    name_set = set(names)
    module_entries, class_entries = _Entries(), _Entries()
    functions, seen_classes = _Functions(), set()
    for name in names:
        skip = _IPYTHON_BUILTINS if name == "builtins" else frozenset()
        for key, value in module_entries.add(name, sys.modules[name], closed=False, skip=skip):
            if not issubclass(type(value), type):  # not isinstance: that would ask a proxy for its __class__
                functions.add(f"{name}.{key}", value)
            elif id(value) not in seen_classes and _defined_in(value, name_set):
                seen_classes.add(id(value))
                for attr, member in class_entries.add(f"{name}.{key}", value, closed=True, skip=_class_skip(value)):
                    for f in _functions_of(member):
                        functions.add(f"{name}.{key}.{attr}", f)
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    return Snapshot({n: sys.modules[n] for n in names}, module_entries, class_entries, functions, os.environ, env)
