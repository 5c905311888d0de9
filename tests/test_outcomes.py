"""The terminal, the JSON and Markdown reports, JUnit XML and the exit code tell one story.

Each test runs pytest on a real database (or a closed port) and compares what pytest
itself counted with what the report says.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from helpers import checks_by_id, document_outcomes, report

from pytest_mlflowdb import __version__


def _terminal_outcomes(result) -> dict[str, int]:
    """pytest's own count line, in the report's words (``errors`` -> ``error``)."""
    words = {"errors": "error", "error": "error", "passed": "passed", "failed": "failed",
             "skipped": "skipped", "warned": "warned"}
    return {words[k]: v for k, v in result.parseoutcomes().items() if k in words}


def _junit(path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}


# -- item: --mlflowdb-fail-on=warning --------------------------------------------------
def test_fail_on_warning_makes_every_warned_check_a_junit_failure(pytester, mlflow_uri):
    json_path, md_path = pytester.path / "a.json", pytester.path / "a.md"
    xml_path = pytester.path / "j.xml"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-set=latency_warn=1us",
                                "--mlflowdb-fail-on=warning", f"--mlflowdb-report={json_path}",
                                f"--mlflowdb-report={md_path}", f"--junitxml={xml_path}", "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    document = report(json_path)
    warned = sorted(c["id"] for c in document["checks"] if c["outcome"] == "warned")
    assert warned == ["connectivity.latency", "indexes.recommended"]
    assert document["summary"]["failed"] == document["summary"]["error"] == 0
    assert document["run"] | {"duration_s": 0, "end_time": 0} == {
        "fail_on": "warning", "failing": 2, "duration_s": 0, "end_time": 0,
        "plugin_version": __version__}
    junit = _junit(xml_path)
    assert junit["failures"] == len(warned) and junit["errors"] == 0
    assert _terminal_outcomes(result)["failed"] == len(warned)
    result.stdout.re_match_lines([r".*test_latency\[.*\] WARNED.*"])
    result.stdout.fnmatch_lines(["*median of 5 round trips: *, at or above 1us*"])
    assert "2 warned checks fail this run" in md_path.read_text()


def test_fail_on_error_leaves_warned_checks_passing_in_junit(pytester, mlflow_uri):
    json_path, xml_path = pytester.path / "a.json", pytester.path / "j.xml"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
                                f"--junitxml={xml_path}")
    assert result.ret == 0
    assert report(json_path)["run"] | {"duration_s": 0, "end_time": 0} == {
        "fail_on": "error", "failing": 0, "duration_s": 0, "end_time": 0,
        "plugin_version": __version__}
    assert _junit(xml_path)["failures"] == 0
    assert _terminal_outcomes(result)["warned"] == report(json_path)["summary"]["warned"] == 1


# -- item: every outcome pytest counts is in the report -------------------------------
TEARDOWN_ERROR = """
import pytest
from pytest_mlflowdb import check


@pytest.fixture
def team_resource():
    yield
    raise RuntimeError("could not release the team resource")


@check("team.teardown")
def test_teardown(mlflowdb, mlflowdb_findings, team_resource):
    mlflowdb_findings.ok("server", "fine")
"""


def test_a_teardown_error_is_an_error_in_the_report(pytester, mlflow_uri):
    pytester.makepyfile(test_team=TEARDOWN_ERROR)
    json_path, xml_path = pytester.path / "a.json", pytester.path / "j.xml"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                                f"--mlflowdb-report={json_path}", f"--junitxml={xml_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _terminal_outcomes(result)["error"] == 1
    assert document_outcomes(json_path) == _terminal_outcomes(result)
    records = [c for c in report(json_path)["checks"] if c["id"] == "team.teardown"]
    assert [r["outcome"] for r in records] == ["passed", "error"]
    assert records[1]["message"].startswith("error in teardown: RuntimeError: could not release")
    assert _junit(xml_path)["errors"] == 1


CRASH = """
import os
from pytest_mlflowdb import check


@check("team.fine")
def test_fine(mlflowdb, mlflowdb_findings):
    mlflowdb_findings.ok("server", "fine")


@check("team.crash")
def test_crash(mlflowdb, mlflowdb_findings):
    os._exit(1)
"""


def test_a_crashed_xdist_worker_is_a_failed_check_in_the_report(pytester, mlflow_uri):
    pytester.makepyfile(test_team=CRASH)
    json_path, xml_path = pytester.path / "a.json", pytester.path / "j.xml"
    result = pytester.runpytest_subprocess("-n", "2", f"--mlflowdb-uri={mlflow_uri}",
                                           "--mlflowdb-no-builtin",
                                           f"--mlflowdb-report={json_path}",
                                           f"--junitxml={xml_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _terminal_outcomes(result)["failed"] == 1
    assert document_outcomes(json_path) == _terminal_outcomes(result)
    document = report(json_path)
    crash = checks_by_id(document)["team.crash"]
    assert crash["outcome"] == "failed"
    assert "crashed while running" in crash["message"]
    assert crash["target"] == document["targets"][0]["id"]
    assert crash["nodeid"].endswith(f"test_crash[{crash['target']}]")
    # pytest's JUnit writer files a report outside setup/call/teardown as an <error>
    junit = _junit(xml_path)
    assert junit["failures"] + junit["errors"] == 1


PROPS = '''
def pytest_runtest_logreport(report):
    if report.when == "teardown" and "team_props" in report.nodeid:
        print(f"\\nPROPS={[name for name, _ in report.user_properties]}")
'''
TEAM_PROPS = '''
from pytest_mlflowdb import check


@check("team.props")
def test_props(mlflowdb, mlflowdb_findings):
    mlflowdb_findings.ok("server", "fine")
'''


def test_junit_properties_ride_on_test_reports_only_for_junit_xml(pytester, mlflow_uri):
    """Each finding becomes a JUnit property with --junitxml; without it, the properties
    would only weigh down every report an xdist worker sends."""
    pytester.makeconftest(PROPS)
    pytester.makepyfile(test_team_props=TEAM_PROPS)
    plain = pytester.runpytest_subprocess("-s", f"--mlflowdb-uri={mlflow_uri}",
                                          "--mlflowdb-no-builtin")
    assert "PROPS=[]" in plain.outlines
    xml = pytester.runpytest_subprocess("-s", f"--mlflowdb-uri={mlflow_uri}",
                                        "--mlflowdb-no-builtin",
                                        f"--junitxml={pytester.path / 'j.xml'}")
    assert "PROPS=['mlflowdb.check', 'mlflowdb.outcome', 'mlflowdb.finding']" in xml.outlines


FROZEN = '''
import gc

from pytest_mlflowdb import check


@check("team.frozen")
def test_frozen(request, mlflowdb, mlflowdb_findings):
    # more frozen than when the run was configured (Python 3.12 starts with some frozen)
    print(f"\\nFROZEN={gc.get_freeze_count() > request.config.frozen_at_configure}")
    mlflowdb_findings.ok("server", "fine")
'''


REFUSING = """
import gc
import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.frozen_at_configure = gc.get_freeze_count()
    if os.environ.get("TEAM_REFUSES"):
        raise pytest.UsageError("the team's configure refuses")
"""


def test_only_a_run_of_checks_alone_leaves_its_objects_out_of_garbage_collection(
        pytester, mlflow_uri, monkeypatch):
    """Freezing what a run made up to its checks saves the collections at its end; it
    must not happen beside a team's other tests, nor in a run inside another pytest
    (also after an inner run whose configure failed before this plugin's turn)."""
    import gc

    pytester.makepyfile(test_team_frozen=FROZEN)
    pytester.makeconftest(REFUSING)
    args = ("-s", "-p", "no:cacheprovider", f"--mlflowdb-uri={mlflow_uri}",
            "--mlflowdb-no-builtin")
    assert "FROZEN=True" in pytester.runpytest_subprocess(*args).outlines
    monkeypatch.setenv("TEAM_REFUSES", "1")
    assert pytester.runpytest_inprocess(*args).ret == pytest.ExitCode.USAGE_ERROR
    monkeypatch.delenv("TEAM_REFUSES")
    before = gc.get_freeze_count()
    inner = pytester.runpytest_inprocess(*args)
    assert "FROZEN=False" in inner.outlines and gc.get_freeze_count() == before
    pytester.makepyfile(test_other="def test_other():\n    assert True\n")
    assert "FROZEN=False" in pytester.runpytest_subprocess(*args).outlines


DEFERRED = '''
import gc

from pytest_mlflowdb import check


@check("team.deferred")
def test_deferred(request, mlflowdb_findings):
    config = request.config
    print(f"\\nDEFERRED={config.while_collecting[2] > config.at_configure[2]}"
          f" RESTORED={gc.get_threshold() == config.at_configure}")
    mlflowdb_findings.ok("server", "fine")
'''

WATCHING = """
import gc

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.at_configure = gc.get_threshold()


def pytest_collection_modifyitems(config):
    config.while_collecting = gc.get_threshold()
"""


def test_full_collections_wait_for_the_end_of_collection_and_only_in_a_run_of_its_own(
        pytester, mlflow_uri):
    """A full garbage collection during collection walks everything the run has made,
    which a run of checks alone freezes right after: deferred until collection ends, the
    thresholds then restored; never in a run inside another pytest (the collector is the
    outer run's)."""
    import gc

    pytester.makepyfile(test_team_deferred=DEFERRED)
    pytester.makeconftest(WATCHING)
    args = ("-s", "-p", "no:cacheprovider", f"--mlflowdb-uri={mlflow_uri}",
            "--mlflowdb-no-builtin")
    assert "DEFERRED=True RESTORED=True" in pytester.runpytest_subprocess(*args).outlines
    before = gc.get_threshold()
    inner = pytester.runpytest_inprocess(*args)
    assert "DEFERRED=False RESTORED=True" in inner.outlines
    assert gc.get_threshold() == before


def test_pytest_debug_log_holds_no_password(pytester):
    """pytest --debug writes the command line and every hook's arguments to its file."""
    result = pytester.runpytest_subprocess(
        "--debug=dbg.log", "--mlflowdb-uri=postgresql://u:D3bugS3cretPw@127.0.0.1:1/db",
        "--mlflowdb-no-builtin")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # unreachable, but ran
    log = (pytester.path / "dbg.log").read_text()
    assert "args=" in log and "pytest_runtest_logreport" in log  # the log is all there
    assert "D3bugS3cretPw" not in log
    assert "u:***@127.0.0.1:1/db" in log
