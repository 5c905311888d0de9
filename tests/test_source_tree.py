"""The plugin loads wherever pytest runs, however pytest-mlflowdb was installed.

``python -m pytest`` at the root of a source tree puts that tree's ``pytest_mlflowdb``
ahead of the installed one, and the source tree has no ``pytest_mlflowdb/checks`` (the
suite lives in the top-level ``checks/``): loading the plugin must not crash there, and
the built-in suite must still be found.
"""

from __future__ import annotations

import os
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


def test_checks_installed_in_a_virtualenv_below_the_folder_pytest_runs_in(tmp_path, mlflow_uri):
    """``python -m venv .venv && .venv/bin/pip install pytest-mlflowdb`` in a project, then
    ``.venv/bin/pytest --mlflowdb-uri=...`` there: the built-in checks sit inside the
    virtualenv, a folder pytest never collects from unless asked. They must still run."""
    project = tmp_path / "project"
    site = project / ".venv" / "lib" / "site-packages"
    shutil.copytree(ROOT / "pytest_mlflowdb", site / "pytest_mlflowdb",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "checks", site / "pytest_mlflowdb" / "checks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # what marks a venv
    (site / "otherpkg" / "tests").mkdir(parents=True)  # another package's shipped tests
    (site / "otherpkg" / "tests" / "test_foreign.py").write_text("def test_foreign():\n"
                                                                 "    assert False\n")
    (project / "pyproject.toml").write_text("[project]\nname = 'team-project'\n")
    found = subprocess.run(
        [sys.executable, "-c", "import pytest_mlflowdb.checks as c; print(c.__file__)"],
        cwd=project, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
        text=True)
    assert found.stdout.startswith(str(site))  # this copy is the one pytest loads
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           f"--mlflowdb-uri={mlflow_uri}", "-k", "connectivity"],
                          cwd=project, env={**os.environ, "PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "no tests ran" not in done.stdout
    listed = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--collect-only", "-q", f"--mlflowdb-uri={mlflow_uri}"],
                            cwd=project, env={**os.environ, "PYTHONPATH": str(site)},
                            capture_output=True, text=True, timeout=120)
    assert "pytest_mlflowdb/checks/connectivity.py::test_connect" in listed.stdout
    assert "test_foreign" not in listed.stdout  # nothing else of the virtualenv


def test_builtin_node_ids_are_stable_wherever_pytest_runs(tmp_path):
    """The ids users paste into ``--deselect`` name the installed package's modules, not
    ``connectivity.py`` (relative to the checks' folder) nor ``../repo/...`` paths."""
    uri = "--mlflowdb-uri=postgresql://nobody@127.0.0.1:1/mlflow"
    gate = tmp_path / "repo" / "examples" / "ci-gate"
    gate.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "ci-gate" / "pytest.ini", gate / "pytest.ini")
    empty = tmp_path / "empty"
    empty.mkdir()
    for cwd, args in ((tmp_path / "repo", ("examples/ci-gate",)), (empty, ())):
        listed = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                 "--collect-only", "-q", uri, *args], cwd=cwd,
                                capture_output=True, text=True, timeout=120)
        ids = [line for line in listed.stdout.splitlines() if "::" in line]
        assert ids and all(i.startswith("pytest_mlflowdb/checks/") for i in ids), ids[:3]
        assert "pytest_mlflowdb/checks/connectivity.py::test_connect[127.0.0.1:1/mlflow]" in ids
    latency = "pytest_mlflowdb/checks/connectivity.py::test_latency[127.0.0.1:1/mlflow]"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--collect-only", "-q", uri, f"--deselect={latency}"], cwd=empty,
                          capture_output=True, text=True, timeout=120)
    kept = [line for line in done.stdout.splitlines() if "::" in line]
    assert latency not in kept and len(kept) == len(ids) - 1


def test_every_extra_readme_installs_exists_and_xdist_has_one():
    """README's ``pip install`` lines name extras that pyproject declares (pip only warns
    about an unknown extra, then installs without it), and the ``-n`` examples' pytest-xdist
    comes with one of them."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    readme = (ROOT / "README.md").read_text()
    named = {e.strip() for group in re.findall(r'(?:pytest-mlflowdb|\.)\[([a-z,]+)\]', readme)
             for e in group.split(",")}
    assert named and named <= set(extras), named - set(extras)
    assert "xdist" in named and any("pytest-xdist" in r for r in extras["xdist"])
