"""--mlflowdb-expect-mlflow / --mlflowdb-expect-revision: the CI gate before a deployment."""

from __future__ import annotations

import pytest
from helpers import audit, dbname_of, genuine_head, role_uri


def test_equal_passes(pytester, mlflowdb_database_factory):
    uri = mlflowdb_database_factory(revision="0584bdc529eb")
    _, checks = audit(pytester, uri, "--mlflowdb-expect-mlflow=2.22.5")
    revision = checks["schema.revision"]
    assert revision["outcome"] == "passed"
    assert "what MLflow 2.22.5 expects" in revision["message"]


def test_behind_lists_pending_migrations_in_order_flagging_heavy_ones(
        pytester, mlflowdb_database_factory):
    uri = mlflowdb_database_factory(revision="0584bdc529eb")
    result, checks = audit(pytester, uri, "--mlflowdb-expect-mlflow=3.17.2")
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed"
    assert result.ret == 1
    first, *steps = revision["findings"]
    assert first["severity"] == "failure" and "39 migration(s) pending" in first["message"]
    assert [s["object"][:2] for s in steps] == [f"{i:02d}" for i in range(1, 40)]
    assert steps[0]["object"] == "01 400f98739977" and steps[-1]["object"] == "39 dc11669786a5"
    heavy = {s["object"]: s for s in steps if s["severity"] == "warning"}
    metrics_index = heavy["25 a5b4c3d2e1f0"]
    assert "index_metrics_run_uuid_key_step on metrics without CONCURRENTLY" in \
        metrics_index["message"]
    assert "[metrics is " in metrics_index["message"]  # with the table's current size
    assert "row count unknown (never analysed)" in metrics_index["message"]  # not "~0 rows"
    backfill = heavy["38 75868b020152"]["message"]
    assert "backfills trace analytics" in backfill and "[trace_info is " in backfill
    assert steps[0]["severity"] == "info" and steps[0]["value"] == "3.0.0"
    # endpoint_model_mappings is created (empty) by pending step 13: indexing it is cheap
    assert "16 c9d4e5f6a7b8" not in heavy and "13 1bd49d398cd23" not in heavy


def test_newer_than_the_release_fails_plainly(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-expect-mlflow=2.22.5")
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed"
    assert "newer than MLflow 2.22.5" in revision["message"]


def test_expect_revision(pytester, mlflow_uri):
    release, revision = genuine_head()
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-expect-revision={revision}")
    assert checks["schema.revision"]["outcome"] == "passed"
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-expect-mlflow={release}")
    assert checks["schema.revision"]["outcome"] == "passed"


@pytest.mark.parametrize("option, expected", [
    ("--mlflowdb-expect-mlflow=9.9.9", "MLflow 9.9.9 is not a release the catalog knows"),
    ("--mlflowdb-expect-mlflow=latest", "is not a version"),
    ("--mlflowdb-expect-revision=abcdef123456", "is not in any released MLflow"),
])
def test_unknown_expectation_is_a_usage_error(pytester, option, expected):
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@h/db", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()


@pytest.fixture
def monitor_role(pg18):
    """A pg_monitor login role that MLflow's tables were never granted to."""
    from psycopg import sql as pgsql

    name, password = "gate_monitor", "G@te pw/1"
    with pg18.admin() as conn:
        conn.execute("DROP ROLE IF EXISTS gate_monitor")
        conn.execute(pgsql.SQL("CREATE ROLE gate_monitor LOGIN PASSWORD {} IN ROLE pg_monitor")
                     .format(pgsql.Literal(password)))
    yield name, password
    with pg18.admin() as conn:
        conn.execute("DROP OWNED BY gate_monitor CASCADE")
        conn.execute("DROP ROLE gate_monitor")


def test_expectation_that_cannot_be_verified_fails_with_the_grant(
        pytester, pg18, mlflowdb_database_factory, monitor_role):
    uri = mlflowdb_database_factory(revision="0584bdc529eb")
    user, password = monitor_role
    result, checks = audit(pytester, role_uri(pg18, dbname_of(uri), user, password),
                           "--mlflowdb-expect-mlflow=3.18.0")
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed", revision
    message = revision["message"]
    assert "cannot verify MLflow 3.18.0" in message, message
    assert 'GRANT SELECT ON public.alembic_version TO "gate_monitor"' in message, message
    assert result.ret == 1
    # the checks that only compare the schema stay skipped, with their reason
    assert checks["schema.tables"]["outcome"] == "skipped"
    assert "alembic_version" in checks["schema.tables"]["message"]


def test_unverifiable_revision_without_an_expectation_is_skipped(
        pytester, pg18, mlflowdb_database_factory, monitor_role):
    uri = mlflowdb_database_factory(revision="0584bdc529eb")
    user, password = monitor_role
    result, checks = audit(pytester, role_uri(pg18, dbname_of(uri), user, password))
    revision = checks["schema.revision"]
    assert revision["outcome"] == "skipped", revision
    assert 'GRANT SELECT ON public.alembic_version TO "gate_monitor"' in revision["message"]
    assert result.ret == 0
