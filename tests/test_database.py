"""The audit session is read-only with timeouts, and its preflight finds MLflow's schema."""

from __future__ import annotations

import psycopg
import pytest
from helpers import dbname_of, role_uri

from pytest_mlflowdb.database import Database, DatabaseError
from pytest_mlflowdb.mlflow_schema import apply_mlflow_schema
from pytest_mlflowdb.targets import parse_target


def _db(uri: str, **kwargs) -> Database:
    return Database(parse_target(uri), **kwargs).connect()


def test_session_refuses_writes_and_sets_timeouts(mlflow_uri):
    db = _db(mlflow_uri, statement_timeout=7, lock_timeout=0.25)
    try:
        assert db.setting("default_transaction_read_only") == "on"
        assert db.setting("statement_timeout") == "7s"
        assert db.setting("lock_timeout") == "250ms"
        assert db.setting("application_name") == "pytest-mlflowdb"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.value("INSERT INTO experiments (name, lifecycle_stage) VALUES ('x', 'active')")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.value("CREATE TABLE intruder (x int)")
    finally:
        db.close()
    with psycopg.connect(mlflow_uri) as conn:
        assert conn.execute("SELECT count(*) FROM experiments WHERE name = 'x'").fetchone()[0] == 0


def test_statement_timeout_cancels_long_queries(mlflow_uri):
    db = _db(mlflow_uri, statement_timeout=0.3)
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            db.value("SELECT pg_sleep(5)")
    finally:
        db.close()


def test_preflight_facts_on_a_genuine_schema(mlflow_uri):
    db = _db(mlflow_uri)
    try:
        pre = db.preflight
    finally:
        db.close()
    assert pre.major >= 14 and pre.server_version_num >= 140000
    assert pre.in_recovery is False
    assert pre.current_user == "postgres" and pre.is_superuser
    assert pre.mlflow_schema == "public"
    assert pre.schema_revision is not None and len(pre.schema_revision) == 12
    assert "plpgsql" in pre.extensions
    assert pre.host == "127.0.0.1" and pre.dbname == dbname_of(mlflow_uri)


def test_preflight_finds_mlflow_in_another_schema(pg15):
    name = "nonpublic_mlflow"
    pg15.create_database(name)
    try:
        with psycopg.connect(pg15.uri(name), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA mlflow")
            conn.execute("ALTER DATABASE nonpublic_mlflow SET search_path = mlflow")
        revision = apply_mlflow_schema(pg15.uri(name))
        db = _db(pg15.uri(name))
        try:
            pre = db.preflight
        finally:
            db.close()
        assert pre.mlflow_schema == "mlflow"
        assert pre.schema_revision == revision
        assert pre.server_version.startswith("15.")
    finally:
        pg15.drop_database(name)


def test_preflight_of_a_role_without_monitoring_privileges(pg18, mlflow_uri, mlflow_role):
    user, password = mlflow_role
    db = _db(role_uri(pg18, dbname_of(mlflow_uri), user, password))
    try:
        pre = db.preflight
    finally:
        db.close()
    assert pre.current_user == user
    assert not pre.is_superuser and not pre.can_read_all_stats()
    assert pre.roles == ()
    # MLflow's tables are visible in the catalog, but alembic_version is not readable.
    assert pre.mlflow_schema == "public"
    assert pre.schema_revision is None
    assert any("no SELECT privilege" in note for note in pre.notes)


def test_wrong_password_is_one_line_without_the_password(pg18, mlflow_uri, mlflow_role):
    user, _ = mlflow_role
    secret = "N0t-the:pass@word"
    with pytest.raises(DatabaseError) as info:
        _db(role_uri(pg18, dbname_of(mlflow_uri), user, secret), connect_timeout=3)
    message = str(info.value)
    assert "password authentication failed" in message
    assert "\n" not in message
    assert "N0t-the" not in message
