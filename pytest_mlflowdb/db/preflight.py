"""The server facts a session gathers once, before any check runs: version, recovery
state, this role and its memberships, extensions and connection details."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database


@dataclass(frozen=True)
class Preflight:
    """Server facts gathered once per target, before any check runs."""

    server_version: str
    server_version_num: int
    in_recovery: bool
    current_user: str
    is_superuser: bool
    roles: tuple[str, ...]
    extensions: dict[str, str]
    host: str
    hostaddr: str
    port: int
    dbname: str
    ssl_in_use: bool
    connect_seconds: float
    #: the schema each extension's objects are in (a view read by name needs it)
    extension_schemas: dict[str, str] = field(default_factory=dict)

    @property
    def major(self) -> int:
        return self.server_version_num // 10000

    def can_read_all_stats(self) -> bool:
        return self.is_superuser or bool({"pg_monitor", "pg_read_all_stats"} & set(self.roles))


PREFLIGHT_SQL = """
SELECT current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       pg_is_in_recovery() AS in_recovery,
       current_user AS current_user,
       r.rolsuper AS is_superuser,
       ARRAY(SELECT b.rolname::text FROM pg_roles b
             WHERE b.rolname IN ('pg_monitor', 'pg_read_all_stats', 'pg_read_all_settings',
                                 'pg_stat_scan_tables', 'pg_read_all_data', 'pg_signal_backend')
               -- USAGE: the role's privileges are in force in this session; a NOINHERIT
               -- membership (MEMBER without USAGE) would need a SET ROLE the audit never runs
               AND pg_has_role(current_user, b.oid, 'USAGE')
             ORDER BY 1) AS roles,
       inet_server_port() AS port,
       current_database() AS dbname
FROM pg_roles r WHERE r.rolname = current_user
"""


def hostaddr(conn: psycopg.Connection) -> str:
    """The address actually connected to ('' for a Unix socket or an old libpq)."""
    try:
        return conn.info.hostaddr or ""
    except (psycopg.NotSupportedError, AttributeError):
        return ""


PREFLIGHT_WHAT = "the server version, this role's memberships and the extensions"
EXTENSIONS_SQL = ("SELECT e.extname, e.extversion, n.nspname AS schema FROM pg_extension e "
                  "JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY e.extname")


def collect_preflight(db: Database) -> Preflight:
    (facts,), found = db.read_many(PREFLIGHT_WHAT, [(PREFLIGHT_SQL, None),
                                                     (EXTENSIONS_SQL, None)])
    return preflight_from(db, facts, found)


def preflight_from(db: Database, facts: dict[str, Any], found: list[dict[str, Any]]) -> Preflight:
    extensions = {r["extname"]: r["extversion"] for r in found}
    pgconn = db.connection.pgconn
    return Preflight(
        server_version=facts["server_version"],
        server_version_num=facts["server_version_num"],
        in_recovery=facts["in_recovery"],
        current_user=facts["current_user"],
        is_superuser=bool(facts["is_superuser"]),
        roles=tuple(facts["roles"] or ()),
        extensions=extensions,
        host=db.connection.info.host,
        hostaddr=hostaddr(db.connection),
        port=facts["port"] or db.connection.info.port,
        dbname=facts["dbname"],
        ssl_in_use=bool(pgconn.ssl_in_use),
        connect_seconds=db.connect_seconds,
        extension_schemas={r["extname"]: r["schema"] for r in found},
    )
