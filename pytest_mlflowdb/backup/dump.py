"""``pg_dump -Fc`` of the live target, for ``--mlflowdb-restore-test``.

The audited database is production: the dump runs read-only (``PGOPTIONS -c
default_transaction_read_only=on``; pg_dump's own transaction is ``REPEATABLE READ, READ
ONLY``, one consistent snapshot since it runs as one process), waits for its table locks
no longer than the audit's ``lock_timeout`` (``--lock-wait-timeout``), and keeps TCP
keepalives so a dead network ends it. The password reaches it through ``PGPASSWORD`` in
its environment only, never a command line, and no message repeats it. The file is
owner-only (0600) from its first byte: it is a copy of the live database.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .tools import ClientTools, child_connection, last_error


class DumpError(RuntimeError):
    """pg_dump failed; the message is one line without secrets."""


@dataclass(frozen=True)
class Dumped:
    path: Path
    seconds: float


def dump_live(conninfo: str, tools: ClientTools, folder: Path, lock_timeout: float,
              keepalives: dict[str, str], timeout: float | None = None) -> Dumped:
    """Dump the database ``conninfo`` names into ``folder/live.dump`` (custom format)."""
    target = child_connection(
        conninfo, extra={"application_name": "pytest-mlflowdb", **keepalives},
        pgoptions="-c default_transaction_read_only=on")
    path = folder / "live.dump"
    command = [tools.path("pg_dump"), "-Fc", "--no-sync",
               f"--lock-wait-timeout={max(1, round(lock_timeout * 1000))}",
               "-f", str(path), "-d", target.dsn]
    # a copy of the live database: owner-only from its first byte (pg_dump keeps the mode)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(path, 0o600)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, env=target.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DumpError(f"pg_dump took longer than {timeout:g}s") from None
    if done.returncode != 0:
        raise DumpError(f"pg_dump of the live target failed: {last_error(done.stderr)}")
    return Dumped(path, time.perf_counter() - started)
