"""``pg_dump -Fc`` of the live target, for ``--mlflowdb-restore-test``.

The audited database is production: the dump runs read-only (``PGOPTIONS -c
default_transaction_read_only=on``; pg_dump's own transaction is ``REPEATABLE READ, READ
ONLY``, one consistent snapshot since it runs as one process), waits for its table locks
no longer than the audit's ``lock_timeout`` (``--lock-wait-timeout``), and keeps TCP
keepalives so a dead network ends it, within a wall-clock bound. Never through a
transaction pooler (:func:`dump_source`). The password reaches it through ``PGPASSWORD`` in
its environment only, never a command line, and no message repeats it. The file is
owner-only (0600) from its first byte: it is a copy of the live database.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from pytest_mlflowdb.servers.tools import (
    ClientTools,
    Overran,
    child_connection,
    last_error,
    run_bounded,
)
from pytest_mlflowdb.text import first_line


class DumpError(RuntimeError):
    """pg_dump failed; the message is one line without secrets."""


@dataclass(frozen=True)
class Dumped:
    path: Path
    seconds: float


def dump_live(conninfo: str, tools: ClientTools, folder: Path, lock_timeout: float,
              keepalives: dict[str, str], timeout: float) -> Dumped:
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
        done = run_bounded(command, target.env, timeout)
    except Overran as exc:
        raise DumpError(f"pg_dump of the live target was {exc}, longer than "
                        "backup_step_timeout allows (the live server or the network stopped "
                        "answering?)") from None
    if done.returncode != 0:
        error = last_error(done.stderr)
        hint = ("; a connection pooler in front of the server? give --mlflowdb-dump-uri a "
                "direct connection" if "startup parameter" in error else "")
        raise DumpError(f"pg_dump of the live target failed: {error}{hint}")
    return Dumped(path, time.perf_counter() - started)


def pooled(db: Any) -> bool:
    """Whether a transaction (or statement) pooler hands ``db``'s session's server
    connection to other clients between transactions.

    Told by which server process answers, in three short read-only transactions: without
    a pooler a client connection has one backend for its life, and two client connections
    never share one. Behind a transaction pooler the session's consecutive transactions
    may each land on another server connection (a rotating pool), and a second client
    connection gets the very one the first just released (pgbouncer hands out the most
    recently used; a pool of one has no other): either is impossible without a pooler.
    Two transactions alone would miss a pool of one; the port would take a TCP proxy or a
    load balancer (another port, no pooling) for a pooler and miss a pooler on the
    server's port; pgbouncer's SHOW commands answer on its admin console only. A session
    pooler keeps a server connection per client: safe for pg_dump, and not told here.
    """
    from pytest_mlflowdb.db.database import Database

    # fresh: the activity area's collection read the same statement, and its answer
    # then is not which backend answers now
    first = db.value("SELECT pg_backend_pid()", fresh=True)
    other = Database(db.target, connect_timeout=db.connect_timeout,
                     statement_timeout=db.statement_timeout,
                     lock_timeout=db.lock_timeout).connect()
    try:
        theirs = other.value("SELECT pg_backend_pid()", fresh=True)
    finally:
        other.close()
    return theirs == first or db.value("SELECT pg_backend_pid()", fresh=True) != first


def dump_source(live: Any, dump_uri: Any) -> str:
    """The connection pg_dump may use: ``--mlflowdb-dump-uri`` (a direct connection to the
    audited database, never pooled), else the live target's unless a transaction pooler
    is in front of it. pg_dump sets session state outside any transaction (search_path
    '', statement_timeout 0, row_security, prepared statements): behind such a pooler it
    stays on server connections that MLflow gets next. DumpError (one line) otherwise."""
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.db.errors import DatabaseError

    if dump_uri is None:
        try:
            through_pooler = pooled(live)
        except (DatabaseError, psycopg.Error) as exc:
            line = first_line(exc)
            raise DumpError(f"cannot tell whether a connection pooler is in front of "
                            f"{live.target.id}: {live.target.scrub(line)}") from None
        if through_pooler:
            raise DumpError(
                f"refused to run pg_dump through a connection pooler: {live.target.id} hands "
                "its server connections to other clients between transactions, and "
                "pg_dump's session settings (search_path '', statement_timeout, prepared "
                "statements) would stay on the ones MLflow gets next; give "
                "--mlflowdb-dump-uri a direct connection to the server")
        return str(live.target.conninfo)
    direct = Database(dump_uri, connect_timeout=live.connect_timeout,
                      statement_timeout=live.statement_timeout, lock_timeout=live.lock_timeout)
    try:
        direct.connect()
        if pooled(direct):
            raise DumpError(f"refused: --mlflowdb-dump-uri {dump_uri.id} goes through a "
                            "connection pooler too; give a direct connection to the server")
        _same_database(direct, live, dump_uri)
    except (DatabaseError, psycopg.Error) as exc:
        line = first_line(exc)
        raise DumpError(f"cannot use --mlflowdb-dump-uri {dump_uri.id}: "
                        f"{dump_uri.scrub(line)}") from None
    finally:
        direct.close()
    return str(dump_uri.conninfo)


def _same_database(direct: Any, live: Any, dump_uri: Any) -> None:
    """DumpError unless ``direct`` reaches the audited database (the same database of the
    same cluster, a standby of it included: the system identifier is the primary's)."""
    from pytest_mlflowdb.backup.scratch import identical

    same_server, _ = identical(direct.row, live.row)
    mine = direct.value("SELECT current_database()")
    if not same_server or mine != live.value("SELECT current_database()"):
        where = "another server" if not same_server else f"database {mine}"
        raise DumpError(f"refused: --mlflowdb-dump-uri {dump_uri.id} is not the audited "
                        f"database {live.target.id} ({where}); pg_dump must dump the "
                        "database the checks compare the copy with")
