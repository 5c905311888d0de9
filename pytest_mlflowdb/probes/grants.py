"""Least privilege: the one recipe for a dedicated read-only auditor role, and the advice a
check gives when the audit's role lacks a privilege.

An audit needs no more than :func:`recipe` grants (``pytest --mlflowdb-print-grants``
prints it with MLflow's schema and the owner of its tables filled in). When a check lacks
a privilege, :func:`advice` never tells MLflow's own role (the owner of its tables, a
member of that owner, or any role that may write them) to take more: it points at the
dedicated auditor role instead. Only a role that is already a dedicated one of its own is
told the GRANT, by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_mlflowdb.results.findings import sql_name

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database

#: the auditor role's name when ``--mlflowdb-print-grants`` is given bare
AUDITOR = "mlflowdb_auditor"
#: the schema of the one function that tells MD5 passwords apart without showing a hash
AUDIT_SCHEMA = "mlflowdb_audit"
#: that function (``security.password_encryption`` calls it when pg_authid is hidden)
PASSWORD_FUNCTION = "password_storage"
#: what every privilege skip and remedy points at
PRINT_GRANTS = "pytest --mlflowdb-print-grants prints the recipe"


@dataclass(frozen=True)
class Placement:
    """Where MLflow's tables are: schema, owner, database; ``found`` False when assumed."""

    schema: str = "public"
    owner: str | None = None
    database: str | None = None
    found: bool = False


def recipe(role: str = AUDITOR, place: Placement = Placement()) -> str:
    """The SQL (a psql script: the password is the psql variable ``auditor_password``,
    never written here) that makes ``role`` a dedicated read-only auditor with which every
    default check runs: pg_monitor, CONNECT, USAGE and SELECT on MLflow's schema, its
    tables and sequences (also those later migrations make), read-only by default, and
    MD5 detection through one SECURITY DEFINER function that shows no hash."""
    r, s = sql_name(role), sql_name(place.schema)
    owner = sql_name(place.owner) if place.owner else ':"mlflow_owner"'
    database = sql_name(place.database) if place.database else ':"DBNAME"'
    fn = f"{sql_name(AUDIT_SCHEMA)}.{sql_name(PASSWORD_FUNCTION)}(name[])"
    run_in = place.database or "<MLflow's database>"
    owner_var = "" if place.owner else " -v mlflow_owner=<owner of MLflow's tables>"
    lines = [
        f"-- pytest-mlflowdb: a dedicated read-only auditor role {role}. Run it once as a",
        "-- superuser, in MLflow's database, with psql (the password comes from the shell):",
        f'--   psql -v ON_ERROR_STOP=1 -v auditor_password="$AUDITOR_PASSWORD"{owner_var} \\',
        f"--        -d {run_in} -f auditor.sql",
        f"-- then audit as {role}, never as MLflow's own role.",
        f"CREATE ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
        "  PASSWORD :'auditor_password';",
        f"ALTER ROLE {r} SET default_transaction_read_only = on;",
        "-- statistics, settings and other sessions (pg_read_all_stats, pg_read_all_settings,",
        "-- pg_stat_scan_tables): activity.*, security.ssl, security.logging, indexes.unused",
        f"GRANT pg_monitor TO {r};",
        f"GRANT CONNECT ON DATABASE {database} TO {r};",
        "-- MLflow's schema, read only: schema.revision (alembic_version), integrity.*,",
        "-- sequences.*, bloat.* (column statistics); SELECT writes nothing, on a sequence",
        "-- it allows no nextval()",
        f"GRANT USAGE ON SCHEMA {s} TO {r};",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r};",
        f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r};",
        "-- tables and sequences MLflow's later migrations make (they run as the owner)",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s}",
        f"  GRANT SELECT ON TABLES TO {r};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s}",
        f"  GRANT SELECT ON SEQUENCES TO {r};",
    ]
    if place.schema != "public":
        lines += ["-- MLflow's tables are not in public: lead the auditor's sessions there",
                  f"ALTER ROLE {r} IN DATABASE {database} SET search_path = {s};"]
    lines += [
        "-- security.password_encryption: whether MLflow's role has an MD5 password, without",
        "-- reading pg_authid (superuser only) nor seeing any hash",
        f"CREATE SCHEMA {sql_name(AUDIT_SCHEMA)};",
        f"CREATE FUNCTION {fn.replace('(name[])', '(roles name[])')}",
        "  RETURNS TABLE (role_name name, md5 boolean, no_password boolean)",
        "  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog",
        "  AS $$ SELECT rolname, coalesce(starts_with(rolpassword, 'md5'), false),",
        "              rolpassword IS NULL FROM pg_authid WHERE rolname = ANY(roles) $$;",
        f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC;",
        f"GRANT USAGE ON SCHEMA {sql_name(AUDIT_SCHEMA)} TO {r};",
        f"GRANT EXECUTE ON FUNCTION {fn} TO {r};",
    ]
    return "\n".join(lines) + "\n"




_MLFLOW_ROLE = """
SELECT coalesce(bool_or(pg_has_role(current_user, c.relowner, 'MEMBER')), false) AS owner,
       coalesce(bool_or(has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')),
                false) AS writer
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


def is_mlflow_role(db: Database) -> bool:
    """Whether this session's role is MLflow's own: it owns (or is a member of the owner
    of) MLflow's tables, or may write them. Such a role must never be granted more."""
    from pytest_mlflowdb.catalog import load_catalog

    def collect(d: Database) -> bool:
        found = d.row(_MLFLOW_ROLE, {"tables": sorted(load_catalog().mlflow_tables())}) or {}
        return bool(found.get("owner") or found.get("writer"))

    return db.cached("grants:mlflow_role", collect)


def advice(db: Database, grant: str) -> str:
    """How the audit gets a privilege it lacked. ``grant`` is the statement without its
    grantee (``GRANT pg_monitor``). MLflow's own role is told to audit as a dedicated
    read-only role instead; a dedicated role of its own gets the GRANT, by name."""
    user = db.preflight.current_user
    if is_mlflow_role(db):
        return (f"role {user} is MLflow's own (it owns or writes MLflow's tables): do not "
                f"grant it more, audit as a dedicated read-only role ({PRINT_GRANTS})")
    return f"{grant} TO {sql_name(user)}; all an auditor needs: {PRINT_GRANTS}"


def remedy(db: Database, grant: str) -> str:
    """A finding's remedy for a privilege this audit lacks: the GRANT (a statement to run)
    to a dedicated role of its own; for MLflow's own role, :func:`advice`'s sentence."""
    if is_mlflow_role(db):
        return advice(db, grant)
    return f"{grant} TO {sql_name(db.preflight.current_user)};"
