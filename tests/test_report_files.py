"""Report files belong to the run that wrote them: no stale report, no half-written one."""

from __future__ import annotations

import pytest
from helpers import report


# -- item: reports belong to the run that wrote them ----------------------------------
def test_a_stale_report_is_removed_when_the_run_starts(pytester, mlflow_uri):
    json_path = pytester.path / "a.json"
    json_path.write_text('{"stale": true}')
    pytester.makepyfile(test_plain=f"""
        from pathlib import Path

        def test_report_gone_before_connect_runs():
            assert not Path({str(json_path)!r}).exists()
    """)
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "-k", "test_connect or gone_before",
                                f"--mlflowdb-report={json_path}")
    assert result.ret == 0, result.stdout.str()
    assert "stale" not in report(json_path)


@pytest.mark.parametrize("args", [["--collect-only"], ["-k", "no_such_check"]])
def test_a_run_that_runs_no_check_writes_no_report_and_leaves_none(pytester, mlflow_uri, args):
    json_path, md_path = pytester.path / "a.json", pytester.path / "a.md"
    json_path.write_text('{"stale": true}')
    md_path.write_text("# stale")
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
                                f"--mlflowdb-report={md_path}", *args)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    assert not json_path.exists() and not md_path.exists()
    assert "report written" not in result.stdout.str()


def test_a_usage_error_removes_a_stale_report(pytester):
    json_path = pytester.path / "a.json"
    json_path.write_text('{"stale": true}')
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@h/db",
                                           "--mlflowdb-fail-on=sometimes",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not json_path.exists()
