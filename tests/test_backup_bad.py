"""backup.*: each kind of bad backup gets one clear line from the right check,
and nothing is left behind on the scratch server."""

from __future__ import annotations

import os
import time

import psycopg
import pytest
from backup_support import BACKUP, DAY_MS, now_ms, pg_dump, scratch_databases, seed
from helpers import audit, checks_by_id, dbname_of, failing, report, sql

pytestmark = pytest.mark.slow


def scratch(pg18) -> str:
    return f"--mlflowdb-scratch-uri={pg18.uri()}"


def only_line(check: dict) -> dict:
    (finding,) = failing(check)
    assert "\n" not in finding["message"]
    return finding


def test_a_truncated_dump_fails_readable_and_leaves_nothing(pytester, mlflow_uri, pg18,
                                                             tmp_path):
    seed(mlflow_uri, runs=300)
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    data = dump.read_bytes()
    dump.write_bytes(data[: int(len(data) * 0.6)])
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    finding = only_line(checks["backup.readable"])
    assert finding["object"] == str(dump)
    assert "unreadable" in finding["message"] and "end of file" in finding["message"]
    assert checks["backup.restore"]["outcome"] == "failed"
    for name in ("backup.schema", "backup.complete", "backup.freshness", "backup.rto"):
        assert checks[name]["outcome"] == "skipped"
        assert "not restored (see backup.restore)" in checks[name]["message"]
    assert not scratch_databases(pg18)
    assert result.ret == 1


def test_a_few_corrupted_bytes_in_the_middle_fail_readable(pytester, mlflow_uri, pg18,
                                                            tmp_path):
    seed(mlflow_uri, runs=3000)  # the data blocks, not the table of contents, make the bulk
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    data = bytearray(dump.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(16)
    dump.write_bytes(bytes(data))
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    finding = only_line(checks["backup.readable"])
    assert finding["object"] == str(dump) and "unreadable" in finding["message"]
    assert not scratch_databases(pg18)
    assert result.ret == 1


def test_a_dump_of_another_database_fails_schema_and_complete(pytester, mlflow_uri, pg18,
                                                               tmp_path):
    other = pg18.create_database("not_mlflow_backup")
    try:
        sql(other, "CREATE TABLE invoices (id int PRIMARY KEY)",
            "INSERT INTO invoices SELECT generate_series(1, 50)")
        dump = pg_dump(pg18, other, tmp_path / "other.dump")
    finally:
        pg18.drop_database("not_mlflow_backup")
    seed(mlflow_uri)
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    assert checks["backup.readable"]["outcome"] == "passed"
    assert checks["backup.restore"]["outcome"] == "passed"
    assert "not a dump of an MLflow database" in only_line(checks["backup.schema"])["message"]
    missing = {f["object"] for f in failing(checks["backup.complete"])}
    assert {"public.runs", "public.metrics", "public.experiments"} <= missing
    assert result.ret == 1


def test_a_dump_of_another_mlflow_database_is_one_failure_naming_both(
        pytester, mlflow_uri, pg18, mlflowdb_database_factory, tmp_path):
    """Two lived-in databases made alike by MLflow's own stores (the same experiment and
    model names, as a staging and a production server have): their runs tell them apart."""
    from test_integrity import lived_in

    other = mlflowdb_database_factory()
    for uri, folder in ((other, "other"), (mlflow_uri, "live")):
        (tmp_path / folder).mkdir()
        lived_in(uri, tmp_path / folder)
    dump = pg_dump(pg18, other, tmp_path / "other.dump")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    (finding,) = [f for name in BACKUP for f in failing(checks[name])]
    assert finding == only_line(checks["backup.complete"])
    message = finding["message"]
    assert "is not of the audited database" in message
    assert f"a dump of database {dbname_of(other)}" in message
    assert f"/{dbname_of(mlflow_uri)}" in message and "shares no runs" in message
    assert checks["backup.freshness"]["outcome"] == "skipped"
    assert "not of the audited database" in checks["backup.freshness"]["message"]
    assert result.ret == 1


def test_an_empty_live_database_is_not_called_another(pytester, mlflow_uri, pg18,
                                                      mlflowdb_database_factory, tmp_path):
    other = mlflowdb_database_factory()
    seed(other)
    dump = pg_dump(pg18, other, tmp_path / "other.dump")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    for name in BACKUP:
        assert checks[name]["outcome"] == "passed", checks[name]
    assert result.ret == 0


def test_objects_mlflow_does_not_make_are_named_by_schema(pytester, mlflow_uri, pg18,
                                                          tmp_path):
    seed(mlflow_uri)
    sql(mlflow_uri, "CREATE TABLE audit_notes (id int)", "ALTER TABLE runs ADD COLUMN team text",
        "CREATE INDEX my_runs_team ON runs (team)")
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    (extra,) = [f for f in checks["backup.schema"]["findings"] if "does not make" in f["message"]]
    assert extra["value"] == 3
    for name in ("table audit_notes", "column runs.team", "index my_runs_team"):
        assert name in extra["message"], extra


def test_a_copy_of_a_newer_mlflow_skips_schema_in_one_line(pytester, mlflow_uri, pg18,
                                                            tmp_path):
    """A dump of a database that an MLflow released after this pytest-mlflowdb migrated:
    every table of the catalog's head, one more, and a revision the catalog does not know
    (see test_schema_checks.py's live-side twin)."""
    seed(mlflow_uri)
    sql(mlflow_uri, "CREATE TABLE next_release_feature (id integer PRIMARY KEY)",
        "UPDATE alembic_version SET version_num = 'feedc0ffee00'")
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    schema = checks["backup.schema"]
    assert schema["outcome"] == "skipped", schema
    assert "feedc0ffee00 is newer than this pytest-mlflowdb knows" in schema["message"]
    assert "upgrade pytest-mlflowdb" in schema["message"] and "\n" not in schema["message"]
    for name in BACKUP:
        if name != "backup.schema":
            assert checks[name]["outcome"] == "passed", checks[name]
    assert result.ret == 0


def test_an_empty_copy_of_a_full_database_fails_complete_and_freshness(
        pytester, mlflow_uri, pg18, tmp_path):
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "empty.dump")  # before any run
    seed(mlflow_uri, runs=200)
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    assert checks["backup.schema"]["outcome"] == "passed"
    short = {f["object"]: f for f in failing(checks["backup.complete"])}
    assert short["public.runs"]["value"] == 0 and short["public.runs"]["threshold"] == 200
    assert "beyond backup_row_tolerance 25%" in short["public.runs"]["message"]
    stale = {f["object"]: f for f in failing(checks["backup.freshness"])}
    assert "the copy holds no runs" in stale["public.runs"]["message"]
    assert result.ret == 1


def test_a_stale_dump_fails_freshness_by_name(pytester, mlflow_uri, pg18, tmp_path):
    seed(mlflow_uri, runs=20, started_ms=now_ms() - 3 * DAY_MS)
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    seed(mlflow_uri, runs=5, first=100)  # runs logged after the dump
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    check = checks["backup.freshness"]
    assert check["outcome"] == "failed"
    (runs,) = [f for f in failing(check) if f["object"] == "public.runs"]
    assert "newest run start" in runs["message"] and "3d behind" in runs["message"]
    assert runs["threshold"] == "26h" and runs["value"] >= 3 * 86400 - 60
    rpo = [f for f in check["findings"] if f["object"] == "RPO"][0]
    assert "would lose 3d" in rpo["message"]
    assert checks["backup.complete"]["outcome"] == "passed"  # 20 of 25 runs: within 25%
    # the file's own age counts too
    old = time.time() - 2 * 86400
    os.utime(dump, (old, old))
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18),
                      "--mlflowdb-set", "max_backup_age=30d")
    assert checks["backup.freshness"]["outcome"] == "passed"
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}", scratch(pg18),
                      "--mlflowdb-set", "max_backup_age=1d")
    (age,) = [f for f in failing(checks["backup.freshness"]) if f["object"] == "backup file"]
    assert "older than max_backup_age 1d" in age["message"]
    assert result.ret == 1


@pytest.mark.parametrize("case", ["missing", "empty", "not a dump", "folder"])
def test_files_that_are_no_backup_fail_readable_in_one_line(pytester, mlflow_uri, pg18,
                                                            tmp_path, case):
    path = tmp_path / "nightly.dump"
    expected = {"missing": "no such file", "empty": "is empty (0 bytes)",
                "not a dump": "is not a pg_dump archive", "folder": "without toc.dat"}[case]
    if case == "empty":
        path.write_bytes(b"")
    elif case == "not a dump":
        path.write_text("hello, this is not SQL from pg_dump\n")
    elif case == "folder":
        path.mkdir()
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={path}", scratch(pg18))
    finding = only_line(checks["backup.readable"])
    assert finding["object"] == str(path) and expected in finding["message"]
    assert checks["backup.restore"]["outcome"] == "skipped"
    assert "Traceback" not in result.stdout.str()
    assert result.ret == 1


def test_a_dump_newer_than_the_available_pg_restore(pytester, mlflow_uri, pg18, tmp_path):
    from pytest_mlflowdb.servers.locate import path_bin_dir

    old = path_bin_dir()
    if (old / "pg_restore").exists() is False:
        pytest.skip("no PostgreSQL client binaries on PATH")
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-pg-bin={old}")
    message = only_line(checks["backup.readable"])["message"]
    assert "needs pg_dump/pg_restore/psql 18 or newer" in message
    assert "made by pg_dump 18" in message and f"in {old}" in message
    assert checks["backup.restore"]["outcome"] == "skipped"
    assert result.ret == 1


def test_no_scratch_server_is_one_line_and_the_archive_is_still_read(pytester, mlflow_uri,
                                                                     pg18, tmp_path):
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    secret = "Sup3r-secret-scratch"
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri=postgresql://u:{secret}@127.0.0.1:1/x")
    message = only_line(checks["backup.restore"])["message"]
    assert message.startswith("no scratch server: cannot connect to --mlflowdb-scratch-uri")
    assert checks["backup.readable"]["outcome"] == "passed"
    assert "pg_restore -f /dev/null read every data block" in \
        checks["backup.readable"]["message"]
    assert secret not in result.stdout.str() + (pytester.path / "audit.json").read_text()
    assert result.ret == 1


def test_a_scratch_uri_at_the_audited_database_is_refused(pytester, mlflow_uri, pg18,
                                                          tmp_path):
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    with_host_name = mlflow_uri.replace("127.0.0.1", "localhost")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri={with_host_name}")
    message = only_line(checks["backup.restore"])["message"]
    assert message.startswith("refused: --mlflowdb-scratch-uri") and \
        "system identifier" in message
    assert not scratch_databases(pg18)
    assert result.ret == 1


@pytest.fixture(scope="module")
def unprivileged_live(tmp_path_factory):
    """A server of this test's own, also listening on a Unix socket, whose auditing role
    may not execute pg_control_system() (revoked from PUBLIC): (server, socket folder,
    the role's URI of database live_db over 'localhost', a dump of live_db)."""
    import shutil
    import tempfile
    from urllib.parse import quote

    from pytest_mlflowdb.servers import start_server
    from pytest_mlflowdb.servers.binaries import _run_as

    sockets = tempfile.mkdtemp(prefix="mlflowdb-sock-")
    os.chmod(sockets, 0o755)
    run_as = _run_as()
    if run_as:
        os.chown(sockets, run_as["user"], run_as["group"])
    server = start_server("path", settings={"unix_socket_directories": sockets})
    try:
        uri = server.create_database("live_db")
        password = "Aud1tor-pw@x"
        sql(uri, f"CREATE ROLE auditor LOGIN PASSWORD '{password}'",  # pg_proc's ACLs
            "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC",  # are per database
            "CREATE TABLE t AS SELECT 1 AS a")
        dump = pg_dump(server, uri, tmp_path_factory.mktemp("dump") / "live.dump")
        live = f"postgresql://auditor:{quote(password, safe='')}@localhost:{server.port}/live_db"
        with psycopg.connect(live, connect_timeout=5) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM pg_control_system()")
        yield server, sockets, live, dump
    finally:
        server.stop()
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.mark.parametrize(("live_host", "spelling"), [
    ("localhost", "127.0.0.1"), ("127.0.0.1", "localhost"), ("localhost", "unix-socket")])
def test_the_audited_server_spelt_otherwise_is_refused_without_pg_control_system(
        pytester, unprivileged_live, live_host, spelling):
    """Host strings told localhost from 127.0.0.1 (or a socket) as two servers: a superuser
    session then created, restored into and dropped a database on the audited server."""
    server, sockets, live, dump = unprivileged_live
    live = live.replace("@localhost:", f"@{live_host}:")
    if spelling == "unix-socket":
        scratch_uri = f"postgresql://postgres@/live_db?host={sockets}&port={server.port}"
    else:
        scratch_uri = server.uri("live_db").replace("@127.0.0.1:", f"@{spelling}:")
    result, checks = audit(pytester, live, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri={scratch_uri}")
    message = only_line(checks["backup.restore"])["message"]
    assert message.startswith("refused: --mlflowdb-scratch-uri"), message
    assert not scratch_databases(server)
    assert result.ret == 1


def test_another_server_is_not_refused_without_pg_control_system(pytester, pg18,
                                                                  unprivileged_live):
    server, _sockets, live, dump = unprivileged_live
    with psycopg.connect(pg18.uri(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE live_db")
    try:
        result, checks = audit(pytester, live, f"--mlflowdb-backup={dump}",
                               f"--mlflowdb-scratch-uri={pg18.uri('live_db')}")
    finally:
        pg18.drop_database("live_db")
    assert checks["backup.restore"]["outcome"] == "passed", checks["backup.restore"]
    assert not scratch_databases(pg18)


def test_leftovers_of_an_interrupted_run_are_swept_and_held_ones_kept(pytester, mlflow_uri,
                                                                      pg18, tmp_path):
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    leftover, held = "mlflowdb_scratch_0123456789ab", "mlflowdb_scratch_ba9876543210"
    pg18.create_database(leftover)
    pg18.create_database(held)
    holder = psycopg.connect(pg18.uri(held))  # another run, restoring right now
    try:
        result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                               scratch(pg18))
        assert scratch_databases(pg18) == {held}
    finally:
        holder.close()
        pg18.drop_database(held)
    swept = [f for f in checks["backup.restore"]["findings"] if f["object"] == "scratch"]
    assert swept and leftover in swept[0]["message"] and held not in swept[0]["message"]
    assert checks["backup.restore"]["outcome"] == "passed"
    assert result.ret == 0


@pytest.mark.parametrize("args, words", [
    (["--mlflowdb-set", "max_backup_age=soon"], "is not a duration"),
    (["--mlflowdb-set", "max_restore_time=-1s"], "is not a duration"),
    (["--mlflowdb-set", "backup_row_tolerance=lots"], "is not a percent"),
    (["-o", "mlflowdb_restore_test=maybe"], "is not a switch"),
    (["--mlflowdb-scratch-uri=ftp://u:pw@host/db"], "unsupported URI scheme"),
])
def test_bad_backup_option_values_are_one_line_usage_errors(pytester, mlflow_uri, args,
                                                            words):
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}",
                                           "--mlflowdb-backup=x.dump", *args)
    assert result.ret == 4
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and words in errors[0], errors
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("what", ["fifo", "dev-zero"])
def test_a_backup_that_is_no_file_nor_folder_is_a_usage_error(pytester, mlflow_uri, what):
    """A FIFO would hang the run and /dev/zero was called "empty (0 bytes)": refused."""
    if what == "fifo":
        path, words = pytester.path / "nightly.dump", "is a FIFO (named pipe)"
        os.mkfifo(path)
    else:
        path, words = "/dev/zero", "is a character device"
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}",
                                           f"--mlflowdb-backup={path}", timeout=60)
    assert result.ret == 4
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and words in errors[0], errors


def test_mlflow_tables_in_a_schema_of_their_own_are_found_in_the_copy(pytester, pg18,
                                                                       tmp_path):
    """The dump does not carry ALTER DATABASE ... SET search_path: the copy is read where
    its MLflow tables are, not reported as no MLflow database."""
    from pytest_mlflowdb.catalog.mlflow_schema import apply_catalog_schema

    uri = pg18.create_database("mlflow_in_schema")
    try:
        sql(uri, "CREATE SCHEMA mlflow",
            "ALTER DATABASE mlflow_in_schema SET search_path = mlflow")
        apply_catalog_schema(uri)
        dump = pg_dump(pg18, uri, tmp_path / "nightly.dump")
        result, checks = audit(pytester, uri, f"--mlflowdb-backup={dump}", scratch(pg18))
    finally:
        pg18.drop_database("mlflow_in_schema")
    assert checks["backup.schema"]["outcome"] == "passed", checks["backup.schema"]
    assert checks["backup.schema"]["findings"][0]["object"] == "mlflow.alembic_version"
    assert checks["backup.complete"]["outcome"] == "passed"
    (summary,) = [f for f in checks["backup.complete"]["findings"] if f["object"] == "mlflow"]
    assert summary["message"].startswith("all ") and "MLflow tables of the live target" in \
        summary["message"]


def test_a_dump_uris_password_is_masked_everywhere(pytester, mlflow_uri):
    """--mlflowdb-dump-uri holds a password like a target's: the debug log (which records
    the command line), the terminal and the report mask it."""
    secret = "Dump-S3cret-pw"
    result = pytester.runpytest_subprocess(
        f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-restore-test", "--debug=dbg.log",
        f"--mlflowdb-dump-uri=postgresql://u:{secret}@127.0.0.1:1/x",
        f"--mlflowdb-report={pytester.path / 'audit.json'}", "-p", "no:cacheprovider")
    message = only_line(checks_by_id(report(pytester.path / "audit.json"))
                        ["backup.readable"])["message"]
    assert message.startswith("cannot back it up: cannot use --mlflowdb-dump-uri")
    for text in (result.stdout.str(), (pytester.path / "audit.json").read_text(),
                 (pytester.path / "dbg.log").read_text()):
        assert secret not in text
    assert result.ret == 1
