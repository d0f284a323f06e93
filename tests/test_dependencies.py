"""Every third-party module the library, the chapter notebooks and the exercise masters import is a declared
dependency of the package (core or the extra that the importing code's users install), and every declared
dependency is pinned in the lock file: a missing one fails here, not in a student's Colab."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string ("course_lib[chapters]" -> "course-lib")."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def declared(*extras: str) -> set[str]:
    """Distribution names in the core dependencies plus ``extras`` (following self-references like gpu -> chapters)."""
    names, todo, seen = {_name(r) for r in PYPROJECT["dependencies"]}, list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in PYPROJECT["optional-dependencies"][extra]:
            if _name(r) == "course-lib":
                todo += re.search(r"\[(.*)\]", r).group(1).split(",")
            else:
                names.add(_name(r))
    return names


def _imports(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":  # IPython magics are not Python
            lines += [line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    """{module: distributions that provide it} for the third-party modules among ``modules``."""
    provided = importlib.metadata.packages_distributions()
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m not in ("course_lib", "__future__")}
    missing = sorted(m for m in third_party if m not in provided)
    assert not missing, f"imported but not installed in this environment: {missing}"
    return {m: {_name(d) for d in provided[m]} for m in third_party}


SOURCES = {
    # who imports, and what its users install
    "library": ([p.read_text() for p in ROOT.glob("course_lib/**/*.py")], ("chapters", "gpu", "grading")),
    "chapter notebooks": ([_notebook_code(p) for p in ROOT.glob("chapters/*/*.ipynb")], ("chapters",)),
    "exercise masters": ([_notebook_code(p) for p in ROOT.glob("exercises/source/*/*.ipynb")], ("chapters", "grading")),
}


@pytest.mark.parametrize("who", SOURCES)
def test_every_import_is_a_declared_dependency(who):
    sources, extras = SOURCES[who]
    modules = set().union(*(_imports(s) for s in sources))
    allowed = declared(*extras)
    undeclared = {m: sorted(d) for m, d in _distributions(modules).items() if not d & allowed}
    assert not undeclared, (
        f"the {who} import modules whose distributions are not declared in pyproject.toml "
        f"(core or extras {extras}): {undeclared}; add them, then `make lock`"
    )


def test_core_library_modules_import_only_core_dependencies_at_top_level():
    """A student who installs course_lib without extras can import every module (extras are imported lazily)."""
    core = declared()
    for path in ROOT.glob("course_lib/**/*.py"):
        tree = ast.parse(path.read_text())
        top = set()
        for node in tree.body:  # module level only; try/except ImportError guards are allowed
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                top |= _imports(ast.unparse(node))
        bad = {m: sorted(d) for m, d in _distributions(top).items() if not d & core}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad} at module level; import it inside the function"


def test_every_declared_dependency_is_pinned_in_the_lock_file():
    lock = {
        _name(line.split("==")[0])
        for line in (ROOT / "requirements/lock.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    missing = sorted(declared(*PYPROJECT["optional-dependencies"]) - lock)
    assert not missing, f"declared in pyproject.toml but not pinned in requirements/lock.txt: {missing}"


def test_conda_environment_installs_the_lock_and_the_package():
    text = (ROOT / "environment.yml").read_text()
    assert "-r requirements/lock.txt" in text and "-e ." in text and "python=3.11" in text
