"""What MLflow sees through an audit session: its schema and its alembic revision.

MLflow (through SQLAlchemy and alembic) uses unqualified names, so through a URI it sees
only the session's current schema: the first schema on the search_path that exists and
that the role may use. This probe finds the schema holding MLflow's tables, says whether
that is the one MLflow would use, and reads ``alembic_version`` there. It is read once per
session (:func:`mlflow_facts`), right after the server's preflight, by the session opener
(``TargetSessions.attempt``): a lock or a timeout on these reads is "connected, but reading the
catalog failed", not a failure to connect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from pytest_mlflowdb.db.database import Database
from pytest_mlflowdb.probes.grants import Placement, advice

CACHE_KEY = "mlflow"

_SEARCH_PATH_SQL = ("SELECT current_schema() AS current_schema, "
                    "current_setting('search_path') AS search_path")

# Schemas that hold MLflow's tables, the session's current schema first.
_MLFLOW_SCHEMA_SQL = """
SELECT n.nspname AS schema,
       bool_or(c.relname = 'alembic_version') AS has_alembic,
       count(*) FILTER (WHERE c.relname IN ('experiments', 'runs', 'metrics', 'params', 'tags'))
         AS core_tables,
       n.nspname = current_schema() AS is_current,
       has_schema_privilege(n.oid, 'USAGE') AS usable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND c.relname IN ('alembic_version', 'experiments', 'runs', 'metrics', 'params', 'tags')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
GROUP BY n.oid, n.nspname
ORDER BY n.nspname = current_schema() DESC,
         count(*) FILTER (WHERE c.relname IN ('experiments', 'runs', 'metrics', 'params', 'tags'))
           DESC,
         n.nspname
"""


@dataclass(frozen=True)
class MlflowFacts:
    """Where MLflow's tables are for this session, and what ``alembic_version`` holds."""

    #: the schema holding MLflow's tables that MLflow would use through this URI
    schema: str | None
    #: the single alembic revision, when ``alembic_version`` holds exactly one row
    revision: str | None
    #: rows of alembic_version in ``schema``; None when the table is missing or unreadable
    alembic_versions: tuple[str, ...] | None = None
    #: why alembic_version could not be read (a missing privilege, rows hidden by row
    #: level security), if so
    alembic_error: str | None = None
    #: the session's search_path and the first existing schema on it
    search_path: str = ""
    current_schema: str | None = None
    #: schemas holding MLflow's tables when the current schema does not (MLflow would
    #: not see them through this URI); empty when ``schema`` is set
    elsewhere: tuple[str, ...] = ()
    #: why this role cannot tell where MLflow's tables are (no USAGE on their schema)
    schema_error: str | None = None
    #: what the audit should mention about MLflow's schema (connectivity.privileges)
    notes: tuple[str, ...] = ()

    def off_search_path(self, current_user: str) -> str | None:
        """Why MLflow would not find its tables through this URI, with the fix; None if it
        would. Tables outside the current schema are invisible to MLflow: it would create
        a new, empty schema beside them."""
        if self.schema is not None or not self.elsewhere:
            return None
        schema = self.elsewhere[0]
        shown = ", ".join(self.elsewhere)
        current = self.current_schema or "none (no schema on it exists)"
        option = f"-csearch_path={schema}"
        return (f"MLflow's tables are in schema {shown}, which this URI's search_path "
                f"({self.search_path}) does not lead to (current schema: {current}): MLflow "
                "connecting with this URI would see no tables and create new, empty ones. "
                f"Point the URI at {schema}: add ?options={quote(option, safe='-_')} to it "
                f"(options='{option}' in a key=value string), or run "
                f"ALTER ROLE {current_user} SET search_path = {schema}")


def mlflow_facts(db: Database) -> MlflowFacts:
    """MLflow's schema and revision as this session sees them, read once per session.

    Raises :class:`~pytest_mlflowdb.db.errors.PreflightError` naming the read that failed
    (a lock on ``alembic_version``, a timeout).
    """
    return db.cached(CACHE_KEY, collect_mlflow_facts)


def _rows_hidden(db: Database, schema: str) -> bool:
    """Whether row level security filters alembic_version's rows for this session."""
    (found,) = db.read(f"{schema}.alembic_version's row level security",
                       "SELECT row_security_active(format('%%I.alembic_version', %s::text)) "
                       "AS on", (schema,))
    return bool(found["on"])


def _missing_grant(db: Database, schema: str, role: str) -> str:
    """Why alembic_version could not be read, with the GRANT that would let this role look."""
    (found,) = db.read(f"the privileges on schema {schema}",
                       "SELECT has_schema_privilege(%(s)s, 'USAGE') AS usage, "
                       "quote_ident(%(s)s) AS schema, quote_ident(%(r)s) AS role",
                       {"s": schema, "r": role})
    grant = f"GRANT SELECT ON {found['schema']}.alembic_version"
    if not found["usage"]:
        return (f"no USAGE privilege on schema {schema}, which holds MLflow's tables ("
                + advice(db, f"GRANT USAGE ON SCHEMA {found['schema']} TO {found['role']}; "
                         + grant) + ")")
    return f"no SELECT privilege on {schema}.alembic_version ({advice(db, grant)})"


def _alembic(db: Database, schema: str, user: str) -> dict[str, Any]:
    """alembic_version's rows in ``schema``: versions, revision, error and notes."""
    try:
        found = db.read(f"{schema}.alembic_version",
                        sql.SQL("SELECT version_num FROM {}.alembic_version").format(
                            sql.Identifier(schema)),
                        passthrough=(psycopg.errors.InsufficientPrivilege,))
    except psycopg.errors.InsufficientPrivilege:
        error = _missing_grant(db, schema, user)
        return {"alembic_error": error, "notes": [error]}
    versions = tuple(str(r["version_num"]) for r in found)
    if len(found) == 1:
        return {"alembic_versions": versions, "revision": versions[0], "notes": []}
    if not found and _rows_hidden(db, schema):
        error = (f"row level security on {schema}.alembic_version hides its rows from "
                 f"{user} (add a policy for it, or audit as the table's owner)")
        return {"alembic_error": error, "notes": [error]}
    return {"alembic_versions": versions,
            "notes": [f"{schema}.alembic_version holds {len(found)} rows"]}


def collect_mlflow_facts(db: Database) -> MlflowFacts:
    """Read MLflow's facts now (prefer :func:`mlflow_facts`, which reads them once)."""
    user = db.preflight.current_user
    (path,), found_in = db.read_many("the session's search_path and the catalog for "
                                     "MLflow's tables",
                                     [(_SEARCH_PATH_SQL, None), (_MLFLOW_SCHEMA_SQL, None)])
    current = [r for r in found_in if r["is_current"] and r["core_tables"]]
    elsewhere = tuple(r["schema"] for r in found_in if r["core_tables"] and not r["is_current"])
    notes: list[str] = []
    schema_error = None
    unusable = [r["schema"] for r in found_in
                if r["core_tables"] and not r["is_current"] and not r["usable"]]
    if unusable and not current:
        # A schema this role may not use drops out of its effective search_path: it may
        # well be where the URI leads MLflow's own role. A privilege to look, not a fault.
        schema_error = _missing_grant(db, unusable[0], user)
        notes.append(schema_error)
        elsewhere = ()
    schema = None
    alembic: dict[str, Any] = {}
    if current:
        schema = current[0]["schema"]
        if elsewhere:
            notes.append(f"MLflow tables also found in schema(s) {', '.join(elsewhere)}; "
                         f"auditing {schema}, the current schema MLflow would use")
            elsewhere = ()
        if current[0]["has_alembic"]:
            alembic = _alembic(db, schema, user)
            notes += alembic.pop("notes")
    return MlflowFacts(
        schema=schema,
        revision=alembic.get("revision"),
        alembic_versions=alembic.get("alembic_versions"),
        alembic_error=alembic.get("alembic_error"),
        search_path=path["search_path"],
        current_schema=path["current_schema"],
        elsewhere=elsewhere,
        schema_error=schema_error,
        notes=tuple(notes),
    )


_OWNER = """
SELECT pg_get_userbyid(c.relowner) AS owner
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
GROUP BY c.relowner ORDER BY count(*) DESC, 1 LIMIT 1
"""


def placement(db: Database) -> Placement:
    """MLflow's schema (the one this session audits, else the first holding its tables),
    the owner of most of its tables, and the database, as ``db`` sees them."""
    from pytest_mlflowdb.catalog import load_catalog

    facts = mlflow_facts(db)
    schema = facts.schema or next(iter(facts.elsewhere), None)
    if schema is None:
        return Placement(database=db.preflight.dbname)
    owner = db.value(_OWNER, {"schema": schema, "tables": sorted(load_catalog().mlflow_tables())})
    return Placement(schema, owner, db.preflight.dbname, found=True)
