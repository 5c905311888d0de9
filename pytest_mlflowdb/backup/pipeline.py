"""One backup verification, start to finish, and its findings per check.

Run once per target (the area's session fixture) whatever check asks first: find the
archive (or dump the live target), find client tools that can read it, open a scratch
server (a throwaway one of the live server's major when this machine has its binaries,
or ``--mlflowdb-scratch-uri`` after refusing the audited database), sweep leftovers of
killed runs, restore into a fresh scratch database, verify the copy (schema, that it is
the live database's at all, rows, newest data), optionally rehearse MLflow's upgrade on
it, and drop everything it made, also when a step fails. A copy restored on another
major than the live server's says so in every finding (:meth:`Result.annotate`).

The restore reads every data block, so a restore that succeeds proves the archive
readable; only when there is no restore, or it fails, is the archive read through on its
own (``pg_restore -f /dev/null``), to tell a damaged archive from a restore error.
"""

from __future__ import annotations

import datetime
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pytest_mlflowdb.backup import verdicts
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.db.errors import DatabaseError
from pytest_mlflowdb.results.findings import Findings
from pytest_mlflowdb.servers.archive import (
    PLAIN,
    PLAIN_GZ,
    Archive,
    ArchiveError,
    inspect,
    read_through,
)
from pytest_mlflowdb.servers.tools import (
    ClientTools,
    ToolsError,
    child_connection,
    find_tools,
    major_of,
    newest_restore_for,
)
from pytest_mlflowdb.text import first_line

READABLE, RESTORE, SCHEMA, COMPLETE = ("backup.readable", "backup.restore", "backup.schema",
                                       "backup.complete")
FRESHNESS, RTO, UPGRADE = "backup.freshness", "backup.rto", "backup.upgrade"
CHECKS = (READABLE, RESTORE, SCHEMA, COMPLETE, FRESHNESS, RTO, UPGRADE)
#: how long the copy's own queries may take (it is ours: counting it is fine)
COPY_STATEMENT_TIMEOUT = 600.0
#: the slowest a child may work through an archive (restoring it: indexes included), and
#: through the live database (dumping it: the archive is smaller), in bytes per second,
#: before it counts as stuck
ARCHIVE_RATE = 1024.0 * 1024
DATABASE_RATE = 4 * ARCHIVE_RATE


@dataclass
class Plan:
    """What the user asked for, and the limits in force."""

    backup: str | None
    restore_test: bool
    rehearsal: bool
    scratch: Any = None  # a Target (--mlflowdb-scratch-uri) or None
    pg_bin: Path | None = None
    server_kind: str = "auto"
    statement_timeout: float = 30.0
    lock_timeout: float = 1.0
    max_backup_age: float = 26 * 3600.0
    max_restore_time: float = 0.0
    #: the two limits as the user wrote them (26h, not 1.08d), for messages
    limit_texts: tuple[str, str] = ("26h", "0")
    row_tolerance: float = 25.0
    #: backup_step_timeout: the least wall-clock time of each child (pg_dump, reading,
    #: the restore); it grows with the bytes it works through (:meth:`bound`)
    step_floor: float = 60.0
    jobs: int = 0
    #: --mlflowdb-dump-uri: a direct connection for pg_dump (a Target) or None
    dump_uri: Any = None

    def bound(self, size: int, rate: float = ARCHIVE_RATE) -> float:
        """The wall-clock bound of a child working through ``size`` bytes at no less
        than ``rate`` bytes per second."""
        return self.step_floor + max(0, size) / rate


@dataclass
class Result:
    """Findings per check, or why a check could not look."""

    findings: dict[str, Findings] = field(default_factory=lambda: {c: Findings()
                                                                    for c in CHECKS})
    skips: dict[str, str] = field(default_factory=dict)
    #: said by every finding: the copy was restored on another major than the live one
    note: str | None = None

    def skip_rest(self, reason: str) -> None:
        for check in CHECKS:
            if check not in self.skips and not len(self.findings[check]):
                self.skips[check] = reason

    def annotate(self) -> None:
        """Add :attr:`note` to every finding's message (once, here, for every check)."""
        if not self.note:
            return
        for check in CHECKS:
            noted = Findings()
            for found in self.findings[check]:
                noted.add(found.object, found.severity, f"{found.message}; {self.note}",
                          found.value, found.threshold, remedy=found.remedy)
            self.findings[check] = noted


def run(plan: Plan, live: Any, live_conninfo: str | None, live_error: str | None) -> Result:
    """The whole verification; never raises for a bad backup (findings say what failed)."""
    from pytest_mlflowdb.servers import leftovers

    result = Result()
    started = time.perf_counter()
    with leftovers.guarded():  # SIGTERM removes the dump and the server, as SIGINT does
        leftovers.sweep()
        workdir = leftovers.private_folder(leftovers.DUMP_PREFIX)
        try:
            _run(plan, result, live, live_conninfo, live_error, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(result.findings[RTO]):
        total = time.perf_counter() - started
        result.findings[RTO].ok("backup checks", f"{total:.2f}s in all (dump if any, "
                                  "scratch server, restore, verification, clean-up)",
                                  round(total, 3))
    if not plan.rehearsal:
        result.skips.setdefault(UPGRADE, "no --mlflowdb-upgrade-rehearsal")
    result.annotate()
    return result


def _run(plan: Plan, result: Result, live: Any, live_conninfo: str | None,
         live_error: str | None, workdir: Path) -> None:
    readable = result.findings[READABLE]
    if not plan.backup and not plan.restore_test:
        result.findings[UPGRADE].fail("upgrade", "--mlflowdb-upgrade-rehearsal needs a copy "
                                      "to rehearse on: give --mlflowdb-backup=PATH or "
                                      "--mlflowdb-restore-test")
        result.skip_rest("no backup to verify")
        return
    dump_seconds = None
    if plan.backup:
        archive_path = Path(plan.backup)
    else:
        try:
            dumped = _dump(plan, live, live_conninfo, live_error, workdir)
        except (ToolsError, RuntimeError) as exc:
            readable.fail("live target", f"cannot back it up: {exc}")
            result.skip_rest("no dump of the live target (see backup.readable)")
            return
        archive_path, dump_seconds = dumped.path, dumped.seconds
    try:
        archive = inspect(archive_path)
        tools = find_tools(archive.needed_major, f"the archive was made by pg_dump "
                           f"{archive.dumped_by}" if archive.dumped_by else "any archive",
                           plan.pg_bin)
    except (ArchiveError, ToolsError) as exc:
        readable.fail(str(archive_path), str(exc))
        result.skip_rest("the backup cannot be read (see backup.readable)")
        return
    _restore_and_verify(plan, result, archive, tools, live, dump_seconds)


def _dump(plan: Plan, live: Any, live_conninfo: str | None, live_error: str | None,
          workdir: Path):
    from pytest_mlflowdb.backup.dump import dump_live, dump_source

    if live is None or live_conninfo is None:
        raise ToolsError(live_error or "the live target is unreachable")
    source = dump_source(live, plan.dump_uri)
    major = live.preflight.major
    tools = find_tools(major, f"the live server is PostgreSQL {live.preflight.server_version}"
                       "; an older pg_dump refuses it", plan.pg_bin, ("pg_dump",), major)
    try:
        size = int(live.value("SELECT pg_database_size(current_database())") or 0)
    except (DatabaseError, psycopg.Error):
        size = 0
    return dump_live(source, tools, workdir, plan.lock_timeout, keepalives(plan),
                     timeout=plan.bound(size, DATABASE_RATE))


def keepalives(plan: Plan) -> dict[str, str]:
    """libpq's TCP keepalives and tcp_user_timeout for a child's connection: the audit's
    own (see pytest_mlflowdb.db.deadline), so a dead link ends it as it ends the audit."""
    from pytest_mlflowdb.db.deadline import reply_deadline, tcp_options

    return {k: str(v) for k, v in tcp_options(reply_deadline(plan.statement_timeout)).items()}


def _janitor(plan: Plan, live: Any, major: int | None):
    """The scratch server's janitor (a throwaway server of PostgreSQL ``major`` when this
    machine has its binaries); RuntimeError (one line) when there is none or the scratch
    URI points at the audited database."""
    from pytest_mlflowdb.servers import ServerError
    from pytest_mlflowdb.servers.janitor import Janitor

    if plan.scratch is None:
        janitor = Janitor(plan.server_kind, plan.pg_bin, major=major)
        try:
            janitor.server()
        except ServerError as exc:
            janitor.close()
            raise RuntimeError(f"no scratch server: {exc}; or give --mlflowdb-scratch-uri") \
                from None
        return janitor
    janitor = Janitor.existing(plan.scratch.conninfo)
    try:
        from pytest_mlflowdb.backup.scratch import refuse_audited

        refuse_audited(janitor, plan.scratch, live)
    except BaseException:
        janitor.close()
        raise
    return janitor


def _restore_and_verify(plan: Plan, result: Result, archive: Archive, tools: ClientTools,
                        live: Any, dump_seconds: float | None) -> None:
    from pytest_mlflowdb.servers.restore import RestoreError, default_jobs, restore

    findings = result.findings
    live_major = live.preflight.major if live is not None else None
    # the live server's major, unless no pg_restore that reads the archive can restore
    # into it (see tools.py): then the archive's
    wanted = max(live_major or major_of(archive.dumped_from), archive.needed_major) or None
    try:
        janitor = _janitor(plan, live, wanted)
    except RuntimeError as exc:
        findings[RESTORE].fail("scratch", str(exc))
        _read_alone(result, archive, tools, plan.bound(archive.size))
        result.skip_rest("not restored (see backup.restore)")
        return
    copy_db = None
    try:
        server = janitor.server()
        try:
            swept = janitor.sweep_leftovers()
            started = time.perf_counter()
            uri = janitor.scratch()
        except psycopg.Error as exc:
            line = first_line(exc)
            findings[RESTORE].fail("scratch", f"cannot make a scratch database on "
                                   f"{server.description or server.kind}: {line}")
            _read_alone(result, archive, tools, plan.bound(archive.size))
            result.skip_rest("not restored (see backup.restore)")
            return
        name = _dbname(uri)
        version = _version(server)
        where = server.description or server.kind
        if version and version not in where:
            where = f"PostgreSQL {version} ({where})"
        if live_major and version and major_of(version) != live_major:
            result.note = (f"restored on PostgreSQL {major_of(version)} (the live server is "
                           f"{live_major}): timings and locks may differ")
        if version:  # the tools of the scratch server's major, when they read the archive
            try:
                tools = _restore_tools(plan, archive, tools, version)
            except ToolsError as exc:
                findings[RESTORE].fail(name, f"cannot restore into {where}: {exc}")
                _read_alone(result, archive, tools, plan.bound(archive.size))
                result.skip_rest("not restored (see backup.restore)")
                return
        try:
            done = restore(archive, tools, child_connection(uri, extra=keepalives(plan)),
                           plan.jobs or default_jobs(), plan.bound(archive.size))
        except RestoreError as exc:
            findings[RESTORE].fail(name, f"did not restore: {exc}{_hint(archive, version)}")
            _read_alone(result, archive, tools, plan.bound(archive.size))
            result.skip_rest("not restored (see backup.restore)")
            return
        findings[READABLE].ok(str(archive.path), f"{archive.describe()}: read end to end "
                              "(the restore loaded every data block)", archive.size)
        neutral = (f"; {done.neutralised} ownership/privilege statement(s) left out"
                   if done.neutralised else "")
        findings[RESTORE].ok(name, f"restored into scratch database {name} on {where} in "
                             f"{done.seconds:.1f}s with {done.how}{neutral}",
                             round(done.seconds, 3))
        if swept:
            findings[RESTORE].ok("scratch", f"removed {len(swept)} leftover scratch "
                                   f"database(s) of an interrupted run: {', '.join(swept)}",
                                   len(swept))
        verify_started = time.perf_counter()
        try:
            copy_db = _open_copy(uri)
            _verify(plan, result, copy_db, live, archive, dump_seconds is not None)
        except (DatabaseError, psycopg.Error) as exc:
            line = first_line(exc)
            findings[SCHEMA].fail(name, f"the restored copy could not be verified: {line}")
            result.skip_rest("the restored copy could not be verified (see backup.schema)")
            return
        verified = time.perf_counter()
        verdicts.rto_findings(findings[RTO], name, verified - started, done.seconds,
                              verified - verify_started, done.how, plan.max_restore_time,
                              plan.limit_texts[1], archive.size, dump_seconds)
        if plan.rehearsal:
            copy_db.close()
            _rehearse(result, uri)
    finally:
        if copy_db is not None:
            copy_db.close()
        janitor.close()


def _restore_tools(plan: Plan, archive: Archive, found: ClientTools,
                   version: str) -> ClientTools:
    """The tools that read the archive and restore into a PostgreSQL ``version``: of its
    major when at hand; a pg_restore newer than the server accepts never (plain SQL goes
    through psql, which has no such limit). ToolsError says which versions it needs."""
    major = major_of(version)
    newest = None if archive.format in (PLAIN, PLAIN_GZ) else newest_restore_for(major)
    if newest is None and found.major == major:
        return found
    why = (f"the archive was made by pg_dump {archive.dumped_by}" if archive.dumped_by
           else "")
    try:
        return find_tools(archive.needed_major, why, plan.pg_bin, prefer=major,
                          newest=newest, newest_why=f"the scratch server is PostgreSQL "
                          f"{version}: a newer pg_restore sets transaction_timeout, which "
                          "it refuses")
    except ToolsError:
        if newest is None:
            return found  # the ones found before still read it
        raise


def _dbname(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(conninfo).get("dbname") or "")


def _version(server: Any) -> str:
    """The scratch server's version ('15.18'), '' when it cannot be read."""
    try:
        with server.admin() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]
    except Exception:  # a courtesy for the messages: none when it cannot be had
        return ""


def _hint(archive: Archive, version: str) -> str:
    """Why a restore may fail that the error does not say: an older scratch server."""
    if version and archive.dumped_from and major_of(version) < major_of(archive.dumped_from):
        return (f" (the scratch server is PostgreSQL {version}, older than the dumped "
                f"server's {archive.dumped_from})")
    return ""


def _read_alone(result: Result, archive: Archive, tools: ClientTools, timeout: float) -> None:
    """Read the archive through on its own: backup.readable's answer without a restore."""
    try:
        read_through(archive, tools, timeout)
    except ArchiveError as exc:
        result.findings[READABLE].fail(str(archive.path), f"{archive.describe()}: {exc}")
        return
    how = "read to the end" if archive.format.startswith("plain") else \
        "pg_restore -f /dev/null read every data block"
    result.findings[READABLE].ok(str(archive.path), f"{archive.describe()}: {how}",
                                 archive.size)


def _open_copy(uri: str):
    """A read-only session on the copy whose search_path leads to MLflow's tables: a dump
    does not carry the source's ``ALTER DATABASE/ROLE ... SET search_path``, so tables in
    a schema of their own are looked for where they are."""
    from urllib.parse import quote

    from pytest_mlflowdb.config.targets import parse_target
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.probes.mlflow import mlflow_facts

    def open_session(address: str) -> Database:
        return Database(parse_target(address), statement_timeout=COPY_STATEMENT_TIMEOUT,
                        lock_timeout=COPY_STATEMENT_TIMEOUT).connect()

    copy_db = open_session(uri)
    facts = mlflow_facts(copy_db)
    if facts.schema is None and len(facts.elsewhere) == 1:
        copy_db.close()
        option = quote(f"-csearch_path={facts.elsewhere[0]}", safe="")
        copy_db = open_session(f"{uri}{'&' if '?' in uri else '?'}options={option}")
    return copy_db


def _verify(plan: Plan, result: Result, copy_db: Any, live: Any, archive: Archive,
            fresh_dump: bool) -> None:
    from pytest_mlflowdb.backup.copy import exact_counts, kinship, live_estimates, newest
    from pytest_mlflowdb.probes.mlflow import mlflow_facts

    findings = result.findings
    live_facts = mlflow_facts(live) if live is not None else None
    live_schema = live_facts.schema if live_facts else None
    reason = verdicts.schema_findings(findings[SCHEMA], copy_db,
                                      live_facts.revision if live_facts else None)
    if reason:
        result.skips[SCHEMA] = reason
    copy_schema = mlflow_facts(copy_db).schema
    if live_schema and copy_schema and not fresh_dump:  # a dump of the live target is its
        kin = kinship(copy_db, copy_schema, live, live_schema)
        if kin is not None and kin.foreign:
            source = f"{archive.path.name} (" + (f"a dump of database {archive.dumped_db}"
                                                 if archive.dumped_db else "a dump")
            source += f" on PostgreSQL {archive.dumped_from})" if archive.dumped_from else ")"
            verdicts.foreign_findings(findings[COMPLETE], kin, source, live.target.id)
            result.skips[FRESHNESS] = ("the copy is not of the audited database (see "
                                       "backup.complete): its data says nothing of what a "
                                       "restore would lose")
            return
    if live_schema is None:
        why = ("the live target is unreachable" if live is None
               else "the live target has no MLflow schema this role can see")
        result.skips[COMPLETE] = f"nothing to compare the copy with: {why}"
    else:
        estimates = live_estimates(live, live_schema, sorted(load_catalog().mlflow_tables()))
        counts = exact_counts(copy_db, copy_schema, sorted(estimates)) if copy_schema else {}
        verdicts.complete_findings(findings[COMPLETE], live_schema, counts, estimates,
                                   plan.row_tolerance)
    copy_newest = newest(copy_db, copy_schema) if copy_schema else []
    live_newest = newest(live, live_schema) if live_schema else None
    now = datetime.datetime.now(datetime.timezone.utc)
    reason = verdicts.freshness_findings(findings[FRESHNESS], live_schema or "public",
                                         copy_newest, live_newest, archive.modified, now,
                                         plan.max_backup_age, plan.limit_texts[0],
                                         fresh_dump)
    if live_newest is None and findings[FRESHNESS].severity != "failure":
        reason = "no live MLflow schema to compare the copy's newest data with"
    if reason:
        result.skips[FRESHNESS] = reason


def _rehearse(result: Result, uri: str) -> None:
    from pytest_mlflowdb.backup import rehearsal

    findings = result.findings[UPGRADE]
    try:
        answer = rehearsal.rehearse(uri)
    except rehearsal.RehearsalUnavailable as exc:
        findings.fail("upgrade", f"cannot rehearse the upgrade: {exc}")
        return
    verdicts.upgrade_findings(findings, answer)
