"""Report files belong to the run that wrote them: no stale report, no half-written one."""

from __future__ import annotations

import pytest
from helpers import report

# -- item: reports belong to the run that wrote them ----------------------------------
OLD_JSON = '{\n  "version": 1,\n  "targets": [],\n  "checks": [],\n  "stale": true\n}\n'
TEAM = """
from pathlib import Path


def test_a_first(mlflowdb):
    assert mlflowdb.value("SELECT 1") == 1


def test_b_report_gone_once_a_check_ran(mlflowdb):
    assert not Path({path!r}).exists()
"""


def test_an_earlier_report_is_removed_once_the_first_check_ran(pytester, mlflow_uri):
    json_path = pytester.path / "a.json"
    json_path.write_text(OLD_JSON)
    pytester.makepyfile(test_team=TEAM.format(path=str(json_path)))
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                                f"--mlflowdb-report={json_path}")
    assert result.ret == 0, result.stdout.str()
    assert "stale" not in report(json_path)


@pytest.mark.parametrize("args", [["--collect-only"], ["-k", "no_such_check"]])
def test_a_run_that_runs_no_check_leaves_the_earlier_report(pytester, mlflow_uri, args):
    """It writes none, and removes none: the earlier run's report is still that run's."""
    json_path, md_path = pytester.path / "a.json", pytester.path / "a.md"
    json_path.write_text(OLD_JSON)
    md_path.write_text("# MLflow database audit\n\nan earlier run's\n")
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
                                f"--mlflowdb-report={md_path}", *args)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    assert json_path.read_text() == OLD_JSON and "an earlier run's" in md_path.read_text()
    assert "report written" not in result.stdout.str()


def test_a_usage_error_leaves_the_earlier_report(pytester):
    json_path = pytester.path / "a.json"
    json_path.write_text(OLD_JSON)
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@h/db",
                                           "--mlflowdb-fail-on=sometimes",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert json_path.read_text() == OLD_JSON


@pytest.mark.parametrize("name, text", [("README.md", "# My project\n"),
                                        ("data.json", '{"mine": 1}\n'),
                                        ("node.prom", "my_metric 1\n")])
def test_a_file_the_plugin_did_not_write_is_never_replaced(pytester, mlflow_uri, name, text):
    path = pytester.path / name
    path.write_text(text)
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}",
                                           f"--mlflowdb-report={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is not a report pytest-mlflowdb wrote; refusing to replace it" in \
        result.stderr.str()
    assert "Traceback" not in result.stderr.str()
    assert path.read_text() == text
