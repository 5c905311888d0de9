"""A built-in area declares its own options: ``OPTIONS`` beside ``THRESHOLDS``, read from
its source (the dormant plugin imports no psycopg), added as a flag and its ini twin,
resolved once with their source and validated into ``Settings.area_options``."""

from __future__ import annotations

import textwrap

import pytest

from pytest_mlflowdb import areas
from pytest_mlflowdb.areas import Area, declared_options

BLOAT = '''
"""A built-in-style area that needs an option (as the bloat area does)."""

import psycopg  # importing the module would load psycopg: its OPTIONS are read, not run

OPTIONS = (
    Option("bloat_mode", "--mlflowdb-bloat", "mlflowdb_bloat",
           "how to measure bloat: estimate (default, from statistics) or exact",
           "MODE", choices=("estimate", "exact"), default="estimate"),
)
'''

SEES = '''
def test_sees(mlflowdb_settings):
    print("\\nBLOAT_MODE=" + mlflowdb_settings.area_options["bloat_mode"])
'''


@pytest.fixture
def bloat_area(pytester, monkeypatch):
    """``bloat.py`` as a built-in area, in place of the real one (same flag). The
    process-wide caches of the areas' declarations must not keep the stand-in."""
    areas.builtin_thresholds.cache_clear()
    yield from _stand_in(pytester, monkeypatch)
    areas.builtin_thresholds.cache_clear()


def _stand_in(pytester, monkeypatch):
    path = pytester.path / "bloat_area" / "bloat.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(BLOAT))
    builtin = tuple(a for a in areas.builtin_areas() if a.name != "bloat")
    monkeypatch.setattr(areas, "builtin_areas",
                        lambda: (*builtin, Area("bloat", "bloat", path)))
    pytester.makepyfile(test_sees=SEES)
    yield path


def _mode(result: pytest.RunResult) -> str:
    return next(line.split("=", 1)[1] for line in result.outlines
                if line.startswith("BLOAT_MODE="))


def test_an_area_option_is_a_flag_and_an_ini_key_with_a_default(pytester, bloat_area):
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider")
    assert result.ret == 0 and _mode(result) == "estimate"
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider", "--mlflowdb-bloat=exact")
    assert result.ret == 0 and _mode(result) == "exact"
    pytester.makeini("[pytest]\nmlflowdb_bloat = EXACT\n")
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider")
    assert result.ret == 0 and _mode(result) == "exact"
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider",
                                          "--mlflowdb-bloat=estimate")
    assert result.ret == 0 and _mode(result) == "estimate"  # the command line wins
    help_text = pytester.runpytest_inprocess("--help", "-p", "no:cacheprovider").stdout.str()
    assert "--mlflowdb-bloat=MODE" in help_text
    assert "mlflowdb_bloat (string):" in help_text


@pytest.mark.parametrize(("args", "ini", "named"), [
    (["--mlflowdb-bloat=precise"], "", "--mlflowdb-bloat (command line)"),
    ([], "mlflowdb_bloat = precise\n", "mlflowdb_bloat ({ini})"),
    (["-o", "mlflowdb_bloat=precise"], "", "mlflowdb_bloat (-o on the command line)"),
], ids=["flag", "ini", "override"])
def test_a_bad_area_option_is_one_line_naming_its_source(pytester, bloat_area, args, ini,
                                                         named):
    ini_path = pytester.makeini("[pytest]\n" + ini)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines[0] == (
        f"ERROR: {named.format(ini=ini_path)}: unknown value 'precise'; "
        "choose one of estimate, exact")
    assert "Traceback" not in result.stderr.str()


def test_options_are_read_from_the_source_without_importing_it(bloat_area):
    (option,) = declared_options(bloat_area)
    assert (option.flag, option.ini, option.dest) == ("--mlflowdb-bloat", "mlflowdb_bloat",
                                                      "mlflowdb_bloat")
    assert option.choices == ("estimate", "exact")


def test_an_area_option_must_follow_the_naming_rules(tmp_path):
    path = tmp_path / "bloat.py"
    path.write_text('OPTIONS = (Option("bloat", "--bloat", "bloat", "help"),)\n')
    with pytest.raises(ValueError, match=r"bloat\.py.*--mlflowdb-"):
        declared_options(path)


def test_the_index_area_declares_its_own_option():
    indexes = next(a for a in areas.builtin_areas() if a.name == "indexes")
    assert [o.ini for o in declared_options(indexes.path)] == ["mlflowdb_recommended_indexes"]
    from pytest_mlflowdb.options import OPTIONS

    assert "mlflowdb_recommended_indexes" not in {o.ini for o in OPTIONS}


def test_an_area_option_that_takes_a_core_name_is_one_line(pytester, monkeypatch):
    path = pytester.path / "clash.py"
    path.write_text('OPTIONS = (Option("clash", "--mlflowdb-uri", "mlflowdb_clash", "h"),)\n')
    builtin = tuple(a for a in areas.builtin_areas() if a.name != "bloat")
    monkeypatch.setattr(areas, "builtin_areas",
                        lambda: (*builtin, Area("clash", "clash", path)))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines[0] == ("ERROR: the option 'clash' of a built-in area takes a name "
                                  "already taken: --mlflowdb-uri")


OPT_IN = '''
from pytest_mlflowdb import check


@check("team.kept_history", enabled_by=("history",))
def test_kept_history(mlflowdb_findings, mlflowdb_settings):
    """Runs only when --mlflowdb-history is given."""
    mlflowdb_findings.ok("history", mlflowdb_settings.area_options["history"])
'''


def test_an_opt_in_check_is_deselected_not_skipped_until_its_option_is_set(
        pytester, mlflow_uri, tmp_path):
    from helpers import audit

    pytester.makepyfile(test_team=OPT_IN)
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-no-builtin")
    assert "team.kept_history" not in checks
    assert result.parseoutcomes().get("deselected") == 1
    assert "skipped" not in result.parseoutcomes()
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-no-builtin",
                           f"--mlflowdb-history={tmp_path / 'kept'}")
    assert checks["team.kept_history"]["outcome"] == "passed"
