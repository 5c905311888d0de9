"""Skip a check, with the reason, when the target cannot answer it.

A check that lacks a privilege, an extension or MLflow's schema must never pass
silently: it is skipped and says why. These only decide whether a check can run; the facts
they read are probes (:mod:`pytest_mlflowdb.probes.mlflow`). Use them at the top of a
check::

    from pytest_mlflowdb.audit.requirements import require_role

    def test_long_queries(mlflowdb, mlflowdb_findings):
        require_role(mlflowdb, "pg_read_all_stats")
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb.db.database import Database
from pytest_mlflowdb.probes.grants import advice
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.probes.schema import newer_than_catalog


def require_role(db: Database, *roles: str) -> None:
    """Skip unless the session's role is a superuser or a member of one of ``roles``."""
    pre = db.preflight
    if pre.is_superuser or set(roles) & set(pre.roles):
        return
    pytest.skip(f"no privilege: needs {' or '.join(roles)}; role {pre.current_user} has "
                f"{', '.join(pre.roles) or 'no monitoring role'} "
                f"({advice(db, f'GRANT {roles[0]}')})")


def require_extension(db: Database, name: str) -> None:
    """Skip unless extension ``name`` is installed in the audited database."""
    if name not in db.preflight.extensions:
        pytest.skip(f"extension missing: {name} is not installed in {db.preflight.dbname}")


def require_mlflow_schema(db: Database) -> str:
    """Return the schema holding MLflow's tables, the one MLflow would use with this URI.

    Skips when no schema holds them; fails when they exist but not where this URI's
    search_path leads (the audit would otherwise pass tables MLflow would never use).
    """
    facts = mlflow_facts(db)
    if facts.schema is None and facts.schema_error:
        pytest.skip(f"no privilege: {facts.schema_error}")
    if facts.schema is None:
        if facts.elsewhere:
            pytest.fail(f"MLflow's tables are in schema {', '.join(facts.elsewhere)}, not on "
                        "this URI's search_path (see schema.revision for the fix)",
                        pytrace=False)
        pytest.skip("no MLflow schema: no MLflow tables in any schema this role can see")
    return facts.schema


def require_catalog_revision(db: Database) -> str:
    """Return the database's alembic revision; skip unless the catalog has its schema.

    After it, :func:`pytest_mlflowdb.probes.mlflow.catalog_diff` can compare the database
    with the catalog. A missing or unknown revision is ``schema.revision``'s failure to
    report, so here it is a skip reason.
    """
    from pytest_mlflowdb.catalog import load_catalog

    require_mlflow_schema(db)
    facts = mlflow_facts(db)
    if facts.alembic_error:
        pytest.skip(f"no privilege: {facts.alembic_error}")
    revision = facts.revision
    if revision is None:
        pytest.skip("no single alembic revision to compare with (see schema.revision)")
    catalog = load_catalog()
    newer = newer_than_catalog(db)
    if newer:
        pytest.skip(newer)
    if not catalog.knows(revision):
        pytest.skip(f"revision {revision} is not in any released MLflow (see schema.revision)")
    if not catalog.has_schema(revision):
        pytest.skip(f"the catalog has no schema for revision {revision}; refresh it")
    return revision
