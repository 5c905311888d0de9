"""Scratch safety: a scratch server the user gives must not be the audited database.

Refused when it is the same server AND the same database. Host names are no help
(``localhost``, ``127.0.0.1``, a Unix socket folder, a DNS alias and a proxy all reach
one server), so the server is told by what it says of itself:

* PostgreSQL's system identifier (``pg_control_system()``: the same for every database
  of a cluster, different for every cluster) when both sides can read it;
* else facts any role can read, compared side by side: whether the scratch session's
  backend (its pid and start) is among the audited server's backends
  (``pg_stat_activity`` lists every backend's pid to every role), the postmaster's start
  time, ``inet_server_port()``, ``data_directory`` (where readable) and the database's
  OID. Any that differs proves another server; the scratch backend seen from the audited
  session proves the same one.

When nothing proves it is another server, it is refused: a superuser session would
otherwise create, restore into and drop databases on the audited server. A scratch URI
naming another database of the audited server is allowed (scratch databases are made
beside it and dropped), and said so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_mlflowdb.text import first_line

_SYSTEM = "SELECT system_identifier AS v FROM pg_control_system()"
#: facts the same server shows every session alike (None where a side cannot read one)
_FACTS = {
    "postmaster start time": "SELECT pg_postmaster_start_time()::text AS v",
    "port": "SELECT inet_server_port() AS v",
    "data directory": "SELECT current_setting('data_directory') AS v",
    "database OID": "SELECT oid::bigint AS v FROM pg_database WHERE datname = current_database()",
}
_ME = ("SELECT pg_backend_pid() AS pid, (SELECT backend_start::text FROM pg_stat_activity "
       "WHERE pid = pg_backend_pid()) AS started")
_SEEN = ("SELECT count(*) AS v FROM pg_stat_activity WHERE pid = %s AND (backend_start IS "
         "NULL OR backend_start::text = %s)")
_ALL_SEEN = "SELECT count(*) AS v FROM pg_stat_activity WHERE pid = pg_backend_pid()"


def _value(run: Callable[..., Any], query: str, *params: Any) -> Any:
    """The query's one value, or None when this role may not run it (revoked, not a
    superuser) or there is none."""
    try:
        row = run(query, *params)
    except Exception:  # permission denied, an unknown function: the fact is not known
        return None
    return None if row is None else row.get("v")


def identical(scratch: Callable[..., Any], live: Callable[..., Any]) -> tuple[bool, str]:
    """(same server, how it was told). ``scratch``/``live`` run a query (with params) on
    each side and return its first row as a dict or None. Same unless proven other."""
    mine, theirs = _value(scratch, _SYSTEM), _value(live, _SYSTEM)
    if mine is not None and theirs is not None:
        return mine == theirs, f"system identifier {mine}"
    for name, query in _FACTS.items():
        a, b = _value(scratch, query), _value(live, query)
        if a is not None and b is not None and str(a) != str(b):
            return False, f"{name} {a} against {b}"
    try:
        me = scratch(_ME) or {}
    except Exception:  # pg_stat_activity revoked: nothing told
        me = {}
    if me.get("pid") is not None and _value(live, _ALL_SEEN):  # the live side sees itself
        seen = _value(live, _SEEN, (me["pid"], me.get("started") or ""))
        if seen == 0:
            return False, "the scratch session is not among the audited server's sessions"
        if seen:
            return True, "the scratch session is among the audited server's sessions"
    return True, ("nothing this role can read tells them apart (no system identifier, "
                  "postmaster start time, port, data directory, database OID or session "
                  "list differs)")


def refuse_audited(janitor: Any, scratch: Any, live: Any) -> None:
    """RuntimeError (one line) when ``scratch`` points at the audited database ``live``,
    or when that cannot be ruled out."""
    import psycopg

    server = janitor.server()
    try:
        conn = server.admin()
    except psycopg.Error as exc:
        line = first_line(exc)
        raise RuntimeError(f"no scratch server: cannot connect to --mlflowdb-scratch-uri "
                           f"{scratch.id}: {scratch.scrub(line)}") from None
    with conn:
        def on_scratch(query: str, params: Any = None) -> dict[str, Any] | None:
            cur = conn.execute(query, params)
            row = cur.fetchone()
            names = [c.name for c in cur.description or ()]
            return None if row is None else dict(zip(names, row, strict=True))

        if live is None:
            return
        mine = on_scratch("SELECT current_database() AS db") or {}
        theirs = live.row("SELECT current_database() AS db") or {}
        if mine.get("db") != theirs.get("db"):
            return
        same, how = identical(on_scratch, lambda q, p=None: live.row(q, p))
    if same:
        raise RuntimeError(f"refused: --mlflowdb-scratch-uri {scratch.id} is the audited "
                           f"database itself, or cannot be told from it (same database "
                           f"{mine['db']}; {how}); give a scratch server or another "
                           "database")
