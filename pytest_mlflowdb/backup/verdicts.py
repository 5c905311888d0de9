"""Findings about a restored copy: its schema, completeness, freshness (RPO), restore
time (RTO) and the upgrade rehearsal. Pure functions of what ``copy`` and the restore
measured, so each rule is read in one place."""

from __future__ import annotations

import datetime
from typing import Any

from pytest_mlflowdb.backup.copy import Newest
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.results.findings import Findings

#: a table of the copy is short only when it lacks more rows than this too (estimates of
#: tiny tables are coarse)
ROW_SLACK = 10
#: objects named in one message, then a count
SHOWN = 10


def duration_text(seconds: float) -> str:
    """A limit as people write it: 26h rather than 1.08d (whole hours under a week)."""
    if seconds and seconds < 7 * 86400 and seconds % 3600 == 0 and seconds % 86400:
        return f"{seconds / 3600:.0f}h"
    return format_value("duration", seconds)


def _releases(revision: str) -> str:
    catalog = load_catalog()
    releases = catalog.releases_for(revision)
    if not releases:
        return "between releases"
    return (f"MLflow {releases[0]} to {releases[-1]}" if len(releases) > 2
            else "MLflow " + ", ".join(releases))


def schema_findings(findings: Findings, copy_db: Any, live_revision: str | None) -> str | None:
    """The copy's schema against the catalog at its own revision; returns a skip reason
    when there is nothing to compare with, else None."""
    from pytest_mlflowdb.catalog.compare import CONSTRAINT_KINDS
    from pytest_mlflowdb.probes.mlflow import mlflow_facts
    from pytest_mlflowdb.probes.schema import catalog_diff, live_snapshot, newer_than_catalog

    facts = mlflow_facts(copy_db)
    name = copy_db.preflight.dbname
    catalog = load_catalog()
    if facts.schema is None:
        findings.fail("copy", "the restored copy holds no MLflow tables (experiments, runs, "
                      "metrics, params, tags): not a dump of an MLflow database", None,
                      "MLflow schema")
        return None
    table = f"{facts.schema}.alembic_version"
    if facts.revision is None:
        findings.fail(table, f"the copy's alembic_version holds "
                      f"{len(facts.alembic_versions or ())} rows (or is missing): MLflow "
                      "would refuse to start on it", None, "1 row")
        return None
    revision = facts.revision
    if not catalog.knows(revision):
        newer = newer_than_catalog(copy_db)
        if newer:  # MLflow released since this pytest-mlflowdb: nothing to compare with
            return f"the restored copy's {newer}"
        findings.fail(table, f"the copy is at revision {revision}, not in any released MLflow",
                      revision, catalog.head)
        return None
    if not catalog.has_schema(revision):
        return f"the copy is at revision {revision}; the catalog has no schema for it"
    drift = catalog_diff(copy_db)
    diff, schema = drift.diff, drift.schema
    problems = (
        [(f"{schema}.{t}", "table missing") for t in diff.missing_tables]
        + [(f"{schema}.{s}", "sequence missing") for s in diff.missing_sequences]
        + [(f"{schema}.{t}.{c.name}", f"column missing ({c.type})")
           for t, c in diff.missing_columns]
        + [(f"{schema}.{c.table}.{c.column}", f"{c.field} is {c.actual!r}, MLflow makes "
            f"{c.expected!r}") for c in diff.changed_columns]
        + [(f"{schema}.{c.table}.{c.name}", f"{CONSTRAINT_KINDS[c.type]} missing: "
            f"{c.definition}") for c in diff.missing_constraints]
        + [(f"{schema}.{w.table}.{w.name}", f"{CONSTRAINT_KINDS[w.type]} differs: "
            f"{h.definition}") for w, h in diff.changed_constraints]
        + [(f"{schema}.{t}", "trigger missing") for t in diff.missing_triggers]
        + [(f"{schema}.{i.name}", f"index missing: {i.definition}")
           for i in diff.missing_indexes]
        + [(f"{schema}.{h.name}", f"index differs: {h.definition}")
           for _, h in diff.redefined_indexes]
        + [(f"{schema}.{i.name}", "index INVALID in the copy")
           for i in live_snapshot(copy_db).indexes if not (i.valid and i.ready)])
    for obj, message in problems:
        findings.fail(obj, f"restored copy ({name}): {message}", None, revision)
    expected = drift.expected
    if not problems:
        findings.ok(table, f"{name} at revision {revision} ({_releases(revision)}): all "
                    f"{len(expected.tables)} tables, {len(expected.indexes)} indexes and "
                    f"{len(expected.constraints)} constraints as MLflow makes them",
                    revision, revision)
    extras = ([f"table {t}" for t in diff.extra_tables]
              + [f"column {t}.{c.name}" for t, c in diff.extra_columns]
              + [f"index {i.name}" for i in diff.extra_indexes])
    if extras:
        more = f" and {len(extras) - SHOWN} more" if len(extras) > SHOWN else ""
        findings.info(schema, f"{len(extras)} table(s), column(s) or index(es) MLflow does "
                      f"not make, restored as they were: {', '.join(extras[:SHOWN])}{more}",
                      len(extras), None)
    if live_revision and live_revision != revision:
        findings.warn(table, f"the copy is at revision {revision}, the live target at "
                      f"{live_revision}: the MLflow deployed on the live target would not "
                      "start on the restored copy without migrating it (see "
                      "--mlflowdb-upgrade-rehearsal)", revision, live_revision)
    return None


def complete_findings(findings: Findings, schema: str, copy_counts: dict[str, int],
                      estimates: dict[str, int | None], tolerance: float) -> None:
    """Every MLflow table of the live target in the copy, with about as many rows: the
    total first (the answer), then the tables that hold rows, largest first."""
    tolerated = format_value("percent", tolerance)
    short: list[tuple[str, str, Any, Any]] = []
    held: list[tuple[str, str, int, int | None]] = []
    for table in sorted(estimates):
        obj, estimate = f"{schema}.{table}", estimates[table]
        if table not in copy_counts:
            short.append((obj, "missing from the restored copy", "missing", "present"))
            continue
        count = copy_counts[table]
        live = "no live estimate (never analysed)" if estimate is None else \
            f"live estimate ~{estimate}"
        if estimate and count < estimate * (1 - tolerance / 100) and \
                estimate - count > ROW_SLACK:
            fewer = 100 * (estimate - count) / estimate
            short.append((obj, f"the copy holds {count} rows, {live}: {fewer:.0f}% fewer, "
                          f"beyond backup_row_tolerance {tolerated}", count, estimate))
        elif count or estimate:
            held.append((obj, f"{count} rows in the copy, {live}", count, estimate))
    for obj, message, value, threshold in short:
        findings.fail(obj, message, value, threshold)
    total = sum(copy_counts.get(t, 0) for t in estimates)
    if not short:
        findings.ok(schema, f"all {len(estimates)} MLflow tables of the live target are in "
                    f"the copy ({total} rows), none more than {tolerated} short of its live "
                    "estimate", total, tolerated)
    for obj, message, count, estimate in sorted(held, key=lambda h: -h[2]):
        findings.ok(obj, message, count, estimate)


def foreign_findings(findings: Findings, kin: Any, source: str, live: str) -> None:
    """One failure for a copy of another MLflow database (``kin``: copy.Kinship): its
    rows are not the live target's, so no table of it is compared."""
    copied, held = kin.sampled
    findings.fail("copy", f"the restored copy is not of the audited database: {source} "
                  f"shares no {kin.what} with the live target {live} (none of {copied} "
                  f"{kin.what} sampled from the copy is there, nor any of {held} sampled "
                  "from the live target in the copy); its tables and rows are not compared",
                  kin.common, f"{kin.what} of {live}")


def _when(ms: int | None) -> str:
    if ms is None:
        return "none"
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def freshness_findings(findings: Findings, schema: str, copy_newest: list[Newest],
                       live_newest: list[Newest] | None, modified: datetime.datetime,
                       now: datetime.datetime, max_age: float, limit: str,
                       fresh_dump: bool) -> str | None:
    """RPO from the data (copy against live) and the file's age against max_backup_age
    (``limit`` is its text); returns a skip reason when the data could not be compared
    and the age passes."""
    age = max(0.0, (now - modified).total_seconds())
    if fresh_dump:
        findings.ok("backup file", "dumped by this run (--mlflowdb-restore-test): age 0s",
                    0, limit)
    elif age > max_age:
        findings.fail("backup file", f"written {format_value('duration', age)} ago "
                      f"({modified:%Y-%m-%d %H:%M UTC}), older than max_backup_age {limit}",
                      round(age), limit)
    else:
        findings.ok("backup file", f"written {format_value('duration', age)} ago "
                    f"({modified:%Y-%m-%d %H:%M UTC})", round(age), limit)
    if live_newest is None:
        return None
    copy = {n.table: n for n in copy_newest}
    compared, unread, worst = 0, [], 0.0
    for live in live_newest:
        obj = f"{schema}.{live.table}"
        mine = copy.get(live.table)
        if live.error:
            unread.append(f"{obj}: {live.error}")
            findings.info(obj, f"{live.what} of the live target not read: {live.error}")
            continue
        if not live.present or live.value is None:
            continue  # nothing there to lose
        compared += 1
        have = mine.value if mine is not None else None
        behind = (live.value - have) / 1000 if have is not None else None
        if behind is None:
            findings.fail(obj, f"the copy holds no {live.noun}; the live "
                          f"target's {live.what} is {_when(live.value)}", None, limit)
            worst = float("inf")
            continue
        behind = max(0.0, behind)
        worst = max(worst, behind)
        text = (f"{live.what}: copy {_when(have)}, live {_when(live.value)}: "
                f"{format_value('duration', behind)} behind")
        if behind > max_age:
            findings.fail(obj, f"{text}, more than max_backup_age {limit}", round(behind),
                          limit)
        else:
            findings.ok(obj, text, round(behind), limit)
    if compared:
        shown = "all of it" if worst == float("inf") else format_value("duration", worst)
        findings.info("RPO", f"a restore of this backup would lose {shown} of MLflow data "
                      f"(newest data in the copy against the live target)",
                      None if worst == float("inf") else round(worst), limit)
    elif unread and findings.severity != "failure":
        return "the live target's newest data could not be read: " + "; ".join(unread[:2])
    elif not unread:
        findings.info("RPO", "the live target holds no runs, metrics, model versions or "
                      "traces: nothing a restore could lose")
    return None


def rto_findings(findings: Findings, copy: str, seconds: float, restore_seconds: float,
                 verify_seconds: float, how: str, limit: float, limit_text: str, size: int,
                 dump_seconds: float | None) -> None:
    """The time from the start of the restore to a verified copy, against the limit."""
    shown = format_value("duration", seconds)
    parts = (f"into {copy}: restore {format_value('duration', restore_seconds)} ({how}), "
             f"verification "
             f"{format_value('duration', verify_seconds)}, {format_value('size', size)} "
             "archive")
    if limit and seconds > limit:
        findings.fail("restore", f"{shown} to a queryable, verified copy ({parts}): more "
                      f"than max_restore_time {limit_text}", round(seconds, 3), limit_text)
    else:
        note = "" if limit else "; no max_restore_time set"
        findings.ok("restore", f"{shown} to a queryable, verified copy ({parts}{note})",
                    round(seconds, 3), limit_text if limit else None)
    if dump_seconds is not None:
        findings.ok("pg_dump", f"the dump of the live target took "
                      f"{format_value('duration', dump_seconds)} (not part of the RTO)",
                      round(dump_seconds, 3))


def upgrade_findings(findings: Findings, rehearsal: Any) -> None:
    """The rehearsal engine's answer (:class:`~.rehearsal.Rehearsal`) as findings."""
    span = f"{rehearsal.from_revision} to {rehearsal.to_revision}"
    if not rehearsal.ok:
        findings.fail("upgrade", f"MLflow's migrations from {span} failed on the restored "
                      f"copy: {rehearsal.error}", rehearsal.from_revision,
                      rehearsal.to_revision)
    elif not rehearsal.steps:
        findings.ok("upgrade", f"already at the installed MLflow's head {rehearsal.to_revision}"
                    ": no migration to run", rehearsal.to_revision, rehearsal.to_revision)
    else:
        locking = [s for s in rehearsal.steps if s.locks]
        findings.ok("upgrade", f"{len(rehearsal.steps)} migration(s) from {span} ran on the "
                    f"restored copy in {format_value('duration', rehearsal.seconds)}; "
                    f"{len(locking)} held exclusive or share locks on tables",
                    round(rehearsal.seconds, 3), None)
    for number, step in enumerate(rehearsal.steps, 1):
        locks = f"; locked {', '.join(step.locks)}" if step.locks else ""
        findings.ok(f"{number:02d} {step.revision}", f"{step.description}: "
                      f"{format_value('duration', step.seconds)}{locks}",
                      round(step.seconds, 3), None)
