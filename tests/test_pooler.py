"""Behind a transaction-mode pgbouncer the audit leaves nothing on the shared connection."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from backup_support import BACKUP, seed
from helpers import audit, checks_by_id, dbname_of, failing, report

from pytest_mlflowdb.text import first_line

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def pooler(pg18, mlflow_uri):
    """pgbouncer, pool_mode=transaction, ONE server connection shared by every client
    (fewer server connections than the audit has transactions, and the next client
    surely gets the connection the audit used)."""
    yield from _pgbouncer(pg18, mlflow_uri, pool_size=1)


@pytest.fixture
def rotating_pooler(pg18, mlflow_uri):
    """pgbouncer, pool_mode=transaction, three server connections handed out in turn, so
    consecutive transactions of one client land on different server connections."""
    yield from _pgbouncer(pg18, mlflow_uri, pool_size=3,
                          extra="min_pool_size = 3\nserver_round_robin = 1\n")


@pytest.fixture
def leaky_pooler(pg18, mlflow_uri):
    """The ``pooler`` of a deployment that lets clients' ``options`` through (ignored),
    as many do for clients that set them, so pg_dump's PGOPTIONS does not stop it."""
    yield from _pgbouncer(pg18, mlflow_uri, pool_size=1,
                          ignore="extra_float_digits,options")


def _pgbouncer(pg18, mlflow_uri, pool_size: int, extra: str = "",
               ignore: str = "extra_float_digits"):
    if not os.path.exists(PGBOUNCER):
        pytest.skip("pgbouncer is not installed (.ci/run installs it)")
    base = Path(tempfile.mkdtemp(prefix="mlflowdb-pgbouncer-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (base / "users.txt").write_text('"postgres" ""\n')
    server = (f"host={pg18.host} port={pg18.port} dbname={dbname_of(mlflow_uri)} "
              f"user=postgres password={pg18.password}")
    (base / "pgbouncer.ini").write_text(f"""
[databases]
mlflow = {server}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {base / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 20
ignore_startup_parameters = {ignore}
logfile = {base / "pgbouncer.log"}
{extra}""")
    run_as = {}
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam("nobody")
        run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        os.chown(base, entry.pw_uid, entry.pw_gid)
        for child in base.iterdir():
            os.chown(child, entry.pw_uid, entry.pw_gid)
    process = subprocess.Popen([PGBOUNCER, str(base / "pgbouncer.ini")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **run_as)
    uri = f"postgresql://postgres@127.0.0.1:{port}/mlflow?sslmode=disable"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(uri, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        if pool_size > 1:  # wait for the pool to open its min_pool_size connections
            with pg18.admin() as admin:
                while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                    "datname = %s AND backend_type = 'client backend' AND "
                                    "pid <> pg_backend_pid()",
                                    (dbname_of(mlflow_uri),)).fetchone()[0] < pool_size:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(base, ignore_errors=True)


def test_audit_through_a_transaction_pooler_leaves_mlflow_writable(pytester, pooler):
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={pooler}", f"--mlflowdb-report={json_path}")
    checks = checks_by_id(report(json_path))
    assert checks["schema.revision"]["outcome"] == "passed"
    assert result.ret == 0
    # The next client of the pool gets the very server connection the audit used.
    with psycopg.connect(pooler, autocommit=True) as conn:
        state = conn.execute(
            "SELECT current_setting('default_transaction_read_only'), "
            "current_setting('statement_timeout'), current_setting('lock_timeout')").fetchone()
        assert state == ("off", "0", "0")
        conn.execute("INSERT INTO experiments (name, lifecycle_stage) VALUES ('after-audit', "
                     "'active')")


REPEATS = """
import pytest


@pytest.mark.parametrize("round", range(8))
def test_same_query_again(mlflowdb, round):
    # more than psycopg's prepare threshold (5) of one identical query, each in its own
    # transaction, so each may land on another pooled server connection
    for _ in range(3):
        assert mlflowdb.value("SELECT count(*) FROM experiments") >= 0
"""


def test_audit_prepares_nothing_on_pooled_server_connections(pytester, pooler):
    """psycopg prepares a statement after its fifth run; a pooler hands that transaction
    to any server connection, so the audit must never prepare (prepare_threshold=None)."""
    pytester.makepyfile(test_repeats=REPEATS)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={pooler}", f"--mlflowdb-report={json_path}")
    outcomes = {c["outcome"] for c in report(json_path)["checks"]
                if c["id"].startswith("custom.repeats")}
    assert outcomes == {"passed"}, result.stdout.str()
    assert result.ret == 0
    with psycopg.connect(pooler, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    # MLflow's own psycopg clients prepare with the default threshold: no name clash.
    with psycopg.connect(pooler) as conn:
        for _ in range(8):
            with conn.transaction():
                assert conn.execute("SELECT count(*) FROM experiments").fetchone()[0] >= 0


def test_audit_through_a_rotating_pool_repeats_queries_without_errors(pytester,
                                                                      rotating_pooler):
    """Five runs of one query and psycopg would prepare it on one server connection, then
    run it by name on another: 'prepared statement "_pg3_0" does not exist'."""
    pytester.makepyfile(test_repeats=REPEATS)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={rotating_pooler}",
                                f"--mlflowdb-report={json_path}")
    checks = report(json_path)["checks"]
    broken = [c["message"] for c in checks if c["outcome"] in ("error", "failed")]
    assert not broken, broken
    assert result.ret == 0


def test_mlflow_sessions_behind_the_pooler_are_seen_after_an_audit_through_it(
        pytester, pooler, mlflow_uri):
    """pgbouncer keeps a client's application_name on the server connection; MLflow's
    next transaction there must not look like the audit's own (it passed unseen)."""
    audit_json = pytester.path / "through.json"
    pytester.runpytest(f"--mlflowdb-uri={pooler}", f"--mlflowdb-report={audit_json}")
    with psycopg.connect(pooler) as mlflow_like:  # same role as the audit, no name of its own
        mlflow_like.execute("INSERT INTO experiments (name, lifecycle_stage) VALUES "
                            "('left-open', 'active')")
        with psycopg.connect(mlflow_uri, autocommit=True) as watcher:
            deadline = time.monotonic() + 30
            while not watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                    "AND now() - state_change > interval '1.2s' AND datname = %s",
                    (dbname_of(mlflow_uri),)).fetchone()[0]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        json_path = pytester.path / "direct.json"
        pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
                           "--mlflowdb-set=idle_in_transaction_warn=1s")
        check = checks_by_id(report(json_path))["activity.idle_in_transaction"]
        mlflow_like.rollback()
    assert check["outcome"] == "warned", check
    assert "INSERT INTO experiments" in check["message"]


class MlflowLike(threading.Thread):
    """MLflow's tracking server through the pool: short transactions reading its tables
    by their bare names (its search_path is the server's default), until stopped."""

    def __init__(self, uri: str) -> None:
        super().__init__(daemon=True)
        self.uri, self.done, self.queries, self.errors = uri, threading.Event(), 0, []

    def run(self) -> None:
        # psycopg2, as MLflow's SQLAlchemy URIs use, prepares nothing
        with psycopg.connect(self.uri, prepare_threshold=None) as conn:
            while not self.done.is_set():
                try:
                    with conn.transaction():
                        conn.execute("SELECT count(*) FROM experiments").fetchone()
                    self.queries += 1
                except psycopg.Error as exc:
                    self.errors.append(first_line(exc))
                time.sleep(0.01)

    def __enter__(self) -> MlflowLike:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(30)


def pool_state(uri: str) -> set[tuple]:
    """What MLflow's next transactions through the pool find on its server connection."""
    with psycopg.connect(uri) as conn:
        return {conn.execute("SELECT current_setting('search_path'), "
                             "current_setting('statement_timeout'), "
                             "current_setting('row_security'), "
                             "(SELECT count(*) FROM pg_prepared_statements)").fetchone()
                for _ in range(3)}


@pytest.mark.slow
def test_restore_test_never_runs_pg_dump_through_a_transaction_pooler(pytester, leaky_pooler,
                                                                      mlflow_uri, pg18):
    """pg_dump sets search_path '' (and more) outside any transaction: through the pool it
    stays on the server connection MLflow gets next ('relation "experiments" does not
    exist'). Refused in one line; with --mlflowdb-dump-uri, pg_dump goes direct."""
    seed(mlflow_uri)
    clean = pool_state(leaky_pooler)
    with MlflowLike(leaky_pooler) as mlflow:
        result, checks = audit(pytester, leaky_pooler, "--mlflowdb-restore-test")
        (finding,) = failing(checks["backup.readable"])
        assert "\n" not in finding["message"]
        assert "refused to run pg_dump through a connection pooler" in finding["message"]
        assert "give --mlflowdb-dump-uri a direct connection" in finding["message"]
        assert checks["backup.restore"]["outcome"] == "skipped"
        assert result.ret == 1
        assert pool_state(leaky_pooler) == clean
        result, checks = audit(pytester, leaky_pooler, "--mlflowdb-restore-test",
                               f"--mlflowdb-dump-uri={mlflow_uri}")
        for name in BACKUP:
            assert checks[name]["outcome"] == "passed", checks[name]
        assert pg18.password not in result.stdout.str() + \
            (pytester.path / "audit.json").read_text()
    assert mlflow.queries > 10 and not mlflow.errors, mlflow.errors[:3]
    assert pool_state(leaky_pooler) == clean


@pytest.mark.slow
def test_a_dump_uri_that_is_another_database_or_pooled_is_refused(pytester, leaky_pooler,
                                                                  mlflow_uri, pg18):
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-restore-test",
                      f"--mlflowdb-dump-uri={pg18.uri()}")
    (finding,) = failing(checks["backup.readable"])
    assert "--mlflowdb-dump-uri" in finding["message"]
    assert "is not the audited database" in finding["message"]
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-restore-test",
                      f"--mlflowdb-dump-uri={leaky_pooler}")
    (finding,) = failing(checks["backup.readable"])
    assert "goes through a connection pooler too" in finding["message"]


def test_concurrent_pipelined_audits_through_a_pool_leave_nothing_behind(pytester,
                                                                         rotating_pooler):
    """Several audits at once through a transaction pool of three server connections: one
    process collecting three targets side by side and a second process beside it. Their
    pipelined transactions leave no prepared statement and no setting on the pooled
    connections, and MLflow's client keeps working through the same pool meanwhile."""
    import subprocess
    import sys

    clean = pool_state(rotating_pooler)
    fleet = pytester.path / "fleet.txt"
    # three spellings of one target: three sessions, collected side by side
    fleet.write_text("".join(f"{rotating_pooler}&connect_timeout={10 + i}\n" for i in range(3)))
    with MlflowLike(rotating_pooler) as mlflow:
        beside = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
             f"--mlflowdb-uri={rotating_pooler}", f"--mlflowdb-report={pytester.path}/b.json"],
            cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        json_path = pytester.path / "a.json"
        result = pytester.runpytest(f"--mlflowdb-uri-file={fleet}",
                                    f"--mlflowdb-report={json_path}")
        assert beside.wait(timeout=300) == 0
    assert result.ret == 0, result.stdout.str()
    for path in (json_path, pytester.path / "b.json"):
        checks = report(path)["checks"]
        assert not [c for c in checks if c["outcome"] in ("error", "failed")]
        assert {c["outcome"] for c in checks if c["id"] == "schema.revision"} == {"passed"}
    assert len({c["target"] for c in report(json_path)["checks"]}) == 3
    assert mlflow.queries > 0 and not mlflow.errors, mlflow.errors
    assert pool_state(rotating_pooler) == clean
