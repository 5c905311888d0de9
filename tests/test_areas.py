"""Areas are units: each declares its checks and thresholds in its own module, and other
packages add areas through the ``pytest_mlflowdb.areas`` entry-point group."""

from __future__ import annotations

import importlib
import textwrap

import pytest
from helpers import checks_by_id, report

from pytest_mlflowdb.areas import (
    builtin_areas,
    builtin_check_ids,
    builtin_thresholds,
    declared_thresholds,
)
from pytest_mlflowdb.registry import REGISTRY


def test_each_builtin_area_declares_the_thresholds_its_checks_read():
    ids = builtin_check_ids()
    for area in builtin_areas():
        module = importlib.import_module(area.module)
        declared = {t.name for t in getattr(module, "THRESHOLDS", ())}
        read = {name for check_id in ids if check_id.startswith(f"{area.name}.")
                for name in REGISTRY[check_id].thresholds}
        assert read == declared, area.name
    assert {t.name for t in builtin_thresholds()} == {
        name for check_id in ids for name in REGISTRY[check_id].thresholds}


def test_thresholds_are_read_from_an_area_without_importing_it():
    """The dormant plugin must not import psycopg: the declarations are read, not run."""
    for area in builtin_areas():
        module = importlib.import_module(area.module)
        assert declared_thresholds(area.path) == tuple(getattr(module, "THRESHOLDS", ()))


def test_a_declaration_that_needs_the_module_to_run_is_a_clear_error(tmp_path):
    path = tmp_path / "bloat.py"
    path.write_text("LIMIT = '5'\nTHRESHOLDS = (Threshold('bloat_max', LIMIT, 'count', 'x'),)\n")
    with pytest.raises(ValueError, match=r"bloat\.py.*THRESHOLDS.*LIMIT"):
        declared_thresholds(path)


def test_builtin_check_ids_come_from_the_areas():
    ids = builtin_check_ids()
    assert {i.split(".")[0] for i in ids} == {a.name for a in builtin_areas()}
    assert "connectivity.connect" in ids


AREA = '''
"""A third-party area: its checks, its threshold, an option and a fixture, one module."""

import pytest

from pytest_mlflowdb import Threshold, check

THRESHOLDS = (Threshold("ghosts_max", "0", "count", "ghost experiments allowed"),)


def pytest_addoption(parser):
    parser.addoption("--ghosts-label", default="ghosts")


@pytest.fixture
def ghosts_label(request):
    return request.config.getoption("ghosts_label")


@check("ghosts.experiments", thresholds=("ghosts_max",))
def test_ghosts(mlflowdb, mlflowdb_thresholds, mlflowdb_findings, ghosts_label):
    """Experiments without a name."""
    count = mlflowdb.value("SELECT count(*) FROM experiments WHERE name = ''")
    mlflowdb_findings.limit(ghosts_label, "nameless experiments", count, unit="count",
                            fail=mlflowdb_thresholds["ghosts_max"] + 1)
'''


@pytest.fixture
def ghosts_area(pytester, monkeypatch):
    """An installed package ``ghosts`` whose entry point adds the area ``ghosts``."""
    site = pytester.mkdir("site")
    (site / "ghosts").mkdir()
    (site / "ghosts" / "__init__.py").write_text("")
    (site / "ghosts" / "area.py").write_text(textwrap.dedent(AREA))
    info = site / "ghosts-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ghosts\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest_mlflowdb.areas]\nghosts = ghosts.area\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    pytester.mkdir("work")
    monkeypatch.chdir(pytester.path / "work")
    return site


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_area_from_an_entry_point_brings_its_checks_thresholds_option_and_fixture(
        pytester, ghosts_area, mlflow_uri, workers):
    json_path = pytester.path / "a.json"
    result = pytester.runpytest_subprocess(
        f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
        "--mlflowdb-set=ghosts_max=3", "--ghosts-label=nameless", "-p", "no:cacheprovider",
        *workers)
    checks = checks_by_id(report(json_path))
    ghosts = checks["ghosts.experiments"]
    assert ghosts["outcome"] == "passed", result.stdout.str()
    finding = ghosts["findings"][0]
    assert finding["object"] == "nameless" and finding["threshold"] == "4"
    assert "connectivity.latency" in checks  # the built-in areas still run


def test_an_area_from_an_entry_point_is_listed_with_its_threshold(pytester, ghosts_area):
    result = pytester.runpytest_subprocess("--mlflowdb-list-checks", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["ghosts.experiments: Experiments without a name.",
                                 "    ghosts_max = 0 (count; default 0): *"])


def test_an_area_is_not_collected_while_the_plugin_is_dormant(pytester, ghosts_area):
    (pytester.path / "work" / "test_plain.py").write_text("def test_one(): pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "test_plain.py")
    result.assert_outcomes(passed=1)


def test_an_area_that_cannot_be_loaded_is_one_line_and_exit_4(pytester, monkeypatch):
    site = pytester.mkdir("site")
    info = site / "broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest_mlflowdb.areas]\nbroken = nosuch.area\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    pytester.makepyfile(test_plain="def test_one(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        "ERROR: area 'broken' (nosuch.area) of the entry-point group pytest_mlflowdb.areas "
        "cannot be loaded: ModuleNotFoundError: No module named 'nosuch'")
    assert "Traceback" not in result.stderr.str()


def test_declarations_are_read_right_when_the_quick_cut_cannot_be_used(tmp_path):
    """The dormant plugin cuts THRESHOLDS out of the source instead of parsing the whole
    module; a declaration whose text runs on at column 0 (a triple-quoted help) is still
    read right, through the whole-module parse."""
    from pytest_mlflowdb.areas import declared_thresholds

    area = tmp_path / "odd.py"
    area.write_text('import os\n\nTHRESHOLDS = (\n    Threshold("odd_warn", "5", "count", """many\n'
                    'lines\n""", ("odd.check",)),\n)\nOTHER = os.sep\n')
    (threshold,) = declared_thresholds(area)
    assert threshold.name == "odd_warn" and threshold.description == "many\nlines\n"
    plain = tmp_path / "plain.py"
    plain.write_text('import os\nTHRESHOLDS = (\n    Threshold("p_warn", "5", "count", "h"),\n'
                     '    # a comment\n)\n\nX = os.sep\n')
    assert [t.name for t in declared_thresholds(plain)] == ["p_warn"]
