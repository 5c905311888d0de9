"""The one owner of throwaway servers and scratch databases.

A :class:`Janitor` starts a throwaway server on first use, makes scratch databases on it
(from a template made once per MLflow revision, then copied, or loaded from a dump for a
restore test), drops them and stops the
server when closed, and sweeps leftovers: every database whose name starts with
:data:`SCRATCH_PREFIX`. The plugin holds one per run behind yield fixtures
(``mlflowdb_server``, ``mlflowdb_database_factory``); the audit's ``--mlflowdb-ephemeral``
server is started through one as well. :meth:`Janitor.existing` works on a server the user
gives (``--mlflowdb-scratch-uri``, for restore tests): it never stops that server, and
sweeps only scratch databases no session holds, so runs sharing it do not collide.
"""

from __future__ import annotations

import atexit
import itertools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mlflowdb.catalog.mlflow_schema import MIGRATIONS, check_source
from pytest_mlflowdb.servers.base import SCRATCH_PREFIX, Server, ServerError

#: application_name of the connection that holds a scratch database while it is in use
HOLDER = "pytest-mlflowdb scratch holder"
#: random bytes in the name of a scratch database of :meth:`Janitor.scratch`
_TOKEN_BYTES = 6


@dataclass
class ExistingServer(Server):
    """A server the user gave (``--mlflowdb-scratch-uri``): used, never started or stopped.

    ``conninfo`` is the URI as given (its database is where we connect to create and drop
    scratch databases); :meth:`uri` gives the same connection with another database.
    """

    conninfo: str = field(default="", repr=False)

    @classmethod
    def from_conninfo(cls, conninfo: str) -> ExistingServer:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(conninfo)
        return cls(kind="existing", host=str(params.get("host") or "local socket"),
                   port=int(str(params.get("port") or 5432).split(",")[0]),
                   user=str(params.get("user") or ""),
                   password=str(params.get("password") or ""),
                   description="the server of --mlflowdb-scratch-uri", conninfo=conninfo)

    def uri(self, dbname: str | None = None) -> str:
        """The given connection as a ``postgresql://`` URI (what MLflow and SQLAlchemy
        take), to ``dbname`` (default: the one it names); other parameters in the query."""
        from urllib.parse import quote, urlencode

        from psycopg.conninfo import conninfo_to_dict

        params = {k: str(v) for k, v in conninfo_to_dict(self.conninfo).items()
                  if v is not None}
        user, password = params.pop("user", ""), params.pop("password", "")
        host, port = params.pop("host", ""), params.pop("port", "")
        name = dbname if dbname is not None else params.pop("dbname", "")
        params.pop("dbname", None)
        if host.startswith("/"):  # a Unix socket folder cannot stand in the authority
            params["host"], host = host, ""
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        query = f"?{urlencode(params)}" if params else ""
        return (f"postgresql://{auth}{'@' if auth else ''}{host}{':' + port if port else ''}"
                f"/{quote(name, safe='')}{query}")

    def admin(self):
        import psycopg

        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10,
                               application_name="pytest-mlflowdb")


class Janitor:
    """Throwaway servers and scratch databases of one run, and their cleanup."""

    def __init__(self, kind: str = "auto", pg_bin: Path | None = None,
                 settings: Mapping[str, str] | None = None, major: int | None = None) -> None:
        self.kind = kind
        self.pg_bin = pg_bin
        self.settings = dict(settings or {})
        #: the PostgreSQL major preferred for the server (see start_server)
        self.major = major
        self._server: Server | None = None
        self._made: list[str] = []
        self._templates: dict[tuple[str, str], str] = {}
        self._counter = itertools.count(1)
        #: the connection that holds each scratch database of :meth:`scratch` in use
        self._holders: dict[str, Any] = {}
        #: whether SIGTERM is turned into KeyboardInterrupt for this janitor's server
        self._holding = False

    @classmethod
    def existing(cls, conninfo: str) -> Janitor:
        """A janitor on a server the user gave: it makes and drops scratch databases there
        and sweeps leftovers no one holds, but never stops the server."""
        janitor = cls("existing")
        janitor._server = ExistingServer.from_conninfo(conninfo)
        return janitor

    @property
    def started(self) -> bool:
        return self._server is not None

    def server(self) -> Server:
        """The run's throwaway server, started on first use (raises ServerError)."""
        if self._server is None:
            from pytest_mlflowdb.servers import leftovers, start_server

            leftovers.sweep()  # what a killed run left: its servers and dumps
            leftovers.hold()  # SIGTERM cleans up as SIGINT does, until close()
            try:
                self._server = start_server(self.kind, self.pg_bin, self.settings,
                                            self.major)
            except BaseException:
                leftovers.release()
                raise
            self._holding = True
            # a run whose end is cut short (an xdist worker whose controller is gone
            # fails in its session finish, and pytest then skips unconfigure) still
            # stops its server on the way out
            atexit.register(self.close)
        return self._server

    def create(self, mlflow: bool = True, revision: str = "heads",
               source: str = MIGRATIONS) -> str:
        """A fresh scratch database's URI; with ``mlflow`` it has MLflow's schema at
        ``revision``, made by MLflow's own migrations (or from the shipped catalog's DDL
        with ``source="catalog"``), once per revision in a template, then copied."""
        check_source(source)
        template = self._template(source, revision) if mlflow else None
        return self._create(f"{SCRATCH_PREFIX}{next(self._counter)}", template)

    def _template(self, source: str, revision: str) -> str:
        from pytest_mlflowdb.catalog.mlflow_schema import make_mlflow_schema

        if (source, revision) not in self._templates:
            name = f"{SCRATCH_PREFIX}tpl_{len(self._templates) + 1}"
            make_mlflow_schema(self._create(name, None), revision, source)
            self._templates[(source, revision)] = name
        return self._templates[(source, revision)]

    def _create(self, name: str, template: str | None) -> str:
        uri = self.server().create_database(name, template=template)
        self._made.append(name)
        return uri

    def restore(self, dump: Path, timeout: float = 600) -> str:
        """A fresh scratch database loaded from ``dump``: an archive of ``pg_dump
        -Fc``/``-Fd``/``-Ft`` or a plain SQL file, with the server's own client binaries
        and the backup area's restorer (every error fails it; ownership and privileges are
        left out). Raises ServerError when the load fails or there are no binaries."""
        from pytest_mlflowdb.servers.restore import RestoreError, restore_file

        server = self.server()
        if server.bin_dir is None:
            raise ServerError(f"cannot load a dump on a {server.kind} server: no client "
                              "binaries beside it")
        uri = self._create(f"{SCRATCH_PREFIX}{next(self._counter)}", None)
        try:
            restore_file(dump, server.bin_dir, uri, timeout)
        except RestoreError as exc:
            raise ServerError(f"loading {dump} failed: {exc}") from None
        return uri

    def scratch(self) -> str:
        """A fresh, empty scratch database (from ``template0``, as a restore wants) under a
        random name, held by a connection of its own until :meth:`drop` or :meth:`close`.

        The holder is what tells runs apart on a shared server: :meth:`sweep_leftovers`
        drops only scratch databases no session is connected to, i.e. those a killed run
        left, never one another run is restoring into.
        """
        import psycopg

        for attempt in range(3):
            name = f"{SCRATCH_PREFIX}{secrets.token_hex(_TOKEN_BYTES)}"
            uri = self._create(name, "template0")
            try:
                self._holders[name] = psycopg.connect(uri, autocommit=True,
                                                      connect_timeout=10,
                                                      application_name=HOLDER)
                return uri
            except psycopg.Error as exc:
                self.drop(name)
                # another run's sweep dropped it in the moment before its holder came
                if getattr(exc, "sqlstate", None) != "3D000" or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def drop(self, name: str) -> None:
        """Drop one scratch database made here (its holder first); quiet when gone."""
        holder = self._holders.pop(name, None)
        if holder is not None:
            try:
                holder.close()
            except Exception:  # a broken connection is closed anyway
                pass
        if name in self._made:
            self._made.remove(name)
        if self._server is not None:
            self._server.drop_database(name)

    def sweep_leftovers(self) -> list[str]:
        """Drop scratch databases of :meth:`scratch` that no session is connected to (a
        killed run's): safe on a server other runs use at the same time. Returns their
        names. Numbered databases and templates of :meth:`create` are left alone: they
        live on throwaway servers, gone with them, and a template has no session while
        it is in use."""
        if self._server is None:
            return []
        with self._server.admin() as conn:
            names = [row[0] for row in conn.execute(
                "SELECT d.datname FROM pg_database d WHERE d.datname ~ %s "
                "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname"
                " AND a.backend_type IS DISTINCT FROM 'autovacuum worker') ORDER BY 1",
                (f"^{SCRATCH_PREFIX}[0-9a-f]{{{2 * _TOKEN_BYTES}}}$",))]
        import psycopg

        swept = []
        for name in names:
            if name in self._made:
                continue
            try:  # not forced: a holder that came since keeps its database
                self._server.drop_database(name, force=False)
            except psycopg.Error:  # another role's, or just taken by a new session
                continue
            swept.append(name)
        return swept

    def drop_all(self) -> None:
        """Drop every scratch database made here, newest first (templates last)."""
        made, self._made = self._made, []
        self._templates.clear()
        for holder in self._holders.values():
            try:
                holder.close()
            except Exception:  # a broken connection is closed anyway
                pass
        self._holders.clear()
        if self._server is None:
            return
        for name in reversed(made):
            try:
                self._server.drop_database(name)
            except Exception:  # the server may already be gone; it is removed anyway
                pass

    def sweep(self) -> list[str]:
        """Drop every database on the server named with the scratch prefix (leftovers of
        a run that was killed, say); returns their names."""
        if self._server is None:
            return []
        with self._server.admin() as conn:
            names = [row[0] for row in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                (SCRATCH_PREFIX,))]
        for name in names:
            self._server.drop_database(name)
        self._made = [n for n in self._made if n not in names]
        return names

    def close(self) -> None:
        """Drop the scratch databases and stop the server (idempotent)."""
        self.drop_all()
        server, self._server = self._server, None
        try:
            if server is not None:
                server.stop()
        finally:
            if self._holding:
                from pytest_mlflowdb.servers import leftovers

                self._holding = False
                atexit.unregister(self.close)
                leftovers.release()
