"""archiving.* and stats.checkpoints on a server of their own: WAL archived to a folder,
an archive_command that fails on purpose (the failed segment and the time since the last
good archive named), mended by a reload; a small max_wal_size under a write burst."""

from __future__ import annotations

import os

import pytest
from helpers import audit, sql
from server_support import value, wait_for

from pytest_mlflowdb.servers.janitor import Janitor

FAILING = "false"


def by_object(check: dict) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"]}


@pytest.fixture(scope="module")
def archiving():
    # archive_command by ALTER SYSTEM, not on the command line (which a reload cannot
    # change)
    janitor = Janitor("path", settings={"archive_mode": "on", "max_wal_size": "32MB"})
    try:
        server = janitor.server()
        assert server.workdir is not None
        folder = server.workdir / "archive"
        folder.mkdir()
        owner = os.stat(server.workdir)
        os.chown(folder, owner.st_uid, owner.st_gid)
        uri = janitor.create(source="catalog")
        sql(uri, f"ALTER SYSTEM SET archive_command = '{FAILING}'", "SELECT pg_reload_conf()")
        yield uri, f"cp %p {folder}/%f"
    finally:
        janitor.close()


def _archiver(uri: str, column: str):
    return value(uri, f"SELECT {column} FROM pg_stat_archiver")


def test_failing_archiving_is_named_then_passes_once_mended(pytester, archiving):
    uri, working = archiving
    sql(uri, "CREATE TABLE IF NOT EXISTS public.wal_probe (i int)",
        "INSERT INTO public.wal_probe SELECT generate_series(1, 1000)", "SELECT pg_switch_wal()")
    wait_for(lambda: _archiver(uri, "failed_count") > 0, "the archive command to fail")
    failed = _archiver(uri, "last_failed_wal")
    _, checks = audit(pytester, uri, "--mlflowdb-set", "archive_ready_warn=1")
    status = checks["archiving.status"]
    assert status["outcome"] == "warned", status
    found = by_object(status)[failed]
    assert f"archiving fails: {failed} failed" in found["message"], found
    assert "nothing archived since the counters began" in found["message"], found
    assert isinstance(found["value"], int)  # seconds since the last good archive
    ready = checks["archiving.ready"]
    assert ready["outcome"] == "warned", ready
    assert "at or above archive_ready_warn 1" in ready["message"], ready
    # past archive_age_fail the same is a failure
    _, checks = audit(pytester, uri, "--mlflowdb-set", "archive_age_warn=0s",
                      "--mlflowdb-set", "archive_age_fail=0s")
    assert checks["archiving.status"]["outcome"] == "failed", checks["archiving.status"]

    sql(uri, f"ALTER SYSTEM SET archive_command = '{working}'", "SELECT pg_reload_conf()")
    wait_for(lambda: _archiver(uri, "last_archived_wal") == failed,
             "the archiver to retry", timeout=120)
    wait_for(lambda: value(uri, "SELECT count(*) FROM pg_ls_archive_statusdir() "
                                "WHERE name ~ '[.]ready$'") == 0, "the backlog to clear")
    _, checks = audit(pytester, uri)
    status = checks["archiving.status"]
    assert status["outcome"] == "passed", status
    assert f"archiving keeps up: last archived {failed}" in status["message"], status
    assert checks["archiving.ready"]["outcome"] == "passed", checks["archiving.ready"]


def test_archive_mode_off_is_information_unless_required(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri)
    status = checks["archiving.status"]
    assert status["outcome"] == "passed", status
    assert status["findings"][0]["severity"] == "info"
    assert "no point-in-time recovery" in status["message"]
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-require-archiving")
    assert checks["archiving.status"]["outcome"] == "failed", checks["archiving.status"]


def test_a_small_max_wal_size_under_a_write_burst_warns(pytester, archiving):
    uri, _ = archiving
    before = value(uri, "SELECT checkpoints_req FROM pg_stat_bgwriter")
    sql(uri, "CREATE TABLE public.burst AS "
             "SELECT g, repeat('x', 400) AS pad FROM generate_series(1, 300000) g")
    wait_for(lambda: value(uri, "SELECT checkpoints_req FROM pg_stat_bgwriter") > before,
             "a requested checkpoint")
    _, checks = audit(pytester, uri, "--mlflowdb-set", "checkpoints_min=1")
    check = checks["stats.checkpoints"]
    assert check["outcome"] == "warned", check
    assert "max_wal_size" in check["findings"][0]["remedy"]
    assert "requested and 0 timed checkpoints, counted since" in check["message"], check


def test_an_archiver_falling_behind_is_named_by_the_time_since_its_last_good_archive(
        pytester, archiving):
    uri, working = archiving
    sql(uri, "CREATE TABLE IF NOT EXISTS public.wal_probe (i int)",
        f"ALTER SYSTEM SET archive_command = '{working}'", "SELECT pg_reload_conf()",
        "INSERT INTO public.wal_probe SELECT generate_series(1, 1000)", "SELECT pg_switch_wal()")
    wait_for(lambda: value(uri, "SELECT last_archived_time > coalesce(last_failed_time, "
                                "'-infinity') FROM pg_stat_archiver"),
             "archiving to work", timeout=120)
    sql(uri, f"ALTER SYSTEM SET archive_command = 'sleep 20 && {working}'",
        "SELECT pg_reload_conf()")
    try:
        sql(uri, "INSERT INTO public.wal_probe SELECT generate_series(1, 1000)",
            "SELECT pg_switch_wal()")
        wait_for(lambda: value(uri, "SELECT count(*) FROM pg_ls_archive_statusdir() "
                                    "WHERE name ~ '[.]ready$'") > 0, "a segment to wait")
        _, checks = audit(pytester, uri, "--mlflowdb-set", "archive_age_warn=0s")
        status = checks["archiving.status"]
        assert status["outcome"] == "warned", status
        assert "segment(s) wait to be archived; last archived" in status["message"], status
        assert "at or above archive_age_warn 0s" in status["message"], status
        _, checks = audit(pytester, uri)  # within the default 15 min: not a fault yet
        assert checks["archiving.status"]["outcome"] == "passed", checks["archiving.status"]
    finally:
        sql(uri, f"ALTER SYSTEM SET archive_command = '{working}'", "SELECT pg_reload_conf()")
