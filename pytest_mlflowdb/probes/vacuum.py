"""Vacuum and freezing state from the statistics views and the catalog only.

``pg_stat_all_tables`` (dead and modified rows, last (auto)vacuum and (auto)analyze),
``pg_class`` (``reltuples``, per-table ``reloptions``, ``relfrozenxid``/``relminmxid`` of
the table and its TOAST table), ``pg_database`` (``datfrozenxid``/``datminmxid``) and the
server's autovacuum settings. None of these needs a privilege beyond connecting, none
takes a relation lock, and the cost does not grow with the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pytest_mlflowdb.db.database import Database

#: transaction and multixact IDs wrap around at 2^31: PostgreSQL refuses to assign new
#: ones (and so to write) about 3 million before that
ID_LIMIT = 2**31
STOP_MARGIN = 3_000_000

_SERVER = """
SELECT current_setting('autovacuum') AS autovacuum,
       current_setting('track_counts') AS track_counts,
       (SELECT source FROM pg_settings WHERE name = 'track_counts') AS track_counts_source,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::bigint AS mxid_freeze_max_age,
       current_setting('autovacuum_vacuum_threshold')::bigint AS vacuum_threshold,
       current_setting('autovacuum_vacuum_scale_factor')::float8 AS vacuum_scale_factor,
       current_setting('autovacuum_analyze_threshold')::bigint AS analyze_threshold,
       current_setting('autovacuum_analyze_scale_factor')::float8 AS analyze_scale_factor,
       extract(epoch FROM now() - coalesce(
           (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
           pg_postmaster_start_time()))::float8 AS stats_age,
       (SELECT setting FROM pg_settings WHERE name = 'autovacuum_naptime')::float8 AS naptime,
       extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime,
       extract(epoch FROM now() - (SELECT stats_reset FROM pg_stat_database
                                   WHERE datname = current_database()))::float8 AS since_reset
"""

_DATABASES = """
SELECT datname AS name, age(datfrozenxid)::bigint AS xid_age,
       mxid_age(datminmxid)::bigint AS mxid_age, datname = current_database() AS current
FROM pg_database ORDER BY age(datfrozenxid) DESC, datname
"""

_TABLES = """
SELECT c.relname AS name, c.relkind AS kind, c.reltuples::float8 AS reltuples, c.relpages,
       coalesce(c.reloptions, '{}') AS options, coalesce(t.reloptions, '{}') AS toast_options,
       CASE WHEN c.relkind IN ('r', 'm') THEN greatest(age(c.relfrozenxid),
            CASE WHEN t.oid IS NOT NULL THEN age(t.relfrozenxid) END) END::bigint AS xid_age,
       CASE WHEN c.relkind IN ('r', 'm') THEN greatest(mxid_age(c.relminmxid),
            CASE WHEN t.oid IS NOT NULL THEN mxid_age(t.relminmxid) END) END::bigint
         AS mxid_age,
       coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead,
       coalesce(s.n_mod_since_analyze, 0) AS modified,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8
         AS since_vacuum,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8
         AS since_analyze
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
ORDER BY c.relname
"""

_FALSE = ("false", "off", "no", "0", "f", "n")


def _options(items: Iterable[str]) -> dict[str, str]:
    """``reloptions`` (``name=value`` strings) as a dict."""
    found = {}
    for item in items:
        name, _, value = item.partition("=")
        found[name.strip().lower()] = value.strip()
    return found


@dataclass(frozen=True)
class Server:
    """The server's autovacuum settings and the age of the database's statistics."""

    autovacuum: bool
    track_counts: bool
    freeze_max_age: int
    mxid_freeze_max_age: int
    vacuum_threshold: int
    vacuum_scale_factor: float
    analyze_threshold: int
    analyze_scale_factor: float
    #: seconds since the statistics began (their reset, or the server's start)
    stats_age: float
    #: where this session's track_counts comes from (pg_settings.source: "database",
    #: "user", "configuration file", "default"...)
    track_counts_source: str = "default"
    #: ``autovacuum_naptime`` in seconds: autovacuum visits each database once per naptime
    naptime: float = 60.0
    #: seconds since the server started
    uptime: float | None = None
    #: seconds since this database's statistics were reset (None: never; PostgreSQL 15+
    #: leaves it empty for a new database, 14 and older set it when the database is made)
    since_reset: float | None = None

    @property
    def autovacuum_time(self) -> float | None:
        """At most how long autovacuum has had to act on the changes counted now: since the
        server started (it acts from then on) or the counts were reset (they begin then)."""
        spans = [s for s in (self.uptime, self.since_reset) if s is not None]
        return min(spans) if spans else None


@dataclass(frozen=True)
class DatabaseAge:
    """``age(datfrozenxid)`` and ``mxid_age(datminmxid)`` of one database of the server."""

    name: str
    xid_age: int
    mxid_age: int
    current: bool


@dataclass(frozen=True)
class TableVacuum:
    """One table's vacuum, analyze and freeze state (statistics and catalog)."""

    name: str
    kind: str  # "r" or "p" (a partitioned parent: its partitions hold the rows)
    #: ``reltuples``; None when never vacuumed nor analysed (PostgreSQL 14+ says -1)
    reltuples: float | None
    options: dict[str, str] = field(default_factory=dict)
    toast_options: dict[str, str] = field(default_factory=dict)
    #: the older of the table's and its TOAST table's; None for a partitioned parent
    xid_age: int | None = None
    mxid_age: int | None = None
    live: int = 0
    dead: int = 0
    modified: int = 0  # n_mod_since_analyze
    since_vacuum: float | None = None  # seconds since the last (auto)vacuum, None: never
    since_analyze: float | None = None  # seconds since the last (auto)analyze, None: never
    #: ``relpages``: the heap's pages at the last vacuum or analyze (0 before either)
    relpages: int = 0

    @property
    def autovacuum_off(self) -> list[str]:
        """The reloptions that switch autovacuum off on the table or its TOAST table."""
        off = []
        if self.options.get("autovacuum_enabled", "true").lower() in _FALSE:
            off.append(f"autovacuum_enabled={self.options['autovacuum_enabled']}")
        if self.toast_options.get("autovacuum_enabled", "true").lower() in _FALSE:
            off.append(f"toast.autovacuum_enabled={self.toast_options['autovacuum_enabled']}")
        return off

    @property
    def autoanalyze_off(self) -> bool:
        """Autovacuum switched off on the table itself (its TOAST table is never analysed)."""
        return self.options.get("autovacuum_enabled", "true").lower() in _FALSE

    def setting(self, name: str, server_value: float) -> float:
        """A per-table autovacuum parameter (``reloptions``), else the server's value."""
        value = self.options.get(name)
        try:
            return float(value) if value is not None else server_value
        except ValueError:
            return server_value

    def freeze_max_age(self, server_value: int, multixact: bool = False) -> int:
        """The table's anti-wraparound trigger: a per-table value only lowers the server's
        (PostgreSQL ignores a larger one)."""
        name = "autovacuum_multixact_freeze_max_age" if multixact else \
            "autovacuum_freeze_max_age"
        values = [server_value]
        for options in (self.options, self.toast_options):
            try:
                values.append(int(options[name]))
            except (KeyError, ValueError):
                pass
        return min(values)


def server_state(db: Database) -> Server:
    """The server's autovacuum settings (cached per session)."""
    def collect(d: Database) -> Server:
        r = d.row(_SERVER) or {}
        return Server(r["autovacuum"] == "on", r["track_counts"] == "on",
                      int(r["freeze_max_age"]), int(r["mxid_freeze_max_age"]),
                      int(r["vacuum_threshold"]), float(r["vacuum_scale_factor"]),
                      int(r["analyze_threshold"]), float(r["analyze_scale_factor"]),
                      float(r["stats_age"] or 0), str(r["track_counts_source"]),
                      float(r["naptime"]), r["uptime"], r["since_reset"])
    return db.cached("vacuum:server", collect)


def database_ages(db: Database) -> list[DatabaseAge]:
    """Every database of the server, oldest ``datfrozenxid`` first: wraparound stops the
    whole server, whichever database reaches it."""
    return db.cached("vacuum:databases", lambda d: [
        DatabaseAge(r["name"], int(r["xid_age"]), int(r["mxid_age"]), bool(r["current"]))
        for r in d.rows(_DATABASES)])


def table_vacuum(db: Database, schema: str, tables: Iterable[str]) -> list[TableVacuum]:
    """The ``tables`` of ``schema`` that exist, by name (cached per session)."""
    names = sorted(set(tables))

    def collect(d: Database) -> list[TableVacuum]:
        return [TableVacuum(
            r["name"], r["kind"], r["reltuples"] if r["reltuples"] >= 0 else None,
            _options(r["options"]), _options(r["toast_options"]),
            None if r["xid_age"] is None else int(r["xid_age"]),
            None if r["mxid_age"] is None else int(r["mxid_age"]),
            int(r["live"]), int(r["dead"]), int(r["modified"]), r["since_vacuum"],
            r["since_analyze"], int(r["relpages"]))
            for r in d.rows(_TABLES, {"schema": schema, "tables": names})]
    return db.cached(f"vacuum:tables:{schema}:{','.join(names)}", collect)
