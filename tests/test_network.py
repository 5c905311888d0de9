"""A network partition ends the audit in bounded time, with its report written.

The partition is a loopback TCP proxy (tests/tcp_proxy.py) in front of a real server
that stops forwarding mid-run, or never answers at all.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

from backup_support import seed
from helpers import checks_by_id, failing, report
from tcp_proxy import TcpProxy

#: "Does not hang" bounds, far above what the timeouts below allow.
RUN_BOUND_S = 90

FREEZING_CHECKS = """
from pathlib import Path


def test_a_partition_starts(mlflowdb):
    assert mlflowdb.value("SELECT 1") == 1
    Path({freeze!r}).write_text("now")
    mlflowdb.value("SELECT 2")


def test_b_after_the_partition(mlflowdb):
    mlflowdb.value("SELECT 3")


def test_c_after_the_partition(mlflowdb):
    mlflowdb.value("SELECT 4")
"""


def _through(proxy: TcpProxy, uri: str) -> str:
    parts = urlsplit(uri)
    userinfo = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}"))


def _run(pytester, uri: str, *args: str):
    json_path = pytester.path / "audit.json"
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        f"--mlflowdb-uri={uri}", f"--mlflowdb-report={json_path}", "-p", "no:randomly",
        *args, timeout=RUN_BOUND_S)
    return result, checks_by_id(report(json_path)), time.monotonic() - started


def test_a_partition_mid_run_ends_the_audit_with_its_report(pytester, pg18, mlflow_uri):
    freeze = pytester.path / "freeze"
    pytester.makepyfile(test_team=FREEZING_CHECKS.format(freeze=str(freeze)))
    with TcpProxy((pg18.host, pg18.port), freeze_file=freeze) as proxy:
        result, checks, _ = _run(pytester, _through(proxy, mlflow_uri),
                                 "--mlflowdb-statement-timeout=2s", "--mlflowdb-connect-timeout=2s")
        assert proxy.frozen.is_set()
    stalled = checks["custom.team.a_partition_starts"]
    assert stalled["outcome"] in ("failed", "error")
    assert "stopped answering" in stalled["message"]
    assert "\n" not in stalled["message"]
    for name in ("b_after_the_partition", "c_after_the_partition"):
        after = checks[f"custom.team.{name}"]
        assert after["outcome"] in ("failed", "error", "skipped")
        assert "stopped answering" in after["message"]
        # ends at once: it does not wait out the deadline again
        assert after["duration_s"] < 2
    assert result.ret == 1
    out = result.stdout.str()
    assert "stopped answering" in out
    # one line per check in the terminal too, no traceback of psycopg's
    assert "Traceback" not in out and "During handling" not in out and "psycopg" not in out


def test_a_partition_right_after_connecting_fails_the_connect_check(pytester, pg18,
                                                                    mlflow_uri):
    """Connected, then silence from the first query on (the read-only check, the
    preflight): one failed connect check, every other check skipped as unreachable."""
    with TcpProxy((pg18.host, pg18.port), freeze_on=b"BEGIN") as proxy:
        result, checks, _ = _run(pytester, _through(proxy, mlflow_uri),
                                 "--mlflowdb-statement-timeout=1s")
        assert proxy.frozen.is_set()
    connect = checks.pop("connectivity.connect")
    assert connect["outcome"] == "failed"
    assert "stopped answering" in connect["message"]
    assert {c["outcome"] for c in checks.values()} == {"skipped"}
    assert all("stopped answering" in c["message"] for c in checks.values())
    assert result.ret == 1


def test_a_server_that_never_answers_is_a_connect_failure(pytester):
    with TcpProxy(("127.0.0.1", 9), answer=False) as proxy:
        uri = f"postgresql://postgres:Qx7Kv9Wj2secret@127.0.0.1:{proxy.port}/mlflow"
        result, checks, seconds = _run(pytester, uri, "--mlflowdb-connect-timeout=2s")
    connect = checks["connectivity.connect"]
    assert connect["outcome"] == "failed"
    assert "timeout" in connect["message"].lower()
    assert seconds < RUN_BOUND_S
    assert result.ret == 1
    assert "Qx7Kv9Wj2secret" not in result.stdout.str() + result.stderr.str()


KILLED_CHECKS = """
def test_a_session_killed_mid_check(mlflowdb):
    mlflowdb.value("SELECT pg_terminate_backend(pg_backend_pid())")


def test_b_after_the_kill(mlflowdb):
    assert mlflowdb.value("SELECT 1") == 1
"""


def test_a_check_in_flight_when_its_session_dies_fails_in_one_line(pytester, mlflow_uri):
    """The server ends the audit's session mid-statement (pg_terminate_backend, an
    immediate shutdown): that check fails in one line, no psycopg traceback; the session
    opens again for the next check."""
    pytester.makepyfile(test_killed=KILLED_CHECKS)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-no-builtin",
                                f"--mlflowdb-report={json_path}")
    checks = {c["nodeid"].split("::")[-1].split("[")[0]: c
              for c in report(json_path)["checks"]}
    killed = checks["test_a_session_killed_mid_check"]
    assert killed["outcome"] == "failed", killed
    assert killed["message"].startswith("the session was lost while reading: ")
    assert "\n" not in killed["message"]
    out = result.stdout.str()
    assert "Traceback" not in out and "OperationalError" not in out
    assert checks["test_b_after_the_kill"]["outcome"] == "passed"


def test_a_partition_during_pg_dump_stops_it_and_the_run_writes_its_report(pytester, pg18,
                                                                          mlflow_uri):
    """--mlflowdb-restore-test: the live side stops answering as pg_dump opens its
    snapshot. pg_dump is stopped at its bound (backup_step_timeout, small here), its
    check fails in one line naming the step, and the run ends with its report."""
    seed(mlflow_uri)
    with TcpProxy((pg18.host, pg18.port), freeze_on=b"REPEATABLE READ, READ ONLY") as proxy:
        result, checks, _ = _run(pytester, _through(proxy, mlflow_uri),
                                 "--mlflowdb-restore-test",
                                 "--mlflowdb-set=backup_step_timeout=3s",
                                 "--mlflowdb-statement-timeout=2s",
                                 "--mlflowdb-connect-timeout=2s")
        assert proxy.frozen.is_set()
    (finding,) = failing(checks["backup.readable"])
    message = finding["message"]
    assert "\n" not in message
    assert message.startswith("cannot back it up: pg_dump of the live target was stopped "
                              "after "), message
    assert "backup_step_timeout" in message
    assert checks["backup.restore"]["outcome"] == "skipped"
    assert result.ret == 1
