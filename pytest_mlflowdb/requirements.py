"""Skip a check, with the reason, when the target cannot answer it.

A check that lacks a privilege, an extension or MLflow's schema must never pass
silently: it is skipped and says why. Use these at the top of a check::

    from pytest_mlflowdb.requirements import require_role

    def test_long_queries(mlflowdb, mlflowdb_findings):
        require_role(mlflowdb, "pg_read_all_stats")
"""

from __future__ import annotations

import pytest

from .database import Database


def require_role(db: Database, *roles: str) -> None:
    """Skip unless the session's role is a superuser or a member of one of ``roles``."""
    pre = db.preflight
    if pre.is_superuser or set(roles) & set(pre.roles):
        return
    pytest.skip(f"no privilege: needs {' or '.join(roles)}; role {pre.current_user} has "
                f"{', '.join(pre.roles) or 'no monitoring role'}")


def require_extension(db: Database, name: str) -> None:
    """Skip unless extension ``name`` is installed in the audited database."""
    if name not in db.preflight.extensions:
        pytest.skip(f"extension missing: {name} is not installed in {db.preflight.dbname}")


def require_mlflow_schema(db: Database) -> str:
    """Skip unless MLflow's tables were found; return the schema that holds them."""
    schema = db.preflight.mlflow_schema
    if schema is None:
        pytest.skip("no MLflow schema: no MLflow tables in any schema this role can see")
    return schema


def require_catalog_schema(db: Database):
    """Skip unless the database's revision has a schema in the catalog.

    Returns ``(schema, revision, expected Snapshot, diff)``: the difference between the
    catalog's schema at that revision and the database's, worked out once per session
    for all the checks that read it. A missing or unknown revision is
    ``schema.revision``'s failure to report, so here it is a skip reason.
    """
    from .catalog import load_catalog
    from .catalog.compare import compare
    from .probes.schema import live_snapshot

    schema = require_mlflow_schema(db)
    pre = db.preflight
    if pre.alembic_error:
        pytest.skip(f"no privilege: {pre.alembic_error}")
    revision = pre.schema_revision
    if revision is None:
        pytest.skip("no single alembic revision to compare with (see schema.revision)")
    catalog = load_catalog()
    if not catalog.knows(revision):
        pytest.skip(f"revision {revision} is not in any released MLflow (see schema.revision)")
    if not catalog.has_schema(revision):
        pytest.skip(f"the catalog has no schema for revision {revision}; refresh it")
    expected = catalog.schema_at(revision)
    diff = db.cached(f"diff:{schema}:{revision}", lambda d: compare(expected, live_snapshot(d)))
    return schema, revision, expected, diff
