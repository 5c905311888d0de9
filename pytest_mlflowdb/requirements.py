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


def off_search_path(db: Database) -> str | None:
    """Why MLflow would not find its tables through this URI, with the fix; None if it would.

    MLflow uses unqualified names, so it sees only the session's current schema (the first
    existing schema on the search_path). Tables in another schema are invisible to it: it
    would create a new, empty schema beside them.
    """
    pre = db.preflight
    if pre.mlflow_schema is not None or not pre.mlflow_elsewhere:
        return None
    from urllib.parse import quote

    schema = pre.mlflow_elsewhere[0]
    shown = ", ".join(pre.mlflow_elsewhere)
    current = pre.current_schema or "none (no schema on it exists)"
    option = f"-csearch_path={schema}"
    return (f"MLflow's tables are in schema {shown}, which this URI's search_path "
            f"({pre.search_path}) does not lead to (current schema: {current}): MLflow "
            "connecting with this URI would see no tables and create new, empty ones. "
            f"Point the URI at {schema}: add ?options={quote(option, safe='-_')} to it "
            f"(options='{option}' in a key=value string), or run "
            f"ALTER ROLE {pre.current_user} SET search_path = {schema}")


def require_mlflow_schema(db: Database) -> str:
    """Return the schema holding MLflow's tables, the one MLflow would use with this URI.

    Skips when no schema holds them; fails when they exist but not where this URI's
    search_path leads (the audit would otherwise pass tables MLflow would never use).
    """
    schema = db.preflight.mlflow_schema
    if schema is None and db.preflight.schema_error:
        pytest.skip(f"no privilege: {db.preflight.schema_error}")
    if schema is None:
        elsewhere = db.preflight.mlflow_elsewhere
        if elsewhere:
            pytest.fail(f"MLflow's tables are in schema {', '.join(elsewhere)}, not on this "
                        "URI's search_path (see schema.revision for the fix)", pytrace=False)
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
