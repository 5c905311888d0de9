"""An unreachable target fails the run whatever checks are selected, in every output."""

from __future__ import annotations

import socket

import pytest
from helpers import checks_by_id, document_outcomes, report
from test_outcomes import _junit, _terminal_outcomes


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- item: an unreachable target fails the run whatever is selected --------------------
TEAM = """
from pytest_mlflowdb import check


@check("team.experiments")
def test_experiments(mlflowdb, mlflowdb_findings):
    mlflowdb_findings.ok("experiments", "counted", mlflowdb.value("SELECT 1"))
"""


def test_an_unreachable_target_fails_a_run_of_team_checks_only(pytester):
    pytester.makepyfile(test_team=TEAM)
    uri = f"postgresql://u:pw@127.0.0.1:{_closed_port()}/mlflow"
    json_path, md_path = pytester.path / "a.json", pytester.path / "a.md"
    xml_path = pytester.path / "j.xml"
    result = pytester.runpytest_subprocess("test_team.py", f"--mlflowdb-uri={uri}",
                                           "--mlflowdb-no-builtin",
                                           f"--mlflowdb-report={json_path}",
                                           f"--mlflowdb-report={md_path}",
                                           f"--junitxml={xml_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _terminal_outcomes(result) == {"failed": 1, "skipped": 1}
    assert document_outcomes(json_path) == _terminal_outcomes(result)
    checks = checks_by_id(report(json_path))
    assert checks["connectivity.connect"]["outcome"] == "failed"
    assert "Connection refused" in checks["connectivity.connect"]["message"]
    assert checks["team.experiments"]["outcome"] == "skipped"
    assert _junit(xml_path)["failures"] == 1
    result.stdout.fnmatch_lines(["*cannot connect*Connection refused*"])
    assert "connectivity.connect" in md_path.read_text()


def test_an_unreachable_target_fails_the_run_when_connect_is_deselected(pytester):
    uri = f"postgresql://u:pw@127.0.0.1:{_closed_port()}/mlflow"
    json_path, xml_path = pytester.path / "a.json", pytester.path / "j.xml"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={uri}", "-k", "latency",
                                           f"--mlflowdb-report={json_path}",
                                           f"--junitxml={xml_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert document_outcomes(json_path) == _terminal_outcomes(result) == {"error": 1}
    latency = checks_by_id(report(json_path))["connectivity.latency"]
    assert latency["message"].startswith("target unreachable: ")
    assert "Connection refused" in latency["message"]
    assert _junit(xml_path)["errors"] == 1
