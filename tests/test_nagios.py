"""Nagios / Icinga mode: one line on stdout, performance data, exit codes 0/1/2/3.

Run as real subprocesses: the line and the exit code are what a monitoring system sees.
"""

from __future__ import annotations

import re

import pytest
from helpers import report

LINE = re.compile(r"^MLFLOWDB (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+?)(?: \| (.*))?$")
PERF = re.compile(r"^'([^'=]+)'=(-?[0-9.]+)(s|ms|us|%|B|KB|MB|TB|c)?;[^;]*;[^;]*;[^;]*;[^;]*$")


def _status(result) -> tuple[str, str, dict[str, str]]:
    """The one status line's state, text and performance data; nothing else on stdout."""
    lines = [line for line in result.stdout.lines if line.strip()]
    assert len(lines) == 1, lines
    match = LINE.match(lines[0])
    assert match, lines[0]
    perf = {}
    for item in re.findall(r"'[^']*'=\S*|\S+", match.group(3) or ""):
        parsed = PERF.match(item)
        assert parsed, item
        perf[parsed.group(1)] = parsed.group(2) + (parsed.group(3) or "")
    return match.group(1), match.group(2), perf


def test_a_healthy_selection_is_ok_with_performance_data(pytester, mlflow_uri):
    json_path = pytester.path / "a.json"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-nagios",
                                           "-k", "connectivity", f"--mlflowdb-report={json_path}")
    state, text, perf = _status(result)
    document = report(json_path)
    total = len(document["checks"])
    assert (state, result.ret) == ("OK", 0), text
    assert text == f"0 warned, 0 failed of {total} checks"
    assert perf["checks_passed"] == str(document["summary"]["passed"])
    assert perf["checks_failed"] == "0" and perf["checks_warned"] == "0"
    assert perf["latency"].endswith("ms") and float(perf["latency"][:-2]) > 0
    assert perf["connect_time"].endswith("ms") and float(perf["duration"][:-1]) > 0


def test_a_warning_is_warning_and_names_the_check(pytester, mlflow_uri):
    json_path = pytester.path / "a.json"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-nagios",
                                           "--mlflowdb-set=latency_warn=1us",
                                           f"--mlflowdb-report={json_path}")
    state, text, perf = _status(result)
    document = report(json_path)
    warned = sorted(c["id"] for c in document["checks"] if c["outcome"] == "warned")
    assert "connectivity.latency" in warned and document["summary"]["failed"] == 0
    assert (state, result.ret) == ("WARNING", 1)
    assert text.startswith(f"{len(warned)} warned, 0 failed of {len(document['checks'])} "
                           "checks: ")
    assert sorted(text.split(": ", 1)[1].split(", ")) == warned
    assert perf["checks_warned"] == str(len(warned))


def test_an_unreachable_target_is_critical_also_under_xdist(pytester, mlflow_uri):
    down = "postgresql://u:Nag1os-s3cret-pw@127.0.0.1:1/nowhere"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-uri={down}",
                                           "--mlflowdb-nagios", "-n", "2")
    state, text, perf = _status(result)
    assert (state, result.ret) == ("CRITICAL", 2)
    assert "connectivity.connect on 127.0.0.1:1/nowhere (" in text
    assert "connection refused" in text.lower()  # why, not only which check
    assert " on 2 targets: " in text and perf["checks_failed"] == "1"
    assert "Nag1os-s3cret-pw" not in result.stdout.str() + result.stderr.str()
    assert any(label.endswith(" latency") for label in perf)  # per target, named


@pytest.mark.parametrize("args", [
    ["--mlflowdb-uri=postgresql://u:pw@h/db", "--mlflowdb-fail-on=bogus"],
    ["--mlflowdb-uri=postgresql://u:Us4ge-s3cret@h/db", "--mlflowdb-uri=mysql://u:Us4ge-s3cret@h/db"],
    ["--mlflowdb-uri-file=missing-fleet.txt"],
], ids=["bad-value", "bad-uri", "missing-file"])
def test_a_usage_error_is_unknown_in_one_line(pytester, args):
    result = pytester.runpytest_subprocess(*args, "--mlflowdb-nagios")
    state, text, perf = _status(result)
    assert (state, result.ret) == ("UNKNOWN", 3)
    assert text.startswith("--mlflowdb-") and not perf
    assert "Us4ge-s3cret" not in result.stdout.str() + result.stderr.str()
    assert not result.stderr.str().strip()


@pytest.mark.parametrize("bad", ["--no-such-option", "--mlflowdb-uri-files=fleet.txt",
                                 "--team-count=many"])
def test_a_command_line_pytest_refuses_is_unknown_too(pytester, bad):
    """pytest itself refuses these (its exit status 4) before any hook of the run: in
    Nagios mode that is still one UNKNOWN line and status 3. (A bad value for one of
    pytest's own options, ``--maxfail=many``, is refused before any plugin loads: that
    stays pytest's usage error.)"""
    pytester.makeconftest("def pytest_addoption(parser):\n"
                          "    parser.addoption('--team-flag', action='store_true')\n"
                          "    parser.addoption('--team-count', type=int)\n")
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u:Us4ge-s3cret@h/db",
                                           "--team-flag", bad, "--mlflowdb-nagios")
    state, text, perf = _status(result)
    assert (state, result.ret) == ("UNKNOWN", 3)
    assert bad.split("=")[0] in text and not perf
    assert "Us4ge-s3cret" not in result.stdout.str() + result.stderr.str()
    plain = pytester.runpytest_subprocess("--team-flag", bad)  # without: pytest's own way
    assert plain.ret == pytest.ExitCode.USAGE_ERROR


def test_no_target_is_unknown(pytester):
    result = pytester.runpytest_subprocess("--mlflowdb-nagios")
    state, text, _ = _status(result)
    assert (state, result.ret) == ("UNKNOWN", 3)
    assert "no check ran" in text
