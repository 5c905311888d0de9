"""The one owner of throwaway servers and scratch databases.

A :class:`Janitor` starts a throwaway server on first use, makes scratch databases on it
(from a template made once per MLflow revision, then copied, or loaded from a dump for a
restore test), drops them and stops the
server when closed, and sweeps leftovers: every database whose name starts with
:data:`SCRATCH_PREFIX`. The plugin holds one per run behind yield fixtures
(``mlflowdb_server``, ``mlflowdb_database_factory``); the audit's ``--mlflowdb-ephemeral``
server is started through one as well.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path

from .base import SCRATCH_PREFIX, Server, ServerError

MIGRATIONS, CATALOG = "migrations", "catalog"


class Janitor:
    """Throwaway servers and scratch databases of one run, and their cleanup."""

    def __init__(self, kind: str = "auto", pg_bin: Path | None = None,
                 settings: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.pg_bin = pg_bin
        self.settings = dict(settings or {})
        self._server: Server | None = None
        self._made: list[str] = []
        self._templates: dict[tuple[str, str], str] = {}
        self._counter = itertools.count(1)

    @property
    def started(self) -> bool:
        return self._server is not None

    def server(self) -> Server:
        """The run's throwaway server, started on first use (raises ServerError)."""
        if self._server is None:
            from . import start_server

            self._server = start_server(self.kind, self.pg_bin, self.settings)
        return self._server

    def create(self, mlflow: bool = True, revision: str = "heads",
               source: str = MIGRATIONS) -> str:
        """A fresh scratch database's URI; with ``mlflow`` it has MLflow's schema at
        ``revision``, made by MLflow's own migrations (or from the shipped catalog's DDL
        with ``source="catalog"``), once per revision in a template, then copied."""
        if source not in (MIGRATIONS, CATALOG):
            raise ValueError("source must be 'migrations' or 'catalog'")
        template = self._template(source, revision) if mlflow else None
        return self._create(f"{SCRATCH_PREFIX}{next(self._counter)}", template)

    def _template(self, source: str, revision: str) -> str:
        from ..mlflow_schema import apply_catalog_schema, apply_mlflow_schema

        if (source, revision) not in self._templates:
            name = f"{SCRATCH_PREFIX}tpl_{len(self._templates) + 1}"
            uri = self._create(name, None)
            if source == CATALOG:
                apply_catalog_schema(uri, None if revision == "heads" else revision)
            else:
                apply_mlflow_schema(uri, revision)
            self._templates[(source, revision)] = name
        return self._templates[(source, revision)]

    def _create(self, name: str, template: str | None) -> str:
        uri = self.server().create_database(name, template=template)
        self._made.append(name)
        return uri

    def restore(self, dump: Path) -> str:
        """A fresh scratch database loaded from ``dump``: a plain SQL file (``psql``) or an
        archive of ``pg_dump -Fc``/``-Fd``/``-Ft`` (``pg_restore``), with the server's own
        client binaries. Raises ServerError when the load fails or there are none."""
        import subprocess

        server = self.server()
        if server.bin_dir is None:
            raise ServerError(f"cannot load a dump on a {server.kind} server: no client "
                              "binaries beside it")
        uri = self._create(f"{SCRATCH_PREFIX}{next(self._counter)}", None)
        name = uri.rsplit("/", 1)[1]
        connection = ["-h", server.host, "-p", str(server.port), "-U", server.user,
                      "-d", name]
        plain = dump.is_file() and dump.read_bytes()[:5] != b"PGDMP"
        command = ([str(server.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    *connection, "-f", str(dump)] if plain
                   else [str(server.bin_dir / "pg_restore"), "--exit-on-error", "--no-owner",
                         *connection, str(dump)])
        # the password goes in the environment, never on a command line others can read
        env = {**os.environ, "PGPASSWORD": server.password}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no message"]
            detail = next((line for line in lines if "ERROR" in line), lines[0]).strip()
            raise ServerError(f"loading {dump} failed: {detail}")
        return uri

    def drop_all(self) -> None:
        """Drop every scratch database made here, newest first (templates last)."""
        made, self._made = self._made, []
        self._templates.clear()
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
        if server is not None:
            server.stop()
