"""A built-in area declares its own options in its ``AREA`` beside its thresholds (a light
module: the dormant plugin imports no psycopg), added as a flag and its ini twin,
resolved once with their source and validated into ``Settings.area_options``."""

from __future__ import annotations

import pytest

from pytest_mlflowdb.config import areas
from pytest_mlflowdb.config.declare import Area, Option

#: a built-in-style area that needs an option (as the bloat area does)
BLOAT = Area("bloat", options=(
    Option("bloat_mode", "--mlflowdb-bloat", "mlflowdb_bloat",
           "how to measure bloat: estimate (default, from statistics) or exact",
           "MODE", choices=("estimate", "exact"), default="estimate"),
))

SEES = '''
def test_sees(mlflowdb_settings):
    print("\\nBLOAT_MODE=" + mlflowdb_settings.area_options["bloat_mode"])
'''


@pytest.fixture
def bloat_area(pytester, monkeypatch):
    """``bloat``'s declaration stands in for the real one (same flag)."""
    _stand_in(monkeypatch, BLOAT)
    pytester.makepyfile(test_sees=SEES)
    return BLOAT


def _stand_in(monkeypatch, declaration):
    builtin = tuple(a for a in areas.builtin_declarations() if a.name != declaration.name)
    monkeypatch.setattr(areas, "builtin_declarations", lambda: (*builtin, declaration))


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


DORMANT = '''
import sys


def test_nothing_heavy():
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "checks")
                   or m.startswith(("pytest_mlflowdb.checks", "pytest_mlflowdb.probes",
                                    "pytest_mlflowdb.backup", "pytest_mlflowdb.db.database")))
    assert heavy == []
    assert "pytest_mlflowdb.config.declarations.bloat" in sys.modules  # its options were added
'''


def test_a_dormant_run_never_imports_psycopg_or_the_check_modules(pytester):
    pytester.makepyfile(test_dormant=DORMANT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    help_text = pytester.runpytest_subprocess("--help", "-p", "no:cacheprovider").stdout.str()
    assert "--mlflowdb-bloat=MODE" in help_text


def test_a_declared_option_parses_with_a_real_function():
    from pytest_mlflowdb.config.declarations.indexes import AREA, parse_index_plan
    from pytest_mlflowdb.indexes.recommended import DEFAULT_RECOMMENDED

    (option,) = AREA.options
    assert option.parse is parse_index_plan
    plan = option.parse(["-foreign_keys"])
    assert plan.indexes == DEFAULT_RECOMMENDED and not plan.foreign_keys
    (bloat,) = [a for a in areas.builtin_declarations() if a.name == "bloat"]
    mode = bloat.options[0]
    assert (mode.flag, mode.ini, mode.dest) == ("--mlflowdb-bloat", "mlflowdb_bloat",
                                                "mlflowdb_bloat")
    assert mode.choices == ("estimate", "exact")


def test_an_area_option_must_follow_the_naming_rules():
    area = Area("bloat", options=(Option("bloat", "--bloat", "bloat", "help"),))
    assert "--mlflowdb-" in (area.error() or "")
    area = Area("bloat", options=(Option("bloat", "--mlflowdb-bloat", None, "h",
                                         parse="pytest_mlflowdb:nothing"),))  # type: ignore[arg-type]
    assert "is not a function" in (area.error() or "")


def test_the_index_area_declares_its_own_option():
    (indexes,) = [a for a in areas.builtin_declarations() if a.name == "indexes"]
    assert [o.ini for o in indexes.options] == ["mlflowdb_recommended_indexes"]
    from pytest_mlflowdb.config.declare import OPTIONS

    assert "mlflowdb_recommended_indexes" not in {o.ini for o in OPTIONS}


def test_an_area_option_that_takes_a_core_name_is_one_line(pytester, monkeypatch):
    _stand_in(monkeypatch, Area("clash", options=(
        Option("clash", "--mlflowdb-uri", "mlflowdb_clash", "h"),)))
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
