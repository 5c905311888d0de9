"""Each connectivity check passes on a healthy server and not on one with the fault injected."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from helpers import audit, dbname_of, past_end_of_life, path_major, role_uri
from pytest_mlflowdb.checks.connectivity import assess_version

from pytest_mlflowdb.probes.security import is_local


# -- headroom --------------------------------------------------------------------------
def test_headroom_warns_when_most_slots_are_taken(pytester, pg18, mlflow_uri):
    _, healthy = audit(pytester, mlflow_uri)
    assert healthy["connectivity.headroom"]["outcome"] == "passed"
    with psycopg.connect(pg18.uri()) as conn:
        usable = int(conn.execute("SHOW max_connections").fetchone()[0]) - int(
            conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
    held = [psycopg.connect(pg18.uri()) for _ in range(int(usable * 0.85))]
    try:
        result, checks = audit(pytester, mlflow_uri)
    finally:
        for conn in held:
            conn.close()
    headroom = checks["connectivity.headroom"]
    assert headroom["outcome"] == "warned", headroom
    (finding,) = headroom["findings"]
    assert finding["object"] == "max_connections" and finding["threshold"] == "80%"
    assert float(finding["value"].rstrip("%")) >= 80
    assert result.ret == 0


def test_headroom_fails_at_the_fail_threshold(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-set=connections_warn=1%",
                           "--mlflowdb-set=connections_fail=1%")
    assert result.ret == 1
    assert checks["connectivity.headroom"]["outcome"] == "failed"
    assert checks["connectivity.headroom"]["findings"][0]["object"] == "max_connections"


# -- primary ---------------------------------------------------------------------------
@pytest.fixture
def standby(pg15):
    """A streaming replica of pg15, made with pg_basebackup and started in recovery."""
    run_as = {}
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam("nobody")
        run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    base = Path(tempfile.mkdtemp(prefix="mlflowdb-standby-"))
    data = base / "data"
    if run_as:
        os.chown(base, run_as["user"], run_as["group"])
    env = dict(os.environ, PGPASSWORD=pg15.password)
    subprocess.run([str(pg15.bin_dir / "pg_basebackup"), "-h", pg15.host, "-p", str(pg15.port),
                    "-U", "postgres", "-D", str(data), "-R", "-X", "stream"],
                   check=True, env=env, capture_output=True, timeout=120, **run_as)
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    subprocess.run([str(pg15.bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(base / "log"), "-w", "start"], check=True, capture_output=True,
                   timeout=120, **run_as)
    try:
        yield f"postgresql://postgres:{pg15.password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([str(pg15.bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60, **run_as)
        shutil.rmtree(base, ignore_errors=True)


def test_primary_fails_on_a_replica(pytester, pg15, standby):
    _, healthy = audit(pytester, pg15.uri())
    assert healthy["connectivity.primary"]["outcome"] == "passed"
    result, checks = audit(pytester, standby)
    primary = checks["connectivity.primary"]
    assert primary["outcome"] == "failed"
    assert primary["findings"][0]["object"] == "server"
    assert "replica" in primary["message"]
    assert result.ret == 1


# -- server version --------------------------------------------------------------------
@pytest.mark.parametrize("major, severity, text", [
    (13, "failure", "not supported"),
    (14, "warning", "end of life on 2026-11-12"),
    (15, "ok", "supported until 2027-11-11"),
    (18, "ok", "supported until 2030-11-14"),
    (19, "warning", "newer than the versions tested"),
])
def test_version_assessment(major, severity, text):
    found, message, _ = assess_version(major, f"{major}.1", datetime.date(2026, 11, 26))
    assert found == severity and text in message


def test_server_version_passes_on_supported_servers(pytester, pg15, mlflow_uri):
    for uri, major in ((pg15.uri(), path_major()), (mlflow_uri, "18")):
        _, checks = audit(pytester, uri)
        version = checks["connectivity.server_version"]
        expected = "warned" if past_end_of_life(major) else "passed"  # tox's pg14, say
        assert version["outcome"] == expected, version
        assert version["findings"][0]["value"].startswith(major + ".")


# -- ssl -------------------------------------------------------------------------------
@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("::1", True), ("localhost", True), ("/var/run/postgresql", True),
    ("", True), ("db.example.com", False), ("10.1.2.3", False), ("2001:db8::1", False),
])
def test_locality_decides_whether_ssl_is_required(host, local):
    assert is_local(host) is local


def test_a_loopback_address_given_as_hostaddr_is_local_whatever_the_name():
    assert is_local("db.example.com", "127.0.0.1") is True
    assert is_local("db.example.com", "10.1.2.3") is False


def test_ssl_passes_on_a_local_server(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri)
    ssl = checks["connectivity.ssl"]
    assert ssl["outcome"] == "passed" and ssl["findings"][0]["object"] == "127.0.0.1"


# -- privileges ------------------------------------------------------------------------
def test_privileges_reports_what_a_plain_role_cannot_see(pytester, pg18, mlflow_uri,
                                                         mlflow_role):
    user, password = mlflow_role
    result, checks = audit(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password))
    privileges = checks["connectivity.privileges"]
    assert privileges["outcome"] == "passed"
    messages = [f["message"] for f in privileges["findings"]]
    assert any("superuser: no; monitoring roles: none" in m for m in messages)
    assert any("without pg_monitor" in m for m in messages)
    assert any("no SELECT privilege on public.alembic_version" in m for m in messages)
    assert all(f["object"] for f in privileges["findings"])
    assert result.ret == 0


# -- connected, but the preflight's reads failed ---------------------------------------
def test_a_lock_on_alembic_version_is_not_reported_as_cannot_connect(pytester, mlflow_uri):
    with psycopg.connect(mlflow_uri) as locker:
        locker.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        result, checks = audit(pytester, mlflow_uri, "--mlflowdb-lock-timeout=200ms")
    connect = checks["connectivity.connect"]
    assert "cannot connect" not in connect["message"], connect
    messages = [f["message"] for f in connect["findings"]]
    assert any(m.startswith("connected in ") for m in messages), messages
    (failure,) = [f for f in connect["findings"] if f["severity"] == "failure"]
    assert failure["message"].startswith("connected, but reading the catalog failed: "), failure
    assert "lock timeout" in failure["message"] and "public.alembic_version" in failure["message"]
    for check_id in ("connectivity.latency", "schema.revision", "indexes.required"):
        check = checks[check_id]
        assert check["outcome"] == "skipped", check
        assert check["message"].startswith("connected, but reading the catalog failed: "), check
    assert result.ret == 1


def test_a_statement_timeout_on_the_first_queries_is_not_reported_as_cannot_connect(
        pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-statement-timeout=1ms")
    connect = checks["connectivity.connect"]
    assert "cannot connect" not in connect["message"], connect
    assert "connected" in connect["message"], connect
    for check in checks.values():
        assert not check["message"].startswith("target unreachable"), check
    assert result.ret != 0


# -- latency ---------------------------------------------------------------------------
@pytest.mark.parametrize(("samples", "median"), [
    ([0.3, 0.1, 0.2], 0.2),
    ([0.4, 0.1, 0.3, 0.2], 0.25),
    ([0.5], 0.5),
])
def test_latency_is_the_median_of_its_samples(samples, median):
    from pytest_mlflowdb.probes.connectivity import _median

    assert _median(samples) == pytest.approx(median)
