"""What every throwaway server offers, whoever provides it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

SCRATCH_PREFIX = "mlflowdb_scratch_"

#: The password of every server this process started, also stopped ones: a throwaway
#: server's password is a secret like any other (its URI opens a superuser session), and
#: output printed after the server is gone must not show it either.
_PASSWORDS: set[str] = set()


def server_secrets() -> tuple[str, ...]:
    """The passwords of every throwaway server started in this process, for scrubbing."""
    return tuple(sorted(_PASSWORDS))


class ServerError(RuntimeError):
    """A throwaway server could not be started; the message says what was tried and why."""


@dataclass
class Server:
    """A running throwaway PostgreSQL server reachable over TCP with a superuser."""

    kind: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # a traceback's locals show the server's repr
    bin_dir: Path | None = None
    description: str = ""
    workdir: Path | None = None
    _stop: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.password:
            _PASSWORDS.add(self.password)

    def uri(self, dbname: str = "postgres") -> str:
        """A libpq URI for ``dbname`` on this server (with the password: handle with care)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def admin(self):
        """An autocommit superuser connection to the ``postgres`` database (not read-only)."""
        import psycopg

        return psycopg.connect(self.uri("postgres"), autocommit=True, connect_timeout=10)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally from ``template``) and return its URI."""
        from psycopg import sql

        _check_name(name)
        with self.admin() as conn:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                _check_name(template)
                query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            conn.execute(query)
        return self.uri(name)

    def drop_database(self, name: str, force: bool = True) -> None:
        """Drop ``name`` when it exists; ``force`` ends its sessions first, without it
        a database someone is connected to stays (psycopg.Error)."""
        from psycopg import sql

        _check_name(name)
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(
                sql.Identifier(name), sql.SQL(" WITH (FORCE)" if force else "")))

    def stop(self) -> None:
        stop = self._stop
        self._stop = None
        if callable(stop):
            stop()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"database name {name!r} must be a plain identifier")
