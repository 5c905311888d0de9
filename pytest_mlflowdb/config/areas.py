"""Where checks come from: the areas, each one module of checks and one declaration.

An area is a unit: a module of ``@check`` functions and its declaration, an
:class:`~pytest_mlflowdb.config.declare.Area` named ``AREA`` (the area's name, the
thresholds its checks read, the options it adds: a flag and its ini twin each, which
``config.read`` adds and resolves beside its own). Built-in and other packages' areas keep
the same contract; only where the declaration lives differs:

- a built-in area is a module of ``checks/`` (``connectivity``, ``schema``, ``indexes``);
  its ``AREA`` is in ``pytest_mlflowdb.config.declarations.<name>``, a light module, because
  importing a check module imports psycopg and a dormant plugin must not;
- another package adds an area through the entry-point group ``pytest_mlflowdb.areas``
  (``name = package.module``): that module holds its checks and its ``AREA`` (named
  like the entry point), and is also registered as a pytest plugin, so it may define
  hooks and fixtures. It is imported at every pytest start, dormant or not: it keeps its
  own heavy imports inside its functions.

The plugin asks this module, never the file system directly, for the folders and modules
of checks to collect and for the thresholds and options the areas declare. Nothing here
runs at import time, so a package layout or a declaration this module does not expect is
an error the plugin can report, not a crash while pytest loads its plugins. This module
imports nothing heavy: it is loaded even when the plugin is dormant.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlflowdb.config.declare import Area, Option

if TYPE_CHECKING:
    from pytest_mlflowdb.config.thresholds import Threshold, ThresholdRegistry

#: The entry-point group through which other packages add areas.
ENTRY_POINT_GROUP = "pytest_mlflowdb.areas"
#: The package of the built-in areas' declarations (one module per area, by name).
DECLARATIONS = "pytest_mlflowdb.config.declarations"


@dataclass(frozen=True)
class AreaModule:
    """Where an area's checks are: its name (the first part of their ids), module and file."""

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
    beside = Path(__file__).resolve().parents[2] / "checks"
    return ("checks", beside) if (beside / "__init__.py").is_file() else None


@lru_cache(maxsize=1)
def builtin_areas() -> tuple[AreaModule, ...]:
    """The built-in areas: every public module of the built-in checks' package, by name
    (the folder listed directly: a dormant plugin does this at every pytest start)."""
    found = _builtin_package()
    if found is None:
        return ()
    package, folder = found
    names = sorted(entry.name[:-3] for entry in os.scandir(folder)
                   if entry.name.endswith(".py") and entry.is_file())
    return tuple(AreaModule(name, f"{package}.{name}", folder / f"{name}.py") for name in names
                 if not name.startswith("_") and name.isidentifier())


def import_builtin_checks() -> None:
    """Import every built-in check module, so that the registry knows every check."""
    for area in builtin_areas():
        importlib.import_module(area.module)


def builtin_check_ids() -> list[str]:
    """The ids of the built-in checks, sorted (imports the built-in areas)."""
    from pytest_mlflowdb.config.registry import REGISTRY

    import_builtin_checks()
    files = {area.path.resolve() for area in builtin_areas()}
    return sorted(i for i, spec in REGISTRY.items()
                  if spec.path and Path(spec.path).resolve() in files)


def builtin_registry() -> ThresholdRegistry:
    """A new registry of the thresholds the built-in areas declare."""
    from pytest_mlflowdb.config.thresholds import ThresholdRegistry

    return ThresholdRegistry(builtin_thresholds())


@lru_cache(maxsize=1)
def builtin_declarations() -> tuple[Area, ...]:
    """Every built-in area's declaration (``AREA`` of
    ``pytest_mlflowdb.config.declarations.<name>``), in the areas' order; a missing or
    malformed one is a ValueError naming it."""
    found = []
    for area in builtin_areas():
        where = f"{DECLARATIONS}.{area.name}"
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name != where:
                raise
            raise ValueError(f"the built-in area {area.name!r} has no declaration "
                             f"({where} with AREA = Area({area.name!r}, ...))") from None
        found.append(declaration_of(module, area.name, where))
    return tuple(found)


def declaration_of(module: ModuleType, name: str, where: str) -> Area:
    """The ``AREA`` a module declares for the area ``name``, checked (none: an area that
    declares nothing); a ValueError naming ``where`` when it names another area, breaks a
    rule, or thresholds or options stand outside it (they would be ignored)."""
    declared = getattr(module, "AREA", None)
    if declared is None:
        stray = [n for n in ("THRESHOLDS", "OPTIONS") if hasattr(module, n)]
        if not stray:
            return Area(name)
        raise ValueError(f"{where}: declare {' and '.join(stray)} in the area's declaration, "
                         f"AREA = Area({name!r}, thresholds=..., options=...)")
    if not isinstance(declared, Area):
        raise ValueError(f"{where}: AREA must be an Area(...) declaration, not "
                         f"{type(declared).__name__}")
    if declared.name != name:
        raise ValueError(f"{where}: AREA is named {declared.name!r}, the area {name!r}")
    error = declared.error()
    if error:
        raise ValueError(f"{where}: {error}")
    return declared


def builtin_thresholds() -> tuple[Threshold, ...]:
    """The thresholds the built-in areas declare, before any plugin adds its own."""
    return tuple(t for area in builtin_declarations() for t in area.thresholds)


def area_declarations() -> tuple[Area, ...]:
    """Every area's declaration: the built-in ones, then those other packages added."""
    return builtin_declarations() + tuple(_DECLARED.values())


def declared_options() -> tuple[Option, ...]:
    """The options every area declares (added beside the core table)."""
    return tuple(o for area in area_declarations() for o in area.options)


# -- areas of other packages -----------------------------------------------------------
_ADDED: dict[str, AreaModule] = {}
_DECLARED: dict[str, Area] = {}


class _AreaThresholds:
    """Adds an added area's thresholds through the ``pytest_mlflowdb_thresholds`` hook."""

    def __init__(self, area: Area) -> None:
        self._area = area

    def pytest_mlflowdb_thresholds(self, config: pytest.Config) -> list[Threshold]:
        return list(self._area.thresholds)


def entry_point_areas() -> list[tuple[str, Any]]:
    """The ``(name, entry point)`` pairs of the installed packages' areas, by name."""
    from importlib.metadata import entry_points

    return sorted(((ep.name, ep) for ep in entry_points(group=ENTRY_POINT_GROUP)),
                  key=lambda pair: pair[0])


def register_areas(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the areas that other packages add through the entry-point group.

    Called from ``pytest_addhooks``, before the plugin adds the areas' options in
    ``pytest_addoption`` (and early enough that an area plugin's own ``pytest_addoption``
    and fixtures take effect: ``pytest_addoption`` is historic). Each area module is
    registered as a plugin; its ``AREA``'s options are added like the built-in areas',
    its thresholds as a plugin's would be; its checks are collected with the built-in ones.
    """
    _ADDED.clear()
    _DECLARED.clear()
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
        try:
            declared = declaration_of(module, name, f"area {name!r} ({entry_point.value})")
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        _ADDED[name] = AreaModule(name, module.__name__, Path(module.__file__ or "").resolve())
        _DECLARED[name] = declared
        plugin_name = f"mlflowdb-area-{name}"
        if pluginmanager.get_plugin(plugin_name) is None:
            if not pluginmanager.is_registered(module):
                pluginmanager.register(module, plugin_name)
            pluginmanager.register(_AreaThresholds(declared), f"{plugin_name}-thresholds")


def added_areas() -> tuple[AreaModule, ...]:
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
