"""Where checks come from: the built-in areas (``checks/``) and their thresholds.

The plugin asks this module, never the file system directly, for the folder of the
built-in check modules and for the thresholds the areas declare. Nothing here runs at
import time, so a package layout this module does not expect is an error the plugin can
report, not a crash while pytest loads its plugins.

This module imports nothing heavy: it is loaded even when the plugin is dormant.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from .thresholds import BUILTIN, Threshold


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


def import_builtin_checks() -> None:
    """Import every built-in check module, so that the registry knows every check."""
    import pkgutil

    found = _builtin_package()
    if found is None:
        return
    package, folder = found
    for module in pkgutil.iter_modules([str(folder)]):
        importlib.import_module(f"{package}.{module.name}")


def builtin_thresholds() -> tuple[Threshold, ...]:
    """The thresholds the built-in areas declare, before any plugin adds its own."""
    return tuple(BUILTIN)


def register_areas(pluginmanager: object) -> None:
    """Register the plugins of areas that other packages add (none yet).

    Called from ``pytest_addhooks``, early enough that an area plugin's own
    ``pytest_addoption`` and fixtures take effect (``pytest_addoption`` is historic).
    """


def check_paths() -> list[Path]:
    """Every folder or module of checks to collect when the plugin is active."""
    checks_dir = builtin_checks_dir()
    return [checks_dir] if checks_dir is not None else []


def is_check_module(path: Path) -> bool:
    """Whether ``path`` is a check module of an area (collected whatever ``python_files``
    says)."""
    if path.suffix != ".py" or path.name.startswith("_"):
        return False
    return any(path.parent == p or path == p for p in check_paths())
