"""Scratch safety: a scratch server the user gives must not be the audited database.

Refused when it is the same server AND the same database. The same server is told by
PostgreSQL's system identifier (``pg_control_system()``, the same for every database of a
cluster, different for every cluster, whatever address it is reached by) when both can be
read, else by host and port. A scratch URI naming another database of the audited server
is allowed (scratch databases are made beside it and dropped), and said so.
"""

from __future__ import annotations

from typing import Any

_IDENTITY = ("SELECT current_database() AS db, inet_server_port() AS port, "
             "(SELECT system_identifier FROM pg_control_system()) AS system")


def _identity(run: Any) -> dict[str, Any]:
    try:
        return dict(run(_IDENTITY))
    except Exception:  # pg_control_system() may be revoked: fall back to host and port
        return dict(run("SELECT current_database() AS db, inet_server_port() AS port, "
                        "NULL::bigint AS system"))


def refuse_audited(janitor: Any, scratch: Any, live: Any) -> None:
    """RuntimeError (one line) when ``scratch`` points at the audited database ``live``."""
    import psycopg

    server = janitor.server()
    try:
        with server.admin() as conn:
            def fetch(query: str) -> dict[str, Any]:
                row = conn.execute(query).fetchone()
                return dict(zip(("db", "port", "system"), row or (None, None, None), strict=True))

            mine = _identity(fetch)
    except psycopg.Error as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RuntimeError(f"no scratch server: cannot connect to --mlflowdb-scratch-uri "
                           f"{scratch.id}: {scratch.scrub(line)}") from None
    if live is None:
        return
    theirs = _identity(lambda q: live.row(q))
    pre = live.preflight
    if mine["system"] is not None and theirs["system"] is not None:
        same_server = mine["system"] == theirs["system"]
        how = f"system identifier {mine['system']}"
    else:
        same_server = (server.host in (pre.host, pre.hostaddr)
                       and int(mine["port"] or server.port) == int(pre.port))
        how = f"host {server.host} port {server.port}"
    if same_server and mine["db"] == theirs["db"]:
        raise RuntimeError(f"refused: --mlflowdb-scratch-uri {scratch.id} is the audited "
                           f"database itself (same server: {how}; same database "
                           f"{mine['db']}); give a scratch server or another database")
