"""vacuum.* checks: a healthy MLflow database passes with its figures; each fault (autovacuum
off on a table or server-wide, track_counts off, a never-analysed table with rows, stale
statistics, dead rows, high transaction ID and multixact ages) is caught by name with its
figures and remedy; bad thresholds are usage errors; a role without pg_monitor sees the
same (the views read here hide nothing from it). Ages, autovacuum off server-wide and
replicas need a server of their own: tests/test_vacuum_server.py."""

from __future__ import annotations

import time

import psycopg
import pytest
from helpers import audit, dbname_of, failing, role_uri, sql

CHECKS = ("vacuum.dead_tuples", "vacuum.stale_stats", "vacuum.autovacuum_disabled",
          "vacuum.wraparound")
FLUSH = "SELECT pg_stat_force_next_flush()"  # a closing session's counts, before the audit
SEED = (
    "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (1, 'e', 'active')",
    "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) VALUES "
    "('r1', 1, 'active', 'FINISHED')",
)


def by_severity(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def loud(check: dict) -> list[dict]:
    return [f for f in check["findings"] if f["severity"] in ("warning", "failure")]


def test_a_fresh_mlflow_database_passes_every_vacuum_check_with_its_figures(
        pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    for name in CHECKS:
        assert checks[name]["outcome"] == "passed", checks[name]
        assert not loud(checks[name]), checks[name]
    db = dbname_of(mlflow_uri)
    (age,) = checks["vacuum.wraparound"]["findings"][:1]
    assert age["object"] == db and age["severity"] == "ok"
    assert age["message"].startswith("transaction ID age ") and age["value"] >= 0
    assert "of autovacuum_freeze_max_age 200000000" in age["message"]
    assert "left before PostgreSQL stops writing" in age["message"]
    (mxid,) = [f for f in checks["vacuum.wraparound"]["findings"]
               if f["message"].startswith("multixact ID age")]
    assert mxid["object"] == db
    assert any(f["object"].startswith("public.") and "the oldest of" in f["message"]
               for f in checks["vacuum.wraparound"]["findings"])
    (stats,) = checks["vacuum.stale_stats"]["findings"]
    # dozens of empty tables never analysed: not stale
    assert "never analysed but empty or under their autoanalyze threshold, 0 stale" in \
        stats["message"]
    (auto,) = checks["vacuum.autovacuum_disabled"]["findings"]
    assert auto["message"].startswith("autovacuum and track_counts on; none of the")
    (dead,) = checks["vacuum.dead_tuples"]["findings"]
    assert dead["object"] == "public" and "statistics kept for" in dead["message"]
    assert result.ret == 0


def test_a_database_migrated_in_place_passes(pytester, mlflowdb_database_factory):
    """MLflow's migrations leave a few rows (alembic_version's) in never-analysed tables:
    under their autoanalyze threshold, which autovacuum never reaches, that is no fault."""
    from pytest_mlflowdb.catalog.mlflow_schema import apply_mlflow_schema

    uri = mlflowdb_database_factory(mlflow=False)
    apply_mlflow_schema(uri)
    sql(uri, FLUSH)
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT n_live_tup FROM pg_stat_user_tables "
                            "WHERE relname = 'alembic_version'").fetchone()[0] == 1
    _, checks = audit(pytester, uri)
    for name in CHECKS:
        assert checks[name]["outcome"] == "passed", checks[name]
        assert not loud(checks[name]), checks[name]


def test_autovacuum_off_on_params_and_on_a_toast_table_warn_by_name(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE params SET (autovacuum_enabled = false)",
        "ALTER TABLE tags SET (toast.autovacuum_enabled = off)")
    result, checks = audit(pytester, mlflow_uri)
    check = checks["vacuum.autovacuum_disabled"]
    assert check["outcome"] == "warned"
    warned = by_severity(check, "warning")
    assert set(warned) == {"public.params", "public.tags"}
    params = warned["public.params"]
    assert params["message"].startswith("autovacuum is off on it (autovacuum_enabled=false)")
    assert "0 dead rows" in params["message"] and "last vacuum never" in params["message"]
    assert params["value"] == "autovacuum_enabled=false"
    assert params["remedy"] == 'ALTER TABLE "public"."params" SET (autovacuum_enabled = true);'
    assert warned["public.tags"]["remedy"] == \
        'ALTER TABLE "public"."tags" SET (toast.autovacuum_enabled = true);'
    assert result.ret == 0  # a warning; --mlflowdb-fail-on=warning makes it fail the run


def test_track_counts_off_fails_and_the_checks_that_need_it_skip(pytester, mlflow_uri):
    sql(mlflow_uri, f'ALTER DATABASE "{dbname_of(mlflow_uri)}" SET track_counts = off')
    result, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["vacuum.autovacuum_disabled"])
    assert finding["object"] == "track_counts" and finding["value"] == "off"
    assert finding["message"].startswith("track_counts is off for this database's sessions "
                                         "(source: database)")
    assert finding["remedy"] == f'ALTER DATABASE "{dbname_of(mlflow_uri)}" RESET track_counts;'
    for name in ("vacuum.dead_tuples", "vacuum.stale_stats"):
        assert checks[name]["outcome"] == "skipped"
        assert checks[name]["message"].startswith("track_counts is off: PostgreSQL keeps no")
    assert result.ret == 1


def test_a_never_analysed_table_with_rows_warns_and_analyze_clears_it(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE experiments SET (autovacuum_enabled = false)",
        "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
        "SELECT g, 'e' || g, 'active' FROM generate_series(1, 200) g", FLUSH)
    _, checks = audit(pytester, mlflow_uri)
    check = checks["vacuum.stale_stats"]
    assert check["outcome"] == "warned"
    (finding,) = loud(check)
    assert finding["object"] == "public.experiments" and finding["value"] == 200
    assert finding["message"].startswith("never analysed, with 200 live rows (n_live_tup)")
    assert "past its autoanalyze threshold of 50 rows" in finding["message"]
    assert finding["remedy"] == 'ANALYZE "public"."experiments";'
    sql(mlflow_uri, "ANALYZE experiments")
    _, checks = audit(pytester, mlflow_uri)
    assert checks["vacuum.stale_stats"]["outcome"] == "passed"
    # (how many tables count as analysed also depends on whether autovacuum analysed
    # alembic_version in the template before this copy was made: its reltuples is copied)
    (summary,) = checks["vacuum.stale_stats"]["findings"]
    assert summary["value"] == 0 and ", 0 stale" in summary["message"]


def test_statistics_older_than_stale_stats_age_with_many_changes_warn(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE experiments SET (autovacuum_enabled = false)",
        "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
        "SELECT g, 'e' || g, 'active' FROM generate_series(1, 200) g", FLUSH, "ANALYZE experiments",
        "UPDATE experiments SET lifecycle_stage = 'deleted' WHERE experiment_id <= 120", FLUSH)
    time.sleep(1.2)
    _, checks = audit(pytester, mlflow_uri)  # analysed less than a day ago: fresh enough
    assert checks["vacuum.stale_stats"]["outcome"] == "passed"
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "stale_stats_age=1s")
    (finding,) = loud(checks["vacuum.stale_stats"])
    assert finding["object"] == "public.experiments" and finding["value"] == 120
    assert finding["message"].startswith("120 rows changed (60% of ~200) since its last "
                                         "analyse ")
    assert "beyond stale_stats_age 1s and stale_stats_changed 20%" in finding["message"]
    assert finding["remedy"] == 'ANALYZE "public"."experiments";'
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "stale_stats_age=1s",
                      "--mlflowdb-set", "stale_stats_changed=70%")
    assert checks["vacuum.stale_stats"]["outcome"] == "passed"


def test_after_a_statistics_reset_an_analyse_is_as_old_as_the_statistics(pytester,
                                                                          mlflow_uri):
    """pg_stat_reset() forgets last_analyze, not reltuples: the analyse came before the
    statistics began, so it is at least that old (and not 'never')."""
    sql(mlflow_uri, "ALTER TABLE experiments SET (autovacuum_enabled = false)",
        "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
        "SELECT g, 'e' || g, 'active' FROM generate_series(1, 200) g", FLUSH,
        "ANALYZE experiments", "SELECT pg_stat_reset()",
        "UPDATE experiments SET lifecycle_stage = 'deleted' WHERE experiment_id <= 120", FLUSH)
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "stale_stats_age=1h")
    assert checks["vacuum.stale_stats"]["outcome"] == "passed"  # statistics seconds old
    time.sleep(1.2)
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "stale_stats_age=1s")
    (finding,) = loud(checks["vacuum.stale_stats"])
    assert finding["object"] == "public.experiments" and finding["value"] == 120
    assert "since its last analyse more than " in finding["message"]
    assert "ago (before the statistics began), beyond stale_stats_age 1s" in finding["message"]


def _dead_rows(uri: str) -> None:
    """5000 metric rows, 2000 of them deleted, on a table autovacuum leaves alone."""
    sql(uri, *SEED, "ALTER TABLE metrics SET (autovacuum_enabled = false)",
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
        "SELECT 'loss', random(), g, 'r1', g, false FROM generate_series(1, 5000) g",
        FLUSH, "ANALYZE metrics", "DELETE FROM metrics WHERE step % 5 IN (1, 2)", FLUSH)


def test_dead_rows_warn_and_fail_by_name_from_the_minimum_size(pytester, mlflow_uri):
    _dead_rows(mlflow_uri)
    _, checks = audit(pytester, mlflow_uri)  # a small table: not judged by default
    check = checks["vacuum.dead_tuples"]
    assert check["outcome"] == "passed"
    (summary,) = check["findings"]
    assert "highest dead-row share 40% (public.metrics)" in summary["message"]
    assert "under dead_tuples_min_size 64MB of heap" in summary["message"]
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "dead_tuples_min_size=0")
    (finding,) = loud(checks["vacuum.dead_tuples"])
    assert checks["vacuum.dead_tuples"]["outcome"] == "warned"
    assert finding["object"] == "public.metrics" and finding["value"] == 40
    assert finding["message"].startswith("2000 dead rows of 5000 (40%), heap ")
    assert "at or above dead_tuples_warn 30%" in finding["message"]
    assert "autovacuum vacuums it from 1050 dead rows, last vacuum never" in finding["message"]
    assert "autovacuum is off on it (autovacuum_enabled=false)" in finding["message"]
    assert finding["remedy"].startswith('VACUUM (VERBOSE, ANALYZE) "public"."metrics";')
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "dead_tuples_min_size=0",
                           "--mlflowdb-set", "dead_tuples_fail=35%")
    (finding,) = failing(checks["vacuum.dead_tuples"])
    assert finding["object"] == "public.metrics" and finding["threshold"] == "35%"
    assert result.ret == 1
    sql(mlflow_uri, "VACUUM metrics", FLUSH)
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "dead_tuples_min_size=0")
    assert checks["vacuum.dead_tuples"]["outcome"] == "passed"


def test_dead_rows_under_a_tables_own_autovacuum_trigger_are_not_judged(pytester,
                                                                        mlflow_uri):
    """An owner who set a high scale factor asked for this many dead rows: not behind."""
    _dead_rows(mlflow_uri)
    # (no insert-driven vacuum either: 5000 inserts would start one within a naptime)
    sql(mlflow_uri, "ALTER TABLE metrics SET (autovacuum_enabled = true, "
        "autovacuum_vacuum_scale_factor = 0.9, autovacuum_analyze_scale_factor = 0.9, "
        "autovacuum_vacuum_insert_threshold = -1)")
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "dead_tuples_min_size=0")
    check = checks["vacuum.dead_tuples"]
    assert check["outcome"] == "passed", check
    (summary,) = check["findings"]
    assert "under their own autovacuum trigger (dead rows): public.metrics (from 4550)" in \
        summary["message"]


def test_dead_rows_of_a_table_locked_by_another_session_are_still_judged(pytester,
                                                                         mlflow_uri):
    """Its heap cannot be measured behind an ACCESS EXCLUSIVE lock: relpages stands in
    (the statistics views need no lock), rather than a pass that could not look."""
    _dead_rows(mlflow_uri)
    with psycopg.connect(mlflow_uri) as holder:
        holder.execute("LOCK TABLE metrics IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "dead_tuples_min_size=0")
        assert time.monotonic() - started < 120  # bounded: no hang behind the lock
        holder.rollback()
    (finding,) = loud(checks["vacuum.dead_tuples"])
    assert finding["object"] == "public.metrics" and finding["value"] == 40
    assert "(relpages: the table could not be measured)" in finding["message"]


def test_a_role_without_pg_monitor_sees_the_same_faults(pytester, pg18, mlflow_uri,
                                                        mlflow_role):
    """The statistics views and catalogs read here hide nothing from a plain role: the
    checks run (never skip, never pass blind) and name the same faults."""
    user, password = mlflow_role
    _dead_rows(mlflow_uri)
    sql(mlflow_uri, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}")
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    with psycopg.connect(mlflow_uri) as conn:  # the role really lacks the monitoring roles
        assert not conn.execute("SELECT pg_has_role(%s, 'pg_monitor', 'USAGE')",
                                (user,)).fetchone()[0]
    _, checks = audit(pytester, uri, "--mlflowdb-set", "dead_tuples_min_size=0")
    (dead,) = loud(checks["vacuum.dead_tuples"])
    assert dead["object"] == "public.metrics" and dead["value"] == 40
    assert set(by_severity(checks["vacuum.autovacuum_disabled"], "warning")) == \
        {"public.metrics"}
    assert checks["vacuum.wraparound"]["outcome"] == "passed"
    assert checks["vacuum.stale_stats"]["outcome"] == "passed"


@pytest.mark.parametrize("assignment, named", [
    ("xid_age_warn=lots", "xid_age_warn"),
    ("dead_tuples_warn=150%", "dead_tuples_warn"),
    ("xid_age_fail=3000000000", "xid_age_fail"),
    ("freeze_overdue_factor=1", "freeze_overdue_factor"),
    ("stale_stats_age=soon", "stale_stats_age"),
    ("multixact_age_warn=1700000000", "multixact_age_warn"),  # above multixact_age_fail
])
def test_bad_thresholds_are_one_line_usage_errors(pytester, mlflow_uri, assignment, named):
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-set", assignment)
    assert result.ret == 4
    err = result.stderr.str()
    assert named in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_counters_emptied_by_a_statistics_reset_are_not_taken_for_clean_tables(
        pytester, mlflow_uri):
    """pg_stat_reset() (or a crash restart) empties the row counters: 18,000 rows with 7,200
    dead are then "no rows counted", and the table "never analysed but empty". Until a
    vacuum or analyse measures it again, both checks say they could not look."""
    sql(mlflow_uri, *SEED, "ALTER TABLE params SET (autovacuum_enabled = false)",
        "INSERT INTO params (key, value, run_uuid) SELECT 'p' || g, repeat('v', 40), 'r1' "
        "FROM generate_series(1, 18000) g", FLUSH,
        "DELETE FROM params WHERE key ~ '[0-3]$'", FLUSH, "SELECT pg_stat_reset()", FLUSH)
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "dead_tuples_min_size=0")
    for check_id in ("vacuum.dead_tuples", "vacuum.stale_stats"):
        check = checks[check_id]
        assert check["outcome"] == "skipped", check
        assert "could not look: the row counters of public.params" in check["message"]
        assert "no vacuum or analyse has measured the table since" in check["message"]
    sql(mlflow_uri, "ANALYZE params", FLUSH)  # measured again: judged again
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "dead_tuples_min_size=0")
    (finding,) = loud(checks["vacuum.dead_tuples"])
    assert finding["object"] == "public.params" and finding["value"] == 40
    assert checks["vacuum.stale_stats"]["outcome"] == "passed"
