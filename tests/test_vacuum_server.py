"""vacuum.* checks on a server of this module's own: autovacuum's anti-wraparound triggers
at their minimums (so ages past twice them are quick to make, and held by a transaction
left open), autovacuum switched off server-wide, and a replica of it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from helpers import audit, dbname_of, failing, sql

from pytest_mlflowdb.servers.janitor import Janitor


def by_severity(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def loud(check: dict) -> list[dict]:
    return [f for f in check["findings"] if f["severity"] in ("warning", "failure")]


#: autovacuum's anti-wraparound triggers at their minimums, so ages past twice them are
#: quick to make; the ages are held by a transaction left open (no vacuum can freeze past
#: it, so autovacuum cannot race the audit)
LOW_FREEZE = {"autovacuum_freeze_max_age": "100000",
              "autovacuum_multixact_freeze_max_age": "10000"}
BURN = """CREATE PROCEDURE burn_xids(n int) LANGUAGE plpgsql AS $$
BEGIN FOR i IN 1..n LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$"""
# one multixact per row: the row is share-locked by the transaction and update-locked by
# a subtransaction of its own (a fresh member set each time, so none is reused)
MULTIXACTS = """DO $$ DECLARE r int; BEGIN
  PERFORM 1 FROM mx_rows FOR SHARE;
  FOR r IN SELECT id FROM mx_rows LOOP
    BEGIN PERFORM 1 FROM mx_rows WHERE id = r FOR UPDATE;
    EXCEPTION WHEN others THEN RAISE; END;
  END LOOP; END $$"""


@pytest.fixture(scope="module")
def low_freeze_janitor():
    janitor = Janitor("path", settings=LOW_FREEZE)
    yield janitor
    janitor.close()


def test_high_transaction_and_multixact_ages_are_named_with_their_figures(
        pytester, low_freeze_janitor):
    uri = low_freeze_janitor.create()
    server = low_freeze_janitor.server()
    sql(uri, "CREATE TABLE mx_rows (id int PRIMARY KEY)",
        "INSERT INTO mx_rows SELECT generate_series(1, 25000)")
    with psycopg.connect(uri.replace("+psycopg2", "")) as holder:
        holder.execute("SELECT pg_current_xact_id()")  # holds the xmin horizon
        holder.execute(MULTIXACTS)  # 25000 multixacts it is a member of, kept open
        with server.admin() as admin:
            admin.execute(BURN)
            admin.execute("CALL burn_xids(220000)")
        _, checks = audit(pytester, uri)
        with psycopg.connect(uri) as conn:  # MLflow's tables: all of public's but mx_rows
            tables = conn.execute("SELECT count(*) - 1 FROM pg_tables "
                                  "WHERE schemaname = 'public'").fetchone()[0]
        check = checks["vacuum.wraparound"]
        assert check["outcome"] == "warned", check
        assert not failing(check)
        db = dbname_of(uri)
        xid = [f for f in loud(check) if f["object"] == db
               and f["message"].startswith("transaction ID age")]
        assert len(xid) == 1 and xid[0]["value"] >= 220000 and xid[0]["threshold"] == 200000
        assert "of autovacuum_freeze_max_age 100000" in xid[0]["message"]
        assert "at or above freeze_overdue_factor 2 x autovacuum_freeze_max_age (200000): " \
               "the anti-wraparound vacuum is overdue" in xid[0]["message"]
        assert xid[0]["remedy"].startswith(f"vacuumdb --freeze --dbname={db} ")
        mxid = [f for f in loud(check) if f["object"] == db
                and f["message"].startswith("multixact ID age")]
        assert len(mxid) == 1 and mxid[0]["value"] >= 25000 and mxid[0]["threshold"] == 20000
        # every MLflow table is as old: the 10 oldest per kind by name, the rest counted
        for label, least in (("transaction ID", 220000), ("multixact ID", 25000)):
            named = [f for f in loud(check) if f["object"].startswith("public.")
                     and f["message"].startswith(f"{label} age ")]
            assert len(named) == 10 and all(f["value"] >= least for f in named)
            assert all(f["remedy"].startswith('VACUUM (FREEZE, VERBOSE) "public".')
                       for f in named)
            (rest,) = [f for f in loud(check) if f["object"].endswith(" more MLflow tables)")
                       and f"past a {label} age limit" in f["message"]]
            assert rest["object"] == f"public ({tables - 10} more MLflow tables)"
            assert rest["remedy"].startswith(f"vacuumdb --freeze --dbname={db} ")
        # the whole server stops at wraparound: other databases are named too
        assert "postgres (another database of this server)" in {f["object"]
                                                                 for f in loud(check)}
        result, checks = audit(pytester, uri, "--mlflowdb-set", "xid_age_warn=150000",
                               "--mlflowdb-set", "xid_age_fail=210000",
                               "--mlflowdb-set", "multixact_age_warn=15000")
        (fail,) = [f for f in failing(checks["vacuum.wraparound"]) if f["object"] == db]
        assert fail["threshold"] == 210000 and "at or above xid_age_fail 210000" in \
            fail["message"]
        (mxid,) = [f for f in loud(checks["vacuum.wraparound"]) if f["object"] == db
                   and f["severity"] == "warning"]
        assert mxid["message"].startswith("multixact ID age ")
        assert mxid["threshold"] == 15000 and "at or above multixact_age_warn 15000" in \
            mxid["message"]
        assert result.ret == 1
        holder.rollback()


def test_autovacuum_off_server_wide_fails(pytester, low_freeze_janitor):
    uri = low_freeze_janitor.create()
    server = low_freeze_janitor.server()
    with server.admin() as admin:
        admin.execute("ALTER SYSTEM SET autovacuum = off")
        admin.execute("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 30
        while True:  # the reload reaches new sessions a moment later
            with psycopg.connect(uri.replace("+psycopg2", "")) as conn:
                if conn.execute("SHOW autovacuum").fetchone()[0] == "off":
                    break
            assert time.monotonic() < deadline, "the reload never took effect"
            time.sleep(0.1)
        result, checks = audit(pytester, uri)
        (finding,) = failing(checks["vacuum.autovacuum_disabled"])
        assert finding["object"] == "autovacuum"
        assert finding["message"].startswith("autovacuum is off server-wide")
        assert finding["remedy"] == "ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();"
        assert result.ret == 1
    finally:
        with server.admin() as admin:
            admin.execute("ALTER SYSTEM RESET autovacuum")
            admin.execute("SELECT pg_reload_conf()")


@pytest.fixture
def replica(low_freeze_janitor):
    """(primary URI, replica URI) of a migrated MLflow database, the replica made with
    pg_basebackup and started in recovery; autovacuum is off on params on the primary."""
    primary = low_freeze_janitor.create()
    sql(primary, "ALTER TABLE params SET (autovacuum_enabled = false)")
    server = low_freeze_janitor.server()
    run_as = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        entry = pwd.getpwnam("nobody")
        run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    base = Path(tempfile.mkdtemp(prefix="mlflowdb-vacuum-replica-"))
    data = base / "data"
    if run_as:
        os.chown(base, run_as["user"], run_as["group"])
    env = dict(os.environ, PGPASSWORD=server.password)
    subprocess.run([str(server.bin_dir / "pg_basebackup"), "-h", server.host, "-p",
                    str(server.port), "-U", server.user, "-D", str(data), "-R", "-X", "stream",
                    "-c", "fast"],
                   check=True, env=env, capture_output=True, timeout=120, **run_as)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    subprocess.run([str(server.bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(base / "log"), "-w", "start"], check=True, capture_output=True,
                   timeout=120, **run_as)
    try:
        yield primary, primary.replace(f":{server.port}/", f":{port}/")
    finally:
        subprocess.run([str(server.bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60, **run_as)
        shutil.rmtree(base, ignore_errors=True)


def test_on_a_replica_the_checks_that_count_writes_skip_and_reloptions_still_count(
        pytester, replica):
    """A replica counts none of the primary's writes: dead rows and stale statistics would
    pass blind there, so they skip with the reason; storage parameters are replicated."""
    primary, standby = replica
    _, checks = audit(pytester, standby)
    for name, what in (("vacuum.dead_tuples", "dead-row counts"),
                       ("vacuum.stale_stats", "counts of changed rows")):
        assert checks[name]["outcome"] == "skipped"
        assert checks[name]["message"] == (f"on a replica: the primary's writes are not "
                                           f"counted here (no {what}); audit the primary")
    auto = checks["vacuum.autovacuum_disabled"]
    assert auto["outcome"] == "warned"
    (params,) = loud(auto)
    assert params["object"] == "public.params"
    assert params["message"] == "autovacuum is off on it (autovacuum_enabled=false)"
    assert "whose settings are not visible here" in by_severity(auto, "info")["server"][
        "message"]
    # ages are replicated: judged on a replica too (whatever an earlier test of this
    # module's server left them at)
    wraparound = checks["vacuum.wraparound"]
    assert wraparound["outcome"] != "skipped"
    assert any(f["object"] == dbname_of(primary) and f["message"].startswith(
        "transaction ID age ") for f in wraparound["findings"])


#: autovacuum visits each database once an hour: a database loaded now is audited long
#: before autovacuum's first round reaches it (5min would leave a few percent of runs to
#: a round that happens to fall between the load and the audit)
SLOW_AUTOVACUUM = {"autovacuum_naptime": "1h"}


@pytest.fixture(scope="module")
def slow_autovacuum_janitor():
    janitor = Janitor("path", settings=SLOW_AUTOVACUUM)
    yield janitor
    janitor.close()


def _live_rows(uri: str, table: str, rows: int) -> None:
    """Wait until the statistics count ``rows`` live rows in ``table`` (PostgreSQL 14's
    collector counts them a moment after the session ends)."""
    deadline = time.monotonic() + 30
    while True:
        with psycopg.connect(uri) as conn:
            live = conn.execute("SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = %s",
                                (table,)).fetchone()[0]
        if live == rows:
            return
        assert time.monotonic() < deadline, f"{table}: {live} live rows counted, not {rows}"
        time.sleep(0.1)


def test_a_table_loaded_before_autovacuums_first_round_is_not_yet_stale(
        pytester, slow_autovacuum_janitor):
    """A database loaded a minute ago, audited before autovacuum's first round: its
    never-analysed table is noted, not warned; the same table warns once no round is
    allowed for (stale_stats_naptimes=0) or when autovacuum leaves it alone."""
    uri = slow_autovacuum_janitor.create()
    sql(uri, "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
        "SELECT g, 'e' || g, 'active' FROM generate_series(1, 400) g")
    _live_rows(uri, "experiments", 400)
    _, checks = audit(pytester, uri)
    with psycopg.connect(uri) as conn:  # autovacuum really has not been there yet
        assert conn.execute("SELECT last_autoanalyze FROM pg_stat_user_tables "
                            "WHERE relname = 'experiments'").fetchone()[0] is None
    check = checks["vacuum.stale_stats"]
    assert check["outcome"] == "passed", check
    (note,) = by_severity(check, "info").values()
    assert note["object"] == "public.experiments" and note["value"] == 400
    assert note["message"].startswith("never analysed, with 400 live rows (n_live_tup), past "
                                      "its autoanalyze threshold of 50 rows, but autovacuum "
                                      "has not yet had time: the changes are at most ")
    assert "autovacuum_naptime 1h, given 3h (stale_stats_naptimes 3)" in note["message"]
    (summary,) = by_severity(check, "ok").values()
    assert ", 0 stale, 1 not yet reached by autovacuum" in summary["message"]

    _, checks = audit(pytester, uri, "--mlflowdb-set", "stale_stats_naptimes=0")
    (finding,) = loud(checks["vacuum.stale_stats"])
    assert finding["object"] == "public.experiments" and finding["severity"] == "warning"
    assert finding["message"].startswith("never analysed, with 400 live rows")
    assert finding["remedy"] == 'ANALYZE "public"."experiments";'

    sql(uri, "ALTER TABLE experiments SET (autovacuum_enabled = false)")
    _, checks = audit(pytester, uri)
    (finding,) = loud(checks["vacuum.stale_stats"])
    assert finding["object"] == "public.experiments"
    assert "autovacuum has not yet had time" not in finding["message"]


def test_a_database_autovacuum_has_not_visited_is_not_yet_stale_on_a_server_up_for_long():
    """On a server up longer than the grace window, a database just restored or loaded
    (no MLflow table bears a vacuum or analyse time) is still before autovacuum's first
    visit; a table autovacuum leaves alone, a visited database, or a grace of 0 are not."""
    import importlib

    from pytest_mlflowdb.probes.vacuum import Server, TableVacuum

    vacuum = importlib.import_module("pytest_mlflowdb.checks.vacuum")
    server = Server(autovacuum=True, track_counts=True, freeze_max_age=200_000_000,
                    mxid_freeze_max_age=400_000_000, vacuum_threshold=50,
                    vacuum_scale_factor=0.2, analyze_threshold=50, analyze_scale_factor=0.1,
                    stats_age=86400.0, naptime=60.0, uptime=86400.0)
    table = TableVacuum("experiments", "r", None, live=400)
    note = vacuum._not_yet_reached(server, table, 3, unvisited=True)
    assert note and note.startswith("autovacuum has not yet visited this database")
    assert vacuum._not_yet_reached(server, table, 3, unvisited=False) is None
    assert vacuum._not_yet_reached(server, table, 0, unvisited=True) is None
    left_alone = TableVacuum("experiments", "r", None, live=400,
                             options={"autovacuum_enabled": "false"})
    assert vacuum._not_yet_reached(server, left_alone, 3, unvisited=True) is None
