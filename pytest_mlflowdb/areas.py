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
