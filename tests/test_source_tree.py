"""The plugin loads wherever pytest runs, however pytest-mlflowdb was installed.

``python -m pytest`` at the root of a source tree puts that tree's ``pytest_mlflowdb``
ahead of the installed one, and the source tree has no ``pytest_mlflowdb/checks`` (the
suite lives in the top-level ``checks/``): loading the plugin must not crash there, and
the built-in suite must still be found.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _source_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for folder in ("pytest_mlflowdb", "checks"):
        shutil.copytree(ROOT / folder, tree / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "tests").mkdir()
    (tree / "tests" / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    return tree


def _pytest(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=tree, capture_output=True, text=True, timeout=120)


def test_python_m_pytest_at_a_source_tree_root_loads_the_plugin(tmp_path):
    tree = _source_tree(tmp_path)
    plain = _pytest(tree, "tests")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "Error while loading plugin" not in plain.stderr
    listed = _pytest(tree, "--mlflowdb-list-checks")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "connectivity.connect:" in listed.stdout
    assert "schema.revision:" in listed.stdout


def test_python_m_pytest_at_a_source_tree_root_collects_the_builtin_suite(tmp_path):
    tree = _source_tree(tmp_path)
    done = _pytest(tree, "--collect-only", "-q",
                   "--mlflowdb-uri=postgresql://nobody@127.0.0.1:1/mlflow")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_connect[127.0.0.1:1/mlflow]" in done.stdout
    assert "test_revision[127.0.0.1:1/mlflow]" in done.stdout


def test_every_package_of_the_source_is_in_the_wheel():
    """A subpackage missing from pyproject's list works in an editable install and is
    absent from the wheel: every folder with an ``__init__.py`` must be listed."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for init in (ROOT / "pytest_mlflowdb").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
