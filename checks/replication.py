"""Replication: on a primary, each standby's write, flush and replay lag in bytes (behind
the primary's current WAL position) and in time, against thresholds, and the synchronous
standbys ``synchronous_standby_names`` asks for (commits wait while one is missing). On a
standby (the audit pointed at a replica): what it received but has not replayed, and for
how long (``pg_last_xact_replay_timestamp()``; a standby that replayed everything it
received is not behind, however idle the primary). ``connectivity.primary`` keeps saying
that MLflow cannot write there.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.config.thresholds import ThresholdValues, format_value
from pytest_mlflowdb.probes.grants import advice
from pytest_mlflowdb.probes.replication import Recovery, replication, required_sync

_THRESHOLDS = ("replication_lag_warn", "replication_lag_fail", "replication_lag_bytes_warn",
               "replication_lag_bytes_fail")


def _severity(value: float | None, warn: float, fail: float) -> str:
    if value is None:
        return "ok"
    return "failure" if value >= fail else "warning" if value >= warn else "ok"


def _worst(*severities: str) -> str:
    order = ("ok", "warning", "failure")
    return max(severities, key=order.index)


def _secs(value: float | None) -> str:
    return "none measured" if value is None else format_value("duration", value)


def _bytes(value: float | None) -> str:
    return "?" if value is None else format_value("size", max(0.0, value))


@check("replication.lag", thresholds=_THRESHOLDS, probes=(replication,))
def test_lag(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Each standby's lag (on a primary), or this standby's replay lag (on a replica)."""
    r = replication(mlflowdb)
    t = mlflowdb_thresholds
    if r.in_recovery:
        assert r.recovery is not None
        _standby_self(mlflowdb_findings, r.recovery, t)
        return
    if not r.standbys:
        mlflowdb_findings.ok("pg_stat_replication", "no standby streams from this server", 0)
        return
    hidden = [s for s in r.standbys if s.hidden]
    if hidden and len(hidden) == len(r.standbys):
        pytest.skip(f"no privilege: {len(hidden)} standby(s) stream from this server but "
                    "their positions are hidden without pg_monitor or pg_read_all_stats "
                    f"({advice(mlflowdb, 'GRANT pg_monitor')})")
    for s in r.standbys:
        if s.hidden:
            mlflowdb_findings.info(s.label(), "positions hidden without pg_monitor", None)
            continue
        by_time = _severity(max((x for x in (s.write_lag, s.flush_lag, s.replay_lag)
                                 if x is not None), default=None),
                            t["replication_lag_warn"], t["replication_lag_fail"])
        by_bytes = _severity(s.replay_bytes, t["replication_lag_bytes_warn"],
                             t["replication_lag_bytes_fail"])
        severity = _worst(by_time, by_bytes)
        level = "fail" if severity == "failure" else "warn"
        limits = (f"replication_lag_{level} "
                  f"{format_value('duration', t[f'replication_lag_{level}'])} / "
                  f"replication_lag_bytes_{level} "
                  f"{format_value('size', t[f'replication_lag_bytes_{level}'])}")
        message = (f"{s.label()}, {s.state}, {s.sync_state}: behind by {_bytes(s.write_bytes)} "
                   f"written, {_bytes(s.flush_bytes)} flushed, {_bytes(s.replay_bytes)} "
                   f"replayed; lag write {_secs(s.write_lag)}, flush {_secs(s.flush_lag)}, "
                   f"replay {_secs(s.replay_lag)}")
        if severity == "ok":
            mlflowdb_findings.ok(s.label(), f"{message} (below {limits})",
                                 _bytes(s.replay_bytes))
        else:
            mlflowdb_findings.add(s.label(), severity, f"{message}: at or above {limits}; a "
                                  "failover now loses what it has not replayed",
                                  _bytes(s.replay_bytes), limits,
                                  remedy="on the standby: SELECT pg_is_wal_replay_paused(); "
                                  "(SELECT pg_wal_replay_resume(); if paused), else look at "
                                  "its disk, network and long queries delaying replay")


def _standby_self(findings, rec: Recovery, t: ThresholdValues) -> None:
    paused = "; replay is paused (pg_wal_replay_pause)" if rec.paused else ""
    if rec.behind is None:
        findings.warn("recovery", "a standby that has received no WAL by streaming "
                      f"(wal receiver: {rec.receiver or 'none'}){paused}", None)
        return
    delay = rec.replay_delay
    what = (f"received {rec.received}, replayed {rec.replayed}: "
            f"{_bytes(rec.behind)} not replayed")
    by_time = _severity(delay, t["replication_lag_warn"], t["replication_lag_fail"])
    by_bytes = _severity(rec.behind, t["replication_lag_bytes_warn"],
                         t["replication_lag_bytes_fail"])
    severity = _worst(by_time, by_bytes)
    if not rec.behind:
        findings.ok("recovery", f"{what}: caught up with what it received (wal receiver: "
                    f"{rec.receiver or 'none'}){paused}", 0)
        return
    committed = ("no transaction replayed since the standby started" if delay is None
                 else f"the last replayed transaction committed {_secs(delay)} ago")
    message = (f"{what}; {committed}"
               f"{paused} (wal receiver: {rec.receiver or 'none'})")
    if severity == "ok":
        findings.ok("recovery", message, None if delay is None else round(delay, 1))
    else:
        level = "fail" if severity == "failure" else "warn"
        findings.add("recovery", severity, f"{message}: at or above replication_lag_{level} "
                     f"{format_value('duration', t[f'replication_lag_{level}'])} or "
                     f"replication_lag_bytes_{level} "
                     f"{format_value('size', t[f'replication_lag_bytes_{level}'])}; a "
                     "failover now loses what it has not replayed",
                     None if delay is None else round(delay, 1),
                     format_value("duration", t[f"replication_lag_{level}"]),
                     remedy="SELECT pg_wal_replay_resume();" if rec.paused else None)


@check("replication.synchronous", probes=(replication,))
def test_synchronous(mlflowdb, mlflowdb_findings):
    """The synchronous standbys synchronous_standby_names asks for are connected (commits
    wait for them otherwise: MLflow hangs)."""
    r = replication(mlflowdb)
    wanted = required_sync(r.synchronous_names)
    if r.in_recovery or not wanted:
        mlflowdb_findings.ok("synchronous_standby_names",
                             "no synchronous standby asked for" if not r.in_recovery else
                             "a standby: synchronous_standby_names matters on the primary",
                             r.synchronous_names or "")
        return
    hidden = [s for s in r.standbys if s.hidden]
    sync = [s for s in r.standbys if s.sync_state in ("sync", "quorum")]
    if hidden and len(sync) < wanted:
        pytest.skip("no privilege: the states of standbys streaming from this server are "
                    f"hidden without pg_monitor ({advice(mlflowdb, 'GRANT pg_monitor')})")
    names = ", ".join(s.name for s in sync) or "none"
    if len(sync) < wanted:
        mlflowdb_findings.fail("synchronous_standby_names",
                               f"synchronous_standby_names '{r.synchronous_names}' asks for "
                               f"{wanted} synchronous standby(s), {len(sync)} connected "
                               f"({names}): every commit waits, MLflow's writes hang",
                               len(sync), wanted,
                               remedy="bring the standby back, or ALTER SYSTEM SET "
                               "synchronous_standby_names = ''; SELECT pg_reload_conf();")
    else:
        mlflowdb_findings.ok("synchronous_standby_names",
                             f"'{r.synchronous_names}': {len(sync)} synchronous standby(s) "
                             f"connected ({names})", len(sync), wanted)
