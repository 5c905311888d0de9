"""Areas are units: each declares its checks and thresholds in its own module, and other
packages add areas through the ``pytest_mlflowdb.areas`` entry-point group."""

from __future__ import annotations

import importlib
import textwrap
import types

import pytest
from helpers import checks_by_id, report

from pytest_mlflowdb.config.areas import (
    builtin_areas,
    builtin_check_ids,
    builtin_declarations,
    builtin_thresholds,
    declaration_of,
)
from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.registry import REGISTRY
from pytest_mlflowdb.config.thresholds import Threshold


def test_each_builtin_area_declares_the_thresholds_its_checks_read():
    ids = builtin_check_ids()
    for area, declaration in zip(builtin_areas(), builtin_declarations(), strict=True):
        declared = {t.name for t in declaration.thresholds}
        read = {name for check_id in ids if check_id.startswith(f"{area.name}.")
                for name in REGISTRY[check_id].thresholds}
        assert read == declared, area.name
    assert {t.name for t in builtin_thresholds()} == {
        name for check_id in ids for name in REGISTRY[check_id].thresholds}


def test_each_builtin_area_has_its_declaration_named_after_it():
    """Built-in areas keep the contract of the others: one ``AREA``, an ``Area`` object,
    in a light module of their own; the module of checks declares nothing besides."""
    assert [d.name for d in builtin_declarations()] == [a.name for a in builtin_areas()]
    for area, declaration in zip(builtin_areas(), builtin_declarations(), strict=True):
        assert isinstance(declaration, Area) and declaration.error() is None
        module = importlib.import_module(area.module)
        assert not hasattr(module, "THRESHOLDS") and not hasattr(module, "OPTIONS"), area.name


def test_a_declaration_that_breaks_the_contract_is_a_clear_error():
    module = types.ModuleType("ghosts_area")
    module.THRESHOLDS = (Threshold("ghosts_max", "0", "count", "x"),)
    with pytest.raises(ValueError, match=r"^where: declare THRESHOLDS in the area's "
                                         r"declaration, AREA = Area\('ghosts'"):
        declaration_of(module, "ghosts", "where")
    module = types.ModuleType("ghosts_area")
    module.AREA = Area("spirits")
    with pytest.raises(ValueError, match=r"^where: AREA is named 'spirits', the area 'ghosts'"):
        declaration_of(module, "ghosts", "where")
    module.AREA = ("ghosts",)
    with pytest.raises(ValueError, match=r"^where: AREA must be an Area\(\.\.\.\) declaration"):
        declaration_of(module, "ghosts", "where")
    assert declaration_of(types.ModuleType("plain"), "plain", "where") == Area("plain")


def test_builtin_check_ids_come_from_the_areas():
    ids = builtin_check_ids()
    assert {i.split(".")[0] for i in ids} == {a.name for a in builtin_areas()}
    assert "connectivity.connect" in ids


AREA = '''
"""A third-party area: its checks, its declaration, an option of its own and a fixture."""

import pytest

from pytest_mlflowdb import Area, Option, Threshold, check


def _note(raw):
    return str(raw or "").strip().upper()


AREA = Area(
    "ghosts",
    thresholds=(Threshold("ghosts_max", "0", "count", "ghost experiments allowed"),),
    options=(Option("ghosts_note", "--mlflowdb-ghosts-note", "mlflowdb_ghosts_note",
                    "a note the ghosts check repeats", "NOTE", parse=_note),),
)


def pytest_addoption(parser):
    parser.addoption("--ghosts-label", default="ghosts")


@pytest.fixture
def ghosts_label(request):
    return request.config.getoption("ghosts_label")


@check("ghosts.experiments", thresholds=("ghosts_max",))
def test_ghosts(mlflowdb, mlflowdb_thresholds, mlflowdb_findings, ghosts_label,
                mlflowdb_settings):
    """Experiments without a name."""
    count = mlflowdb.value("SELECT count(*) FROM experiments WHERE name = ''")
    mlflowdb_findings.limit(ghosts_label, "nameless experiments", count, unit="count",
                            fail=mlflowdb_thresholds["ghosts_max"] + 1)
    mlflowdb_findings.ok("note", mlflowdb_settings.area_options["ghosts_note"])
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
        "--mlflowdb-ghosts-note= seen ", *workers)
    checks = checks_by_id(report(json_path))
    ghosts = checks["ghosts.experiments"]
    assert ghosts["outcome"] == "passed", result.stdout.str()
    finding = ghosts["findings"][0]
    assert finding["object"] == "nameless" and finding["threshold"] == "4"
    assert ghosts["findings"][1]["message"] == "SEEN"  # its own option, parsed by its own parser
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


def test_an_area_whose_thresholds_stand_outside_its_declaration_is_one_line_and_exit_4(
        pytester, monkeypatch):
    """Another package's area keeps the built-in areas' contract: a ``THRESHOLDS`` tuple
    beside no ``AREA`` would be ignored, so it is a usage error naming the area."""
    site = pytester.mkdir("site")
    (site / "old").mkdir()
    (site / "old" / "__init__.py").write_text("")
    (site / "old" / "area.py").write_text(
        "from pytest_mlflowdb import Threshold\n"
        "THRESHOLDS = (Threshold('old_max', '0', 'count', 'x'),)\n")
    info = site / "old-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: old\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest_mlflowdb.areas]\nold = old.area\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    pytester.makepyfile(test_plain="def test_one(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        "ERROR: area 'old' (old.area): declare THRESHOLDS in the area's declaration, "
        "AREA = Area('old', thresholds=..., options=...)")
    assert "Traceback" not in result.stderr.str()
