"""Team checks: ordinary test files that use pytest-mlflowdb's fixtures.

Run them beside the built-in suite:

    pytest examples/test_team_checks.py --mlflowdb-uri="$MLFLOW_BACKEND_STORE_URI"

Each check runs once per target. ``mlflowdb`` is a read-only session (writes raise),
``mlflowdb_findings`` records what was measured, and the outcome is the worst finding.
Plain ``assert`` works too.
"""

from pytest_mlflowdb import check
from pytest_mlflowdb.probes.mlflow import mlflow_facts


@check("team.deleted_runs_collectable")
def test_deleted_runs_collectable(mlflowdb, mlflowdb_findings):
    """Deleted runs carry deleted_time, or ``mlflow gc`` never removes them.

    Runs soft-deleted before MLflow 1.28 have ``deleted_time IS NULL``; ``mlflow gc``
    skips them unless named with ``--run-ids``. (This one reads the runs table: fine
    for most stores, mark it ``slow`` if yours has millions of runs.)
    """
    schema = mlflow_facts(mlflowdb).schema
    if schema is None:
        mlflowdb_findings.fail("runs", "no MLflow schema found")
        return
    stuck = mlflowdb.value(
        f"SELECT count(*) FROM \"{schema}\".runs "
        "WHERE lifecycle_stage = 'deleted' AND deleted_time IS NULL"
    )
    if stuck:
        mlflowdb_findings.warn(f"{schema}.runs",
                               f"{stuck} deleted run(s) without deleted_time: mlflow gc "
                               "will never collect them", stuck, 0)
    else:
        mlflowdb_findings.ok(f"{schema}.runs", "every deleted run is collectable", 0, 0)


@check("team.active_experiments", thresholds=("team_max_active_experiments",))
def test_active_experiments(mlflowdb, mlflowdb_thresholds, mlflowdb_findings):
    """Active experiments stay under the team's limit (a threshold added in conftest.py)."""
    schema = mlflow_facts(mlflowdb).schema or "public"
    active = mlflowdb.value(
        f"SELECT count(*) FROM \"{schema}\".experiments WHERE lifecycle_stage = 'active'"
    )
    mlflowdb_findings.limit(f"{schema}.experiments", "active experiments", active, unit="count",
                            warn=mlflowdb_thresholds["team_max_active_experiments"])


@check("team.read_only_session")
def test_audit_session_cannot_write(mlflowdb):
    """Our own guarantee, checked like any other: the audit session is read-only."""
    assert mlflowdb.setting("transaction_read_only") == "on"


def test_alembic_revision_is_known(mlflowdb):
    """Without the decorator a check still runs per target, with id custom.team_checks.*."""
    assert mlflow_facts(mlflowdb).revision, "alembic_version missing or unreadable"
