"""Scratch databases are set up as a careful team would: MLflow's tables belong to an
unprivileged SCRAM login role, and PUBLIC may not create in their schema."""

from __future__ import annotations

import psycopg
import pytest

from pytest_mlflowdb.mlflow_schema import APP_ROLE


@pytest.mark.parametrize("source", ["migrations", "catalog"])
def test_scratch_databases_are_owned_by_an_unprivileged_scram_role(
        mlflowdb_database_factory, source):
    uri = mlflowdb_database_factory(source=source)
    with psycopg.connect(uri) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'i')").fetchall()
        role = conn.execute("SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, "
                            "starts_with(rolpassword, 'SCRAM-SHA-256$') FROM pg_authid "
                            "WHERE rolname = %s", (APP_ROLE,)).fetchone()
        public_create = conn.execute(
            "SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone()[0]
    assert owners == [(APP_ROLE,)]
    assert role == (False, True, False, False, True)
    assert public_create is False
