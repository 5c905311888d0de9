"""bloat.* checks: quiet on genuine databases, catch injected bloat by name with its figures."""

from __future__ import annotations

import time

import psycopg
from helpers import audit, dbname_of, role_uri, sql

LOW = ("--mlflowdb-set", "bloat_warn_size=100kB", "--mlflowdb-set", "bloat_fail_size=10GB")
LOAD = (
    # no explicit id: the sequence gives 1 and stays ahead (integrity.invariants checks it)
    "INSERT INTO experiments (name, lifecycle_stage) VALUES ('e', 'active')",
    "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) "
    "SELECT md5(i::text), 1, 'active', 'FINISHED' FROM generate_series(1, 200) i",
    "INSERT INTO params (key, value, run_uuid) SELECT 'param_' || k, 'value ' || k * i, "
    "md5(i::text) FROM generate_series(1, 200) i, generate_series(1, 40) k",
    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) SELECT 'loss_' || k, "
    "random(), 1700000000000 + s, md5(i::text), s, false "
    "FROM generate_series(1, 200) i, generate_series(1, 5) k, generate_series(1, 60) s",
)
BLOAT_PARAMS = ("ALTER TABLE params SET (autovacuum_enabled = off)",
                "UPDATE params SET value = value || 'x'", "UPDATE params SET value = value || 'y'")


def severities(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def analyzed(uri: str, table: str) -> None:
    """ANALYZE once the counts of earlier statements are in the shared statistics.

    A closed session flushes its counts as its backend exits, which may come after an
    ANALYZE in the next session: the counts would then make the fresh statistics look
    stale. Forcing the flush first (PostgreSQL 15+) orders the two.
    """
    sql(uri, "SELECT pg_stat_force_next_flush()", f"ANALYZE {table}")


def loaded(uri: str) -> None:
    sql(uri, *LOAD)
    sql(uri, "VACUUM ANALYZE")


def test_fresh_database_passes(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    for name in ("bloat.tables", "bloat.indexes"):
        assert checks[name]["outcome"] == "passed", checks[name]
    assert result.ret == 0


def test_loaded_and_vacuumed_database_passes_even_with_low_sizes(pytester, mlflow_uri):
    loaded(mlflow_uri)
    result, checks = audit(pytester, mlflow_uri, *LOW)
    for name in ("bloat.tables", "bloat.indexes"):
        assert checks[name]["outcome"] == "passed", checks[name]["findings"]
    ok = severities(checks["bloat.tables"], "ok")
    assert "estimated bloat" in ok["public.params"]["message"]
    assert "estimated bloat of metrics" in \
        severities(checks["bloat.indexes"], "ok")["public.metric_pk"]["message"]


def test_table_bloat_from_updates_with_autovacuum_off(pytester, mlflow_uri):
    loaded(mlflow_uri)
    sql(mlflow_uri, *BLOAT_PARAMS, "SELECT pg_stat_force_next_flush()")
    analyzed(mlflow_uri, "params")
    result, checks = audit(pytester, mlflow_uri, *LOW)
    tables = checks["bloat.tables"]
    assert tables["outcome"] == "warned"
    (finding,) = severities(tables, "warning").values()
    assert finding["object"] == "public.params"
    assert "estimated bloat" in finding["message"] and "%" in finding["value"]
    pct = float(finding["value"].split("(")[1].rstrip("%)"))
    assert 55 <= pct <= 80  # two full rewrites: about two thirds of the pages are dead
    assert finding["remedy"].startswith('VACUUM (ANALYZE) "public"."params";')
    assert "pg_repack" in finding["remedy"]
    assert result.ret == 0  # a warning does not fail the run by default


def test_index_bloat_from_deletes(pytester, mlflow_uri):
    loaded(mlflow_uri)
    sql(mlflow_uri, "ALTER TABLE metrics SET (autovacuum_enabled = off)",
        "DELETE FROM metrics WHERE step % 4 <> 0")
    sql(mlflow_uri, "VACUUM ANALYZE metrics")
    result, checks = audit(pytester, mlflow_uri, *LOW, "--mlflowdb-set",
                           "bloat_fail_size=1MB")
    indexes = checks["bloat.indexes"]
    assert indexes["outcome"] == "failed"
    failed = severities(indexes, "failure")
    assert "public.metric_pk" in failed
    assert "of metrics" in failed["public.metric_pk"]["message"]
    assert failed["public.metric_pk"]["remedy"].startswith(
        'REINDEX INDEX CONCURRENTLY "public"."metric_pk";')
    assert result.ret == 1


def test_stale_statistics_skip_with_the_reason(pytester, mlflow_uri):
    loaded(mlflow_uri)
    sql(mlflow_uri, *BLOAT_PARAMS)  # no ANALYZE after: the estimate cannot be trusted
    _, checks = audit(pytester, mlflow_uri, *LOW)
    tables = checks["bloat.tables"]
    assert tables["outcome"] == "skipped"
    assert "public.params" in tables["message"] and "statistics are stale" in tables["message"]


def test_columns_hidden_from_the_role_skip_with_the_reason(pytester, mlflow_uri, pg18,
                                                           mlflow_role):
    loaded(mlflow_uri)
    user, password = mlflow_role
    sql(mlflow_uri, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}",
        f"REVOKE SELECT ON params FROM {user}", f"GRANT SELECT (key, run_uuid) ON params TO {user}")
    _, checks = audit(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password), *LOW)
    tables = checks["bloat.tables"]
    assert tables["outcome"] == "skipped", tables
    assert "public.params" in tables["message"]
    assert "hidden from this role for column(s) value" in tables["message"]


def test_exact_mode_measures_what_the_estimate_flags(pytester, mlflow_uri):
    loaded(mlflow_uri)
    sql(mlflow_uri, *BLOAT_PARAMS, "SELECT pg_stat_force_next_flush()")
    analyzed(mlflow_uri, "params")
    _, checks = audit(pytester, mlflow_uri, *LOW, "--mlflowdb-bloat=exact")
    skipped = checks["bloat.tables"]
    assert skipped["outcome"] == "skipped"
    assert "pgstattuple is not installed" in skipped["message"]
    assert "public.params" in skipped["message"]
    sql(mlflow_uri, "CREATE EXTENSION pgstattuple")
    _, checks = audit(pytester, mlflow_uri, *LOW, "--mlflowdb-bloat=exact")
    (finding,) = severities(checks["bloat.tables"], "warning").values()
    assert finding["object"] == "public.params"
    assert finding["message"].startswith("measured (pgstattuple) bloat")
    # unflagged relations are never read page by page
    assert all(f["message"].startswith("estimated") or "cannot reach" in f["message"]
               for f in checks["bloat.tables"]["findings"] if f["severity"] == "ok")


def test_estimate_ignores_an_access_exclusive_lock(pytester, mlflow_uri):
    loaded(mlflow_uri)
    with psycopg.connect(mlflow_uri) as holder:
        holder.execute("LOCK TABLE params IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        _, checks = audit(pytester, mlflow_uri, *LOW)
        assert time.monotonic() - started < 120  # bounded: no hang behind the lock
        holder.rollback()
    assert checks["bloat.tables"]["outcome"] == "passed"
    assert "public.params" in severities(checks["bloat.tables"], "ok")


def test_bad_mode_is_a_usage_error(pytester, mlflow_uri):
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-bloat=fast")
    assert result.ret == 4
    assert "--mlflowdb-bloat" in result.stderr.str() or "mlflowdb_bloat" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_absurd_threshold_is_a_usage_error(pytester, mlflow_uri):
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-set",
                                "table_bloat_warn_pct=150%")
    assert result.ret == 4
    assert "table_bloat_warn_pct" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_relations_the_user_names_are_checked_too(pytester, mlflow_uri):
    sql(mlflow_uri, "CREATE TABLE team_log (id int, note text) WITH (autovacuum_enabled = off)",
        "INSERT INTO team_log SELECT i, repeat('n', 40) FROM generate_series(1, 20000) i",
        "DELETE FROM team_log WHERE id % 5 <> 0", "SELECT pg_stat_force_next_flush()")
    analyzed(mlflow_uri, "team_log")
    _, checks = audit(pytester, mlflow_uri, *LOW)
    assert not any("team_log" in f["object"] for f in checks["bloat.tables"]["findings"])
    pytester.makeini("[pytest]\nmlflowdb_bloat_relations =\n    team_log\n")
    _, checks = audit(pytester, mlflow_uri, *LOW)
    warned = severities(checks["bloat.tables"], "warning")
    assert "public.team_log" in warned


def test_a_relation_the_user_names_that_does_not_exist_is_said(pytester, mlflow_uri):
    pytester.makeini("[pytest]\nmlflowdb_bloat_relations =\n    no_such_log\n    metric_pk\n")
    _, checks = audit(pytester, mlflow_uri)
    warned = severities(checks["bloat.tables"], "warning")
    assert list(warned) == ["public.no_such_log"]
    assert "names no_such_log, but schema public holds no table or index" in \
        warned["public.no_such_log"]["message"]
    assert not severities(checks["bloat.indexes"], "warning")  # said once, and metric_pk is


def test_exact_index_measure_counts_pages_emptied_by_deletes(mlflow_uri):
    """Deleting two steps in three empties whole leaves of metric_pk (key, timestamp, step,
    ...): pgstatindex leaves them out of avg_leaf_density, yet they are bloat."""
    from pytest_mlflowdb.config.targets import parse_target
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.probes.bloat import estimate_bloat, exact_bloat

    loaded(mlflow_uri)
    sql(mlflow_uri, "CREATE EXTENSION pgstattuple", "DELETE FROM metrics WHERE step % 3 <> 0")
    sql(mlflow_uri, "VACUUM ANALYZE metrics")
    db = Database(parse_target(mlflow_uri)).connect()
    try:
        _, pct = exact_bloat(db, "public", "metric_pk", "index")
        (estimate,) = [e for e in estimate_bloat(db, "public", ["metrics"])
                       if e.relation == "metric_pk"]
    finally:
        db.close()
    assert pct > 55
    assert (estimate.kind, estimate.table, estimate.trusted) == ("index", "metrics", True)
    assert abs(estimate.bloat_pct - pct) < 10
