"""The project's layer map, written once as data, checked against every import statement.

Each module of ``ff_numpy`` sits on one floor (:data:`FLOORS`); a floor may import only
the floors listed for it in :data:`MAY_IMPORT` and, for the lower floors, only the
third-party packages of :data:`THIRD_PARTY` (the standard library is always allowed).
The scripts under ``benchmarks/`` and ``tutorials/`` sit on top and use the library,
never its command line. The imports are read with :mod:`ast` (imports inside functions
included), so nothing is executed. A breach fails naming the file, the line and the rule;
a new module fails until it is given a floor here.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ff_numpy"
SCRIPT_DIRS = ("benchmarks", "tutorials")  # scripts, not modules: all on the "scripts" floor

# ----------------------------------------------------------------------------- the map
# Modules of ff_numpy by floor, lowest first; "experiments.*" is every module of the
# experiments package. Some listed modules may not exist yet.
FLOORS = {
    "package": ("",),  # ff_numpy/__init__.py: the version string, importable by anyone
    "math": (
        *("layers", "locally_connected", "goodness", "loss", "norm", "masks"),
        *("blas", "kernels", "validate"),
    ),
    "learning": ("optim", "negatives", "readout", "fast", "blackbox"),
    "models": ("model", "recurrent", "backprop"),
    "files": ("data", "checkpoint"),
    "loop": ("train",),
    "figures": ("plots",),
    "experiments": ("experiments", "experiments.*"),
    "script helpers": ("tutorial",),
    "command line": ("cli", "__main__"),
}
SCRIPTS = "scripts"  # benchmarks/*.py, tutorials/**/*.py

_LIBRARY = ("math", "learning", "models", "files", "loop", "figures", "experiments")
MAY_IMPORT = {
    "package": set(),
    "math": {"math"},
    "learning": {"math", "learning"},
    "models": {"math", "learning"},
    "files": {"math"},
    "loop": {"math", "learning", "files"},
    "figures": {"math", "learning", "models", "files"},
    "experiments": set(_LIBRARY),
    "script helpers": set(_LIBRARY),
    "command line": {*_LIBRARY, "script helpers", "command line"},
    SCRIPTS: {*_LIBRARY, "script helpers"},
}
ANYONE_MAY_IMPORT = {"package"}

RULES = {
    "package": "the package's __init__ holds only its version and imports no module",
    "math": "math parts (layers, goodness, loss, norm, masks, blas, kernels, validate) "
    "import only NumPy, SciPy and each other",
    "learning": "learning parts (optimisers, negatives, readout, one-shot Eq. 3-4, black "
    "box) build on the math parts only",
    "models": "models compose math and learning parts; they know no files (checkpoint, "
    "data), loop, experiment, figures or command line",
    "files": "data and checkpoint files know no model, loop or experiment",
    "loop": "the loop serves every experiment alike: it imports no model or experiment",
    "figures": "figures read what a run wrote; they import no loop, experiment or command line",
    "experiments": "experiments wire data, model and loop; they never import the command line",
    "script helpers": "the tutorials' helpers use the library, never the command line",
    "command line": "the command line sits on top of the library",
    SCRIPTS: "benchmarks and tutorials sit on top and use the library, never ff_numpy.cli",
}

# Third-party packages a floor may import; floors not listed may import any.
_NUMERIC = {"numpy", "scipy"}
THIRD_PARTY = {
    "package": set(),
    "math": _NUMERIC,
    "learning": {*_NUMERIC, "tqdm"},
    "models": {*_NUMERIC, "tqdm"},
    "files": {*_NUMERIC, "tqdm"},
    "loop": {*_NUMERIC, "tqdm"},
}

# Breaches being fixed elsewhere, each (importer, imported): the test passes over them,
# and fails once one is fixed so that its entry is removed.
KNOWN_BREACHES_TO_FIX: set[tuple[str, str]] = set()


# ----------------------------------------------------------------------------- reading
def floor_of(module: str) -> str | None:
    """The floor of ``module`` (a dotted name under ``ff_numpy``), or None if unmapped."""
    if module == PACKAGE:
        return "package"
    if not module.startswith(PACKAGE + "."):
        return None
    name = module[len(PACKAGE) + 1 :]
    for floor, names in FLOORS.items():
        for entry in names:
            if name == entry or (entry.endswith(".*") and name.startswith(entry[:-1])):
                return floor
    return None


def module_name(path: Path) -> str:
    """``ff_numpy/experiments/online.py`` -> ``ff_numpy.experiments.online``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _listed(module: str) -> bool:
    """Whether the map names ``module`` itself (it may not exist yet)."""
    name = module[len(PACKAGE) + 1 :] if module.startswith(PACKAGE + ".") else None
    return any(name in names for names in FLOORS.values())


def library_files() -> list[Path]:
    return sorted((ROOT / PACKAGE).rglob("*.py"))


def script_files() -> list[Path]:
    return sorted(p for d in SCRIPT_DIRS for p in (ROOT / d).rglob("*.py"))


def _known_modules() -> set[str]:
    return {module_name(p) for p in library_files()}


def imports(path: Path, source: str | None = None, modules: set[str] | None = None):
    """``(line, imported module)`` of every import statement in ``path``.

    ``from ff_numpy import blas`` imports ``ff_numpy.blas`` (a module of that name
    exists), ``from ff_numpy import __version__`` imports ``ff_numpy``; relative imports
    are resolved against the file's own package.
    """
    source = path.read_text(encoding="utf-8") if source is None else source
    modules = _known_modules() if modules is None else modules
    own = module_name(path) if path.is_relative_to(ROOT / PACKAGE) else ""
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*anchor, base]))
            for alias in node.names:  # a module of the package, else a name in base
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in modules or _listed(sub) else base


def _is_stdlib(name: str) -> bool:
    names = getattr(sys, "stdlib_module_names", None)  # Python 3.10+
    if names is not None:
        return name in names
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    return spec.origin.startswith(sysconfig.get_paths()["stdlib"]) and (
        "site-packages" not in spec.origin
    )


def breaches(path: Path, floor: str, source: str | None = None, modules=None) -> list[str]:
    """One message per import of ``path`` (on ``floor``) that the map does not allow."""
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    importer = "a script" if floor == SCRIPTS else module_name(path)
    found = []
    for line, target in imports(path, source, modules):
        top = target.split(".")[0]
        where = f"{rel}:{line}: {importer} ({floor}) imports {target}"
        if top == PACKAGE:
            to = floor_of(target)
            if to is None:
                found.append(f"{where}, a module with no floor in the layer map")
            elif to not in MAY_IMPORT[floor] | ANYONE_MAY_IMPORT:
                if (importer, target) not in KNOWN_BREACHES_TO_FIX:
                    found.append(f"{where} ({to}); rule: {RULES[floor]}")
        elif top != "__future__" and floor in THIRD_PARTY and not _is_stdlib(top):
            if top not in THIRD_PARTY[floor]:
                allowed = ", ".join(sorted(THIRD_PARTY[floor])) or "none"
                found.append(
                    f"{where} (third-party; this floor may use: {allowed}); rule: {RULES[floor]}"
                )
    return found


def all_breaches() -> list[str]:
    modules = _known_modules()
    found = []
    for path in library_files():
        floor = floor_of(module_name(path))
        if floor is not None:  # unmapped modules: test_every_module_has_a_floor
            found += breaches(path, floor, modules=modules)
    for path in script_files():
        found += breaches(path, SCRIPTS, modules=modules)
    return found


# ----------------------------------------------------------------------------- tests
def test_the_map_is_consistent():
    assert set(MAY_IMPORT) == set(RULES) == {*FLOORS, SCRIPTS}
    assert set(THIRD_PARTY) <= set(FLOORS)
    listed = [name for names in FLOORS.values() for name in names]
    assert len(listed) == len(set(listed)), "a module is on two floors"
    for floor, allowed in MAY_IMPORT.items():
        assert allowed <= set(FLOORS), f"{floor} may import unknown floors {allowed - set(FLOORS)}"


def test_every_module_has_a_floor():
    unmapped = [
        f"{p.relative_to(ROOT)}: module {module_name(p)} has no floor in the layer map; "
        "add it to FLOORS in tests/test_layer_map.py"
        for p in library_files()
        if floor_of(module_name(p)) is None
    ]
    assert not unmapped, "\n".join(unmapped)


def test_no_import_breaches_the_layer_map():
    found = all_breaches()
    assert not found, f"{len(found)} import(s) breach the layer map:\n" + "\n".join(found)


def test_known_breaches_still_exist():
    """An entry of :data:`KNOWN_BREACHES_TO_FIX` whose import is gone must be removed."""
    modules = _known_modules()
    present = {
        (module_name(p), target)
        for p in library_files()
        for _, target in imports(p, modules=modules)
    }
    stale = sorted(KNOWN_BREACHES_TO_FIX - present)
    assert not stale, f"fixed, remove from KNOWN_BREACHES_TO_FIX: {stale}"


@pytest.mark.parametrize(
    "rel, source, needle",
    [
        ("ff_numpy/model.py", "from ff_numpy import train\n", "(models) imports ff_numpy.train"),
        ("ff_numpy/layers.py", "x = 1\nimport tqdm\n", "layers.py:2:"),
        ("ff_numpy/train.py", "from ff_numpy.experiments import common\n", "(experiments)"),
        ("benchmarks/b.py", "from ff_numpy.cli import main\n", "never ff_numpy.cli"),
        ("tutorials/t.py", "from ff_numpy import cli\n", "never ff_numpy.cli"),
        ("ff_numpy/norm.py", "from . import model\n", "imports ff_numpy.model (models)"),
        ("ff_numpy/plots.py", "import ff_numpy.newthing\n", "no floor in the layer map"),
    ],
)
def test_a_breach_names_file_line_and_rule(rel, source, needle):
    path = ROOT / rel
    floor = SCRIPTS if rel.split("/")[0] in SCRIPT_DIRS else floor_of(module_name(path))
    found = breaches(path, floor, source=source)
    assert len(found) == 1 and needle in found[0], found
    assert found[0].startswith(rel + ":") and ("rule:" in found[0] or "no floor" in found[0])


def test_allowed_imports_pass():
    cases = [
        ("ff_numpy/readout.py", "from ff_numpy.optim import SGD\nimport scipy.special\n"),
        ("ff_numpy/cli.py", "from ff_numpy import __version__, experiments\n"),
        ("benchmarks/b.py", "from ff_numpy.experiments import online\nimport matplotlib\n"),
        ("ff_numpy/experiments/x.py", "from ff_numpy.experiments import register\n"),
    ]
    for rel, source in cases:
        path = ROOT / rel
        floor = SCRIPTS if rel.split("/")[0] in SCRIPT_DIRS else floor_of(module_name(path))
        assert breaches(path, floor, source=source) == [], rel
