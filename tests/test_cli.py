"""Command-line behaviour: dormancy, usage errors, exit codes, reports, JUnit, xdist."""

from __future__ import annotations

import json
import socket
import threading
import xml.etree.ElementTree as ET
from urllib.parse import unquote, urlsplit

import pytest
from helpers import (
    checks_by_id,
    dbname_of,
    document_outcomes,
    genuine_head,
    past_end_of_life,
    path_major,
    report,
    role_uri,
)

from pytest_mlflowdb.catalog.mlflow_schema import apply_catalog_schema
from pytest_mlflowdb.config.areas import builtin_check_ids
from pytest_mlflowdb.config.registry import REGISTRY

# The default audit's built-in checks, as the areas' registry knows them (adding a check
# changes no test); opt-in ones (@check(enabled_by=...)) are deselected by default.
BUILTIN = {i for i in builtin_check_ids() if not REGISTRY[i].enabled_by}
# On a genuine, fresh MLflow database: MLflow itself lacks the recommended indexes (a
# warning by design), statistics are too young to call an index unused (a skip), and
# MLflow creates no pg_stat_statements, which the platform guide adds (workload.operations
# skips saying so).
HEALTHY = {"passed": len(BUILTIN) - 3, "warned": 1, "skipped": 2}


# -- dormant ---------------------------------------------------------------------------
def test_dormant_without_options_runs_an_unrelated_suite_unchanged(pytester):
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_one():
            assert 1 + 1 == 2

        def test_no_heavy_imports():
            heavy = {"psycopg", "tabulate", "testcontainers", "mlflow"} & set(sys.modules)
            assert not heavy, heavy
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "mlflowdb audit" not in result.stdout.str()
    plain = pytester.runpytest_subprocess("-q", "-p", "no:mlflowdb", "-p", "no:cacheprovider")
    plain.assert_outcomes(passed=2)


def test_dormant_collects_exactly_the_same_items(pytester):
    pytester.makepyfile(test_a="def test_a(): pass\ndef test_b(): pass")
    with_plugin = pytester.runpytest_subprocess("--collect-only", "-q")
    without = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:mlflowdb")
    assert with_plugin.stdout.lines[:2] == without.stdout.lines[:2] == [
        "test_a.py::test_a", "test_a.py::test_b"
    ]


def test_mlflowdb_fixture_skips_when_dormant(pytester):
    pytester.makepyfile(test_team="def test_x(mlflowdb):\n    pass\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no MLflow database to audit*"])


# -- usage errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, expected",
    [
        (["--mlflowdb-uri=mysql://u:pw@h/db"], "unsupported URI scheme 'mysql'"),
        (["--mlflowdb-uri=postgresql://u:pw@h:abc/db"], "port 'abc' is not a number"),
        (["--mlflowdb-uri=not a uri"], "neither a postgresql:// URI nor a key=value"),
        (["--mlflowdb-ephemeral=docker"], "unknown kind 'docker'"),
        (["--mlflowdb-ephemeral", "--mlflowdb-set=nope=1"], "unknown threshold 'nope'"),
        (["--mlflowdb-ephemeral", "--mlflowdb-set=latency_warn=fast"], "latency_warn"),
        (["--mlflowdb-ephemeral", "--mlflowdb-set=latency_warn"], "is not NAME=VALUE"),
        (["--mlflowdb-ephemeral", "--mlflowdb-fail-on=sometimes"], "unknown value"),
        (["--mlflowdb-ephemeral", "--mlflowdb-report=out.txt"],
         "must end in .json, .md, .prom or .html"),
        (["--mlflowdb-ephemeral", "--mlflowdb-connect-timeout=soon"], "connect-timeout"),
        (["--mlflowdb-ephemeral", "--mlflowdb-statement-timeout=30d"], "is outside"),
        (["--mlflowdb-ephemeral", "--mlflowdb-set=latency_samples=100000000000"],
         "latency_samples: '100000000000' is outside 1 to 1000"),
        (["--mlflowdb-ephemeral", "--mlflowdb-set=latency_warn=2s"],
         "latency_warn (2s) is above latency_fail (1s)"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(pytester, args, expected):
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert expected in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert ":pw@" not in result.stdout.str() + result.stderr.str()


def test_list_checks_prints_ids_and_thresholds(pytester):
    result = pytester.runpytest_subprocess("--mlflowdb-list-checks",
                                           "--mlflowdb-set=latency_warn=75ms",
                                           "--mlflowdb-set=long_query_warn=300s")
    assert result.ret == 0
    out = result.stdout.str()
    for check_id in BUILTIN:
        assert f"{check_id}:" in out
    assert "latency_warn = 75ms (duration; default 50ms)" in out
    # values in the unit they were written in, not converted (26h is not "1.08d")
    assert "max_backup_age = 26h (duration; default 26h)" in out
    assert "long_query_warn = 300s (duration; default 5min)" in out


# -- a healthy audit -------------------------------------------------------------------
def test_audit_of_genuine_database_passes_with_reports(pytester, mlflow_uri):
    json_path = pytester.path / "out" / "audit.json"
    md_path = pytester.path / "audit.md"
    xml_path = pytester.path / "junit.xml"
    result = pytester.runpytest(
        f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
        f"--mlflowdb-report={md_path}", f"--junitxml={xml_path}", "--mlflowdb-verbose",
    )
    assert result.ret == 0
    result.assert_outcomes(passed=HEALTHY["passed"], skipped=HEALTHY["skipped"],
                           warnings=None)
    assert document_outcomes(json_path) == HEALTHY
    out = result.stdout.str()
    assert "mlflowdb audit" in out and "connectivity.latency" in out
    assert ";;" not in out  # indexes.recommended's statements, one separator after each
    document = report(json_path)
    assert document["version"] == 1
    assert set(document["summary"]) == {"passed", "warned", "failed", "skipped", "error"}
    assert document["summary"]["passed"] == HEALTHY["passed"]
    (target,) = document["targets"]
    assert target["id"] == f"127.0.0.1:{mlflow_uri.split(':')[-1].split('/')[0]}/" + \
        dbname_of(mlflow_uri)
    assert target["server_version"].startswith("18.")
    assert len(target["schema_revision"]) == 12
    assert ":***@" in target["uri"]
    checks = checks_by_id(document)
    assert set(checks) == BUILTIN
    release, revision = genuine_head()
    assert target["schema_revision"] == revision
    assert release in target["mlflow_versions"]
    for check in checks.values():
        assert {"id", "nodeid", "target", "outcome", "severity", "message", "findings",
                "duration_s"} <= set(check)
        assert check["findings"] or check["outcome"] == "skipped", check["id"]
        for finding in check["findings"]:
            assert {"object", "severity", "value", "threshold", "message"} <= set(finding)
    assert checks["connectivity.latency"]["findings"][0]["value"].endswith(("ms", "us"))
    assert "public" in checks["connectivity.privileges"]["message"] + json.dumps(
        checks["connectivity.privileges"]["findings"])
    markdown = md_path.read_text()
    assert markdown.startswith("# MLflow database audit")
    assert "`connectivity.headroom`" in markdown
    tree = ET.parse(xml_path)
    properties = {p.get("name") for p in tree.iter("property")}
    assert {"mlflowdb.check", "mlflowdb.outcome", "mlflowdb.finding"} <= properties


# -- failures, warnings, errors --------------------------------------------------------
def test_threshold_override_turns_a_check_into_warned(pytester, mlflow_uri):
    json_path = pytester.path / "a.json"
    args = [f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-set=latency_warn=1us",
            f"--mlflowdb-report={json_path}"]
    result = pytester.runpytest(*args)
    assert result.ret == 0
    result.stdout.re_match_lines([r".*\b2 warned\b.*"])  # with indexes.recommended
    latency = checks_by_id(report(json_path))["connectivity.latency"]
    assert latency["outcome"] == "warned"
    assert latency["findings"][0]["object"] == "server"
    assert latency["findings"][0]["threshold"] == "1us"
    strict = pytester.runpytest(*args, "--mlflowdb-fail-on=warning")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


def test_failed_check_fails_the_run_naming_the_object(pytester, mlflow_uri):
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-set=latency_warn=1us",
                                "--mlflowdb-set=latency_fail=1us",
                                f"--mlflowdb-report={json_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*_ test_latency[[]*", "server: median of 5 round trips: *, "
                                 "at or above 1us"])
    assert checks_by_id(report(json_path))["connectivity.latency"]["outcome"] == "failed"


def test_a_check_that_breaks_is_an_error_not_a_failure(pytester, mlflow_uri):
    pytester.makepyfile(test_team="""
        from pytest_mlflowdb import check

        @check("team.broken")
        def test_broken(mlflowdb, mlflowdb_findings):
            mlflowdb.value("SELECT * FROM no_such_table")
    """)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                                f"--mlflowdb-report={json_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    broken = checks_by_id(report(json_path))["team.broken"]
    assert broken["outcome"] == "error"
    assert "no_such_table" in broken["message"]
    result.stdout.re_match_lines([r".*\b1 error\b.*"])


# -- unreachable targets, redaction ----------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wrong_password_fails_connect_skips_the_rest_and_never_leaks(
        pytester, pg18, mlflow_uri, mlflow_role):
    user, _password = mlflow_role
    secret = "Wr0ng!Pass@word"
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, secret)
    json_path = pytester.path / "a.json"
    md_path = pytester.path / "a.md"
    xml_path = pytester.path / "j.xml"
    result = pytester.runpytest_subprocess(
        f"--mlflowdb-uri={uri}", f"--mlflowdb-report={json_path}", f"--mlflowdb-report={md_path}",
        f"--junitxml={xml_path}", "-rA", "-v",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, skipped=len(BUILTIN) - 1)
    result.stdout.fnmatch_lines(["*password authentication failed*"])
    result.stdout.fnmatch_lines(["*target unreachable*"])
    assert "Traceback" not in result.stdout.str()
    everything = "\n".join([result.stdout.str(), result.stderr.str(), json_path.read_text(),
                            md_path.read_text(), xml_path.read_text()])
    from urllib.parse import quote
    for form in (secret, quote(secret, safe=""), quote(secret)):
        assert form not in everything
    document = report(json_path)
    assert document["summary"]["failed"] == 1
    assert document["targets"][0]["uri"].startswith(f"postgresql://{user}:***@")


def test_closed_port_fails_quickly_with_one_line(pytester):
    uri = f"postgresql://u:pw@127.0.0.1:{_closed_port()}/mlflow"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={uri}", "--mlflowdb-connect-timeout=3s")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, skipped=len(BUILTIN) - 1)
    result.stdout.fnmatch_lines(["*cannot connect*Connection refused*"])


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_host_that_never_answers_fails_within_the_timeout(pytester, silent_server):
    uri = f"postgresql://u:pw@127.0.0.1:{silent_server}/mlflow?sslmode=disable"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={uri}",
                                           "--mlflowdb-connect-timeout=2s", "--durations=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, skipped=len(BUILTIN) - 1)
    result.stdout.fnmatch_lines(["*cannot connect*"])


# -- several targets -------------------------------------------------------------------
def test_two_targets_under_xdist(pytester, mlflow_uri, pg15, mlflowdb_database_factory):
    other = pg15.create_database("xdist_target")
    apply_catalog_schema(other)
    json_path = pytester.path / "a.json"
    xml_path = pytester.path / "j.xml"
    try:
        result = pytester.runpytest_subprocess(
            "-n", "2", f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-uri={other}",
            f"--mlflowdb-report={json_path}", f"--junitxml={xml_path}",
        )
    finally:
        pg15.drop_database("xdist_target")
    assert result.ret == 0, result.stdout.str()
    eol = int(past_end_of_life(path_major()))  # tox.ini's pg14 environment, say
    result.assert_outcomes(passed=2 * HEALTHY["passed"] - eol, skipped=2 * HEALTHY["skipped"])
    document = report(json_path)
    assert [t["id"] for t in document["targets"]] == [
        f"127.0.0.1:{mlflow_uri.split(':')[-1].split('/')[0]}/{dbname_of(mlflow_uri)}",
        f"127.0.0.1:{pg15.port}/xdist_target",
    ]
    assert {t["server_version"].split(".")[0] for t in document["targets"]} == {path_major(),
                                                                              "18"}
    assert len(document["checks"]) == 2 * len(BUILTIN)
    assert document["summary"]["warned"] == 2 + eol
    assert result.stdout.str().count("mlflowdb audit") == 1
    ids = {tc.get("name") for tc in ET.parse(xml_path).iter("testcase")}
    assert f"test_latency[127.0.0.1:{pg15.port}/xdist_target]" in ids


# -- hooks -----------------------------------------------------------------------------
def test_hooks_add_thresholds_and_receive_the_report(pytester, mlflow_uri, monkeypatch):
    password = unquote(urlsplit(mlflow_uri).password or "")
    assert len(password) >= 8  # long enough to be searched for in free text
    monkeypatch.setenv("TEAM_SECRET", password)
    pytester.makeconftest("""
        import json, os

        from pytest_mlflowdb import Threshold

        def pytest_mlflowdb_thresholds(config):
            return [Threshold("team_max_experiments", "1000", "count", "experiments allowed",
                              ("team.experiments",))]

        def pytest_mlflowdb_report(report, config):  # it may send the report anywhere
            leaked = os.environ["TEAM_SECRET"] in json.dumps(report)
            report["extra"] = {"seen": sorted(c["id"] for c in report["checks"]),
                               "leaked": leaked}
    """)
    pytester.makepyfile(test_team="""
        import os

        from pytest_mlflowdb import check

        @check("team.experiments", thresholds=("team_max_experiments",))
        def test_experiments(mlflowdb, mlflowdb_thresholds, mlflowdb_findings):
            mlflowdb_findings.info("secret", "a check that echoes " + os.environ["TEAM_SECRET"])
            count = mlflowdb.value("SELECT count(*) FROM experiments")
            mlflowdb_findings.limit("experiments", "experiments", count, unit="count",
                                    fail=mlflowdb_thresholds["team_max_experiments"])
    """)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                                "--mlflowdb-set=team_max_experiments=0",
                                f"--mlflowdb-report={json_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    document = report(json_path)
    # connectivity.connect is collected even with --mlflowdb-no-builtin
    assert document["extra"] == {"seen": ["connectivity.connect", "team.experiments"],
                                 "leaked": False}
    finding = checks_by_id(document)["team.experiments"]["findings"][1]
    assert finding["object"] == "experiments" and finding["threshold"] == "0"


def test_fixtures_are_documented(pytester):
    result = pytester.runpytest("--fixtures")
    out = result.stdout.str()
    for name in ("mlflowdb", "mlflowdb_target", "mlflowdb_thresholds", "mlflowdb_findings",
                 "mlflowdb_server", "mlflowdb_database_factory", "mlflowdb_connection"):
        assert f"{name} [" in out or f"{name} --" in out or f"\n{name}\n" in out, name
    assert "read-only" in out


def test_one_database_given_twice_is_audited_once_and_two_roles_get_two_ids(
        pytester, pg18, mlflow_uri, mlflow_role):
    user, password = mlflow_role
    as_role = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    json_path = pytester.path / "a.json"
    pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-uri={mlflow_uri}",
                       f"--mlflowdb-uri={as_role}", f"--mlflowdb-report={json_path}")
    document = report(json_path)
    ids = [t["id"] for t in document["targets"]]
    assert len(ids) == 2 and ids[1] == ids[0] + "#2"
    assert len(document["checks"]) == 2 * len(BUILTIN)


@pytest.mark.parametrize("option", [
    "--mlflowdb-expect-mlflow={uri}", "--mlflowdb-set={uri}", "--mlflowdb-pg-bin={uri}",
    "--mlflowdb-fail-on={uri}", "--mlflowdb-ephemeral={uri}",
])
def test_a_uri_given_to_the_wrong_option_is_not_echoed_with_its_password(pytester, option):
    uri = "postgresql://mlflow:Sh0rtPw@db.example:5432/mlflow"
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@h/db",
                                           option.format(uri=uri))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "Sh0rtPw" not in output and "sh0rtpw" not in output
    assert "mlflow:***@db.example" in output


def test_ini_kind_is_used_by_the_bare_flag_and_checked(pytester):
    pytester.makeini("[pytest]\nmlflowdb_ephemeral = container\n")
    json_path = pytester.path / "a.json"
    result = pytester.runpytest_subprocess("--mlflowdb-ephemeral",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == 1
    assert "(container): no Docker daemon" in checks_by_id(report(json_path))[
        "connectivity.connect"]["message"]
    bad = pytester.runpytest_subprocess("--mlflowdb-ephemeral", "-o", "mlflowdb_ephemeral=bogus")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert ("mlflowdb_ephemeral (-o on the command line): unknown kind 'bogus'"
            in bad.stderr.str())


def test_command_line_expectation_wins_over_the_ini(pytester, mlflow_uri):
    pytester.makeini("[pytest]\nmlflowdb_expect_mlflow = 2.22.5\n")
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}",
                                f"--mlflowdb-report={json_path}",
                                f"--mlflowdb-expect-revision={genuine_head()[1]}")
    assert result.ret == 0
    assert checks_by_id(report(json_path))["schema.revision"]["outcome"] == "passed"


def test_report_that_cannot_be_written(pytester):
    (pytester.path / "taken.json").mkdir()
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@h/db",
                                           "--mlflowdb-report=taken.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'taken.json' is a directory" in result.stderr.str()
    late = pytester.runpytest_subprocess(
        f"--mlflowdb-uri=postgresql://u@127.0.0.1:{_closed_port()}/x",
        "--mlflowdb-report=/proc/mlflowdb-audit.json")
    assert late.ret == pytest.ExitCode.TESTS_FAILED
    assert "mlflowdb: could not write the report" in late.stdout.str()
    assert "Traceback" not in late.stdout.str() + late.stderr.str()


def test_builtin_checks_are_collected_once_whatever_python_files_says(pytester, mlflow_uri):
    pytester.makeini("[pytest]\npython_files = *.py\n")
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "::test_" in line]
    assert len(ids) == len(BUILTIN) == len(set(ids))


# -- where a setting came from ---------------------------------------------------------
@pytest.mark.parametrize("ini, args, expected", [
    ("mlflowdb_fail_on = sometimes", [], "mlflowdb_fail_on ({ini}): unknown value 'sometimes'"),
    ("", ["--mlflowdb-fail-on=sometimes"],
     "--mlflowdb-fail-on (command line): unknown value 'sometimes'"),
    ("", ["-o", "mlflowdb_fail_on=sometimes"],
     "mlflowdb_fail_on (-o on the command line): unknown value 'sometimes'"),
    ("mlflowdb_thresholds = latency_warn=soon", ["--mlflowdb-set=latency_fail=2s"],
     "mlflowdb_thresholds ({ini}): threshold latency_warn: 'soon'"),
    ("mlflowdb_thresholds = latency_warn=100ms", ["--mlflowdb-set=latency_fail=soon"],
     "--mlflowdb-set (command line): threshold latency_fail: 'soon'"),
    ("mlflowdb_connect_timeout = 0s", [], "mlflowdb_connect_timeout ({ini}): '0s' is outside"),
    ("mlflowdb_reports = audit.txt", [], "mlflowdb_reports ({ini}): 'audit.txt' must end"),
    ("mlflowdb_uris = mysql://u:pw@h/db", [], "mlflowdb_uris ({ini}): unsupported URI scheme"),
    ("mlflowdb_expect_mlflow = 9.9.9", [], "mlflowdb_expect_mlflow ({ini}): "),
    ("addopts = --mlflowdb-fail-on=sometimes", [],
     "--mlflowdb-fail-on (addopts in {ini}): unknown value 'sometimes'"),
    ("", ["PYTEST_ADDOPTS=--mlflowdb-lock-timeout=soon"],
     "--mlflowdb-lock-timeout (PYTEST_ADDOPTS): 'soon'"),
])
def test_usage_errors_name_where_the_bad_value_came_from(pytester, monkeypatch, ini, args,
                                                         expected):
    for arg in [a for a in args if a.startswith("PYTEST_ADDOPTS=")]:
        monkeypatch.setenv("PYTEST_ADDOPTS", arg.partition("=")[2])
        args = [a for a in args if a != arg]
    inipath = pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest_subprocess("--mlflowdb-ephemeral", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert expected.format(ini=inipath) in errors[0]


def test_fail_on_from_an_ini_file_says_so_in_the_summary(pytester, mlflow_uri):
    inipath = pytester.makeini("[pytest]\nmlflowdb_fail_on = warning\n")
    pytester.makepyfile(test_warns="""
        def test_warns(mlflowdb, mlflowdb_findings):
            mlflowdb_findings.warn("server", "something to look at", 1, 0)
    """)
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        f"mlflowdb: warned checks fail this run (mlflowdb_fail_on = warning in {inipath})"])
    assert "--mlflowdb-fail-on" not in result.stdout.str()
    cli = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                             "--mlflowdb-fail-on=warning", "-o", "mlflowdb_fail_on=error")
    assert cli.ret == 1
    cli.stdout.fnmatch_lines(["mlflowdb: warned checks fail this run "
                              "(--mlflowdb-fail-on=warning on the command line)"])


# -- thresholds from conftest.py files below the rootdir --------------------------------
TEAM_CONFTEST = """
from pytest_mlflowdb import Threshold

def pytest_mlflowdb_thresholds(config):
    return [Threshold("team_max_experiments", "1000", "count", "experiments allowed")]
"""
TEAM_CHECK = """
from pytest_mlflowdb import check

@check("team.experiments", thresholds=("team_max_experiments",))
def test_experiments(mlflowdb, mlflowdb_thresholds, mlflowdb_findings):
    count = mlflowdb.value("SELECT count(*) FROM experiments")
    mlflowdb_findings.limit("experiments", "experiments", count, unit="count",
                            fail=mlflowdb_thresholds["team_max_experiments"])
"""


@pytest.fixture
def team_below_rootdir(pytester, monkeypatch):
    """team/audit/conftest.py + team/audit/test_x.py, run from team/ (not an initial conftest)."""
    audit = pytester.mkpydir("team") / "audit"
    audit.mkdir()
    (audit / "conftest.py").write_text(TEAM_CONFTEST)
    (audit / "test_x.py").write_text(TEAM_CHECK)
    monkeypatch.chdir(pytester.path / "team")
    return audit


def test_thresholds_of_a_conftest_below_the_rootdir_count(pytester, team_below_rootdir,
                                                          mlflow_uri):
    json_path = pytester.path / "a.json"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == 0, result.stdout.str()
    finding = checks_by_id(report(json_path))["team.experiments"]["findings"][0]
    assert finding["threshold"] == "1000"
    strict = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}",
                                           "--mlflowdb-no-builtin",
                                           f"--mlflowdb-report={json_path}",
                                           "--mlflowdb-set=team_max_experiments=5")
    assert strict.ret == 0, strict.stdout.str()  # an empty database has 0 experiments
    assert checks_by_id(report(json_path))["team.experiments"]["findings"][0]["threshold"] == "5"


@pytest.mark.parametrize("assignment, expected", [
    ("team_max_experiments=many", "threshold team_max_experiments: 'many' is not a count"),
    ("team_max_experimentz=5", "unknown threshold 'team_max_experimentz'"),
])
def test_a_bad_value_for_a_late_threshold_is_a_usage_error(
        pytester, team_below_rootdir, assignment, expected):
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@127.0.0.1:1/x",
                                           f"--mlflowdb-set={assignment}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert expected in errors[0] and "--mlflowdb-set (command line)" in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    # xdist's controller never loads those conftest.py files and takes no usage error from
    # a worker: every test then fails on the same one line, never an INTERNALERROR
    spread = pytester.runpytest_subprocess("-n", "2", "--mlflowdb-uri=postgresql://u@127.0.0.1:1/x",
                                           f"--mlflowdb-set={assignment}")
    assert spread.ret == pytest.ExitCode.TESTS_FAILED
    assert "INTERNALERROR" not in spread.stdout.str() + spread.stderr.str()
    spread.stdout.fnmatch_lines([f"*--mlflowdb-set (command line): {expected}*"])


# -- a CI log has no terminal ----------------------------------------------------------
def test_without_a_terminal_summary_messages_are_whole(pytester, mlflow_uri, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    long_message = "a long finding " + " ".join(f"word{i}" for i in range(80)) + " THE END"
    pytester.makepyfile(test_long=f"""
        def test_long(mlflowdb, mlflowdb_findings):
            mlflowdb_findings.warn("server", {long_message!r}, 1, 0)
    """)
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                                           "--mlflowdb-verbose")
    assert long_message in result.stdout.str()
    monkeypatch.setenv("COLUMNS", "100")
    narrow = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}",
                                           "--mlflowdb-no-builtin", "--mlflowdb-verbose")
    table = narrow.stdout.str().split("mlflowdb audit", 1)[1]
    assert long_message not in table
    rows = [line for line in table.splitlines() if "word" in line]
    assert len(rows) > 1 and max(len(line) for line in rows) <= 100  # wrapped to COLUMNS


# -- throwaway servers' passwords ------------------------------------------------------
SERVER_TEAM_TEST = """
import os
from pathlib import Path

def test_uses_a_throwaway_database(mlflowdb_database_factory, mlflowdb_server):
    Path(os.environ["PW_FILE"]).write_text(mlflowdb_server.password)
    uri = mlflowdb_database_factory(mlflow=False)
    admin_uri = mlflowdb_server.uri()
    print("connecting to", uri, "as", mlflowdb_server.password)
    raise RuntimeError(f"cannot use {{uri}} ({{admin_uri}}, {{mlflowdb_server}}, "
                       f"{{mlflowdb_server.password}})")
"""


@pytest.mark.parametrize("active, workers", [(False, []), (True, []), (True, ["-n", "2"])],
                         ids=["dormant", "active", "xdist"])
def test_throwaway_server_passwords_never_show_in_tracebacks(pytester, monkeypatch, active,
                                                             workers, mlflow_uri):
    pw_file = pytester.path / "pw.txt"
    monkeypatch.setenv("PW_FILE", str(pw_file))
    pytester.makepyfile(test_server=SERVER_TEAM_TEST.format())
    xml = pytester.path / "junit.xml"
    args = [f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin"] if active else []
    result = pytester.runpytest_subprocess("--showlocals", "--tb=long", "-rA",
                                           f"--junitxml={xml}", *args, *workers)
    assert result.ret == 1
    password = pw_file.read_text()
    assert len(password) >= 8
    output = result.stdout.str() + result.stderr.str() + xml.read_text()
    assert "cannot use" in output and "connecting to" in output  # the traceback is there
    assert password not in output


def test_a_pg_bin_from_the_ini_is_not_blamed_on_the_command_line(pytester):
    empty = pytester.mkdir("not-postgres")
    pytester.makeini(f"[pytest]\nmlflowdb_pg_bin = {empty}\n")
    json_path = pytester.path / "a.json"
    pytester.runpytest_subprocess("--mlflowdb-ephemeral=path", f"--mlflowdb-report={json_path}")
    message = checks_by_id(report(json_path))["connectivity.connect"]["message"]
    assert f"{empty} (--mlflowdb-pg-bin or mlflowdb_pg_bin) has no initdb" in message
