"""Client tools found by version (and said which were found when none fits), connections
handed to them without a password on the command line, archive headers read, roles
without privileges, and a restore killed half-way swept by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from backup_support import pg_dump, scratch_databases, seed
from helpers import audit, dbname_of, failing, role_uri

from pytest_mlflowdb.servers.archive import CUSTOM, DIRECTORY, PLAIN, TAR, inspect
from pytest_mlflowdb.servers.tools import ToolsError, child_connection, find_tools


def test_the_first_folder_with_tools_new_enough_is_chosen():
    tools = find_tools(18, "test")
    assert tools.major >= 18 and (tools.bin_dir / "pg_restore").exists()
    older = find_tools(1, "test")
    assert older.major >= 1


def test_the_tools_of_a_preferred_major_come_first_when_they_fit():
    from helpers import major_bin_dir, path_major

    major = int(path_major())
    if major_bin_dir(major) is None or find_tools(1, "test").major == major:
        pytest.skip("no second major's tools to prefer here")
    assert find_tools(1, "test", prefer=major).major == major
    assert find_tools(major, "test", prefer=major).major == major
    newest = find_tools(1, "test")
    assert find_tools(newest.major, "test", prefer=major) == newest  # too old: not taken


def test_no_fitting_tools_says_which_were_found_and_what_is_needed(tmp_path):
    with pytest.raises(ToolsError) as raised:
        find_tools(99, "the archive was made by pg_dump 99.0")
    message = str(raised.value)
    assert message.startswith("needs pg_dump/pg_restore/psql 99 or newer (the archive was "
                              "made by pg_dump 99.0); found: ")
    assert "(server wheel)" in message and "give --mlflowdb-pg-bin" in message
    with pytest.raises(ToolsError, match=r"\(--mlflowdb-pg-bin\) lacks pg_dump, pg_restore"):
        find_tools(15, "test", tmp_path)


def test_a_child_gets_the_password_in_its_environment_only():
    secret = "Very-secret-pw-123"
    child = child_connection(f"postgresql://me:{secret}@db.example:5433/mlflow?sslmode=require",
                             dbname="scratch", pgoptions="-c default_transaction_read_only=on")
    assert secret not in child.dsn and secret not in repr(child)
    assert "dbname=scratch" in child.dsn and "sslmode=require" in child.dsn
    assert child.env["PGPASSWORD"] == secret
    assert child.env["PGOPTIONS"].endswith("-c default_transaction_read_only=on")


@pytest.mark.parametrize("fmt, kind", [("c", CUSTOM), ("d", DIRECTORY), ("t", TAR),
                                       ("p", PLAIN)])
def test_archive_headers_name_the_pg_dump_that_made_them(pg18, tmp_path, fmt, kind):
    uri = pg18.create_database(f"header_{fmt}")
    try:
        archive = inspect(pg_dump(pg18, uri, tmp_path / f"dump.{fmt}", fmt))
    finally:
        pg18.drop_database(f"header_{fmt}")
    assert archive.format == kind
    assert archive.dumped_by.startswith("18.") and archive.dumped_from.startswith("18.")
    assert archive.needed_major == 18


@pytest.mark.slow
def test_a_role_without_select_cannot_dump_and_cannot_compare_newest_data(
        pytester, mlflow_uri, pg18, mlflow_role, tmp_path):
    seed(mlflow_uri)
    user, password = mlflow_role
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    result, checks = audit(pytester, uri, "--mlflowdb-restore-test")
    (finding,) = failing(checks["backup.readable"])
    assert finding["message"].startswith("cannot back it up: pg_dump of the live target "
                                         "failed") and "permission denied" in \
        finding["message"]
    assert password not in result.stdout.str() + (pytester.path / "audit.json").read_text()
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    result, checks = audit(pytester, uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri={pg18.uri()}")
    assert checks["backup.restore"]["outcome"] == "passed"
    assert checks["backup.complete"]["outcome"] == "passed"  # catalog estimates only
    freshness = checks["backup.freshness"]
    assert freshness["outcome"] == "skipped"
    assert "no SELECT privilege on public.runs" in freshness["message"]


@pytest.mark.slow
def test_a_restore_killed_half_way_is_swept_by_the_next_run(pytester, mlflow_uri, pg18,
                                                            tmp_path):
    seed(mlflow_uri, runs=4000)
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    args = [f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-backup={dump}",
            f"--mlflowdb-scratch-uri={pg18.uri()}", "-p", "no:cacheprovider"]
    before = scratch_databases(pg18)
    run = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=pytester.path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not scratch_databases(pg18) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        made = scratch_databases(pg18) - before
        assert made, "the run never made its scratch database"
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the run and its pg_restore, mid-restore
        run.wait()
    (leftover,) = made
    with psycopg.connect(pg18.uri(), autocommit=True) as conn:
        for _ in range(600):  # the killed sessions end on the server side (autovacuum,
            # busy with what the restore loaded, does not hold a database: DROP ends it)
            if not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                "AND backend_type <> 'autovacuum worker'",
                                (leftover,)).fetchone()[0]:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the killed run's sessions on {leftover} never ended")
    assert leftover in scratch_databases(pg18)
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                      f"--mlflowdb-scratch-uri={pg18.uri()}")
    swept = [f for f in checks["backup.restore"]["findings"] if f["object"] == "scratch"]
    assert swept and leftover in swept[0]["message"]
    assert not scratch_databases(pg18)


@pytest.mark.slow
def test_a_scratch_role_that_cannot_create_databases_is_one_line(pytester, mlflow_uri, pg18,
                                                                  mlflow_role, tmp_path):
    user, password = mlflow_role
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri={role_uri(pg18, 'postgres', user, password)}")
    (finding,) = failing(checks["backup.restore"])
    assert finding["message"].startswith("cannot make a scratch database on the server of "
                                         "--mlflowdb-scratch-uri: permission denied")
    assert checks["backup.readable"]["outcome"] == "passed"
    assert password not in result.stdout.str()
    assert result.ret == 1
