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
    for quiet in ("workload.plans", "workload.largest_runs", "workload.large_experiments",
                  "workload.stuck_versions"):
        assert checks[quiet]["outcome"] == "passed", checks[quiet]
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


# -- workload.plans ----------------------------------------------------------------------
#: 200 experiments of 100 runs each: runs is ~6MB, over the lowered size threshold
_MANY_RUNS = [
    "INSERT INTO experiments (name, workspace, artifact_location, lifecycle_stage, "
    "creation_time, last_update_time) SELECT 'exp-' || i, 'default', '/tmp/a', 'active', 0, 0 "
    "FROM generate_series(1, 200) i",
    "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
    "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
    "experiment_id) SELECT md5(i::text), 'run-' || i, 'LOCAL', 'train.py', '', 'someone', "
    "'FINISHED', i, i + 1, 'abc', 'active', '/tmp/a/' || md5(i::text), "
    "(SELECT min(experiment_id) FROM experiments WHERE name <> 'Default') + i % 200 "
    "FROM generate_series(1, 20000) i",
    "ANALYZE",
]
SMALL = ("--mlflowdb-set", "plan_seq_scan_min_size=1MB")


def test_hot_queries_planned_on_an_indexed_database_pass(pytester, mlflow_uri):
    sql(mlflow_uri, *_MANY_RUNS[:2],
        "CREATE INDEX mlflowdb_runs_experiment_id ON runs (experiment_id)", "ANALYZE")
    _, checks = audit(pytester, mlflow_uri, *SMALL)
    check = checks["workload.plans"]
    assert check["outcome"] == "passed", [f["message"] for f in check["findings"]]
    (summary,) = [f for f in check["findings"] if f["severity"] == "ok"]
    assert "never executed" in summary["message"]
    assert not [f for f in check["findings"] if f["message"].startswith("not planned")]


def test_a_dropped_recommended_index_under_a_large_experiment_names_the_search(
        pytester, mlflow_uri):
    sql(mlflow_uri, *_MANY_RUNS)
    _, checks = audit(pytester, mlflow_uri, *SMALL)
    check = checks["workload.plans"]
    assert check["outcome"] == "warned", check
    found = by_object(check)["search_runs: runs"]
    assert found["severity"] == "warning"
    assert "search_runs reads runs whole (" in found["message"], found
    assert "experiment_id" in found["message"]
    assert "the gain of the index was not measured" in found["message"]
    assert found["remedy"] == ("CREATE INDEX CONCURRENTLY mlflowdb_runs_experiment_id ON "
                               "runs (experiment_id);")


def test_the_audit_writes_nothing_and_explain_executes_nothing(pytester, pg18, busy_uri):
    """Every statement of the audit's sessions, from the server's own log."""
    assert pg18.workdir is not None
    log = pg18.workdir / "server.log"
    sql(busy_uri, f"ALTER DATABASE {dbname_of(busy_uri)} SET log_statement = 'all'")
    start = log.stat().st_size
    try:
        _, checks = audit(pytester, busy_uri)
        with log.open(errors="replace") as stream:
            stream.seek(start)
            lines = [line.split(": ", 2)[-1].strip() for line in stream
                     if "LOG:  statement: " in line or "LOG:  execute " in line]
    finally:
        sql(busy_uri, f"ALTER DATABASE {dbname_of(busy_uri)} RESET log_statement")
    assert checks["workload.plans"]["outcome"] == "passed"
    explains = [s for s in lines if s.upper().startswith("EXPLAIN")]
    assert len(explains) >= 20, lines[:20]
    assert not [s for s in explains if "ANALYZE" in s.upper().split("SELECT")[0]]
    hot = {text.split(" FROM ")[0] for _, text in _hot()}
    assert not [s for s in lines if s.split(" FROM ")[0] in hot], "a hot query ran"
    writes = ("INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "TRUNCATE", "COPY",
              "GRANT", "REVOKE", "VACUUM", "SELECT SETVAL", "SELECT NEXTVAL")
    assert not [s for s in lines if s.upper().startswith(writes)], lines


def _hot():
    import importlib

    return importlib.import_module("pytest_mlflowdb.checks.workload").hot_statements()


# -- what mlflow gc and the UI will meet -------------------------------------------------
_ONE_EXPERIMENT = ("INSERT INTO experiments (name, workspace, artifact_location, "
                   "lifecycle_stage, creation_time, last_update_time) VALUES "
                   "('big', 'default', '/tmp/a', 'active', 0, 0)")


def _runs(count: int, experiment: str = "(SELECT experiment_id FROM experiments WHERE "
          "name = 'big')", offset: int = 0) -> str:
    return ("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) SELECT md5(i::text), 'run-' || i, 'LOCAL', 'x', "
            "'', 'me', 'FINISHED', i, i, 'v', 'active', '/tmp/a', " + experiment +
            f" FROM generate_series({offset + 1}, {offset + count}) i")


def test_a_run_with_a_very_large_metric_history_is_named(pytester, mlflow_uri):
    big = "md5('1')"
    sql(mlflow_uri, _ONE_EXPERIMENT, _runs(20),
        "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
        f"SELECT 'loss', 0.5, s, s, false, {big} FROM generate_series(1, 30000) s",
        "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
        "SELECT 'loss', 0.5, s, s, false, md5(r::text) FROM generate_series(2, 20) r, "
        "generate_series(1, 50) s", "ANALYZE metrics")
    with __import__("psycopg").connect(mlflow_uri) as conn:
        (run_uuid,) = conn.execute(f"SELECT {big}").fetchone()
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "run_metric_rows_warn=10000")
    check = checks["workload.largest_runs"]
    assert check["outcome"] == "warned", check
    (found,) = [f for f in check["findings"] if f["severity"] == "warning"]
    assert found["object"] == f"run {run_uuid}"
    assert "metric rows (estimated from the planner's statistics)" in found["message"]
    assert "mlflow gc loads a run's metrics" in found["message"]
    assert 25000 <= found["value"] <= 35000, found


def test_an_experiment_with_many_runs_is_named(pytester, mlflow_uri):
    sql(mlflow_uri, _ONE_EXPERIMENT, _ONE_EXPERIMENT.replace("'big'", "'small'"),
        _runs(5000), _runs(300, "(SELECT experiment_id FROM experiments WHERE name = "
                                "'small')", offset=5000), "ANALYZE runs")
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "experiment_runs_warn=2000")
    check = checks["workload.large_experiments"]
    assert check["outcome"] == "warned", check
    (found,) = [f for f in check["findings"] if f["severity"] == "warning"]
    with __import__("psycopg").connect(mlflow_uri) as conn:
        (big,) = conn.execute("SELECT experiment_id FROM experiments WHERE name = 'big'"
                              ).fetchone()
    assert found["object"] == f"experiment {big}", found
    assert "search_runs over it" in found["message"]


def test_a_version_stuck_in_registration_is_named(pytester, mlflow_uri):
    two_days_ago = "(extract(epoch FROM now()) * 1000)::bigint - 2 * 86400000"
    sql(mlflow_uri,
        "INSERT INTO registered_models (name, workspace, creation_time, last_updated_time) "
        f"VALUES ('churn', 'default', {two_days_ago}, {two_days_ago})",
        "INSERT INTO model_versions (name, workspace, version, creation_time, "
        "last_updated_time, current_stage, source, status) VALUES "
        f"('churn', 'default', 1, {two_days_ago}, {two_days_ago}, 'None', 's3://m', "
        "'PENDING_REGISTRATION'), "
        "('churn', 'default', 2, (extract(epoch FROM now()) * 1000)::bigint, NULL, 'None', "
        "'s3://m', 'PENDING_REGISTRATION')")
    _, checks = audit(pytester, mlflow_uri)
    check = checks["workload.stuck_versions"]
    assert check["outcome"] == "warned", check
    (found,) = [f for f in check["findings"] if f["severity"] == "warning"]
    assert found["object"] == "churn version 1"
    assert "is PENDING_REGISTRATION since 2d ago" in found["message"], found
    assert "delete_model_version('churn', 1)" in found["remedy"]


# -- connections -------------------------------------------------------------------------
def test_a_pool_holding_most_slots_is_named_with_mlflows_pool_settings(pytester, mlflow_uri):
    import contextlib

    import psycopg

    _, checks = audit(pytester, mlflow_uri)
    assert checks["workload.connections"]["outcome"] == "passed", checks["workload.connections"]
    with contextlib.ExitStack() as stack:
        for _ in range(32):  # 32 of the test server's 57 usable slots, idle
            stack.enter_context(psycopg.connect(mlflow_uri, application_name="tracking-pool"))
        _, checks = audit(pytester, mlflow_uri)
    check = checks["workload.connections"]
    assert check["outcome"] == "warned", check
    (found,) = [f for f in check["findings"] if f["severity"] == "warning"]
    assert found["object"] == "role postgres, application 'tracking-pool', from 127.0.0.1"
    assert "holds 32 of 57 usable connection slots" in found["message"], found
    assert "32 idle" in found["message"]
    for name in ("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW",
                 "MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE"):
        assert name in found["remedy"]


def test_mlflows_pool_settings_are_named_as_the_installed_mlflow_reads_them():
    import importlib

    from mlflow import environment_variables

    named = importlib.import_module("pytest_mlflowdb.checks.workload").POOL_SETTINGS
    for name in named:
        assert getattr(environment_variables, name).name == name


def test_with_hypopg_the_gain_of_the_index_is_measured(pytester, pg15):
    """hypopg (``apt-get install postgresql-15-hypopg``) on the path server: the
    hypothetical index lives in the audit's backend memory, made and reset inside its
    read-only transaction."""
    from pathlib import Path

    from pytest_mlflowdb.catalog.mlflow_schema import apply_mlflow_schema

    if pg15.bin_dir is None or not any((Path(pg15.bin_dir).parent / lib / "hypopg.so")
                                       .is_file() for lib in ("lib", "lib/postgresql")):
        pytest.skip("hypopg is not installed for this server (postgresql-15-hypopg)")
    pg15.create_database("wl_hypopg")
    try:
        uri = pg15.uri("wl_hypopg")
        apply_mlflow_schema(uri)
        sql(uri, "CREATE EXTENSION hypopg", *_MANY_RUNS)
        _, checks = audit(pytester, uri, *SMALL)
    finally:
        pg15.drop_database("wl_hypopg")
    found = by_object(checks["workload.plans"])["search_runs: runs"]
    assert "with the index the estimated cost falls from " in found["message"], found
    assert "measured with a hypothetical index of hypopg" in found["message"]


def test_installed_but_not_loaded_skips_with_the_remedy(pytester):
    """CREATE EXTENSION works without shared_preload_libraries; reading the view does not."""
    from pytest_mlflowdb.servers.janitor import Janitor

    janitor = Janitor("path", settings={"shared_preload_libraries": ""})
    try:
        uri = janitor.create()
        sql(uri, "CREATE EXTENSION pg_stat_statements")
        _, checks = audit(pytester, uri)
    finally:
        janitor.close()
    check = checks["workload.operations"]
    assert check["outcome"] == "skipped", check
    assert "pg_stat_statements cannot be read: " in check["message"], check
    assert "shared_preload_libraries = 'pg_stat_statements'" in check["message"]


# -- MLflow's basic-auth database --------------------------------------------------------
AUTH_TOOL = Path(__file__).resolve().parents[1] / "tools" / "capture_auth_schema.py"


def _auth_tool(*args: str) -> None:
    """The tool in a process of its own (MLflow and alembic stay out of this one)."""
    done = subprocess.run([sys.executable, str(AUTH_TOOL), *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def auth_uri(mlflowdb_database_factory) -> str:
    """A database migrated by MLflow's own auth migrations, as the basic-auth app makes."""
    uri = mlflowdb_database_factory(mlflow=False)
    _auth_tool("--migrate", uri)
    return uri


def test_the_shipped_auth_schemas_are_what_mlflows_auth_migrations_make(
        mlflowdb_database_factory, tmp_path):
    """The auth catalog's drift test: captured again with the installed MLflow."""
    import json as json_

    from pytest_mlflowdb.workload.auth import load_auth_catalog

    out = tmp_path / "auth.json"
    _auth_tool("--uri", mlflowdb_database_factory(mlflow=False), "--out", str(out))
    fresh = json_.loads(out.read_text())
    shipped = load_auth_catalog()
    if fresh["mlflow"] != shipped.mlflow:
        pytest.skip(f"MLflow {fresh['mlflow']} is not the auth catalog's {shipped.mlflow}: "
                    "run tools/capture_auth_schema.py")
    assert tuple(fresh["chain"]) == shipped.chain
    assert json_.dumps(fresh["schemas"], sort_keys=True) == \
        json_.dumps(shipped.schemas, sort_keys=True)


def test_mlflows_auth_database_is_checked_against_its_own_migrations(pytester, auth_uri):
    from pytest_mlflowdb.workload.auth import load_auth_catalog

    _, checks = audit(pytester, auth_uri)
    revision = checks["schema.revision"]
    assert revision["outcome"] == "skipped", revision
    assert "MLflow's basic-auth database" in revision["message"]
    auth = checks["workload.auth_schema"]
    assert auth["outcome"] == "passed", auth
    assert f"at revision {load_auth_catalog().head}" in auth["message"], auth
    assert not [c for c in checks.values() if c["outcome"] == "failed"]


def test_a_damaged_auth_schema_fails_naming_what_is_missing(pytester, auth_uri):
    sql(auth_uri, "ALTER TABLE experiment_permissions DROP COLUMN permission")
    _, checks = audit(pytester, auth_uri)
    auth = checks["workload.auth_schema"]
    assert auth["outcome"] == "failed", auth
    assert any("column experiment_permissions.permission missing" in f["message"]
               for f in auth["findings"]), auth


def test_a_tracking_database_is_not_an_auth_database(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri)
    auth = checks["workload.auth_schema"]
    assert auth["outcome"] == "passed"
    assert "not MLflow's basic-auth database" in auth["message"]


def test_the_audits_own_sessions_are_not_counted_as_a_pool(mlflow_uri):
    """A fleet audited on one server holds a session per database at once, idle between
    their transactions: the connections view leaves this process's audit sessions out, and
    still counts every other client's."""
    import time

    import psycopg

    from pytest_mlflowdb.config.targets import parse_target
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.probes.workload import connections

    def counted(db: Database, expected: int | None = None) -> int:
        give_up = time.monotonic() + 10  # a closed session's backend ends a moment later
        while True:
            db._cache.clear()
            db._answers.clear()
            found = sum(h.sessions for h in connections(db).holders)
            if expected is None or found == expected or time.monotonic() > give_up:
                return found
            time.sleep(0.1)

    first = Database(parse_target(mlflow_uri)).connect()
    others = [Database(parse_target(mlflow_uri)).connect() for _ in range(2)]
    plain = [psycopg.connect(mlflow_uri) for _ in range(2)]
    try:
        with_plain = counted(first)
        for conn in plain:
            conn.close()
        plain = []
        assert counted(first, with_plain - 2) == with_plain - 2  # other clients count
        for db in others:
            db.close()
        others = []
        time.sleep(0.5)
        assert counted(first) == with_plain - 2  # the audit's own sessions never did
    finally:
        for conn in plain:
            conn.close()
        for db in [first, *others]:
            db.close()
