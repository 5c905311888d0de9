"""Collect, then judge: probes gathered in few flights, each error kept with its probe,
the checks answered from what was collected, and a fleet collected side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest
from helpers import audit, report
from tcp_proxy import TcpProxy

from pytest_mlflowdb.config.targets import parse_target
from pytest_mlflowdb.db.database import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from latency_proxy import LatencyProxy  # noqa: E402

#: round trips of opening one connection (start-up, the SSL request, SCRAM's exchanges)
CONNECT_ROUND_TRIPS = 4


def _session(uri: str, **timeouts: float) -> Database:
    return Database(parse_target(uri), **timeouts).connect()


def _through(uri: str, port: int) -> str:
    target = parse_target(uri)
    return target.conninfo.replace(f":{_port_of(uri)}/", f":{port}/")


def _port_of(uri: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(uri).port or 5432


def _value(key: str, query: str, params=None):
    return lambda db: db.cached(key, lambda d: d.value(query, params))


def test_independent_probes_share_one_flight(mlflow_uri):
    db = _session(mlflow_uri)
    try:
        probes = [_value(f"n{i}", "SELECT %s::int", (i,)) for i in range(20)]
        assert db.gather([lambda p=p: p(db) for p in probes]) == 1
        assert [db.cached(f"n{i}", lambda d: None) for i in range(20)] == list(range(20))
    finally:
        db.close()


def test_dependent_statements_take_one_flight_per_step(mlflow_uri):
    db = _session(mlflow_uri)

    def chain(d: Database) -> int:
        a = d.value("SELECT 1")
        b = d.value("SELECT %s::int + 1", (a,))
        return d.value("SELECT %s::int + 1", (b,))

    try:
        flights = db.gather([lambda: db.cached("chain", chain),
                             lambda: db.cached("one", lambda d: d.value("SELECT 'x'"))])
        assert flights == 3
        assert db.cached("chain", chain) == 3
    finally:
        db.close()


def test_each_reads_side_by_side(mlflow_uri):
    db = _session(mlflow_uri)
    try:
        flights = db.gather([lambda: db.cached("many", lambda d: d.each(
            lambda i: d.value("SELECT %s::int * 2", (i,)), list(range(10))))])
        assert flights == 1
        assert db.cached("many", lambda d: None) == [i * 2 for i in range(10)]
    finally:
        db.close()


def test_a_probe_error_stays_with_that_probe(mlflow_uri):
    """A failing statement aborts the ones sent after it in its flight; they go out again
    and get their own answers; only the failing probe keeps the error."""
    db = _session(mlflow_uri)
    try:
        db.gather([lambda p=p: p(db) for p in (
            _value("before", "SELECT 'before'"), _value("broken", "SELECT 1 / 0"),
            _value("after", "SELECT 'after'"))])
        assert db.cached("before", lambda d: None) == "before"
        assert db.cached("after", lambda d: None) == "after"
        with pytest.raises(psycopg.errors.DivisionByZero):
            db.cached("broken", lambda d: "computed again")
        assert db.value("SELECT 'still usable'") == "still usable"
    finally:
        db.close()


def test_a_lock_held_elsewhere_fails_only_the_probe_that_needs_it(mlflow_uri):
    db = _session(mlflow_uri, lock_timeout=0.2)
    with psycopg.connect(mlflow_uri) as holder:
        holder.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
        try:
            db.gather([lambda p=p: p(db) for p in (
                _value("locked", "SELECT count(*) FROM experiments"),
                _value("free", "SELECT count(*) FROM pg_class"))])
            with pytest.raises(psycopg.errors.LockNotAvailable):
                db.cached("locked", lambda d: None)
            assert db.cached("free", lambda d: None) > 0
        finally:
            db.close()


def test_a_flight_is_one_read_only_snapshot(mlflow_uri):
    db = _session(mlflow_uri)
    try:
        db.gather([lambda p=p: p(db) for p in (
            _value("iso", "SELECT current_setting('transaction_isolation')"),
            _value("ro", "SELECT current_setting('transaction_read_only')"),
            _value("ti", "SELECT current_setting('statement_timeout')"))])
        assert db.cached("iso", lambda d: None) == "repeatable read"
        assert db.cached("ro", lambda d: None) == "on"
        assert db.cached("ti", lambda d: None) == "30s"
    finally:
        db.close()


def test_a_check_asking_again_is_answered_from_what_was_collected(mlflow_uri):
    with LatencyProxy(("127.0.0.1", _port_of(mlflow_uri)), 0.0) as proxy:
        db = Database(parse_target(_through(mlflow_uri, proxy.port))).connect()
        try:
            db.gather([lambda: db.rows("SELECT relname FROM pg_class WHERE relname = %s",
                                       ("runs",))])
            proxy.reset()
            assert db.rows("SELECT relname FROM pg_class WHERE relname = %s",
                           ("runs",)) == [{"relname": "runs"}]
            assert proxy.round_trips == 0
            db.rows("SELECT relname FROM pg_class WHERE relname = %s", ("experiments",))
            assert proxy.round_trips == 1
        finally:
            db.close()


def test_a_fresh_read_asks_the_server_again(mlflow_uri):
    """What the collection answered is remembered; a read whose point is what the server
    says now (the pooler check's backend pids) passes ``fresh`` and is sent again."""
    db = _session(mlflow_uri)
    try:
        now = "SELECT clock_timestamp()::text"
        db.gather([lambda: db.value(now)])
        remembered = db.value(now)
        assert db.value(now) == remembered
        assert db.value(now, fresh=True) != remembered
    finally:
        db.close()


def test_the_default_audit_takes_few_round_trips_and_reports_as_locally(pytester,
                                                                        mlflow_uri):
    """Every default check declares what it reads: after the connection opens, the whole
    audit takes at most 25 round trips, and reports what it reports without the proxy."""
    _, local = audit(pytester, mlflow_uri)
    with LatencyProxy(("127.0.0.1", _port_of(mlflow_uri)), 0.0) as proxy:
        _, remote = audit(pytester, _through(mlflow_uri, proxy.port))
        trips, connections = proxy.round_trips, proxy.connections
    assert connections == 1
    assert trips - CONNECT_ROUND_TRIPS * connections <= 25, trips
    assert {k: v["outcome"] for k, v in remote.items()} == \
        {k: v["outcome"] for k, v in local.items()}
    assert len(remote) >= 40


def test_a_fleet_target_that_stops_answering_holds_no_other_back(pytester, mlflow_uri):
    """Targets are collected side by side: one whose network goes silent after it
    connected ends at its own deadline, the others are audited in full."""
    with TcpProxy(("127.0.0.1", _port_of(mlflow_uri)), freeze_on=b"pg_stat_activity") \
            as frozen:
        fleet = pytester.path / "fleet.txt"
        fleet.write_text(f"{mlflow_uri}\n{_through(mlflow_uri, frozen.port)}\n")
        json_path = pytester.path / "fleet.json"
        result = pytester.runpytest(f"--mlflowdb-uri-file={fleet}",
                                    f"--mlflowdb-report={json_path}",
                                    "--mlflowdb-statement-timeout=1s",
                                    "--mlflowdb-concurrency=4")
    checks = report(json_path)["checks"]
    targets = sorted({c["target"] for c in checks})
    assert len(targets) == 2
    healthy, silent = ([c for c in checks if c["target"] == t] for t in targets)
    if any("stopped answering" in (c["message"] or "") for c in healthy):
        healthy, silent = silent, healthy
    assert not {c["outcome"] for c in healthy} & {"failed", "error"}, result.stdout.str()
    assert sum(c["outcome"] == "passed" for c in healthy) >= 40
    assert any("stopped answering" in (c["message"] or "") for c in silent)
    assert result.ret == 1


def test_concurrency_is_a_setting_with_an_ini_twin(pytester, mlflow_uri):
    pytester.makeini("[pytest]\nmlflowdb_concurrency = 0\n")
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}")
    assert result.ret == 4
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and "mlflowdb_concurrency" in errors[0], errors
    assert "outside 1 to 256" in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-concurrency=1")
    assert checks["schema.revision"]["outcome"] == "passed"


def test_a_probe_that_skips_keeps_its_skip_and_holds_no_other_probe(mlflow_uri):
    """``require_*`` skip with pytest's outcome (a BaseException): the skip is kept for
    the checks, and a probe waiting on the same result is not left waiting."""
    db = _session(mlflow_uri)

    def skips(d: Database) -> None:
        d.value("SELECT 1")
        pytest.skip("no MLflow schema here")

    try:
        flights = db.gather([lambda: db.cached("skip", skips),
                             lambda: db.cached("skip", skips),
                             lambda: db.cached("other", lambda d: d.value("SELECT 2"))])
        assert flights == 1
        with pytest.raises(pytest.skip.Exception, match="no MLflow schema here"):
            db.cached("skip", lambda d: None)
        assert db.cached("other", lambda d: None) == 2
    finally:
        db.close()


WAITS_FOR_THE_SESSION = """
import os
import time
from pathlib import Path


def pytest_collection_modifyitems(config):
    accepted = Path({accepted!r})
    give_up = time.monotonic() + float(os.environ["WAIT_S"])
    while not accepted.exists() and time.monotonic() < give_up:
        time.sleep(0.02)
    print(f"CONNECTED_WHILE_COLLECTING={{accepted.exists()}}")
"""


def test_a_session_opens_while_pytest_collects_and_not_for_collect_only(pytester, tmp_path,
                                                                       monkeypatch):
    """Connecting overlaps pytest's collection (which needs no database); a run that only
    collects never connects."""
    import socket
    import threading

    accepted = tmp_path / "accepted"
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            held.append(client)  # never answers: libpq waits for its connect timeout
            accepted.write_text("yes")

    threading.Thread(target=accept, daemon=True).start()
    uri = f"postgresql://auditor@127.0.0.1:{listener.getsockname()[1]}/mlflow"
    try:
        pytester.makeconftest(WAITS_FOR_THE_SESSION.format(accepted=str(accepted)))
        monkeypatch.setenv("WAIT_S", "1")
        only = pytester.runpytest_subprocess("-s", f"--mlflowdb-uri={uri}", "--collect-only")
        assert only.ret == 0 and "CONNECTED_WHILE_COLLECTING=False" in only.outlines
        monkeypatch.setenv("WAIT_S", "10")
        result = pytester.runpytest_subprocess("-s", f"--mlflowdb-uri={uri}",
                                               "--mlflowdb-connect-timeout=2s",
                                               "-k", "connect")
        assert "CONNECTED_WHILE_COLLECTING=True" in result.outlines
        assert result.ret == 1  # the target never answered: connectivity.connect fails
    finally:
        listener.close()
        for client in held:
            client.close()
