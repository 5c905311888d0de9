"""Activity: what is running now that holds back vacuum or blocks MLflow.

Long-running queries, sessions idle in a transaction, sessions waiting on a lock (and who
blocks them) in the audited database; prepared transactions and replication slots of the
whole cluster (they hold back every database's xmin horizon, slots also WAL). The
audit's own sessions never count. Other roles' sessions are hidden in detail without
``pg_monitor`` or ``pg_read_all_stats``: the checks that need those details skip then
(saying so), unless what is visible is already a fault. Remedies are suggestions for a
person: terminating a session rolls its transaction back.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.config.thresholds import ThresholdValues, format_value
from pytest_mlflowdb.probes.activity import (
    Activity,
    Session,
    activity,
    blocking,
    prepared_xacts,
    replication_slots,
)
from pytest_mlflowdb.probes.grants import advice


def _seconds(value: float | None) -> str:
    return format_value("duration", max(0.0, value or 0.0))


def _severity(value: float, t: ThresholdValues, prefix: str) -> str:
    if value >= t[f"{prefix}_fail"]:
        return "failure"
    if value >= t[f"{prefix}_warn"]:
        return "warning"
    return "ok"


def _terminate(pid: int) -> str:
    return (f"SELECT pg_terminate_backend({pid}); -- a suggestion: first ask who runs it; "
            "its open transaction is rolled back")


def _hidden_note(found: Activity) -> str:
    return (f"{found.hidden} session(s) of other roles in this database whose state is "
            "hidden without pg_monitor or pg_read_all_stats")


def _sessions_over(db, findings, t: ThresholdValues, prefix: str,
                   states: tuple[str, ...], label: str, age_of, describe) -> None:
    """Record a finding per session in ``states`` past the ``prefix`` thresholds, an ok
    with the longest one otherwise; skip when hidden sessions could be the fault."""
    found = activity(db)
    warn, fail = t[f"{prefix}_warn"], t[f"{prefix}_fail"]
    matching = sorted(found.in_state(*states), key=lambda s: -(age_of(s) or 0))
    faults = [(s, _severity(age_of(s) or 0, t, prefix)) for s in matching]
    faults = [(s, sev) for s, sev in faults if sev != "ok"]
    for session, severity in faults:
        limit = fail if severity == "failure" else warn
        findings.add(f"pid {session.pid}", severity, describe(session)
                     + f", at or above {prefix}_{'fail' if severity == 'failure' else 'warn'} "
                     f"{format_value('duration', limit)}", round(age_of(session) or 0, 1),
                     format_value("duration", limit), remedy=_terminate(session.pid))
    if found.hidden:
        if not faults:
            pytest.skip(f"no privilege: needs pg_monitor or pg_read_all_stats to see "
                        f"{_hidden_note(found)} ({advice(db, 'GRANT pg_monitor')})")
        findings.info("pg_stat_activity", f"not checked: {_hidden_note(found)}", found.hidden,
                      "pg_monitor")
    if not faults:
        longest = max((age_of(s) or 0 for s in matching), default=0.0)
        findings.ok("pg_stat_activity", f"{len(matching)} of {len(found.sessions)} other "
                    f"session(s) of this database {label}, the longest for {_seconds(longest)} "
                    f"(below {prefix}_warn {format_value('duration', warn)})",
                    round(longest, 1), format_value("duration", warn))


@check("activity.idle_in_transaction",
       thresholds=("idle_in_transaction_warn", "idle_in_transaction_fail"), probes=(activity,))
def test_idle_in_transaction(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Sessions idle in a transaction: they hold back vacuum and keep their locks."""

    def describe(s: Session) -> str:
        return (f"{s.state} for {_seconds(s.state_age)} (transaction open "
                f"{_seconds(s.xact_age)}; {s.who()}), {s.horizon()}; last query: "
                f"{s.last_query()}")

    _sessions_over(mlflowdb, mlflowdb_findings, mlflowdb_thresholds,
                   "idle_in_transaction", ("idle in transaction",
                                           "idle in transaction (aborted)"),
                   "idle in a transaction", lambda s: s.state_age, describe)


@check("activity.long_queries", thresholds=("long_query_warn", "long_query_fail"),
       probes=(activity,))
def test_long_queries(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Queries running longer than a threshold (client sessions; autovacuum is not one)."""

    def describe(s: Session) -> str:
        return (f"query running for {_seconds(s.query_age)} (transaction open "
                f"{_seconds(s.xact_age)}; {s.who()}), {s.horizon()}: {s.last_query()}")

    _sessions_over(mlflowdb, mlflowdb_findings, mlflowdb_thresholds, "long_query",
                   ("active",), "running a query", lambda s: s.query_age, describe)


def _blocker(pid: int, known: dict[int, Session], own: int, prepared: tuple[str, ...]) -> str:
    if pid == 0:
        gids = ", ".join(_literal(g) for g in prepared)
        return (f"prepared transaction {gids}" if gids else "a prepared transaction") + \
            " (see activity.prepared_xacts)"
    if pid == own:
        return f"pid {pid} (this audit's session)"
    s = known.get(pid)
    if s is None:
        return f"pid {pid} (gone)"
    if s.state is None:
        return f"pid {pid} ({s.who()}; details hidden without pg_monitor)"
    age = s.state_age if s.state != "active" else s.query_age
    return (f"pid {pid} ({s.who()}; {s.state} for {_seconds(age)}, transaction open "
            f"{_seconds(s.xact_age)}: {s.last_query()})")


@check("activity.blocked", thresholds=("blocked_warn", "blocked_fail"), probes=(blocking,))
def test_blocked(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Sessions waiting on a lock longer than a threshold, with who blocks them.

    Lock waits come from pg_locks, which every role may read; only the blockers'
    details need pg_monitor."""
    t = mlflowdb_thresholds
    waits, known, own = blocking(mlflowdb)
    longest = 0.0
    for wait in waits:
        severity = _severity(wait.waited, t, "blocked")
        if severity == "ok":
            longest = max(longest, wait.waited)
            continue
        limit = t["blocked_fail" if severity == "failure" else "blocked_warn"]
        by = "; ".join(_blocker(b, known, own, wait.prepared) for b in wait.blockers) \
            or "no one any more"
        first = next((b for b in wait.blockers if b not in (own, 0)), None)
        if first is not None:
            remedy: str | None = _terminate(first) + " (the blocker)"
        elif 0 in wait.blockers:
            remedy = (f"ROLLBACK PREPARED {_literal(wait.prepared[0])}; -- releases its "
                      "locks (see activity.prepared_xacts)" if wait.prepared else
                      "ROLLBACK PREPARED 'gid'; -- the gid: see activity.prepared_xacts")
        else:
            remedy = None
        mlflowdb_findings.add(
            f"pid {wait.pid}", severity,
            f"waiting {_seconds(wait.waited)} for {wait.lock}, blocked by {by}; at or above "
            f"blocked_{'fail' if severity == 'failure' else 'warn'} "
            f"{format_value('duration', limit)}", round(wait.waited, 1),
            format_value("duration", limit), remedy=remedy)
    if mlflowdb_findings.severity == "ok":
        mlflowdb_findings.ok("pg_locks", f"{len(waits)} session(s) waiting for a lock, the "
                             f"longest for {_seconds(longest)} (below blocked_warn "
                             f"{t.text('blocked_warn')})", round(longest, 1),
                             t.text("blocked_warn"))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@check("activity.prepared_xacts", thresholds=("prepared_xact_warn", "prepared_xact_fail"),
       probes=(prepared_xacts,))
def test_prepared_xacts(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Prepared transactions left behind, in any database of the server.

    They keep their locks and hold back the xmin horizon, even across restarts."""
    t = mlflowdb_thresholds
    found = prepared_xacts(mlflowdb)
    for x in found.xacts:
        severity = _severity(x.age, t, "prepared_xact")
        where = "this database" if x.database == mlflowdb.preflight.dbname else \
            f"database {x.database}"
        message = (f"prepared {_seconds(x.age)} ago by {x.owner} in {where}, holds back "
                   f"the xmin horizon at xid {x.xid} ({x.xid_age} transactions old)")
        remedy = (f"ROLLBACK PREPARED {_literal(x.gid)}; -- connected to {x.database} as "
                  f"{x.owner} or a superuser (COMMIT PREPARED if it must be kept)")
        if severity == "ok":
            mlflowdb_findings.ok(x.gid, message, round(x.age, 1), t.text("prepared_xact_warn"))
            continue
        name = f"prepared_xact_{'fail' if severity == 'failure' else 'warn'}"
        mlflowdb_findings.add(x.gid, severity, f"{message}; at or above {name} "
                              f"{t.text(name)}", round(x.age, 1), t.text(name), remedy=remedy)
    if not found.xacts:
        enabled = (f"max_prepared_transactions = {found.max_prepared}" if found.max_prepared
                   else "disabled: max_prepared_transactions = 0")
        mlflowdb_findings.ok("pg_prepared_xacts", f"no prepared transaction ({enabled})", 0,
                             t.text("prepared_xact_warn"))


@check("activity.replication_slots", thresholds=("slot_wal_warn", "slot_wal_fail"),
       probes=(replication_slots,))
def test_replication_slots(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Replication slots of the server: inactive or lost ones, the WAL each retains.

    A slot holds back WAL removal and maybe the xmin horizon of every database."""
    t = mlflowdb_thresholds
    slots = replication_slots(mlflowdb)
    for s in slots:
        retained = s.retained or 0
        kind = f"{s.kind} slot" + (f" ({s.plugin}, database {s.database})" if s.plugin else "")
        wal = (f"retains {format_value('size', retained)} of WAL ({retained} bytes since "
               f"restart_lsn {s.restart_lsn})" if s.restart_lsn else "reserves no WAL yet")
        message = f"{kind}, {'active' if s.active else 'inactive'}, {wal}, {s.horizon()}"
        severity, threshold = "ok", t.text("slot_wal_warn")
        for name, level in (("slot_wal_fail", "failure"), ("slot_wal_warn", "warning")):
            if retained >= t[name]:
                severity, threshold = level, t.text(name)
                message += f"; at or above {name} {threshold}"
                break
        if not s.active:
            message += "; inactive: it keeps every WAL segment from now on"
            if severity == "ok":
                severity, threshold = "warning", "active"
        if s.wal_status == "lost":
            message += "; invalidated (wal_status lost): it can no longer be used"
            if severity == "ok":
                severity, threshold = "warning", "not lost"
        if s.active and s.wal_status != "lost" and severity != "ok":
            message += "; in use: its consumer lags behind"
        # an active slot cannot be dropped, nor should it be: its consumer must catch up
        remedy = None if severity == "ok" or (s.active and s.wal_status != "lost") else (
            f"SELECT pg_drop_replication_slot({_literal(s.name)}); -- unless its consumer "
            "is coming back" + (f" (connected to {s.database})" if s.database else ""))
        mlflowdb_findings.add(s.name, severity, message, retained, threshold, remedy=remedy)
    if not slots:
        mlflowdb_findings.ok("pg_replication_slots", "no replication slot", 0,
                             t.text("slot_wal_warn"))
