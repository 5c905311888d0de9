"""workload.operations and the catalog of MLflow's operations it groups statements by.

The workload is MLflow's own: ``tools/capture_operations.py`` runs MLflow's SQLAlchemy
stores (searches, metric histories, logging, the registry, traces, gc) on a throwaway
database; the audit then reads what ``pg_stat_statements`` counted for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from helpers import audit, dbname_of, role_uri, sql

from pytest_mlflowdb.workload.operations import UNKNOWN, from_document, load_operations
from pytest_mlflowdb.workload.shapes import shape

TOOL = Path(__file__).resolve().parents[1] / "tools" / "capture_operations.py"


def capture(uri: str, out: Path) -> dict:
    """Run MLflow's own stores on ``uri`` (a scratch database) through the tool."""
    done = subprocess.run([sys.executable, str(TOOL), "--uri", uri, "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())


def by_object(check: dict) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"]}


@pytest.fixture
def busy_uri(mlflow_uri, tmp_path) -> str:
    """A database with pg_stat_statements that MLflow's own stores have just worked on."""
    sql(mlflow_uri, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    capture(mlflow_uri, tmp_path / "ops.json")
    return mlflow_uri


def test_the_shipped_catalog_is_what_the_installed_mlflow_sends(mlflow_uri, tmp_path):
    """The drift test: capture again with the installed MLflow and compare. Another MLflow
    release than the catalog's is compared and named in a warning (refreshing the
    catalog is a maintainer's step: tools/capture_operations.py)."""
    fresh = from_document(capture(mlflow_uri, tmp_path / "ops.json"))
    shipped = load_operations()
    assert not fresh.missing, fresh.missing
    if fresh.mlflow != shipped.mlflow:
        drifted = set(fresh.by_shape) ^ set(shipped.by_shape)
        warnings.warn(pytest.PytestWarning(
            f"MLflow {fresh.mlflow} is not the catalog's {shipped.mlflow}: {len(drifted)} "
            "statement shape(s) differ; run tools/capture_operations.py"), stacklevel=1)
        return
    assert fresh.by_shape == shipped.by_shape, (
        "the catalog drifted from MLflow's stores: run tools/capture_operations.py")
    assert fresh.descriptions == shipped.descriptions


def test_shapes_match_what_pg_stat_statements_shows():
    """The texts the driver sends and those pg_stat_statements keeps have one shape:
    placeholders, inline values, casts, list lengths and select-list order aside."""
    sent = ("SELECT runs.name, runs.run_uuid FROM runs WHERE runs.experiment_id IN "
            "(%(e_1)s::INTEGER, %(e_2)s::INTEGER) AND runs.status = 'FINISHED' LIMIT 10")
    kept = ("SELECT runs.run_uuid, runs.name FROM runs WHERE runs.experiment_id IN "
            "($1 /*, ... */) AND runs.status = $2 LIMIT $3")
    assert shape(sent) == shape(kept)
    assert shape("INSERT INTO metrics (key, value) VALUES (%(a)s, %(b)s), (%(c)s, %(d)s)") \
        == shape("INSERT INTO metrics (key, value) VALUES ($1, $2)")
    assert shape("SELECT * FROM metrics WHERE run_uuid = $1") != \
        shape("SELECT * FROM latest_metrics WHERE run_uuid = $1")


def test_a_search_with_a_filter_the_capture_did_not_try_is_still_search_runs():
    catalog = load_operations()
    known = next(k for k, ops in catalog.by_shape.items()
                 if ops[0] == "search_runs" and k.startswith("select distinct"))
    other = known.split(" where ")[0] + " where runs.user_id=? and runs.name like ?"
    assert catalog.operation_of(other) == "search_runs"
    assert catalog.operation_of("SELECT count(*) FROM runs JOIN tags USING (run_uuid)") \
        == UNKNOWN


def test_mlflows_own_workload_is_grouped_by_operation_and_passes(pytester, busy_uri):
    result, checks = audit(pytester, busy_uri)
    check = checks["workload.operations"]
    assert check["outcome"] == "passed", check
    findings = by_object(check)
    for operation in ("search_runs", "get_metric_history", "log_batch", "get_run",
                      "search_experiments", "search_registered_models",
                      "search_model_versions", "search_traces", "gc_hard_delete_run"):
        assert operation in findings, sorted(findings)
        assert findings[operation]["severity"] == "ok"
    # every statement MLflow's stores sent is recognized; the audit's own are not counted
    assert UNKNOWN not in findings, findings[UNKNOWN]["message"]
    search = findings["search_runs"]["message"]
    assert "call(s)" in search and "of the database's statement time" in search, search
    assert "costliest: " in search and "SELECT DISTINCT runs.run_uuid" in search, search
    info = findings["pg_stat_statements"]["message"]
    assert "counted since the statistics were reset at" in info, info
    assert result.ret == 0


def test_a_slow_operation_warns_naming_it(pytester, busy_uri):
    """Slow by the thresholds in force: every operation with a call is over 1us."""
    _, checks = audit(pytester, busy_uri, "--mlflowdb-set", "workload_slow_mean=1us",
                      "--mlflowdb-set", "workload_min_calls=1")
    check = checks["workload.operations"]
    assert check["outcome"] == "warned", check
    search = by_object(check)["search_runs"]
    assert search["severity"] == "warning"
    assert "search_runs: mean " in search["message"]
    assert "at or above workload_slow_mean 1us" in search["message"], search
    assert "CREATE INDEX CONCURRENTLY" in search["remedy"]


def test_without_pg_stat_statements_it_skips_with_the_remedy(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri)
    check = checks["workload.operations"]
    assert check["outcome"] == "skipped", check
    assert "pg_stat_statements is not installed" in check["message"]
    assert "shared_preload_libraries = 'pg_stat_statements'" in check["message"]
    assert "CREATE EXTENSION pg_stat_statements" in check["message"]


def test_other_roles_statements_hidden_skip_naming_the_privilege(pytester, busy_uri, pg18,
                                                                mlflow_role):
    user, password = mlflow_role
    _, checks = audit(pytester, role_uri(pg18, dbname_of(busy_uri), user, password))
    check = checks["workload.operations"]
    assert check["outcome"] == "skipped", check
    assert "needs pg_read_all_stats" in check["message"], check
    assert f"GRANT pg_read_all_stats TO \"{user}\"" in check["message"], check
