"""Where checks come from: the areas, each one module of checks and the thresholds they read.

An area is a unit. A built-in area is a module of ``checks/`` (``connectivity``,
``schema``, ``indexes``): its ``@check`` functions, in a module-level ``THRESHOLDS``
tuple the thresholds they read and, in an ``OPTIONS`` tuple, the options it needs (a flag
and its ini twin each; ``options.py`` adds and resolves them beside its own). Other
packages add areas through the entry-point group ``pytest_mlflowdb.areas``
(``name = package.module``): such a module is also registered as a pytest plugin, so it
may define its own options (``pytest_addoption``), fixtures and hooks beside its checks
and ``THRESHOLDS``.

The plugin asks this module, never the file system directly, for the folders and modules
of checks to collect and for the thresholds the areas declare. Nothing here runs at
import time, so a package layout this module does not expect is an error the plugin can
report, not a crash while pytest loads its plugins.

This module imports nothing heavy: it is loaded even when the plugin is dormant. That is
why the built-in areas' ``THRESHOLDS`` and ``OPTIONS`` are read from their source rather
than imported: importing a check module imports psycopg.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from .option_spec import Option

if TYPE_CHECKING:  # imported where thresholds are read: not by a dormant plugin
    from .thresholds import Threshold, ThresholdRegistry

#: The entry-point group through which other packages add areas.
ENTRY_POINT_GROUP = "pytest_mlflowdb.areas"


@dataclass(frozen=True)
class Area:
    """One area: its name (the first part of its checks' ids), module and file."""

    name: str
    module: str
    path: Path


@lru_cache(maxsize=1)
def builtin_checks_dir() -> Path | None:
    """The folder of the built-in check modules, or None when it cannot be found.

    Found through the import system: in a wheel it is ``pytest_mlflowdb/checks``, in an
    editable install the repository's top-level ``checks/``. Run from a source tree whose
    ``pytest_mlflowdb`` shadows the installed one (``python -m pytest`` at the repository
    root after ``pip install .``), ``pytest_mlflowdb.checks`` is not importable: then the
    source tree's own ``checks/`` beside the package is the suite.
    """
    found = _builtin_package()
    return found[1] if found else None


@lru_cache(maxsize=1)
def _builtin_package() -> tuple[str, Path] | None:
    """The built-in checks' package name and folder (see :func:`builtin_checks_dir`)."""
    try:
        spec = importlib.util.find_spec("pytest_mlflowdb.checks")
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return "pytest_mlflowdb.checks", Path(list(spec.submodule_search_locations)[0]).resolve()
    beside = Path(__file__).resolve().parent.parent / "checks"
    return ("checks", beside) if (beside / "__init__.py").is_file() else None


@lru_cache(maxsize=1)
def builtin_areas() -> tuple[Area, ...]:
    """The built-in areas: every public module of the built-in checks' package, by name
    (the folder listed directly: a dormant plugin does this at every pytest start)."""
    found = _builtin_package()
    if found is None:
        return ()
    package, folder = found
    names = sorted(entry.name[:-3] for entry in os.scandir(folder)
                   if entry.name.endswith(".py") and entry.is_file())
    return tuple(Area(name, f"{package}.{name}", folder / f"{name}.py") for name in names
                 if not name.startswith("_") and name.isidentifier())


def import_builtin_checks() -> None:
    """Import every built-in check module, so that the registry knows every check."""
    for area in builtin_areas():
        importlib.import_module(area.module)


def builtin_check_ids() -> list[str]:
    """The ids of the built-in checks, sorted (imports the built-in areas)."""
    from .registry import REGISTRY

    import_builtin_checks()
    files = {area.path.resolve() for area in builtin_areas()}
    return sorted(i for i, spec in REGISTRY.items()
                  if spec.path and Path(spec.path).resolve() in files)


def builtin_registry() -> ThresholdRegistry:
    """A new registry of the thresholds the built-in areas declare."""
    from .thresholds import ThresholdRegistry

    return ThresholdRegistry(builtin_thresholds())


@lru_cache(maxsize=1)
def builtin_thresholds() -> tuple[Threshold, ...]:
    """The thresholds the built-in areas declare, before any plugin adds its own."""
    return tuple(t for area in builtin_areas() for t in declared_thresholds(area.path))


def declared_thresholds(path: Path) -> tuple[Threshold, ...]:
    """The ``THRESHOLDS`` an area module declares, read from its source without importing it.

    Only that one assignment runs, with ``Threshold`` as its only name: a declaration
    that needs anything else of the module is a ValueError naming the file.
    """
    from .thresholds import Threshold

    return tuple(_declared(path, "THRESHOLDS", {"Threshold": Threshold}))


@cache
def declared_options(path: Path) -> tuple[Option, ...]:
    """The ``OPTIONS`` an area module declares, read like its ``THRESHOLDS`` (only literals
    and ``Option``), each keeping the naming rules: a ValueError naming the file if not."""
    options = tuple(_declared(path, "OPTIONS", {"Option": Option}))
    for option in options:
        if not isinstance(option, Option):
            raise ValueError(f"{path}: OPTIONS must hold only Option(...) declarations")
        error = option.naming_error()
        if error:
            raise ValueError(f"{path}: {error}")
    return options


def builtin_options() -> tuple[Option, ...]:
    """The options the built-in areas declare (added beside the core table)."""
    return tuple(o for area in builtin_areas() for o in declared_options(area.path))


def _assignment_source(text: str, name: str) -> str | None:
    """The text of the top-level ``name = ...`` statement of a module, cut out without
    parsing the whole module (the dormant plugin reads every area's declarations at each
    pytest start, so this must cost next to nothing); None when it cannot be cut out
    simply, and the caller parses the whole module instead."""
    found = re.search(rf"^{name}\s*(:[^=\n]*)?=", text, re.M)
    if found is None:
        return ""
    lines = text[found.start():].splitlines()
    end = 1
    while end < len(lines) and (not lines[end] or lines[end][0] in " \t)#"):
        end += 1
    return "\n".join(lines[:end])


def _declared(path: Path, name: str, vocabulary: dict[str, Any]) -> tuple[Any, ...]:
    """Evaluate the module-level assignment to ``name`` in ``path`` with only
    ``vocabulary`` (and literals) in scope; () when the module declares none."""
    text = path.read_text(encoding="utf-8")
    snippet = _assignment_source(text, name)
    if snippet == "":
        return ()
    try:
        tree = ast.parse(snippet or text, str(path))
    except SyntaxError:  # not cut out cleanly: the whole module, as Python reads it
        tree = ast.parse(text, str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) and node.value else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
            code = compile(ast.Expression(node.value), str(path), "eval")
            try:
                declared = eval(code, {"__builtins__": {}, **vocabulary})  # noqa: S307
            except NameError as exc:
                allowed = " and ".join(["literals", *vocabulary])
                raise ValueError(f"{path}: {name} may use only {allowed} "
                                 f"(it uses {exc.name})") from None
            except Exception as exc:
                raise ValueError(f"{path}: {name} cannot be read: "
                                 f"{type(exc).__name__}: {exc}") from None
            return tuple(declared)
    return ()


# -- areas of other packages -----------------------------------------------------------
_ADDED: dict[str, Area] = {}


class _AreaThresholds:
    """Adds an area module's ``THRESHOLDS`` through the ``pytest_mlflowdb_thresholds`` hook."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def pytest_mlflowdb_thresholds(self, config: pytest.Config) -> list[Threshold]:
        return list(getattr(self._module, "THRESHOLDS", ()))


def entry_point_areas() -> list[tuple[str, Any]]:
    """The ``(name, entry point)`` pairs of the installed packages' areas, by name."""
    from importlib.metadata import entry_points

    return sorted(((ep.name, ep) for ep in entry_points(group=ENTRY_POINT_GROUP)),
                  key=lambda pair: pair[0])


def register_areas(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the areas that other packages add through the entry-point group.

    Called from ``pytest_addhooks``, early enough that an area plugin's own
    ``pytest_addoption`` and fixtures take effect (``pytest_addoption`` is historic).
    Each area module is registered as a plugin, and its ``THRESHOLDS`` are added as a
    plugin's would be; its checks are collected with the built-in ones.
    """
    _ADDED.clear()
    for name, entry_point in entry_point_areas():
        try:
            module = entry_point.load()
        except Exception as exc:
            raise pytest.UsageError(f"area {name!r} ({entry_point.value}) of the entry-point "
                                    f"group {ENTRY_POINT_GROUP} cannot be loaded: "
                                    f"{type(exc).__name__}: {exc}") from None
        if not isinstance(module, ModuleType) or not getattr(module, "__file__", None):
            raise pytest.UsageError(f"area {name!r} ({entry_point.value}): the entry point "
                                    "must name a module of checks")
        _ADDED[name] = Area(name, module.__name__, Path(module.__file__ or "").resolve())
        plugin_name = f"mlflowdb-area-{name}"
        if pluginmanager.get_plugin(plugin_name) is None:
            if not pluginmanager.is_registered(module):
                pluginmanager.register(module, plugin_name)
            pluginmanager.register(_AreaThresholds(module), f"{plugin_name}-thresholds")


def added_areas() -> tuple[Area, ...]:
    """The areas other packages added (registered by :func:`register_areas`)."""
    return tuple(_ADDED.values())


def check_paths() -> list[Path]:
    """Every folder or module of checks to collect when the plugin is active."""
    checks_dir = builtin_checks_dir()
    builtin = [checks_dir] if checks_dir is not None else []
    return builtin + [area.path for area in added_areas()]


def is_check_module(path: Path) -> bool:
    """Whether ``path`` is a check module of an area (collected whatever ``python_files``
    says)."""
    if path.suffix != ".py" or path.name.startswith("_"):
        return False
    return any(path.parent == p or path == p for p in check_paths())
