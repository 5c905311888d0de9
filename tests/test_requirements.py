"""Checks that cannot answer are skipped with the reason, never passed."""

from __future__ import annotations

from helpers import checks_by_id, dbname_of, report, role_uri

TEAM_CHECKS = """
from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import (require_extension, require_mlflow_schema,
                                                require_role)


@check("team.needs_stats")
def test_needs_stats(mlflowdb, mlflowdb_findings):
    require_role(mlflowdb, "pg_monitor", "pg_read_all_stats")
    mlflowdb_findings.ok("server", "saw every session")


@check("team.needs_pgstattuple")
def test_needs_pgstattuple(mlflowdb, mlflowdb_findings):
    require_extension(mlflowdb, "pgstattuple")
    mlflowdb_findings.ok("server", "measured")


@check("team.needs_mlflow")
def test_needs_mlflow(mlflowdb, mlflowdb_findings):
    schema = require_mlflow_schema(mlflowdb)
    mlflowdb_findings.ok(schema, "found")
"""


def _run(pytester, uri):
    pytester.makepyfile(test_team=TEAM_CHECKS)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={uri}", "--mlflowdb-no-builtin",
                                f"--mlflowdb-report={json_path}")
    return result, checks_by_id(report(json_path))


def test_plain_role_skips_with_reasons(pytester, pg18, pg15, mlflow_uri, mlflow_role):
    user, password = mlflow_role
    result, checks = _run(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password))
    assert result.ret == 0
    stats = checks["team.needs_stats"]
    assert stats["outcome"] == "skipped"
    assert stats["message"] == ("no privilege: needs pg_monitor or pg_read_all_stats; role "
                                f"{user} has no monitoring role (GRANT pg_monitor TO "
                                f'"{user}"; all an auditor needs: pytest '
                                "--mlflowdb-print-grants prints the recipe)")
    extension = checks["team.needs_pgstattuple"]
    assert extension["outcome"] == "skipped"
    assert extension["message"].startswith("extension missing: pgstattuple")
    assert checks["team.needs_mlflow"]["outcome"] == "passed"


def test_superuser_on_an_empty_database(pytester, pg15):
    result, checks = _run(pytester, pg15.uri())
    assert checks["team.needs_stats"]["outcome"] == "passed"
    mlflow = checks["team.needs_mlflow"]
    assert mlflow["outcome"] == "skipped" and mlflow["message"].startswith("no MLflow schema")
    assert result.ret == 0


def test_a_membership_without_its_privileges_is_not_a_privilege(pytester, pg18, mlflow_uri):
    """A NOINHERIT member of pg_monitor may SET ROLE to it, but the audit does not: its
    session has none of pg_monitor's privileges, so a check that needs them must skip."""
    from psycopg import sql as pgsql

    user, password = "noinherit_monitor", "N0inherit pw"
    with pg18.admin() as conn:
        conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(user)))
        conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN NOINHERIT PASSWORD {} IN ROLE pg_monitor")
                     .format(pgsql.Identifier(user), pgsql.Literal(password)))
    try:
        _, checks = _run(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password))
    finally:
        with pg18.admin() as conn:
            conn.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(user)))
    stats = checks["team.needs_stats"]
    assert stats["outcome"] == "skipped", stats
    assert stats["message"].startswith("no privilege: needs pg_monitor or pg_read_all_stats")
