"""Least privilege: the recipe of ``--mlflowdb-print-grants``, run by a superuser on a
genuine MLflow database (tables owned by MLflow's role, as its migrations make them),
gives a read-only role that owns nothing and with which no default check is skipped for
lack of a privilege; remedies never tell MLflow's own role to take more."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest
from helpers import audit, dbname_of, role_uri
from psycopg import sql as pgsql

from pytest_mlflowdb.catalog.mlflow_schema import APP_ROLE
from pytest_mlflowdb.servers.tools import find_tools

AUDITOR_PASSWORD = "Aud1tor-pw!x"


def print_grants(pytester, *args: str):
    """``pytest --mlflowdb-print-grants ...`` in a child process: (exit code, stdout)."""
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    return result.ret, result.stdout.str()


@pytest.fixture
def auditor(pytester, pg18, mlflow_uri):
    """The recipe --mlflowdb-print-grants prints for mlflow_uri, run by a superuser:
    yields the auditor's URI; the role and what the recipe made are dropped afterwards."""
    ret, text = print_grants(pytester, f"--mlflowdb-uri={mlflow_uri}",
                             "--mlflowdb-print-grants=aud_recipe")
    assert ret == 0, text
    run_recipe(pg18, mlflow_uri, text)
    try:
        yield role_uri(pg18, dbname_of(mlflow_uri), "aud_recipe", AUDITOR_PASSWORD)
    finally:
        drop_role(pg18, mlflow_uri, "aud_recipe")


def run_recipe(server, uri: str, text: str) -> None:
    """Run the recipe as its README says: psql, as a superuser, in MLflow's database,
    the password given as a psql variable."""
    psql = find_tools(14, "the recipe", tools=("psql",)).path("psql")
    env = dict(os.environ, PGPASSWORD=server.password)
    done = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"auditor_password={AUDITOR_PASSWORD}",
         "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", dbname_of(uri)],
        input=text, text=True, capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr


def drop_role(server, uri: str, role: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP SCHEMA IF EXISTS mlflowdb_audit CASCADE"))
        conn.execute(pgsql.SQL("DROP OWNED BY {}").format(pgsql.Identifier(role)))
    with server.admin() as conn:
        conn.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(role)))


def skipped_for_privilege(checks: dict) -> dict[str, str]:
    return {k: c["message"] for k, c in checks.items()
            if c["outcome"] == "skipped" and "privilege" in c["message"]}


def faults(checks: dict) -> set[tuple[str, str, str]]:
    return {(k, f["object"], f["severity"]) for k, c in checks.items() for f in c["findings"]
            if f["severity"] in ("warning", "failure")}



# -- the recipe gives an auditor every default check runs with ------------------------
def test_the_recipe_lets_every_default_check_run_as_a_role_that_owns_nothing(
        pytester, pg18, mlflow_uri, auditor):
    result, checks = audit(pytester, auditor)
    _, as_superuser = audit(pytester, mlflow_uri)
    assert skipped_for_privilege(checks) == {}
    assert set(checks) == set(as_superuser)
    assert {k for k, c in checks.items() if c["outcome"] == "skipped"} == \
        {k for k, c in as_superuser.items() if c["outcome"] == "skipped"}
    assert faults(checks) <= faults(as_superuser)
    # MD5 detection through the recipe's function: MLflow's role judged, no hash shown
    (ok,) = [f for f in checks["security.password_encryption"]["findings"]
             if f["object"] == APP_ROLE]
    assert ok["severity"] == "ok" and "SCRAM-SHA-256" in ok["message"]
    with psycopg.connect(mlflow_uri) as conn:
        role = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                            "FROM pg_roles WHERE rolname = 'aud_recipe'").fetchone()
        owned = conn.execute(
            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid) "
            "+ (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) "
            "+ (SELECT count(*) FROM pg_proc WHERE proowner = r.oid) "
            "+ (SELECT count(*) FROM pg_database WHERE datdba = r.oid) "
            "FROM pg_roles r WHERE r.rolname = 'aud_recipe'").fetchone()
    assert role == (False, False, False, False)
    assert owned == (0,)
    assert AUDITOR_PASSWORD not in result.stdout.str()


def test_the_auditor_cannot_write(auditor):
    """Not only read-only by default: even in a read-write transaction it may not write."""
    with psycopg.connect(auditor.replace("+psycopg2", ""), autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO experiments (name, lifecycle_stage) "
                         "VALUES ('x', 'active')")
        for statement in ("UPDATE alembic_version SET version_num = 'x'",
                          "DELETE FROM runs", "SELECT nextval('experiments_experiment_id_seq')",
                          "CREATE TABLE public.aud_table (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


# -- --mlflowdb-print-grants ----------------------------------------------------------
def test_print_grants_fills_in_the_schema_and_owner_and_shows_no_password(
        pytester, pg18, mlflow_uri):
    ret, text = print_grants(pytester, f"--mlflowdb-uri={mlflow_uri}",
                             "--mlflowdb-print-grants")
    assert ret == 0
    db = dbname_of(mlflow_uri)
    assert f'MLflow\'s tables in schema public, owned by {APP_ROLE}' in text
    assert 'CREATE ROLE "mlflowdb_auditor" LOGIN NOSUPERUSER' in text
    assert "PASSWORD :'auditor_password';" in text
    assert f'GRANT CONNECT ON DATABASE "{db}" TO "mlflowdb_auditor";' in text
    assert f'ALTER DEFAULT PRIVILEGES FOR ROLE "{APP_ROLE}" IN SCHEMA "public"' in text
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "mlflowdb_auditor";' in text
    assert ':"mlflow_owner"' not in text
    assert pg18.password not in text
    assert "passed" not in text and "collected" not in text  # no check ran


def test_print_grants_bare_without_a_target_says_what_it_assumed(pytester):
    ret, text = print_grants(pytester, "--mlflowdb-print-grants")
    assert ret == 0
    assert text.startswith("-- no target given (--mlflowdb-uri): schema public assumed")
    assert 'GRANT USAGE ON SCHEMA "public" TO "mlflowdb_auditor";' in text
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE :"mlflow_owner"' in text
    assert 'GRANT CONNECT ON DATABASE :"DBNAME"' in text


def test_print_grants_names_the_role_and_survives_an_unreachable_target(pytester):
    ret, text = print_grants(pytester, "--mlflowdb-uri=postgresql://u:Hidden-pw9@127.0.0.1:1/x",
                             "--mlflowdb-print-grants=team auditor",
                             "--mlflowdb-connect-timeout=2s")
    assert ret == 0
    assert "-- 127.0.0.1:1/x: not reached (" in text and "schema public assumed" in text
    assert 'GRANT pg_monitor TO "team auditor";' in text
    assert "Hidden-pw9" not in text


# -- remedies point at the dedicated role, never at MLflow's --------------------------
def test_auditing_as_mlflows_own_role_never_advises_granting_it_more(pytester, pg18,
                                                                     mlflow_uri):
    db = dbname_of(mlflow_uri)
    with pg18.admin() as conn:  # the owner's random password, replaced by one we know
        conn.execute(pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(
            pgsql.Identifier(APP_ROLE), pgsql.Literal(AUDITOR_PASSWORD)))
    # a session of another role (hidden from the owner), and two reads taken away
    sql_ = "REVOKE SELECT ON runs FROM {0}; REVOKE SELECT ON experiments_experiment_id_seq FROM {0}"
    with psycopg.connect(mlflow_uri, autocommit=True) as other:
        other.execute(sql_.format(APP_ROLE))
        other.execute("BEGIN")
        other.execute("SELECT 1")  # idle in transaction, its details hidden
        result, checks = audit(pytester, role_uri(pg18, db, APP_ROLE, AUDITOR_PASSWORD))
        other.execute("ROLLBACK")
    texts = [c["message"] for c in checks.values()] + [
        f"{f['message']} {f.get('remedy') or ''}" for c in checks.values()
        for f in c["findings"]]
    assert not [t for t in texts if f'TO "{APP_ROLE}"' in t or f"TO {APP_ROLE}" in t]
    privileges = checks["connectivity.privileges"]
    (remedy,) = [f["remedy"] for f in privileges["findings"] if f.get("remedy")]
    assert "dedicated read-only role" in remedy and "--mlflowdb-print-grants" in remedy
    for name in ("integrity.stuck_runs", "sequences.capacity", "activity.idle_in_transaction"):
        assert checks[name]["outcome"] == "skipped", checks[name]
        assert f"role {APP_ROLE} is MLflow's own" in checks[name]["message"]
        assert "--mlflowdb-print-grants" in checks[name]["message"]
    assert AUDITOR_PASSWORD not in result.stdout.str()


def test_a_dedicated_role_is_told_the_grant_by_name_and_the_recipe(pytester, pg18,
                                                                   mlflow_uri, mlflow_role):
    """The auditor of the old README (pg_monitor, USAGE, SELECT on alembic_version only)."""
    user, password = mlflow_role
    sql_ = (f"GRANT pg_monitor TO {user}; GRANT USAGE ON SCHEMA public TO {user}; "
            f"GRANT SELECT ON alembic_version TO {user}")
    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        conn.execute(sql_)
    try:
        _, checks = audit(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password))
    finally:
        with psycopg.connect(mlflow_uri, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {user}; REVOKE pg_monitor FROM {user}")
    skipped = skipped_for_privilege(checks)
    assert set(skipped) == {"integrity.stuck_runs", "integrity.gc_backlog",
                            "integrity.orphans", "integrity.invariants",
                            "sequences.capacity", "sequences.behind",
                            "security.password_encryption", "workload.stuck_versions"}
    assert f'GRANT SELECT ON "public"."runs" TO "{user}"' in skipped["integrity.stuck_runs"]
    assert "GRANT SELECT ON SEQUENCE" in skipped["sequences.capacity"]
    for message in skipped.values():
        assert "pytest --mlflowdb-print-grants prints the recipe" in message


def test_readme_shows_the_recipe_print_grants_prints():
    """README's SQL is the recipe for schema public, owner mlflow, database mlflow."""
    import re
    from pathlib import Path

    from pytest_mlflowdb.probes.grants import Placement, recipe

    def statements(text: str) -> list[str]:
        text = re.sub(r"--[^\n]*", "", text)
        return [" ".join(s.split()) for s in text.split(";") if s.strip()]

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("```sql\nCREATE ROLE", 1)[1].split("```", 1)[0]
    expected = recipe("mlflowdb_auditor", Placement("public", APP_ROLE, "mlflow", True))
    assert statements("CREATE ROLE" + block) == statements(expected)


def test_a_schema_other_than_public_is_filled_in_and_reached(pytester, pg18, mlflow_uri):
    """MLflow's tables in schema tracking: the recipe grants on tracking and leads the
    auditor's sessions there, so no check is skipped for a privilege."""
    from helpers import sql

    sql(mlflow_uri, "ALTER SCHEMA public RENAME TO tracking", "CREATE SCHEMA public")
    ret, text = print_grants(pytester, f"--mlflowdb-uri={mlflow_uri}",
                             "--mlflowdb-print-grants=aud_tracking")
    assert ret == 0
    assert f"MLflow's tables in schema tracking, owned by {APP_ROLE}" in text
    assert 'SET search_path = "tracking";' in text
    run_recipe(pg18, mlflow_uri, text)
    try:
        _, checks = audit(pytester, role_uri(pg18, dbname_of(mlflow_uri), "aud_tracking",
                                             AUDITOR_PASSWORD))
    finally:
        drop_role(pg18, mlflow_uri, "aud_tracking")
    assert skipped_for_privilege(checks) == {}
    assert checks["schema.revision"]["outcome"] == "passed", checks["schema.revision"]
    assert checks["integrity.stuck_runs"]["outcome"] == "passed"
