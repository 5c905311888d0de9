"""activity.* checks: a healthy database passes with its figures; each fault, held open by
the test on a real server, is named with its figures and remedy; a role without
pg_monitor skips what it cannot see; bad thresholds are one-line usage errors."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import psycopg
import pytest
from helpers import audit, dbname_of, failing, role_uri, sql

ACTIVITY = ("activity.long_queries", "activity.idle_in_transaction", "activity.blocked",
            "activity.prepared_xacts", "activity.replication_slots")
BOUND = 30  # seconds: only proves "does not hang"


def by_severity(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def wait_until(watcher: psycopg.Connection, query: str, *params) -> None:
    """Poll ``query`` on ``watcher`` (autocommit) until it returns true, within BOUND."""
    deadline = time.monotonic() + BOUND
    while not watcher.execute(query, params).fetchone()[0]:
        assert time.monotonic() < deadline, f"never true: {query}"
        time.sleep(0.05)


def test_healthy_database_passes_with_its_figures(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    for name in ACTIVITY:
        assert checks[name]["outcome"] == "passed", checks[name]
        assert not [f for f in checks[name]["findings"]
                    if f["severity"] in ("warning", "failure")], checks[name]
    idle = by_severity(checks["activity.idle_in_transaction"], "ok")["pg_stat_activity"]
    assert "below idle_in_transaction_warn 1min" in idle["message"]
    assert idle["threshold"] == "1min"
    slots = by_severity(checks["activity.replication_slots"], "ok")["pg_replication_slots"]
    assert slots["message"] == "no replication slot"
    prepared = by_severity(checks["activity.prepared_xacts"], "ok")["pg_prepared_xacts"]
    assert "no prepared transaction" in prepared["message"]
    assert result.ret == 0
    # the audit's own session (active, in a transaction) never counts, even at 0s
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "long_query_warn=0s",
                      "--mlflowdb-set", "idle_in_transaction_warn=0s",
                      "--mlflowdb-set", "blocked_warn=0s")
    for name in ACTIVITY:
        assert checks[name]["outcome"] == "passed", checks[name]


@pytest.fixture
def idle_session(mlflow_uri):
    """A session of the MLflow database left idle in a transaction that holds an xid."""
    conn = psycopg.connect(mlflow_uri.replace("+psycopg2", ""), application_name="forgetful")
    xid = conn.execute("SELECT txid_current()").fetchone()[0]
    pid = conn.info.backend_pid
    yield pid, xid
    conn.close()


def test_a_session_idle_in_transaction_is_named_with_its_figures(pytester, mlflow_uri,
                                                                  idle_session):
    pid, xid = idle_session
    with psycopg.connect(mlflow_uri, autocommit=True) as watcher:
        wait_until(watcher, "SELECT now() - state_change > interval '2.2s' FROM "
                   "pg_stat_activity WHERE pid = %s", pid)
    result, checks = audit(pytester, mlflow_uri,
                           "--mlflowdb-set", "idle_in_transaction_warn=1s")
    check = checks["activity.idle_in_transaction"]
    assert check["outcome"] == "warned", check
    warning = by_severity(check, "warning")[f"pid {pid}"]
    assert warning["value"] >= 2.2 and warning["threshold"] == "1s"
    assert warning["message"].startswith("idle in transaction for ")
    assert f"holds back the xmin horizon at xid {xid} " in warning["message"]
    assert "application 'forgetful'" in warning["message"]
    assert "last query: SELECT txid_current()" in warning["message"]
    assert "at or above idle_in_transaction_warn 1s" in warning["message"]
    assert warning["remedy"].startswith(f"SELECT pg_terminate_backend({pid});")
    terminal = result.stdout.str()  # named in the terminal table, with its remedy
    assert f"pid {pid}: idle in transaction for " in terminal
    assert f"remedy: SELECT pg_terminate_backend({pid});" in terminal
    assert result.ret == 0  # a warning does not fail the run by default

    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-set",
                           "idle_in_transaction_warn=1s", "--mlflowdb-set",
                           "idle_in_transaction_fail=2s")
    (failure,) = failing(checks["activity.idle_in_transaction"])
    assert failure["object"] == f"pid {pid}" and failure["threshold"] == "2s"
    assert result.ret == 1
    sql(mlflow_uri, failure["remedy"])  # the remedy is a statement that ends it
    with psycopg.connect(mlflow_uri, autocommit=True) as watcher:
        wait_until(watcher, "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)",
                   pid)
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "idle_in_transaction_warn=1s")
    assert checks["activity.idle_in_transaction"]["outcome"] == "passed"


def test_a_session_named_like_the_audit_still_counts(pytester, mlflow_uri):
    """Behind a pooler MLflow's sessions carry whatever application_name a client left on
    the server connection, the audit's own included: only the audit's backend is left out,
    never a name (they were, and activity passed blind)."""
    thread, seen = _run_in_thread(mlflow_uri + "?application_name=pytest-mlflowdb",
                                  "SELECT pg_sleep(60)")
    pid = seen[0]
    try:
        with psycopg.connect(mlflow_uri, autocommit=True) as watcher:
            wait_until(watcher, "SELECT now() - query_start > interval '1.2s' FROM "
                       "pg_stat_activity WHERE pid = %s AND state = 'active'", pid)
        _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "long_query_warn=1s")
    finally:
        sql(mlflow_uri, f"SELECT pg_cancel_backend({pid})")
        thread.join(BOUND)
    check = checks["activity.long_queries"]
    assert check["outcome"] == "warned", check
    assert f"pid {pid}" in by_severity(check, "warning")


def test_the_audit_leaves_no_application_name_on_its_connection(mlflowdb_database_factory):
    """The audit's application_name is transaction-local: between its transactions the
    session (a pooler's server connection) carries none of it."""
    from pytest_mlflowdb.config.targets import parse_target
    from pytest_mlflowdb.db.database import Database

    uri = mlflowdb_database_factory()
    db = Database(parse_target(uri)).connect()
    try:
        assert db.value("SELECT current_setting('application_name')") == "pytest-mlflowdb"
        pid = db.value("SELECT pg_backend_pid()")
        with psycopg.connect(uri, autocommit=True) as watcher:
            name = watcher.execute("SELECT application_name FROM pg_stat_activity "
                                   "WHERE pid = %s", (pid,)).fetchone()[0]
        assert name != "pytest-mlflowdb"
    finally:
        db.close()


def _run_in_thread(uri: str, *statements: str) -> tuple[threading.Thread, list]:
    """Run ``statements`` in one transaction of a session of its own, in a thread; the
    list gets the session's pid, then the error that ended it (if any)."""
    seen: list = []

    def run() -> None:
        try:
            with psycopg.connect(uri.replace("+psycopg2", "")) as conn:
                seen.append(conn.info.backend_pid)
                for statement in statements:
                    conn.execute(statement)
        except psycopg.Error as exc:
            seen.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + BOUND
    while not seen:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return thread, seen


def test_a_long_query_is_named_with_its_figures(pytester, mlflow_uri):
    thread, seen = _run_in_thread(mlflow_uri, "SELECT pg_sleep(60)")
    pid = seen[0]
    try:
        with psycopg.connect(mlflow_uri, autocommit=True) as watcher:
            wait_until(watcher, "SELECT now() - query_start > interval '1.2s' FROM "
                       "pg_stat_activity WHERE pid = %s AND state = 'active'", pid)
        _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "long_query_warn=1s")
    finally:
        sql(mlflow_uri, f"SELECT pg_cancel_backend({pid})")
        thread.join(BOUND)
    check = checks["activity.long_queries"]
    assert check["outcome"] == "warned", check
    warning = by_severity(check, "warning")[f"pid {pid}"]
    assert warning["value"] >= 1.2 and warning["threshold"] == "1s"
    assert warning["message"].startswith("query running for ")
    assert warning["message"].endswith(": SELECT pg_sleep(60), at or above long_query_warn 1s")
    assert f"pg_terminate_backend({pid})" in warning["remedy"]
    assert isinstance(seen[-1], psycopg.errors.QueryCanceled)


def test_a_blocked_session_is_named_with_who_blocks_it(pytester, mlflow_uri, pg18,
                                                        mlflow_role):
    """Named with its blocker's figures; a role without pg_monitor still sees the wait
    (pg_locks hides nothing), only the blocker's details."""
    holder = psycopg.connect(mlflow_uri.replace("+psycopg2", ""), application_name="locker")
    holder.execute("LOCK TABLE params IN ACCESS EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid
    thread, seen = _run_in_thread(mlflow_uri, "SELECT count(*) FROM params")
    waiter = seen[0]
    try:
        with psycopg.connect(mlflow_uri, autocommit=True) as watcher:
            wait_until(watcher, "SELECT now() - waitstart > interval '1.2s' FROM pg_locks "
                       "WHERE pid = %s AND NOT granted", waiter)
        # other areas' checks stop at the lock on params: the blocked check is what's tested
        result, checks = audit(pytester, mlflow_uri, "--mlflowdb-lock-timeout=200ms",
                               "--mlflowdb-set", "blocked_warn=500ms",
                               "--mlflowdb-set", "blocked_fail=1s")
        user, password = mlflow_role
        _, plain = audit(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password),
                         "--mlflowdb-lock-timeout=200ms", "--mlflowdb-set", "blocked_warn=1s")
    finally:
        holder.close()
        thread.join(BOUND)
    check = checks["activity.blocked"]
    (failure,) = failing(check)
    assert failure["object"] == f"pid {waiter}"
    assert failure["value"] >= 1.2 and failure["threshold"] == "1s"
    message = failure["message"]
    assert "for AccessShareLock on params, blocked by " in message
    assert f"blocked by pid {holder_pid} (postgres, application 'locker'" in message
    assert "idle in transaction for " in message
    assert "LOCK TABLE params IN ACCESS EXCLUSIVE MODE" in message
    assert "at or above blocked_fail 1s" in message
    assert failure["remedy"].startswith(f"SELECT pg_terminate_backend({holder_pid});")
    assert "(the blocker)" in failure["remedy"]
    assert f"pid {waiter}" in result.stdout.str()
    assert seen[1:] == []  # the waiter went on once the lock was released
    seen_plain = by_severity(plain["activity.blocked"], "warning")[f"pid {waiter}"]
    assert (f"blocked by pid {holder_pid} (postgres, application 'locker'; details hidden "
            "without pg_monitor)") in seen_plain["message"]
    assert "for AccessShareLock on params" in seen_plain["message"]


PLAIN = "activity_plain", "Pl@in pw?"


@pytest.fixture
def plain_on_tuned(tuned_janitor):
    """A login role without pg_monitor on the tuned server."""
    from psycopg import sql as pgsql

    name, password = PLAIN
    with psycopg.connect(tuned_janitor.server().uri(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(name)))
        conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            pgsql.Identifier(name), pgsql.Literal(password)))
    yield lambda uri: role_uri(tuned_janitor.server(), dbname_of(uri), name, password)
    with psycopg.connect(tuned_janitor.server().uri(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(name)))


def test_a_prepared_transaction_left_behind_is_named(pytester, tuned_janitor,
                                                     plain_on_tuned):
    """Named with its age, xid and ROLLBACK PREPARED, by a superuser and by a role
    without pg_monitor alike (pg_prepared_xacts hides nothing)."""
    uri = tuned_janitor.create()
    gid = "forgotten 'import'"
    quoted = "'" + gid.replace("'", "''") + "'"
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("BEGIN")
        xid = conn.execute("SELECT txid_current()").fetchone()[0]
        conn.execute("INSERT INTO experiments (name, lifecycle_stage) VALUES ('x', 'active')")
        conn.execute(f"PREPARE TRANSACTION {quoted}")
    try:
        with psycopg.connect(uri, autocommit=True) as watcher:
            wait_until(watcher, "SELECT now() - prepared > interval '1.2s' FROM "
                       "pg_prepared_xacts WHERE gid = %s", gid)
        _, quiet = audit(pytester, uri)
        _, plain = audit(pytester, plain_on_tuned(uri), "--mlflowdb-set",
                         "prepared_xact_warn=1s")
        result, checks = audit(pytester, uri, "--mlflowdb-set", "prepared_xact_warn=500ms",
                               "--mlflowdb-set", "prepared_xact_fail=1s")
        (failure,) = failing(checks["activity.prepared_xacts"])
        sql(uri, failure["remedy"])  # run as printed, its comment included
        with psycopg.connect(uri, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone()[0] == 0
    finally:
        with psycopg.connect(uri, autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s",
                            (gid,)).fetchone()[0]:
                conn.execute(f"ROLLBACK PREPARED {quoted}")
    # young (below the 1min default): shown with its figures, not a warning
    ok = by_severity(quiet["activity.prepared_xacts"], "ok")[gid]
    assert quiet["activity.prepared_xacts"]["outcome"] == "passed"
    assert f"at xid {xid} " in ok["message"]
    assert failure["object"] == gid and failure["value"] >= 1.2
    assert failure["threshold"] == "1s"
    assert f"by postgres in this database, holds back the xmin horizon at xid {xid} " in \
        failure["message"]
    assert failure["remedy"].startswith(f"ROLLBACK PREPARED {quoted}; -- connected to "
                                        f"{dbname_of(uri)}")
    assert result.ret == 1
    assert f"at xid {xid} " in by_severity(plain["activity.prepared_xacts"], "warning")[gid][
        "message"]


def test_an_inactive_logical_slot_is_named_with_the_wal_it_retains(pytester, tuned_janitor,
                                                                  plain_on_tuned):
    uri = tuned_janitor.create()
    slot = "mlflowdb_test_slot"
    # creating a logical slot waits for every transaction holding an xid: bounded
    sql(uri, "SET statement_timeout = '30s'",
        f"SELECT pg_create_logical_replication_slot('{slot}', 'test_decoding')",
        "CREATE TABLE wal_maker AS SELECT g FROM generate_series(1, 20000) g")
    try:
        _, checks = audit(pytester, uri)
        _, plain = audit(pytester, plain_on_tuned(uri))
        result, failed = audit(pytester, uri, "--mlflowdb-set", "slot_wal_warn=1kB",
                               "--mlflowdb-set", "slot_wal_fail=64kB")
        sql(uri, failing(failed["activity.replication_slots"])[0]["remedy"])
        with psycopg.connect(uri, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
    finally:
        with psycopg.connect(uri, autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone()[0]:
                conn.execute(f"SELECT pg_drop_replication_slot('{slot}')")
    check = checks["activity.replication_slots"]
    assert check["outcome"] == "warned", check
    warning = by_severity(check, "warning")[slot]
    assert warning["value"] > 64 * 1024  # bytes of WAL retained
    message = warning["message"]
    assert message.startswith(f"logical slot (test_decoding, database {dbname_of(uri)}), "
                              "inactive, retains ")
    assert f"({warning['value']} bytes since restart_lsn " in message
    assert "holds back the catalog xmin horizon at xid " in message
    assert "inactive: it keeps every WAL segment from now on" in message
    assert warning["remedy"].startswith(f"SELECT pg_drop_replication_slot('{slot}');")
    (failure,) = failing(failed["activity.replication_slots"])
    assert failure["object"] == slot and failure["threshold"] == "64kB"
    assert "at or above slot_wal_fail 64kB" in failure["message"]
    assert result.ret == 1
    # pg_replication_slots hides nothing from a role without pg_monitor
    assert by_severity(plain["activity.replication_slots"], "warning")[slot]["value"] > 0


def test_a_role_without_pg_monitor_skips_what_it_cannot_see(pytester, mlflow_uri, pg18,
                                                           mlflow_role, idle_session):
    """Another role's session idle in a transaction is hidden from a plain role: the
    session checks skip with the reason; lock waits, prepared transactions and slots need
    no privilege and still pass with their figures."""
    pid, _ = idle_session
    user, password = mlflow_role
    with psycopg.connect(mlflow_uri, autocommit=True) as watcher:
        wait_until(watcher, "SELECT now() - state_change > interval '1.2s' FROM "
                   "pg_stat_activity WHERE pid = %s", pid)
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    _, checks = audit(pytester, uri, "--mlflowdb-set", "idle_in_transaction_warn=1s",
                      "--mlflowdb-set", "long_query_warn=1s")
    for name in ("activity.idle_in_transaction", "activity.long_queries"):
        assert checks[name]["outcome"] == "skipped", checks[name]
        assert "no privilege: needs pg_monitor or pg_read_all_stats" in \
            checks[name]["message"]
        # the held session, and maybe an autovacuum worker (hidden alike)
        assert re.search(r"\b[1-9][0-9]* session\(s\) of other roles in this database",
                         checks[name]["message"]), checks[name]
    for name in ("activity.blocked", "activity.prepared_xacts", "activity.replication_slots"):
        assert checks[name]["outcome"] == "passed", checks[name]
    _, as_admin = audit(pytester, mlflow_uri, "--mlflowdb-set", "idle_in_transaction_warn=1s")
    assert f"pid {pid}" in by_severity(as_admin["activity.idle_in_transaction"], "warning")


def test_bad_activity_thresholds_are_one_line_usage_errors(pytester, mlflow_uri):
    for args, words in (
            (["--mlflowdb-set", "idle_in_transaction_warn=soon"], "is not a duration"),
            (["--mlflowdb-set", "idle_in_transaction_warn=2h"],
             "idle_in_transaction_warn (2h) is above idle_in_transaction_fail (15min)"),
            (["--mlflowdb-set", "long_query_fail=90d"], "outside"),
            (["--mlflowdb-set", "blocked_warn=-1s"], "is not a duration"),
            (["--mlflowdb-set", "slot_wal_fail=12 furlongs"], "is not a size")):
        result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}", *args)
        assert result.ret == 4, args
        errors = [line for line in result.errlines if line.strip()]
        assert len(errors) == 1 and words in errors[0], (args, errors)
        assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_session_blocked_by_a_prepared_transaction_says_so(pytester, tuned_janitor):
    """pg_blocking_pids() gives 0 for a prepared transaction: the finding names it by its
    gid (not as a session to terminate) with the ROLLBACK PREPARED remedy."""
    uri = tuned_janitor.create()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE params IN ACCESS EXCLUSIVE MODE")
        conn.execute("PREPARE TRANSACTION 'holds params'")
    thread, seen = _run_in_thread(uri, "SET statement_timeout = '60s'",
                                  "SELECT count(*) FROM params")
    try:
        with psycopg.connect(uri, autocommit=True) as watcher:
            wait_until(watcher, "SELECT now() - waitstart > interval '1.2s' FROM pg_locks "
                       "WHERE pid = %s AND NOT granted", seen[0])
        _, checks = audit(pytester, uri, "--mlflowdb-lock-timeout=200ms",
                          "--mlflowdb-set", "blocked_warn=1s")
    finally:
        sql(uri, "ROLLBACK PREPARED 'holds params'")
        thread.join(BOUND)
    warning = by_severity(checks["activity.blocked"], "warning")[f"pid {seen[0]}"]
    assert "blocked by prepared transaction 'holds params' (see activity.prepared_xacts)" \
        in warning["message"]
    assert warning["remedy"] == ("ROLLBACK PREPARED 'holds params'; -- releases its locks "
                                 "(see activity.prepared_xacts)")
    assert "pg_terminate_backend" not in warning["remedy"]


def test_an_active_slot_over_its_wal_threshold_is_not_told_to_be_dropped(pytester,
                                                                         tuned_janitor):
    """A slot in use by its consumer (pg_recvlogical) that retains more WAL than
    slot_wal_warn warns, but its remedy is not to drop it (an active slot cannot be)."""
    import shutil
    import subprocess

    from pytest_mlflowdb.servers.base import Server

    server: Server = tuned_janitor.server()
    recv = next((p for p in (shutil.which("pg_recvlogical"),
                             *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_recvlogical")))
                 if p), None)
    if recv is None:
        pytest.skip("pg_recvlogical not found")
    uri = tuned_janitor.create()
    sql(uri, "SET statement_timeout = '30s'",
        "SELECT pg_create_logical_replication_slot('consumed', 'test_decoding')")
    consumer = subprocess.Popen([str(recv), "-d", uri, "--slot", "consumed", "--start",
                                 "-f", "-", "--no-loop"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(uri, autocommit=True) as watcher:
            wait_until(watcher, "SELECT active FROM pg_replication_slots "
                       "WHERE slot_name = 'consumed'")
        _, checks = audit(pytester, uri, "--mlflowdb-set", "slot_wal_warn=0B")
    finally:
        consumer.terminate()
        consumer.wait(BOUND)
        with psycopg.connect(server.uri(dbname_of(uri)), autocommit=True) as conn:
            wait_until(conn, "SELECT NOT active FROM pg_replication_slots "
                       "WHERE slot_name = 'consumed'")
            conn.execute("SELECT pg_drop_replication_slot('consumed')")
    warning = by_severity(checks["activity.replication_slots"], "warning")["consumed"]
    assert ", active, " in warning["message"]
    assert "at or above slot_wal_warn 0B" in warning["message"]
    assert warning["message"].endswith("; in use: its consumer lags behind")
    assert warning["remedy"] is None


def test_a_physical_slot_that_reserves_no_wal_yet_warns_as_inactive(pytester, tuned_janitor):
    """A physical slot made without reserving WAL has no restart_lsn: it retains nothing
    yet, but once a standby uses it and goes away it keeps every segment."""
    uri = tuned_janitor.create()
    sql(uri, "SELECT pg_create_physical_replication_slot('standby_gone')")
    try:
        _, checks = audit(pytester, uri)
    finally:
        sql(uri, "SELECT pg_drop_replication_slot('standby_gone')")
    warning = by_severity(checks["activity.replication_slots"], "warning")["standby_gone"]
    assert warning["message"].startswith("physical slot, inactive, reserves no WAL yet, "
                                         "holds no xmin horizon back; inactive")
    assert warning["value"] == 0 and warning["threshold"] == "active"
