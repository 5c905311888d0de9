"""The audit session is read-only with timeouts; its preflight (server) and the MLflow probe
find the facts checks start from."""

from __future__ import annotations

import psycopg
import pytest
from helpers import dbname_of, path_major, role_uri

from pytest_mlflowdb.catalog.mlflow_schema import apply_mlflow_schema
from pytest_mlflowdb.config.targets import parse_target
from pytest_mlflowdb.db.database import Database
from pytest_mlflowdb.db.errors import DatabaseError
from pytest_mlflowdb.probes.mlflow import mlflow_facts


def _db(uri: str, **kwargs) -> Database:
    return Database(parse_target(uri), **kwargs).connect()


def test_session_refuses_writes_and_sets_timeouts(mlflow_uri):
    db = _db(mlflow_uri, statement_timeout=7, lock_timeout=0.25)
    try:
        assert db.setting("transaction_read_only") == "on"
        assert db.setting("statement_timeout") == "7s"
        assert db.setting("lock_timeout") == "250ms"
        assert db.setting("application_name") == "pytest-mlflowdb"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.value("INSERT INTO experiments (name, lifecycle_stage) VALUES ('x', 'active')")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.value("CREATE TABLE intruder (x int)")
    finally:
        db.close()
    with psycopg.connect(mlflow_uri) as conn:
        assert conn.execute("SELECT count(*) FROM experiments WHERE name = 'x'").fetchone()[0] == 0


def test_settings_are_per_transaction_so_a_pooler_cannot_spread_them(mlflow_uri):
    """Behind a transaction-mode pooler the next client gets this server connection: it
    must find nothing of the audit's settings on it."""
    db = _db(mlflow_uri, statement_timeout=7, lock_timeout=0.25)
    try:
        assert db.value("SELECT 1") == 1
        conn = db.connection
        conn.read_only = False  # what another client of the pooler would see
        with conn.transaction():
            session = conn.execute(
                "SELECT current_setting('default_transaction_read_only'), "
                "current_setting('transaction_read_only'), current_setting('statement_timeout'), "
                "current_setting('lock_timeout')").fetchone()
    finally:
        db.close()
    assert session == ("off", "off", "0", "0")


def test_statement_timeout_cancels_long_queries(mlflow_uri):
    db = _db(mlflow_uri, statement_timeout=0.3)
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            db.value("SELECT pg_sleep(5)")
    finally:
        db.close()


def test_preflight_facts_on_a_genuine_schema(mlflow_uri):
    db = _db(mlflow_uri)
    try:
        pre, mlflow = db.preflight, mlflow_facts(db)
    finally:
        db.close()
    assert pre.major >= 14 and pre.server_version_num >= 140000
    assert pre.in_recovery is False
    assert pre.current_user == "postgres" and pre.is_superuser
    assert mlflow.schema == "public"
    assert mlflow.revision is not None and len(mlflow.revision) == 12
    assert "plpgsql" in pre.extensions
    assert pre.host == "127.0.0.1" and pre.dbname == dbname_of(mlflow_uri)


def test_preflight_finds_mlflow_in_another_schema(pg15):
    name = "nonpublic_mlflow"
    pg15.create_database(name)
    try:
        with psycopg.connect(pg15.uri(name), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA mlflow")
            conn.execute("ALTER DATABASE nonpublic_mlflow SET search_path = mlflow")
        revision = apply_mlflow_schema(pg15.uri(name))
        db = _db(pg15.uri(name))
        try:
            pre, mlflow = db.preflight, mlflow_facts(db)
        finally:
            db.close()
        assert mlflow.schema == "mlflow"
        assert mlflow.revision == revision
        assert pre.server_version.startswith(path_major() + ".")
    finally:
        pg15.drop_database(name)


def test_preflight_of_a_role_without_monitoring_privileges(pg18, mlflow_uri, mlflow_role):
    user, password = mlflow_role
    db = _db(role_uri(pg18, dbname_of(mlflow_uri), user, password))
    try:
        pre, mlflow = db.preflight, mlflow_facts(db)
    finally:
        db.close()
    assert pre.current_user == user
    assert not pre.is_superuser and not pre.can_read_all_stats()
    assert pre.roles == ()
    # MLflow's tables are visible in the catalog, but alembic_version is not readable.
    assert mlflow.schema == "public"
    assert mlflow.revision is None
    assert any("no SELECT privilege" in note for note in mlflow.notes)


def test_wrong_password_is_one_line_without_the_password(pg18, mlflow_uri, mlflow_role):
    user, _ = mlflow_role
    secret = "N0t-the:pass@word"
    with pytest.raises(DatabaseError) as info:
        _db(role_uri(pg18, dbname_of(mlflow_uri), user, secret), connect_timeout=3)
    message = str(info.value)
    assert "password authentication failed" in message
    assert "\n" not in message
    assert "N0t-the" not in message


def test_libpq_environment_supplies_what_the_uri_omits(pg15, monkeypatch, tmp_path):
    monkeypatch.setenv("PGPASSWORD", pg15.password)
    monkeypatch.setenv("PGSSLMODE", "disable")
    db = _db(f"postgresql://postgres@127.0.0.1:{pg15.port}/postgres")
    try:
        assert db.preflight.current_user == "postgres"
        assert db.preflight.ssl_in_use is False
    finally:
        db.close()
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg15.port}:*:postgres:{pg15.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    db = _db(f"host=127.0.0.1 port={pg15.port} user=postgres dbname=postgres")
    try:
        assert db.value("SELECT 1") == 1
    finally:
        db.close()


def test_a_service_names_the_target_by_its_host_and_database(pg15, monkeypatch, tmp_path):
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[mlflowdb_audit]\nhost=127.0.0.1\nport={pg15.port}\n"
                        f"dbname=template1\nuser=postgres\npassword={pg15.password}\n"
                        "sslmode=disable\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGSERVICE", "mlflowdb_audit")
    for name in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    for text in ("postgresql://", "service=mlflowdb_audit"):
        target = parse_target(text)
        assert target.id == f"127.0.0.1:{pg15.port}/template1"
        db = Database(target).connect()
        try:
            assert (db.preflight.port, db.preflight.dbname) == (pg15.port, "template1")
        finally:
            db.close()


@pytest.fixture(scope="module")
def ssl_server(tmp_path_factory):
    """A server of its own with SSL on (a self-signed certificate)."""
    import os
    import subprocess

    from pytest_mlflowdb.servers import start_server

    server = start_server("path")
    data = server.workdir / "data"
    subprocess.run(["openssl", "req", "-new", "-x509", "-days", "1", "-nodes", "-subj",
                    "/CN=localhost", "-keyout", str(data / "server.key"), "-out",
                    str(data / "server.crt")], check=True, capture_output=True, timeout=60)
    owner = data.stat()
    for name in ("server.key", "server.crt"):
        os.chown(data / name, owner.st_uid, owner.st_gid)
        (data / name).chmod(0o600)
    with server.admin() as conn:
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute("SELECT pg_reload_conf()")
    yield server
    server.stop()


def test_ssl_in_use_is_detected(ssl_server, pytester):
    from helpers import checks_by_id, report

    uri = ssl_server.uri() + "?sslmode=require"
    db = _db(uri)
    try:
        assert db.preflight.ssl_in_use is True
    finally:
        db.close()
    json_path = pytester.path / "a.json"
    pytester.runpytest(f"--mlflowdb-uri={uri}", f"--mlflowdb-report={json_path}")
    ssl = checks_by_id(report(json_path))["connectivity.ssl"]
    assert ssl["outcome"] == "passed" and ssl["message"] == "127.0.0.1: the session uses SSL"


def test_requiring_ssl_from_a_server_without_it_fails_to_connect(pg15):
    with pytest.raises(DatabaseError, match="does not support SSL"):
        _db(pg15.uri() + "?sslmode=require", connect_timeout=3)


def test_the_reply_deadline_counts_per_statement_not_per_transaction(mlflow_uri):
    """Each statement may take up to the statement timeout: a transaction of several
    slow-but-allowed statements is not taken for a partition."""
    db = _db(mlflow_uri, statement_timeout=4)
    assert db.deadline == 9
    try:
        with db.transaction() as cur:
            for _ in range(3):  # 10.5 s in all, more than the 9 s deadline
                cur.execute("SELECT pg_sleep(3.5)")
        assert db.stopped is None
        assert db.value("SELECT 1") == 1
    finally:
        db.close()


def test_the_reply_deadline_counts_from_each_statement_and_fires_on_a_long_wait(mlflow_uri):
    """Three 0.3 s statements pass a 0.5 s deadline (each restarts it); one 1.5 s wait does
    not: the socket is shut and the query fails at the deadline, not at its end."""
    import threading
    import time

    from psycopg.rows import dict_row

    from pytest_mlflowdb.db.deadline import Deadline, TimedCursor

    with psycopg.connect(mlflow_uri) as conn:
        with Deadline(conn, 0.5) as deadline, TimedCursor(conn, row_factory=dict_row) as cur:
            cur.deadline = deadline
            for _ in range(3):
                cur.execute("SELECT pg_sleep(0.3)")
        assert not deadline.fired
        threads = threading.active_count()
        for _ in range(50):  # transactions arm and disarm the one watchdog thread
            with Deadline(conn, 5) as deadline:
                conn.execute("SELECT 1")
        assert threading.active_count() == threads
    with psycopg.connect(mlflow_uri) as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError), Deadline(conn, 0.4) as deadline, \
                TimedCursor(conn) as cur:
            cur.deadline = deadline
            cur.execute("SELECT pg_sleep(1.5)")
        assert deadline.fired and time.monotonic() - started < 1.2


def test_rows_many_returns_each_statements_rows_from_one_read_only_transaction(mlflow_uri):
    db = _db(mlflow_uri)
    try:
        found = db.rows_many([("SELECT 1 AS a", None),
                              ("SELECT txid_current_if_assigned() AS x, "
                               "current_setting('transaction_read_only') AS ro", None),
                              ("SELECT g FROM generate_series(1, %(n)s) g", {"n": 3}),
                              ("SELECT pg_backend_pid() AS pid", None)])
        assert found[0] == [{"a": 1}]
        assert found[1] == [{"x": None, "ro": "on"}]
        assert [r["g"] for r in found[2]] == [1, 2, 3]
        with pytest.raises(psycopg.errors.DivisionByZero):
            db.rows_many([("SELECT 1", None), ("SELECT 1 / 0", None)])
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.rows_many([("CREATE TABLE never_made (a int)", None)])
        assert db.value("SELECT 2") == 2  # the failed flights were rolled back
        assert db.value("SELECT to_regclass('never_made') IS NULL") is True
        assert db.connection.autocommit is False  # outside the block: psycopg's read-only
    finally:
        db.close()
