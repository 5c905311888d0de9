"""Server settings that matter for MLflow's pattern, each with its value and its source,
the settings of MLflow's roles (``pg_db_role_setting``), and the autovacuum triggers of
MLflow's busiest tables.

``pg_settings``, ``pg_db_role_setting``, ``pg_class`` and ``pg_stat_database`` are
readable by every role; a setting hidden from this role (superuser-only ones, without
``pg_read_all_settings``) has no row and is reported as hidden, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database

#: the server-wide settings the review reads
REVIEWED = ("idle_in_transaction_session_timeout", "statement_timeout", "work_mem",
            "random_page_cost", "effective_io_concurrency", "shared_preload_libraries",
            "track_io_timing", "log_min_duration_statement", "log_lock_waits",
            "log_autovacuum_min_duration", "log_temp_files", "shared_buffers",
            "effective_cache_size", "maintenance_work_mem", "autovacuum",
            "autovacuum_vacuum_threshold", "autovacuum_vacuum_scale_factor",
            "autovacuum_vacuum_insert_threshold", "autovacuum_vacuum_insert_scale_factor",
            "autovacuum_vacuum_max_threshold")  # the last from PostgreSQL 18
#: the timeouts judged for MLflow's roles
ROLE_TIMEOUTS = ("idle_in_transaction_session_timeout", "statement_timeout")
#: MLflow's tables whose autovacuum triggers are judged against their size
BUSY_TABLES = ("metrics", "latest_metrics", "params", "tags")

# sources a session's own SET or its login role and database put on a value: the audit's
# transaction-local settings and its own role's settings are not the server's
_SESSION_SOURCES = ("session", "client", "user", "database", "database user")

_SETTINGS = """
SELECT name, setting, unit, source, boot_val, reset_val, pending_restart, context
FROM pg_settings WHERE name = ANY(%(names)s) OR pending_restart ORDER BY name
"""

_ROLE_SETTINGS = """
SELECT coalesce(r.rolname, '') AS role, coalesce(d.datname, '') AS database,
       s.setconfig AS config
FROM pg_db_role_setting s
LEFT JOIN pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_database d ON d.oid = s.setdatabase
WHERE (s.setrole = 0 OR r.rolname = ANY(%(roles)s))
  AND (s.setdatabase = 0 OR d.datname = current_database())
"""

_TABLES = """
SELECT c.relname AS name, greatest(c.reltuples, 0)::float8 AS rows,
       coalesce(c.reloptions, '{}') AS options
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""


@dataclass(frozen=True)
class Setting:
    """One row of ``pg_settings`` as this role sees it."""

    name: str
    setting: str
    unit: str | None
    source: str
    boot_val: str | None
    reset_val: str | None
    pending_restart: bool
    context: str

    @property
    def server_value(self) -> str:
        """The server's own value: the audit's session and its role do not count."""
        if self.source in _SESSION_SOURCES:
            return self.reset_val if self.source in ("session", "client") and \
                self.reset_val is not None else (self.boot_val or self.setting)
        return self.setting

    @property
    def server_source(self) -> str:
        """Where the server's value comes from, in ``pg_settings``' words."""
        if self.source in _SESSION_SOURCES:
            return "server (its source hidden by this session's settings)"
        return self.source

    @property
    def is_default(self) -> bool:
        return self.source == "default"


@dataclass(frozen=True)
class RoleSetting:
    """A value set with ``ALTER ROLE ... SET`` or ``ALTER DATABASE ... SET``."""

    role: str  # '' for every role (ALTER DATABASE)
    database: str  # '' for every database (ALTER ROLE without IN DATABASE)
    value: str

    @property
    def source(self) -> str:
        if self.role and self.database:
            return f"ALTER ROLE {self.role} IN DATABASE {self.database} SET"
        if self.role:
            return f"ALTER ROLE {self.role} SET"
        return f"ALTER DATABASE {self.database} SET"


@dataclass(frozen=True)
class TableTrigger:
    """A busy table's row estimate and its per-table autovacuum settings."""

    name: str
    rows: float
    options: dict[str, str]


@dataclass(frozen=True)
class ServerSettings:
    """What the review reads in one flight."""

    settings: dict[str, Setting]
    #: name -> the values set for MLflow's roles or this database, most specific first
    role_settings: dict[str, tuple[RoleSetting, ...]]
    tables: tuple[TableTrigger, ...]

    def effective_for(self, role: str, name: str) -> tuple[str | None, str]:
        """The value ``role``'s sessions in this database get, and where it comes from."""
        def rank(s: RoleSetting) -> int:
            return (0 if s.role and s.database else 1 if s.role else 2)

        mine = [s for s in self.role_settings.get(name, ())
                if s.role in ("", role)]
        if mine:
            best = min(mine, key=rank)
            return best.value, best.source
        found = self.settings.get(name)
        if found is None:
            return None, "hidden from this role"
        return found.server_value, found.server_source


def _split(config: list[str] | None) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in config or ())
    return {k: v for k, v in (p for p in pairs if len(p) == 2)}


def server_settings(db: Database, schema: str, roles: tuple[str, ...]) -> ServerSettings:
    """The reviewed settings, those set for ``roles`` or this database, and the busy
    tables of ``schema`` (cached)."""
    return db.cached(f"settings:{schema}:{','.join(roles)}",
                     lambda d: _collect(d, schema, roles))


def _collect(db: Database, schema: str, roles: tuple[str, ...]) -> ServerSettings:
    rows, role_rows, tables = db.rows_many([
        (_SETTINGS, {"names": list(REVIEWED)}), (_ROLE_SETTINGS, {"roles": list(roles)}),
        (_TABLES, {"schema": schema, "tables": list(BUSY_TABLES)})])
    settings = {r["name"]: Setting(r["name"], r["setting"], r["unit"], r["source"],
                                   r["boot_val"], r["reset_val"], bool(r["pending_restart"]),
                                   r["context"]) for r in rows}
    by_name: dict[str, list[RoleSetting]] = {}
    for r in role_rows:
        for name, value in _split(r["config"]).items():
            by_name.setdefault(name, []).append(RoleSetting(r["role"], r["database"], value))
    return ServerSettings(
        settings, {k: tuple(v) for k, v in by_name.items()},
        tuple(TableTrigger(t["name"], float(t["rows"]), _split(t["options"]))
              for t in tables))
