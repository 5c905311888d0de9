"""The run's targets and their read-only sessions, and the throwaway server if any.

One instance per pytest process (each xdist worker has its own). It opens each
target's read-only session once, remembers why a target could not be reached, and
closes everything at the end, stopping the throwaway server even if setup failed.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_mlflowdb.config.targets import Target, parse_target
from pytest_mlflowdb.config.validate import Settings
from pytest_mlflowdb.db.database import Database
from pytest_mlflowdb.db.errors import DatabaseError
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.results.records import TargetRecord
from pytest_mlflowdb.text import first_line

if TYPE_CHECKING:
    from pytest_mlflowdb.audit.collect import Plan
    from pytest_mlflowdb.servers.janitor import Janitor

EPHEMERAL_KEY = "ephemeral"
EPHEMERAL_DB = "mlflow"


@dataclass(frozen=True)
class TargetParam:
    """A target as parametrization knows it before anything connects: its ``slot`` in
    the run (``uri0``, ``uri1``, ..., ``ephemeral``) and its ``id`` in test ids."""

    slot: str
    id: str


@dataclass
class ConnectionAttempt:
    """The outcome of opening a target's session (the ``mlflowdb_connection`` fixture)."""

    target_id: str
    database: Database | None
    error: str | None
    seconds: float
    connect_timeout: float
    #: the session opened, but what followed on it failed (``error`` says what): a lock or
    #: a timeout on the preflight's reads is not a failure to connect
    connected: bool = False


class TargetUnavailable(Exception):
    """The target could not be resolved or reached; str() is the one-line reason."""

    @property
    def skip_reason(self) -> str:
        """What the checks that cannot run on this target say when they skip."""
        return f"target unreachable: {self}"


class SessionReadFailed(TargetUnavailable):
    """The session opened, but a read on it failed (the read-only check or the preflight's
    catalog reads); str() says which and why, and is the whole skip reason."""

    @property
    def skip_reason(self) -> str:
        return str(self)


def _releases_of(revision: str | None) -> list[str]:
    if not revision:
        return []
    from pytest_mlflowdb.catalog import load_catalog

    return load_catalog().releases_for(revision)


class TargetSessions:
    """The run's targets and their read-only sessions, opened once each; the throwaway
    ``--mlflowdb-ephemeral`` server through a janitor. One per pytest process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._targets: dict[str, Target] = {}
        self._keys: list[TargetParam] = []
        seen: dict[str, int] = {}
        for i, t in enumerate(settings.targets):
            # two URIs for one database (say, as two roles) must not share an id
            seen[t.id] = seen.get(t.id, 0) + 1
            self._keys.append(TargetParam(f"uri{i}", t.id if seen[t.id] == 1
                                          else f"{t.id}#{seen[t.id]}"))
            self._targets[f"uri{i}"] = t
        if settings.ephemeral is not None:
            self._keys.append(TargetParam(EPHEMERAL_KEY, EPHEMERAL_KEY))
        self._attempts: dict[str, ConnectionAttempt] = {}
        self._janitor: Janitor | None = None  # owns the --mlflowdb-ephemeral server
        self._ephemeral_error: str | None = None
        self._extra_secrets: list[str] = []
        self.notes: dict[str, list[str]] = {}
        #: what each target's selected checks declared (see audit/collect.py), set after collection
        self.plans: dict[str, Plan] = {}
        #: collect every planned target at the first request (False on an xdist worker,
        #: which runs only the targets scheduled to it: each is collected when first asked)
        self.collect_all = True
        self._collected: set[str] = set()
        #: sessions being opened while pytest collects (see open_early)
        self._early: list[Future[ConnectionAttempt]] = []

    # -- targets -------------------------------------------------------------------------
    def keys(self) -> list[TargetParam]:
        return list(self._keys)

    def target(self, key: str) -> Target:
        """The Target for ``key``, starting the throwaway server on first use."""
        if key in self._targets:
            return self._targets[key]
        if key != EPHEMERAL_KEY:
            raise TargetUnavailable(f"unknown target {key!r}")
        if self._ephemeral_error:
            raise TargetUnavailable(self._ephemeral_error)
        try:
            target = self._start_ephemeral()
        except Exception as exc:  # ServerError or anything a provider raised
            self._ephemeral_error = first_line(exc)
            raise TargetUnavailable(self._ephemeral_error) from None
        self._targets[key] = target
        return target

    def _start_ephemeral(self) -> Target:
        from pytest_mlflowdb.catalog.mlflow_schema import (
            AUTO,
            MIGRATIONS,
            MlflowSchemaError,
            apply_guide_extensions,
            apply_guide_indexes,
            make_mlflow_schema,
        )
        from pytest_mlflowdb.servers.janitor import Janitor

        self._janitor = Janitor(self.settings.server_kind, self.settings.pg_bin)
        server = self._janitor.server()
        self._extra_secrets.append(server.password)
        uri = server.create_database(EPHEMERAL_DB)
        notes = self.notes.setdefault(EPHEMERAL_KEY, [])
        notes.append(f"throwaway server: {server.description}")
        revision: str | None = None
        try:
            revision, source = make_mlflow_schema(uri, source=AUTO)
        except MlflowSchemaError as exc:
            notes.append(f"no MLflow schema: {exc}")
        else:
            if source == MIGRATIONS:
                notes.append(f"MLflow schema made by MLflow's own migrations, revision "
                             f"{revision}" + _newer_mlflow_note())
            else:
                from pytest_mlflowdb.catalog import load_catalog

                notes.append(f"MLflow schema from the shipped catalog (revision {revision}, "
                             f"captured after MLflow {load_catalog().made_with}'s "
                             "migrations); MLflow is not installed")
        if revision is not None:
            apply_guide_indexes(uri)
            notes.append("with the platform guide's recommended indexes (README, \"Set up "
                         "your MLflow database\")")
            made = apply_guide_extensions(uri)
            if made:
                notes.append(f"with the platform guide's extensions: {', '.join(made)}")
        target = parse_target(uri)
        return Target(conninfo=target.conninfo, id=EPHEMERAL_KEY, redacted=target.redacted,
                      secrets=target.secrets)

    # -- sessions ------------------------------------------------------------------------
    def open_early(self) -> None:
        """Start opening every target's session (not the throwaway server's, which starts
        in the main thread) in the background: connecting, the read-only check and what
        MLflow sees then overlap pytest's collection, which needs no database. Each
        session is still opened once: the first request waits for these first."""
        keys = [k for k in self._keys if k.slot != EPHEMERAL_KEY and k.slot not in self._attempts]
        if not keys or self._early:
            return
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.settings.concurrency, len(keys))),
                                  thread_name_prefix="mlflowdb-open")
        self._early = [pool.submit(self.open, k.slot, k.id) for k in keys]
        pool.shutdown(wait=False)

    def _opened_early(self) -> None:
        """Wait for the sessions :meth:`open_early` started (each attempt records its own
        failure: none raises)."""
        early, self._early = self._early, []
        for future in early:
            future.result()

    def attempt(self, key: str, target_id: str) -> ConnectionAttempt:
        """The target's session, its declared probes collected (with every other planned
        target's, at once, on the first request of a run)."""
        self._opened_early()
        if key not in self._collected:
            self._collect(key, target_id)
        return self.open(key, target_id)

    def _collect(self, key: str, target_id: str) -> None:
        from pytest_mlflowdb.audit.collect import Plan, collect

        keys = [k for k in self.plans if k not in self._collected] if self.collect_all \
            else [key]
        if key not in keys:
            keys.append(key)
        self._collected.update(keys)
        if EPHEMERAL_KEY in keys:  # started here: its janitor handles signals (main thread)
            try:
                self.target(EPHEMERAL_KEY)
            except TargetUnavailable:
                pass  # its attempt says why
        wanted = [self.plans.get(k) or Plan(TargetParam(k, target_id)) for k in keys]
        collect(self, wanted, self.settings)

    def open(self, key: str, target_id: str) -> ConnectionAttempt:
        """Open the target's session once (thread-safe per key: each target is opened by
        one collecting thread)."""
        if key in self._attempts:
            return self._attempts[key]
        s = self.settings
        started = time.perf_counter()
        db: Database | None = None
        step = "checking the session"  # connect() verifies the session is read-only
        try:
            target = self.target(key)
            db = Database(target, connect_timeout=s.connect_timeout,
                          statement_timeout=s.statement_timeout, lock_timeout=s.lock_timeout)
            db.connect()
            step = "reading the catalog"
            db.preflight  # noqa: B018 - gathered once, before any check needs it
            mlflow_facts(db)  # MLflow's schema and revision: a lock here is a failed read
            attempt = ConnectionAttempt(target_id, db, None, db.connect_seconds,
                                        s.connect_timeout)
        except Exception as exc:  # TargetUnavailable, DatabaseError, a psycopg error…
            attempt = self._failed_attempt(key, target_id, db, step, exc,
                                           time.perf_counter() - started)
        self._attempts[key] = attempt
        return attempt

    def _failed_attempt(self, key: str, target_id: str, db: Database | None, step: str,
                        exc: Exception, seconds: float) -> ConnectionAttempt:
        """Say whether connecting failed, or a read on the open session (and which)."""
        if isinstance(exc, (TargetUnavailable, DatabaseError)):
            reason = str(exc)
        else:
            target = self._targets.get(key)
            reason = target.scrub(first_line(exc)) if target else first_line(exc)
        connect_timeout = self.settings.connect_timeout
        # connect_seconds is set once libpq has opened the session, before any query on it
        if db is None or not db.connect_seconds:
            return ConnectionAttempt(target_id, None, reason, seconds, connect_timeout)
        db.close()
        return ConnectionAttempt(target_id, None, f"connected, but {step} failed: {reason}",
                                 db.connect_seconds, connect_timeout, connected=True)

    def database(self, key: str, target_id: str) -> Database:
        attempt = self.attempt(key, target_id)
        if attempt.database is None:
            unavailable = SessionReadFailed if attempt.connected else TargetUnavailable
            raise unavailable(attempt.error or "unknown error")
        return attempt.database

    def target_record(self, key: str, target_id: str) -> TargetRecord:
        """The report's view of a target (never the password): the one producer of
        :class:`TargetRecord`."""
        target = self._targets.get(key)
        notes = tuple(self.notes.get(key, ()))
        uri = target.redacted if target else None
        attempt = self._attempts.get(key)
        if attempt and attempt.database is not None:
            pre, mlflow = attempt.database.preflight, mlflow_facts(attempt.database)
            return TargetRecord(id=target_id, uri=uri, server_version=pre.server_version,
                                schema_revision=mlflow.revision,
                                mlflow_versions=tuple(_releases_of(mlflow.revision)),
                                mlflow_schema=mlflow.schema, connected=True, notes=notes)
        return TargetRecord(id=target_id, uri=uri, error=attempt.error if attempt else None,
                            notes=notes)

    @property
    def secrets(self) -> tuple[str, ...]:
        found = [s for t in self._targets.values() for s in t.secrets]
        return tuple(found) + tuple(self._extra_secrets) + self.settings.secrets

    def close(self) -> None:
        self._opened_early()
        for attempt in self._attempts.values():
            if attempt.database is not None:
                attempt.database.close()
        self._attempts.clear()
        if self._janitor is not None:
            janitor, self._janitor = self._janitor, None
            janitor.close()


def _newer_mlflow_note() -> str:
    """What to add when the installed MLflow is a release the shipped catalog does not
    know: its migrations then stop at the catalog's head (``mlflow_schema.newest_known``)."""
    from pytest_mlflowdb.catalog import installed_mlflow, load_catalog

    catalog, release = load_catalog(), installed_mlflow()
    if release is None or release in catalog.releases:
        return ""
    return (f" (the newest this pytest-mlflowdb knows, MLflow {catalog.newest_release}'s; "
            f"the installed MLflow {release} is newer: upgrade pytest-mlflowdb)")
