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
