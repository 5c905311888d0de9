"""Loading a dump into a scratch database, timed, with every error a failure.

``pg_restore`` continues past errors and exits 1 ("errors ignored on restore: N"): teams
that treat exit 1 as harmless ship partial restores, so any non-zero exit fails here, and
``--exit-on-error`` stops at the first one. Roles and grants of the source server do not
exist on a scratch server and must not block a restore: ``--no-owner --no-privileges``
for archives, and for plain SQL (which ``psql`` runs, ``ON_ERROR_STOP=1``) the ownership,
privilege and session-authorization statements are left out as the file streams through.
Custom and directory archives restore with ``-j N`` (the formats that allow it).

This is the one restorer: the backup checks load the live dump or the given backup with
it, and :meth:`pytest_mlflowdb.servers.janitor.Janitor.restore` any dump a test hands it
(:func:`restore_file`).
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_mlflowdb.servers.archive import (
    PARALLEL,
    PLAIN,
    PLAIN_GZ,
    Archive,
    ArchiveError,
    inspect,
    plain_lines,
)
from pytest_mlflowdb.servers.tools import (
    ChildConnection,
    ClientTools,
    Overran,
    child_connection,
    last_error,
    run_bounded,
    start,
    stop,
)

#: statements of a plain dump that need the source server's roles (one line each in
#: pg_dump's output, outside COPY data)
_NEUTRALISED = re.compile(
    rb"^(ALTER [A-Z ]+ .* OWNER TO .*;|GRANT .*;|REVOKE .*;|SET SESSION AUTHORIZATION .*;|"
    rb"RESET SESSION AUTHORIZATION;|ALTER DEFAULT PRIVILEGES .*;|SET ROLE .*;)\s*$")
_COPY = re.compile(rb"^COPY .* FROM stdin;\s*$")


_PAST = ("longer than backup_step_timeout allows (the scratch server or the network "
         "stopped answering?)")


class RestoreError(RuntimeError):
    """The dump did not restore; the message is one line."""


@dataclass(frozen=True)
class Restored:
    """How the restore went: its wall time, the command's shape and parallelism."""

    seconds: float
    jobs: int
    how: str
    #: statements left out of a plain dump (ownership, privileges)
    neutralised: int = 0


def default_jobs() -> int:
    """Parallel restore jobs: one per core, at least 2, at most 8."""
    return max(2, min(8, os.cpu_count() or 2))


def restore(archive: Archive, tools: ClientTools, target: ChildConnection, jobs: int,
            timeout: float, complete: bool = True) -> Restored:
    """Load ``archive`` into the (empty) database ``target`` names; RestoreError if any
    statement fails, or if a plain dump that must be ``complete`` lacks pg_dump's closing
    line."""
    started = time.perf_counter()
    if archive.format in (PLAIN, PLAIN_GZ):
        neutralised = _psql(archive, tools, target, timeout, complete)
        return Restored(time.perf_counter() - started, 1, "psql -v ON_ERROR_STOP=1",
                        neutralised)
    jobs = jobs if archive.format in PARALLEL else 1
    command = [tools.path("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
               "--no-subscriptions", "-d", target.dsn]
    if jobs > 1:
        command += ["-j", str(jobs)]
    try:
        done = run_bounded(command + [str(archive.path)], target.env, timeout)
    except Overran as exc:
        raise RestoreError(f"pg_restore was {exc}, {_PAST}") from None
    if done.returncode != 0:
        raise RestoreError(f"pg_restore exit {done.returncode}: {last_error(done.stderr)}")
    how = "pg_restore --no-owner --no-privileges --exit-on-error" + (
        f" -j {jobs}" if jobs > 1 else "")
    return Restored(time.perf_counter() - started, jobs, how)


def restore_file(path: Path, bin_dir: Path, conninfo: str, timeout: float) -> Restored:
    """:func:`restore` of the dump at ``path`` into the database of ``conninfo``, with the
    client tools in ``bin_dir``: any pg_dump archive, or a plain SQL file whoever wrote it
    (run to its end as it is, no closing line required)."""
    try:
        archive = inspect(path)
    except ArchiveError as exc:
        if not path.is_file():
            raise RestoreError(str(exc)) from None
        archive = Archive(path, PLAIN, path.stat().st_size,
                          datetime.datetime.now(datetime.timezone.utc))
    tools = ClientTools(bin_dir, "", "the server's own")
    return restore(archive, tools, child_connection(conninfo), 1, timeout, complete=False)


def _psql(archive: Archive, tools: ClientTools, target: ChildConnection,
          timeout: float, complete: bool) -> int:
    """Stream a plain dump through psql, ownership and privileges left out; the count of
    statements left out."""
    command = [tools.path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.dsn,
               "-f", "-"]
    process = start(command, target.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
    # psql may block (a frozen network), and so would writing to it: stopped on time
    watchdog = threading.Timer(timeout, stop, (process,))
    watchdog.daemon = True
    watchdog.start()
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()  # type: ignore[union-attr]
                                                           or b""), daemon=True)
    reader.start()
    neutralised = 0
    problem: str | None = None
    in_copy = False
    deadline = time.monotonic() + timeout
    assert process.stdin is not None
    try:
        for line in plain_lines(archive, complete):
            if in_copy:
                in_copy = line.rstrip(b"\r\n") != b"\\."
            elif _COPY.match(line):
                in_copy = True
            elif _NEUTRALISED.match(line):
                neutralised += 1
                continue
            process.stdin.write(line)
    except ArchiveError as exc:
        problem = f"{exc}"
    except BrokenPipeError:
        pass  # psql stopped at an error (its message says which), or was stopped
    except BaseException:
        watchdog.cancel()
        stop(process)
        raise
    if problem:
        stop(process)
    try:
        process.stdin.close()
    except BrokenPipeError:
        pass
    try:
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        stop(process)
        code = process.returncode
    watchdog.cancel()
    reader.join(5)
    if time.monotonic() >= deadline and not problem and code != 0:
        raise RestoreError(f"psql was stopped after {timeout:g}s, {_PAST}")
    if problem:
        raise RestoreError(problem)
    if code != 0:
        stderr = b"".join(errors).decode("utf-8", "replace")
        raise RestoreError(f"psql exit {code}: {last_error(stderr)}")
    return neutralised
