"""settings.*: the review of the server's settings for MLflow's pattern, on stock servers
set up as README's platform guide says (no warning), and on each fault."""

from __future__ import annotations

import pytest
from helpers import audit, dbname_of, sql

from pytest_mlflowdb.servers.janitor import Janitor

AREAS = ("settings.", "stats.", "archiving.", "replication.")


def server_checks(checks: dict) -> dict[str, dict]:
    return {k: c for k, c in checks.items() if k.startswith(AREAS)}


def by_object(check: dict) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"]}


@pytest.fixture(scope="module")
def pg15_janitor():
    janitor = Janitor("path")
    yield janitor
    janitor.close()


def assert_quiet(checks: dict) -> None:
    noisy = {k: c["message"] for k, c in server_checks(checks).items()
             if c["outcome"] != "passed"}
    assert noisy == {}, noisy
    review = checks["settings.review"]
    assert {f["severity"] for f in review["findings"]} == {"info"}, review
    # every setting with its value and source
    found = by_object(review)
    assert "(default)" in found["random_page_cost"]["message"], found["random_page_cost"]
    assert "a database client cannot see" in found["shared_buffers"]["message"]
    timeouts = by_object(checks["settings.timeouts"])
    idle = timeouts["role mlflow: idle_in_transaction_session_timeout"]
    assert idle["severity"] == "ok" and "(from ALTER ROLE mlflow SET)" in idle["message"], idle


def test_stock_pg18_set_up_as_the_guide_says_gets_no_warning(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri)
    assert_quiet(checks)


def test_stock_pg15_set_up_as_the_guide_says_gets_no_warning(pytester, pg15_janitor):
    _, checks = audit(pytester, pg15_janitor.create(source="catalog"))
    assert_quiet(checks)


def test_no_idle_timeout_for_mlflows_role_warns_with_the_alter_role(pytester, mlflow_uri):
    db = dbname_of(mlflow_uri)
    sql(mlflow_uri, f"ALTER ROLE mlflow IN DATABASE {db} SET "
                    "idle_in_transaction_session_timeout = 0")
    _, checks = audit(pytester, mlflow_uri)
    check = checks["settings.timeouts"]
    assert check["outcome"] == "warned", check
    idle = by_object(check)["role mlflow: idle_in_transaction_session_timeout"]
    assert idle["severity"] == "warning"
    assert f"ALTER ROLE mlflow IN DATABASE {db} SET" in idle["message"], idle
    assert idle["remedy"].startswith(
        "ALTER ROLE \"mlflow\" SET idle_in_transaction_session_timeout = '5min';"), idle
    statement = by_object(check)["role mlflow: statement_timeout"]
    assert statement["severity"] == "info" and statement["remedy"], statement


LOAD = (
    "INSERT INTO experiments (name, lifecycle_stage) VALUES ('e', 'active')",
    "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) "
    "SELECT md5(i::text), 1, 'active', 'FINISHED' FROM generate_series(1, 100) i",
    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) SELECT 'loss', "
    "random(), 1700000000000 + s, md5(i::text), s, false "
    "FROM generate_series(1, 100) i, generate_series(1, 200) s",
    "ANALYZE metrics",
)


def test_a_big_table_left_to_the_global_scale_factors_warns(pytester, mlflow_uri):
    sql(mlflow_uri, *LOAD)
    low = ("--mlflowdb-set", "autovacuum_trigger_warn=4000")
    _, checks = audit(pytester, mlflow_uri, *low)
    check = checks["settings.autovacuum"]
    assert check["outcome"] == "warned", check
    metrics = by_object(check)["public.metrics"]
    # 20,000 rows: 50 + 0.2 x 20,000 changed, 1000 + 0.2 x 20,000 inserted
    assert metrics["severity"] == "warning" and metrics["value"] == 5000, metrics
    assert "inserted: 5,000 rows (1000 + 0.2 x 20,000)" in metrics["message"], metrics
    assert by_object(check)["public.params"]["severity"] == "ok"
    sql(mlflow_uri, metrics["remedy"])
    _, checks = audit(pytester, mlflow_uri, *low)
    check = checks["settings.autovacuum"]
    assert check["outcome"] == "passed", check
    assert "per-table" in by_object(check)["public.metrics"]["message"]
    # PostgreSQL 18 caps the dead-row trigger (mlflow_uri's server is 18)
    sql(mlflow_uri, "ALTER TABLE metrics SET (autovacuum_vacuum_max_threshold = 500)")
    _, checks = audit(pytester, mlflow_uri, *low)
    capped = by_object(checks["settings.autovacuum"])["public.metrics"]
    assert "changed: 500 rows (" in capped["message"], capped
    assert "capped by autovacuum_vacuum_max_threshold" in capped["message"], capped


def test_a_setting_waiting_for_a_restart_warns(pytester):
    """On a server of its own: a setting removed from the configuration again stays
    flagged pending_restart until the server restarts."""
    janitor = Janitor("path")
    try:
        _pending_restart(pytester, janitor)
    finally:
        janitor.close()


def _pending_restart(pytester, pg15_janitor):
    import psycopg
    from server_support import value, wait_for

    uri = pg15_janitor.create(source="catalog")
    # the throwaway server sets max_connections on its command line: after a reload
    # PostgreSQL flags the file's other value pending_restart, which no restart applies
    sql(uri, "SELECT pg_reload_conf()")
    wait_for(lambda: value(uri, "SELECT pending_restart FROM pg_settings "
                                "WHERE name = 'max_connections'"), "the reload")
    _, checks = audit(pytester, uri)
    check = checks["settings.pending_restart"]
    assert check["outcome"] == "passed", check
    moot = by_object(check)["max_connections"]
    assert moot["severity"] == "info" and "set on the command line" in moot["message"], moot
    sql(uri, "ALTER SYSTEM SET max_locks_per_transaction = 128", "SELECT pg_reload_conf()")
    try:
        wait_for(lambda: value(uri, "SELECT pending_restart FROM pg_settings "
                                    "WHERE name = 'max_locks_per_transaction'"), "the reload")
        _, checks = audit(pytester, uri)
        check = checks["settings.pending_restart"]
        assert check["outcome"] == "warned", check
        found = by_object(check)["max_locks_per_transaction"]
        assert found["severity"] == "warning", found
        assert "still runs with 64" in found["message"], found
    finally:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET max_locks_per_transaction")


def test_readme_sets_what_the_throwaway_databases_and_the_check_expect():
    import inspect
    from pathlib import Path

    from pytest_mlflowdb.catalog import mlflow_schema
    from pytest_mlflowdb.config.areas import builtin_checks_dir

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "ALTER ROLE mlflow SET idle_in_transaction_session_timeout = '5min';" in readme
    assert "idle_in_transaction_session_timeout = \"\n" \
           "                             \"'5min'" in inspect.getsource(mlflow_schema)
    checks_dir = builtin_checks_dir()
    assert checks_dir is not None
    assert 'GUIDE_IDLE_TIMEOUT = "5min"' in (checks_dir / "settings.py").read_text()


def test_without_mlflows_schema_the_server_settings_are_still_reviewed(pytester, pg15_janitor):
    _, checks = audit(pytester, pg15_janitor.create(mlflow=False))
    assert checks["settings.review"]["outcome"] == "passed", checks["settings.review"]
    assert checks["settings.pending_restart"]["outcome"] == "passed"
    for name in ("settings.timeouts", "settings.autovacuum"):
        assert checks[name]["outcome"] == "skipped", checks[name]
