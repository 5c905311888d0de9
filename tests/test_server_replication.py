"""replication.*: a primary with a streaming standby made by ``pg_basebackup -R`` on this
machine; lag made by pausing the standby's replay; a synchronous standby asked for and
missing. The audit pointed at the primary names the standby and its lag, pointed at the
standby its own replay lag."""

from __future__ import annotations

import os

import pytest
from helpers import audit, dbname_of, sql
from server_support import start_standby, value, wait_for

from pytest_mlflowdb.servers.janitor import Janitor

LOW_BYTES = ("--mlflowdb-set", "replication_lag_bytes_warn=1kB")


def by_object(check: dict) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"]}


ARCHIVING = ("archiving.status", "archiving.ready")


@pytest.fixture(scope="module")
def pair():
    """A primary archiving its WAL to a folder, and its streaming standby."""
    janitor = Janitor("path", settings={"archive_mode": "on"})
    try:
        server = janitor.server()
        assert server.workdir is not None
        folder = server.workdir / "archive"
        folder.mkdir()
        owner = os.stat(server.workdir)
        os.chown(folder, owner.st_uid, owner.st_gid)
        uri = janitor.create(source="catalog")
        sql(uri, f"ALTER SYSTEM SET archive_command = 'cp %p {folder}/%f'",
            "SELECT pg_reload_conf()", "CREATE TABLE public.lag_probe (i int)")
        standby = start_standby(server)
        try:
            standby_uri = standby.uri(dbname_of(uri))
            wait_for(lambda: value(uri, "SELECT count(*) FROM pg_stat_replication "
                                        "WHERE state = 'streaming'") == 1,
                     "the standby to stream")
            yield uri, standby_uri
        finally:
            standby.stop()
    finally:
        janitor.close()


def _caught_up(uri: str) -> bool:
    return bool(value(uri, "SELECT replay_lsn = pg_current_wal_lsn() "
                           "FROM pg_stat_replication"))


def _replay_one(primary: str) -> None:
    """A transaction committed and replayed: the standby then knows when it last replayed
    one (pg_last_xact_replay_timestamp), which a fresh standby does not."""
    sql(primary, "INSERT INTO public.lag_probe VALUES (1)")
    wait_for(lambda: _caught_up(primary), "the standby to replay")


def test_a_healthy_standby_passes_on_both_sides(pytester, pair):
    primary, standby = pair
    _replay_one(primary)
    _, checks = audit(pytester, primary, *LOW_BYTES)
    lag = checks["replication.lag"]
    assert lag["outcome"] == "passed", lag
    (found,) = lag["findings"]
    assert found["object"].startswith("standby walreceiver (pid "), found
    assert "0B replayed" in found["message"], found
    assert checks["replication.synchronous"]["outcome"] == "passed"
    noisy = {k: c["message"] for k, c in checks.items()
             if k.split(".")[0] in ("settings", "stats", "archiving", "replication")
             and c["outcome"] != "passed"}
    assert noisy == {}, noisy
    assert "archiving keeps up" in checks["archiving.status"]["message"]
    _, checks = audit(pytester, standby, *LOW_BYTES)
    assert checks["replication.lag"]["outcome"] == "passed", checks["replication.lag"]
    assert "caught up" in checks["replication.lag"]["message"]
    assert checks["connectivity.primary"]["outcome"] == "failed"  # MLflow cannot write there
    assert checks["stats.conflicts"]["outcome"] == "passed", checks["stats.conflicts"]


def test_a_paused_replay_is_named_on_the_primary_and_on_the_standby(pytester, pair):
    primary, standby = pair
    _replay_one(primary)
    sql(standby, "SELECT pg_wal_replay_pause()")
    try:
        sql(primary, "INSERT INTO public.lag_probe SELECT generate_series(1, 10000)")
        wait_for(lambda: value(primary, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), "
                                        "flush_lsn) FROM pg_stat_replication") == 0,
                 "the standby to receive the burst")
        _, checks = audit(pytester, primary, *LOW_BYTES)
        lag = checks["replication.lag"]
        assert lag["outcome"] == "warned", lag
        (found,) = lag["findings"]
        assert found["object"].startswith("standby walreceiver"), found
        assert "at or above replication_lag_warn 1min / replication_lag_bytes_warn 1kB" \
            in found["message"], found
        assert "pg_wal_replay_resume" in found["remedy"]
        _, checks = audit(pytester, standby, *LOW_BYTES)
        lag = checks["replication.lag"]
        assert lag["outcome"] == "warned", lag
        (found,) = lag["findings"]
        assert "replay is paused" in found["message"], found
        assert "the last replayed transaction committed" in found["message"], found
        assert isinstance(found["value"], float), found  # the lag in seconds
        assert found["remedy"] == "SELECT pg_wal_replay_resume();"
    finally:
        sql(standby, "SELECT pg_wal_replay_resume()")
    wait_for(lambda: _caught_up(primary), "the standby to replay after resuming")


def test_a_missing_synchronous_standby_fails(pytester, pair):
    primary, _ = pair
    sql(primary, "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (nosuch)'",
        "SELECT pg_reload_conf()")
    try:
        wait_for(lambda: value(primary, "SHOW synchronous_standby_names") != "",
                 "the setting to load")
        _, checks = audit(pytester, primary)
        check = checks["replication.synchronous"]
        assert check["outcome"] == "failed", check
        assert "asks for 1 synchronous standby(s), 0 connected" in check["message"], check
    finally:
        sql(primary, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")


def test_a_new_user_sees_failing_archiving_and_a_lagging_standby(pytester, pair):
    """Done as the issue says: a primary whose archiving fails and whose standby lags;
    the audit names both, with the time since the last good archive and the lag."""
    primary, standby = pair
    working = value(primary, "SHOW archive_command")
    _replay_one(primary)
    sql(primary, "ALTER SYSTEM SET archive_command = 'false'", "SELECT pg_reload_conf()")
    sql(standby, "SELECT pg_wal_replay_pause()")
    try:
        failures = value(primary, "SELECT failed_count FROM pg_stat_archiver")
        sql(primary, "INSERT INTO public.lag_probe SELECT generate_series(1, 10000)",
            "SELECT pg_switch_wal()")
        wait_for(lambda: value(primary, "SELECT failed_count FROM pg_stat_archiver")
                 > failures, "the archive command to fail")
        result, checks = audit(pytester, primary, *LOW_BYTES)
        status = checks["archiving.status"]
        assert status["outcome"] == "warned", status
        assert "archiving fails: " in status["message"], status
        assert "ago" in status["message"].split("last archived ", 1)[1], status
        lag = checks["replication.lag"]
        assert lag["outcome"] == "warned", lag
        assert "standby walreceiver" in lag["message"] and "lag write" in lag["message"]
        summary = result.stdout.str()
        assert "archiving.status" in summary and "replication.lag" in summary
        _, checks = audit(pytester, standby, *LOW_BYTES)
        found = checks["replication.lag"]["findings"][0]
        assert found["severity"] == "warning" and isinstance(found["value"], float), found
    finally:
        sql(standby, "SELECT pg_wal_replay_resume()")
        sql(primary, f"ALTER SYSTEM SET archive_command = '{working}'",
            "SELECT pg_reload_conf()")


def test_without_pg_monitor_the_walsenders_and_ready_files_are_skips(pytester, pair):
    from urllib.parse import urlsplit, urlunsplit

    primary, _ = pair
    sql(primary, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                 "'plain_auditor') THEN CREATE ROLE plain_auditor LOGIN PASSWORD "
                 "'plain-Secret-1'; END IF; END $$")
    parts = urlsplit(primary)
    plain = urlunsplit(parts._replace(netloc=f"plain_auditor:plain-Secret-1@"
                                              f"{parts.hostname}:{parts.port}"))
    _, checks = audit(pytester, plain)
    for name in ("replication.lag", "archiving.ready"):
        check = checks[name]
        assert check["outcome"] == "skipped", check
        assert "pg_monitor" in check["message"], check
        assert 'GRANT pg_monitor TO "plain_auditor"' in check["message"], check


def test_queries_cancelled_by_recovery_conflicts_warn_on_the_standby(pytester, pair):
    import psycopg

    primary, standby = pair
    sql(primary, "CREATE TABLE IF NOT EXISTS public.conflict_probe AS "
                 "SELECT generate_series(1, 1000) AS i")
    wait_for(lambda: _caught_up(primary), "the standby to replay")
    sql(standby, "ALTER SYSTEM SET max_standby_streaming_delay = '100ms'",
        "SELECT pg_reload_conf()")
    try:
        wait_for(lambda: value(standby, "SHOW max_standby_streaming_delay") == "100ms",
                 "the standby's setting")
        before = value(standby, "SELECT conflicts FROM pg_stat_database "
                                "WHERE datname = current_database()")
        holder = psycopg.connect(standby, autocommit=True)
        try:  # a snapshot the primary's vacuum is about to remove rows from under
            holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT count(*) FROM public.conflict_probe")
            sql(primary, "DELETE FROM public.conflict_probe", "VACUUM public.conflict_probe")
            wait_for(lambda: value(standby, "SELECT conflicts FROM pg_stat_database "
                                            "WHERE datname = current_database()") > before,
                     "a recovery conflict")
        finally:
            holder.close()
        _, checks = audit(pytester, standby, "--mlflowdb-set", "conflicts_per_day_warn=1")
        check = checks["stats.conflicts"]
        assert check["outcome"] == "warned", check
        assert "queries cancelled by recovery conflicts" in check["message"], check
        assert "hot_standby_feedback" in check["findings"][0]["remedy"]
    finally:
        sql(standby, "ALTER SYSTEM RESET max_standby_streaming_delay", "SELECT pg_reload_conf()")
