"""Vacuum: dead rows, statistics freshness, autovacuum switched off, and wraparound.

Everything comes from the statistics views and the catalog (``pg_stat_all_tables``,
``pg_class``, ``pg_database``, settings): no page is read, no lock is waited for beyond
the heap sizes the size area measures, and the cost does not grow with the rows. The
thresholds avoid the known false alarms: no dead-row alarm on small tables, no "never
analysed" alarm on empty tables (a fresh MLflow database has dozens) nor before autovacuum has
had a few rounds since the server started or the statistics were reset, and no wraparound
alarm at 100% of ``autovacuum_freeze_max_age`` (autovacuum's normal trigger): only far
beyond it, or near the 2^31 limit where PostgreSQL stops writing.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import ThresholdValues, format_value
from pytest_mlflowdb.probes.size import table_sizes
from pytest_mlflowdb.probes.vacuum import (
    ID_LIMIT,
    STOP_MARGIN,
    Server,
    TableVacuum,
    database_ages,
    server_state,
    table_vacuum,
)
from pytest_mlflowdb.results.findings import Findings, sql_name

PAGE = 8192
_XID = "xid", "transaction ID", "autovacuum_freeze_max_age"
_MXID = "multixact", "multixact ID", "autovacuum_multixact_freeze_max_age"


def _tables(mlflowdb) -> tuple[str, list[TableVacuum]]:
    schema = require_mlflow_schema(mlflowdb)
    return schema, table_vacuum(mlflowdb, schema, load_catalog().mlflow_tables())


def _heaps(mlflowdb, schema: str) -> dict[str, int]:
    """The measured heap of each MLflow table (a table another session locks is left out)."""
    return {s.name: s.heap for s in table_sizes(mlflowdb, schema, load_catalog().mlflow_tables())
            if s.error is None}


def _counted(db) -> None:
    """The tables' counters, the server's settings and the tables' heaps."""
    schema, _ = _tables(db)
    server_state(db)
    _heaps(db, schema)


def _settings(db) -> None:
    _tables(db)
    server_state(db)


def _ages(db) -> None:
    _settings(db)
    database_ages(db)


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{format_value('duration', seconds)} ago"


_REPLICA = "on a replica: the primary's writes are not counted here (no {}); audit the primary"
_REPLICA_SETTINGS = ("on a replica: autovacuum runs on the primary, whose settings are not "
                     "visible here")


def _require_counts(mlflowdb, what: str) -> None:
    if mlflowdb.preflight.in_recovery:
        pytest.skip(_REPLICA.format(what))
    if not server_state(mlflowdb).track_counts:
        pytest.skip(f"track_counts is off: PostgreSQL keeps no {what} (see "
                    "vacuum.autovacuum_disabled)")


def _stats_note(mlflowdb) -> str:
    return f"statistics kept for {format_value('duration', server_state(mlflowdb).stats_age)}"


@check("vacuum.dead_tuples", thresholds=("dead_tuples_warn", "dead_tuples_fail",
                                         "dead_tuples_min_size"), probes=(_counted,))
def test_dead_tuples(mlflowdb, mlflowdb_findings: Findings,
                     mlflowdb_thresholds: ThresholdValues):
    """Dead rows' share of each MLflow table, judged only from dead_tuples_min_size of heap.

    Many dead rows mean autovacuum is behind, switched off, or held back by an old
    transaction, prepared transaction or replication slot (see activity.*)."""
    schema, tables = _tables(mlflowdb)
    _require_counts(mlflowdb, "dead-row counts")
    server = server_state(mlflowdb)
    t = mlflowdb_thresholds
    warn, fail, min_size = t["dead_tuples_warn"], t["dead_tuples_fail"], \
        t["dead_tuples_min_size"]
    heaps = _heaps(mlflowdb, schema)
    small, not_due, blind, flagged, worst = [], [], [], 0, None
    for table in tables:
        total = table.live + table.dead
        if table.kind != "r":
            continue
        if _uncounted(table, heaps.get(table.name)):
            size = heaps.get(table.name) or table.relpages * PAGE
            if size >= min_size:  # below it, not judged even when counted
                blind.append(f"{schema}.{table.name} ({format_value('size', size)})")
            continue
        if not total:
            continue
        pct = round(100.0 * table.dead / total, 1)
        obj = f"{schema}.{table.name}"
        if worst is None or pct > worst[1]:
            worst = (obj, pct)
        if pct < warn:
            continue
        heap, measured = heaps.get(table.name), ""
        if heap is None:  # locked by another session: the heap at its last vacuum/analyze
            heap, measured = table.relpages * PAGE, " (relpages: the table could not be measured)"
        if heap < min_size:
            small.append(obj)
            continue
        trigger = round(table.setting("autovacuum_vacuum_threshold", server.vacuum_threshold)
                        + table.setting("autovacuum_vacuum_scale_factor",
                                        server.vacuum_scale_factor) * (table.reltuples or 0))
        if table.dead < trigger and server.autovacuum and not table.autovacuum_off:
            not_due.append(f"{obj} (from {trigger})")  # as its owner tuned it: not behind
            continue
        limit = fail if pct >= fail else warn
        flagged += 1
        add = mlflowdb_findings.fail if pct >= fail else mlflowdb_findings.warn
        off = f"; autovacuum is off on it ({', '.join(table.autovacuum_off)})" \
            if table.autovacuum_off else ""
        add(obj, f"{table.dead} dead rows of {total} ({format_value('percent', pct)}), heap "
            f"{format_value('size', heap)}{measured}, at or above "
            f"dead_tuples_{'fail' if pct >= fail else 'warn'} {format_value('percent', limit)};"
            f" autovacuum vacuums it from {trigger} dead rows, last vacuum "
            f"{_ago(table.since_vacuum)}{off}", pct, format_value("percent", limit),
            remedy=f"VACUUM (VERBOSE, ANALYZE) {sql_name(schema, table.name)}; (if dead rows "
                   "remain, end what holds the xmin horizon back: see activity.*)")
    tail = (f"; {len(small)} table(s) at or above {format_value('percent', warn)} not judged, "
            f"under dead_tuples_min_size {format_value('size', min_size)} of heap: "
            f"{', '.join(small[:5])}" if small else "")
    tail += (f"; {len(not_due)} table(s) at or above {format_value('percent', warn)} not "
             f"judged, under their own autovacuum trigger (dead rows): {', '.join(not_due[:5])}"
             if not_due else "")
    if blind and not flagged:  # a check never passes when it could not look
        pytest.skip(_blind_reason(mlflowdb, blind))
    for obj in blind:
        mlflowdb_findings.info(obj, _blind_reason(mlflowdb, [obj]), None, None)
    if worst is None:
        mlflowdb_findings.ok(schema, f"no live or dead rows counted in MLflow's tables "
                             f"({_stats_note(mlflowdb)})", 0, format_value("percent", warn))
    else:
        mlflowdb_findings.ok(schema, f"highest dead-row share {format_value('percent', worst[1])}"
                             f" ({worst[0]}){tail} ({_stats_note(mlflowdb)})", worst[1],
                             format_value("percent", warn))


def _uncounted(table: TableVacuum, heap: float | None) -> bool:
    """Whether the table's row counters cannot be believed: no vacuum or analyse has
    measured it since they began (a pg_stat_reset(), or a crash restart, empties them),
    and its heap holds far more pages than the rows they count could fill (one page per
    twenty rows, and one more). Such a table's "0 dead rows" or "empty" says nothing."""
    if table.since_vacuum is not None or table.since_analyze is not None:
        return False
    pages = (heap if heap is not None else table.relpages * PAGE) / PAGE
    return pages > 1 + (table.live + table.dead) / 20


def _blind_reason(mlflowdb, blind: list[str]) -> str:
    shown = ", ".join(blind[:5]) + (f" and {len(blind) - 5} more" if len(blind) > 5 else "")
    return (f"could not look: the row counters of {shown} began after the rows were "
            f"written ({_stats_note(mlflowdb)}: a statistics reset or a crash restart "
            "empties them) and no vacuum or analyse has measured the table since; they "
            "count only later changes (the next autovacuum, or ANALYZE, measures it)")


def _never_analysed(table: TableVacuum) -> bool:
    """No (auto)analyze on record and no row count (-1, or 0 before PostgreSQL 14): a
    statistics reset clears the first, not the second."""
    return table.since_analyze is None and not table.reltuples


def _not_yet_reached(server: Server, table: TableVacuum, naptimes: float,
                     unvisited: bool = False) -> str | None:
    """Why autovacuum cannot have analysed ``table`` yet, or None when it has had time.

    Autovacuum visits each database once per autovacuum_naptime and analyses every table
    past its threshold. The statistics keep no time of a table's first change, but
    autovacuum can only have acted on the changes counted now since the server started or
    the counts were reset: when that is less than ``naptimes`` rounds (at least a minute)
    and autovacuum is on for the table, its missing analyse is not neglect yet (a database
    loaded a minute ago, before autovacuum's first round). On a server up for longer,
    ``unvisited`` (no MLflow table bears any vacuum or analyse time: a database just
    created and loaded, or restored) says the same: autovacuum analyses a table past its
    threshold on its first visit. A table autovacuum leaves alone gets no grace, nor does
    any table with stale_stats_naptimes 0."""
    span = server.autovacuum_time
    window = max(60.0, naptimes * server.naptime) if naptimes > 0 else 0.0
    if not server.autovacuum or table.autoanalyze_off or naptimes <= 0:
        return None
    if (span is None or span >= window) and unvisited:
        return (f"autovacuum has not yet visited this database: no MLflow table bears a "
                f"vacuum or analyse time (loaded or restored since its last round; "
                f"autovacuum_naptime {format_value('duration', server.naptime)})")
    if span is None or span >= window:
        return None
    began = ("the statistics were reset" if server.since_reset is not None
             and span == server.since_reset else "the server started")
    return (f"autovacuum has not yet had time: the changes are at most "
            f"{format_value('duration', span)} old ({began} {_ago(span)}), autovacuum_naptime "
            f"{format_value('duration', server.naptime)}, given "
            f"{format_value('duration', window)} (stale_stats_naptimes "
            f"{format_value('number', naptimes)})")


@check("vacuum.stale_stats", thresholds=("stale_stats_age", "stale_stats_changed",
                                         "stale_stats_naptimes"), probes=(_counted,))
def test_stale_stats(mlflowdb, mlflowdb_findings: Findings,
                     mlflowdb_thresholds: ThresholdValues):
    """Statistics of MLflow tables: stale after many changes, or missing where rows are.

    Stale: analysed longer ago than stale_stats_age, with stale_stats_changed of the rows
    changed since. Missing: never analysed, with more live rows than the table's autoanalyze
    threshold (empty tables, dozens in a fresh MLflow database, are fine). Without fresh
    statistics the planner guesses row counts and may scan metrics. Neither warns, but is
    noted, while autovacuum (on for the table) has not yet had stale_stats_naptimes rounds
    since the server started or the statistics were reset (see _not_yet_reached)."""
    schema, tables = _tables(mlflowdb)
    _require_counts(mlflowdb, "counts of changed rows")
    server = server_state(mlflowdb)
    max_age, share = mlflowdb_thresholds["stale_stats_age"], \
        mlflowdb_thresholds["stale_stats_changed"]
    naptimes = mlflowdb_thresholds["stale_stats_naptimes"]
    heaps = _heaps(mlflowdb, schema)
    analysed, empty, stale, waiting, oldest, blind = 0, 0, 0, 0, None, []
    unvisited = all(t.since_vacuum is None and t.since_analyze is None
                    for t in tables if t.kind == "r")
    for table in tables:
        if table.kind != "r":
            continue
        obj, remedy = f"{schema}.{table.name}", f"ANALYZE {sql_name(schema, table.name)};"
        base = table.setting("autovacuum_analyze_threshold", server.analyze_threshold)
        if _uncounted(table, heaps.get(table.name)):
            blind.append(obj)  # "empty", "0 changed" from counters that missed its rows
            continue
        if _never_analysed(table):
            rows = table.live  # not changes: alembic_version's one row is updated by each migration
            if rows <= base:
                empty += 1
                continue
            what = (f"never analysed, with {rows} live rows (n_live_tup), past its "
                    f"autoanalyze threshold of {int(base)} rows")
            early = _not_yet_reached(server, table, naptimes, unvisited)
            if early:
                waiting += 1
                mlflowdb_findings.info(obj, f"{what}, but {early}", rows, int(base))
                continue
            stale += 1
            mlflowdb_findings.warn(obj, f"{what}: the planner has no statistics for it",
                                   rows, int(base), remedy=remedy)
            continue
        analysed += 1
        if table.since_analyze is not None and (oldest is None
                                                or table.since_analyze > oldest[1]):
            oldest = (obj, table.since_analyze)
        changed = max(base, share / 100.0 * (table.reltuples or 0))
        # no analyse on record though reltuples is known: it came before the statistics
        # began (a reset), so it is at least as old as they are
        since = server.stats_age if table.since_analyze is None else table.since_analyze
        when = (f"{_ago(since)}" if table.since_analyze is not None else
                f"more than {_ago(since)} (before the statistics began)")
        if table.modified > changed and since >= max_age:
            pct = 100.0 * table.modified / table.reltuples if table.reltuples else 100.0
            what = (f"{table.modified} rows changed ({format_value('percent', min(pct, 100.0))}"
                    f" of ~{int(table.reltuples or 0)}) since its last analyse {when}, beyond "
                    f"stale_stats_age {format_value('duration', max_age)} and "
                    f"stale_stats_changed {format_value('percent', share)}")
            early = _not_yet_reached(server, table, naptimes)
            if early:
                waiting += 1
                mlflowdb_findings.info(obj, f"{what}, but {early}", table.modified,
                                       int(changed))
                continue
            stale += 1
            mlflowdb_findings.warn(obj, what, table.modified, int(changed), remedy=remedy)
    if blind and not stale:  # a check never passes when it could not look
        pytest.skip(_blind_reason(mlflowdb, blind))
    for obj in blind:
        mlflowdb_findings.info(obj, _blind_reason(mlflowdb, [obj]), None, None)
    oldest_text = (f"; the oldest analyse {_ago(oldest[1])} ({oldest[0]})" if oldest else "")
    waiting_text = (f", {waiting} not yet reached by autovacuum" if waiting else "")
    mlflowdb_findings.ok(schema, f"{analysed} MLflow table(s) analysed, {empty} never analysed "
                         f"but empty or under their autoanalyze threshold, {stale} stale"
                         f"{waiting_text}{oldest_text} ({_stats_note(mlflowdb)})", stale, None)


#: where track_counts was switched off: (what the message says, the remedy)
_TRACK_COUNTS_SOURCES = {
    "database": ("for this database's sessions", "ALTER DATABASE {db} RESET track_counts;"),
    "user": ("for this role's sessions", "ALTER ROLE {role} RESET track_counts;"),
    "database user": ("for this role's sessions in this database",
                      "ALTER ROLE {role} IN DATABASE {db} RESET track_counts;"),
}


@check("vacuum.autovacuum_disabled", probes=(_settings,))
def test_autovacuum_disabled(mlflowdb, mlflowdb_findings: Findings):
    """Autovacuum and track_counts on, server-wide and on every MLflow table.

    Without track_counts autovacuum has nothing to go by."""
    schema, tables = _tables(mlflowdb)
    server = server_state(mlflowdb)
    replica = mlflowdb.preflight.in_recovery
    if not replica and not server.autovacuum:
        mlflowdb_findings.fail("autovacuum", "autovacuum is off server-wide: dead rows pile up "
                               "and statistics go stale in every table (only anti-wraparound "
                               "vacuums still run)", "off", "on",
                               remedy="ALTER SYSTEM SET autovacuum = on; "
                                      "SELECT pg_reload_conf();")
    if not replica and not server.track_counts:
        where, remedy = _TRACK_COUNTS_SOURCES.get(server.track_counts_source, (
            "server-wide", "ALTER SYSTEM SET track_counts = on; SELECT pg_reload_conf();"))
        mlflowdb_findings.fail("track_counts", f"track_counts is off {where} (source: "
                               f"{server.track_counts_source}): the changes made there are "
                               "not counted, so autovacuum never sees them and the statistics "
                               "views stay empty", "off", "on",
                               remedy=remedy.format(db=sql_name(mlflowdb.preflight.dbname),
                                                    role=sql_name(
                                                        mlflowdb.preflight.current_user)))
    off = 0
    for table in tables:
        if not table.autovacuum_off:
            continue
        off += 1
        name = sql_name(schema, table.name)
        settings = ", ".join("toast.autovacuum_enabled = true" if o.startswith("toast.")
                             else "autovacuum_enabled = true" for o in table.autovacuum_off)
        figures = "" if replica else (
            f": {table.dead} dead rows, {table.modified} rows changed since its last analyse, "
            f"last vacuum {_ago(table.since_vacuum)}, last analyse {_ago(table.since_analyze)}")
        mlflowdb_findings.warn(
            f"{schema}.{table.name}", f"autovacuum is off on it "
            f"({', '.join(table.autovacuum_off)}){figures}", ", ".join(table.autovacuum_off),
            "autovacuum_enabled=true", remedy=f"ALTER TABLE {name} SET ({settings});")
    if replica and not off:
        pytest.skip(f"{_REPLICA_SETTINGS} (none of the {len(tables)} MLflow tables "
                    "opts out: their storage parameters are replicated)")
    if replica:
        mlflowdb_findings.info("server", _REPLICA_SETTINGS)
    elif server.autovacuum and server.track_counts and not off:
        mlflowdb_findings.ok(schema, f"autovacuum and track_counts on; none of the "
                             f"{len(tables)} MLflow tables opts out (vacuum from "
                             f"{server.vacuum_threshold} rows + "
                             f"{format_value('percent', 100 * server.vacuum_scale_factor)}, "
                             f"analyse from {server.analyze_threshold} rows + "
                             f"{format_value('percent', 100 * server.analyze_scale_factor)})",
                             0, None)


def _verdict(kind: tuple[str, str, str], age: int, freeze_max: int,
             t: ThresholdValues) -> tuple[str, str, int]:
    """One age against the thresholds: (severity, message, the limit it is judged by)."""
    key, label, setting = kind
    warn, fail = t[f"{key}_age_warn"], t[f"{key}_age_fail"]
    overdue = t["freeze_overdue_factor"] * freeze_max
    figures = (f"{label} age {age} ({format_value('percent', 100.0 * age / freeze_max)} of "
               f"{setting} {freeze_max}; {max(0, ID_LIMIT - STOP_MARGIN - age)} left before "
               "PostgreSQL stops writing)")
    if age >= fail:
        return "failure", f"{figures}, at or above {key}_age_fail {int(fail)}", int(fail)
    if age >= warn:
        return "warning", f"{figures}, at or above {key}_age_warn {int(warn)}", int(warn)
    if age >= overdue:
        return "warning", (f"{figures}, at or above freeze_overdue_factor "
                           f"{format_value('number', t['freeze_overdue_factor'])} x {setting} "
                           f"({int(overdue)}): the anti-wraparound vacuum is overdue"), \
            int(overdue)
    return "ok", figures, int(min(warn, overdue))


_HORIZON = ("first end what holds the xmin horizon back: long or prepared transactions, "
            "replication slots (see activity.*)")
#: tables named one by one per kind of age; the others are counted in one more finding
TABLES_SHOWN = 10
_RANK = {"ok": 0, "warning": 1, "failure": 2}


def _old_tables(findings: Findings, schema: str, dbname: str, kind: tuple[str, str, str],
                judged: list[tuple[str, int, str, str, int]]) -> None:
    """The tables past a limit, worst and oldest first: the first TABLES_SHOWN by name,
    the rest in one finding (a database left unfrozen has every table old)."""
    judged.sort(key=lambda j: (-_RANK[j[0]], -j[1], j[2]))
    for severity, age, name, message, limit in judged[:TABLES_SHOWN]:
        findings.add(f"{schema}.{name}", severity, message, age, limit,
                     remedy=f"VACUUM (FREEZE, VERBOSE) {sql_name(schema, name)}; ({_HORIZON})")
    rest = judged[TABLES_SHOWN:]
    if rest:
        names = ", ".join(j[2] for j in rest[:TABLES_SHOWN])
        more = f" and {len(rest) - TABLES_SHOWN} more" if len(rest) > TABLES_SHOWN else ""
        findings.add(f"{schema} ({len(rest)} more MLflow tables)", rest[0][0],
                     f"{len(rest)} more MLflow tables past a {kind[1]} age limit (ages "
                     f"{rest[-1][1]} to {rest[0][1]}): {names}{more}", rest[0][1], rest[0][4],
                     remedy=f"vacuumdb --freeze --dbname={dbname} ({_HORIZON})")


@check("vacuum.wraparound", thresholds=("xid_age_warn", "xid_age_fail", "multixact_age_warn",
                                        "multixact_age_fail", "freeze_overdue_factor"),
       probes=(_ages,))
def test_wraparound(mlflowdb, mlflowdb_findings: Findings,
                    mlflowdb_thresholds: ThresholdValues):
    """Transaction ID and multixact ages against the 2^31 limit and the freeze_max_ages.

    Of the database, of any other database of the server (wraparound stops the whole
    server) and of each MLflow table; reaching autovacuum_freeze_max_age is normal, twice
    it (freeze_overdue_factor) is overdue."""
    schema, tables = _tables(mlflowdb)
    server = server_state(mlflowdb)
    t = mlflowdb_thresholds
    for db in database_ages(mlflowdb):
        obj = db.name if db.current else f"{db.name} (another database of this server)"
        for kind, age, freeze_max in ((_XID, db.xid_age, server.freeze_max_age),
                                      (_MXID, db.mxid_age, server.mxid_freeze_max_age)):
            severity, message, limit = _verdict(kind, age, freeze_max, t)
            if db.current or severity != "ok":
                mlflowdb_findings.add(obj, severity, message, age, limit, remedy=None
                                      if severity == "ok" else
                                      f"vacuumdb --freeze --dbname={db.name} (VACUUM (FREEZE)"
                                      f" of each table; {_HORIZON})")
    judged: dict[str, list[tuple[str, int, str, str, int]]] = {"xid": [], "multixact": []}
    oldest = None
    for table in tables:
        if table.xid_age is None or table.mxid_age is None:
            continue  # a partitioned parent: its partitions are tables of their own
        for kind, age, freeze_max in (
                (_XID, table.xid_age, table.freeze_max_age(server.freeze_max_age)),
                (_MXID, table.mxid_age, table.freeze_max_age(server.mxid_freeze_max_age,
                                                             multixact=True))):
            severity, message, limit = _verdict(kind, age, freeze_max, t)
            if severity != "ok":
                judged[kind[0]].append((severity, age, table.name, message, limit))
        if oldest is None or table.xid_age > (oldest.xid_age or 0):
            oldest = table
    for kind in (_XID, _MXID):
        _old_tables(mlflowdb_findings, schema, mlflowdb.preflight.dbname, kind, judged[kind[0]])
    if oldest is not None and not judged["xid"] and not judged["multixact"]:
        mlflowdb_findings.ok(f"{schema}.{oldest.name}", f"the oldest of {len(tables)} MLflow "
                             f"tables: transaction ID age {oldest.xid_age}, multixact age "
                             f"{oldest.mxid_age}", oldest.xid_age,
                             int(min(t["xid_age_warn"], t["freeze_overdue_factor"]
                                     * oldest.freeze_max_age(server.freeze_max_age))))
