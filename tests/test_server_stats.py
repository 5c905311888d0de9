"""stats.*: temporary files written by sorts forced to disk with a tiny work_mem, and a
deadlock made by two sessions, in a database of their own (pg_stat_database counts per
database); a healthy database passes (see test_server_settings' stock servers too)."""

from __future__ import annotations

import re
import threading

import psycopg
from helpers import audit, sql


def by_object(check: dict) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"]}


def test_sorts_spilling_past_work_mem_warn(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "temp_bytes_per_day_warn=1MB")
    assert checks["stats.temp_files"]["outcome"] == "passed", checks["stats.temp_files"]
    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        conn.execute("SET work_mem = '64kB'")
        conn.execute("SELECT count(*) FROM (SELECT g FROM generate_series(1, 300000) g "
                     "ORDER BY g DESC) s")
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "temp_bytes_per_day_warn=1MB")
    check = checks["stats.temp_files"]
    assert check["outcome"] == "warned", check
    (found,) = check["findings"]
    assert "temporary files per day" in found["message"], found
    assert re.search(r"\([1-9]\d* files, ", found["message"]), found
    assert "counted since" in found["message"], found
    assert "log_temp_files" in found["remedy"]
    work_mem = by_object(checks["settings.review"])["work_mem"]
    assert re.search(r"; [1-9]\d* temporary files, ", work_mem["message"]), work_mem


def test_a_deadlock_between_two_sessions_warns(pytester, mlflow_uri):
    first = psycopg.connect(mlflow_uri)
    second = psycopg.connect(mlflow_uri)
    errors: list[Exception] = []
    try:
        first.execute("SET deadlock_timeout = '100ms'")
        second.execute("SET deadlock_timeout = '100ms'")
        first.execute("SELECT pg_advisory_xact_lock(1)")
        second.execute("SELECT pg_advisory_xact_lock(2)")

        def cross(conn, key: int) -> None:
            try:
                conn.execute(f"SELECT pg_advisory_xact_lock({key})")
            except psycopg.errors.DeadlockDetected as exc:
                errors.append(exc)
            finally:
                conn.rollback()

        waiter = threading.Thread(target=cross, args=(first, 2))
        waiter.start()
        cross(second, 1)
        waiter.join(timeout=60)
        assert not waiter.is_alive()
    finally:
        first.close()
        second.close()
    assert len(errors) == 1
    _, checks = audit(pytester, mlflow_uri)
    check = checks["stats.deadlocks"]
    assert check["outcome"] == "warned", check
    assert "1 deadlock(s) in" in check["message"] and "counted since" in check["message"]


def test_a_healthy_database_passes_the_counters(pytester, mlflow_uri):
    sql(mlflow_uri, "SELECT 1")
    _, checks = audit(pytester, mlflow_uri)
    for name in ("checkpoints", "temp_files", "deadlocks", "rollbacks", "conflicts"):
        assert checks[f"stats.{name}"]["outcome"] == "passed", checks[f"stats.{name}"]


def test_most_transactions_rolled_back_warn(pytester, mlflow_uri):
    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        for _ in range(1200):  # each failing statement is a rolled-back transaction
            try:
                conn.execute("SELECT 1 / 0")
            except psycopg.errors.DivisionByZero:
                pass
    _, checks = audit(pytester, mlflow_uri)
    check = checks["stats.rollbacks"]
    assert check["outcome"] == "warned", check
    assert "at or above rollback_ratio_warn 20%" in check["message"], check
    assert re.search(r"\b1[0-9]{3} of [0-9]+ transactions rolled back", check["message"]), check


def test_checkpoints_asked_for_are_not_blamed_on_max_wal_size(pytester):
    """CHECKPOINT, CREATE DATABASE and base backups request checkpoints too: more of them
    than the WAL written could have forced say nothing about max_wal_size."""
    from pytest_mlflowdb.servers.janitor import Janitor

    janitor = Janitor("path")
    try:
        uri = janitor.create(source="catalog")
        with psycopg.connect(janitor.server().uri(), autocommit=True) as conn:
            for _ in range(12):
                conn.execute("CHECKPOINT")
        _, checks = audit(pytester, uri)
        check = checks["stats.checkpoints"]
        assert check["outcome"] == "passed", check
        assert "could force at most 0 of them" in check["message"], check
        assert "the others were asked for (CHECKPOINT, CREATE DATABASE" in check["message"]
    finally:
        janitor.close()
