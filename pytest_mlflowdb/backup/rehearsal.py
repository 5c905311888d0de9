"""Upgrade rehearsal: run an MLflow's own migrations on a scratch copy, step by step.

Before a team deploys a new MLflow it wants to know whether the upgrade of its real data
works, how long each migration takes and which ones lock big tables. :func:`rehearse`
answers on a *scratch copy* (a restored backup): it runs the installed MLflow's alembic
migrations one revision at a time from the copy's revision to MLflow's head, each in its
own transaction, timing each step and reading ``pg_locks`` on the migration's own
connection after each DDL statement and before each commit (locks are held to the end
of the transaction, so that last look sees every lock the step held). Then the schema
at the new head is compared with the catalog's (:mod:`pytest_mlflowdb.catalog`).

MLflow's own ``mlflow db upgrade`` runs all the steps in ONE transaction: every lock a
step takes is held until the last step commits, so on a live server the blocking window
is the rehearsal's total, not one step's.

Never call this on a database an audit points at: it WRITES (that is the point). It is
only ever given the URI of a scratch copy the janitor made, and refuses any database
whose name does not carry the janitor's scratch prefix.

The migrations run in a child interpreter (MLflow's import-time side effects stay out of
pytest; a hang is bounded by ``timeout``), started from this file's path so that the
child needs only MLflow, not this package: :data:`PYTHON_ENV` may name another Python,
say a virtualenv with the MLflow release about to be deployed. Results cross back as
JSON lines on the child's stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace

#: the Python whose MLflow's migrations are rehearsed (default: this interpreter)
PYTHON_ENV = "MLFLOWDB_REHEARSAL_PYTHON"
_URI_ENV = "MLFLOWDB_REHEARSAL_URI"
_MARK = "MLFLOWDB-REHEARSAL "
_APP = "mlflowdb_rehearsal"
#: lock modes that block MLflow's writes (INSERT/UPDATE take RowExclusiveLock), weakest first
_MODES = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
_BOOTSTRAP = ("import runpy, sys; sys.path[:] = [p for p in sys.path if p]; "
              "runpy.run_path(sys.argv[1], run_name='__mlflowdb_rehearsal__')")


class RehearsalUnavailable(RuntimeError):
    """No MLflow (with SQLAlchemy and alembic) to rehearse with; the message is one line."""


@dataclass(frozen=True)
class Step:
    """One migration: its revision, alembic's description, its wall time and the tables
    that existed before it on which it held a lock that blocks writes, strongest first:
    ``"public.metrics (AccessExclusiveLock, 1.2MB)"`` (size before the step)."""

    revision: str
    description: str
    seconds: float
    locks: tuple[str, ...]


@dataclass(frozen=True)
class Rehearsal:
    """The outcome: ``ok`` only when every migration ran AND the schema at the new head is
    MLflow's; ``error`` says why not in one line. ``from_revision``/``to_revision`` are
    ``""`` when unknown; ``seconds`` is the migrations' wall time (until the failure or
    the timeout when there was one); ``steps`` are the migrations that completed."""

    ok: bool
    error: str | None
    from_revision: str
    to_revision: str
    seconds: float
    steps: tuple[Step, ...]


def rehearse(uri: str, timeout: float = 1800) -> Rehearsal:
    """Upgrade the SCRATCH copy at ``uri`` to the installed MLflow's head and verify it.

    Raises :class:`RehearsalUnavailable` when the interpreter has no MLflow. Any other
    trouble (unknown revision, a failing migration, the timeout, a schema that differs
    from the catalog's at the head) is a :class:`Rehearsal` with ``ok=False``.
    """
    from pytest_mlflowdb.config.targets import TargetError, parse_target
    from pytest_mlflowdb.text import first_line

    try:
        target = parse_target(uri)
    except TargetError as exc:
        return Rehearsal(False, str(exc), "", "", 0.0, ())
    uri, mask = target.conninfo, target.scrub
    refusal = _not_scratch(uri)
    if refusal:
        return Rehearsal(False, mask(refusal), "", "", 0.0, ())
    python = os.environ.get(PYTHON_ENV) or sys.executable
    events, stopped, seconds = _run_child(python, uri, timeout)
    unavailable = next((e for e in events if e["event"] == "unavailable"), None)
    if unavailable:
        raise RehearsalUnavailable(mask(unavailable["error"]))
    start = next((e for e in events if e["event"] == "start"), {})
    begun = [e for e in events if e["event"] == "begin"]
    steps = tuple(Step(e["revision"], e["description"], e["seconds"],
                       tuple(_lock_text(*lock) for lock in e["locks"]))
                  for e in events if e["event"] == "step")
    done = next((e for e in events if e["event"] == "done"), None)
    failed = next((e for e in events if e["event"] == "error"), None)
    ended = done or failed or {}
    result = Rehearsal(False, None, start.get("from") or "", start.get("to") or "",
                       ended.get("seconds", seconds), steps)
    if stopped:
        _stop_backends(uri)
        where = f", stopped during {begun[-1]['revision']}" if begun else ""
        return replace(result, error=f"the migrations took longer than {timeout:g}s{where}")
    if failed:
        return replace(result, error=mask(failed["error"]))
    if done is None:
        return replace(result, error="the migration process ended without a result")
    try:
        mismatch = _verify(uri, result.to_revision)
    except Exception as exc:  # noqa: BLE001 - any trouble reading the copy is one line
        mismatch = mask(f"cannot read the upgraded schema: {first_line(exc)}")
    return replace(result, ok=mismatch is None, error=mismatch)


def _not_scratch(conninfo: str) -> str | None:
    """Why ``conninfo`` is not a scratch copy, or None. Defence in depth: the janitor
    names every database it makes with the scratch prefix, and the audited database has
    no business carrying it."""
    from psycopg.conninfo import conninfo_to_dict

    from pytest_mlflowdb.servers.base import SCRATCH_PREFIX

    name = str(conninfo_to_dict(conninfo).get("dbname") or "")
    if name.startswith(SCRATCH_PREFIX):
        return None
    return (f"refused: {name or 'the default database'} is not a scratch copy (its name "
            f"does not start with {SCRATCH_PREFIX}); the rehearsal writes, so it runs only "
            "on the janitor's copies")


def _run_child(python: str, uri: str, timeout: float) -> tuple[list[dict], bool, float]:
    """Events the child printed, whether it was stopped by the timeout, its wall time."""
    from pytest_mlflowdb.text import last_line

    env = dict(os.environ, **{_URI_ENV: uri})
    started = time.monotonic()
    try:
        child = subprocess.Popen([python, "-c", _BOOTSTRAP, __file__], env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise RehearsalUnavailable(f"cannot start {python} ({PYTHON_ENV}) to run MLflow's "
                                   f"migrations: {exc.strerror or exc}") from None
    stopped = False
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stopped = True
        child.kill()
        out, err = child.communicate()
    events = [json.loads(line[len(_MARK):]) for line in out.splitlines()
              if line.startswith(_MARK)]
    if not stopped and child.returncode != 0 and not any(
            e["event"] in ("error", "unavailable") for e in events):
        events.append({"event": "error", "error": "the migration process failed: "
                       + last_line(err, f"exit {child.returncode}")})
    return events, stopped, time.monotonic() - started


def _stop_backends(uri: str) -> None:
    """End the killed child's server sessions: a long ALTER goes on after its client
    dies until it next talks to it."""
    import psycopg

    try:
        with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "datname = current_database() AND application_name = %s "
                         "AND pid <> pg_backend_pid()", (_APP,))
    except psycopg.Error:
        pass  # the janitor's DROP DATABASE ... WITH (FORCE) ends them anyway


def _verify(uri: str, revision: str) -> str | None:
    """Why the schema at ``revision`` is not MLflow's (one line), or None when it is."""
    import psycopg
    from psycopg.rows import dict_row

    from pytest_mlflowdb.catalog import load_catalog
    from pytest_mlflowdb.catalog.compare import compare
    from pytest_mlflowdb.probes.schema import capture

    catalog = load_catalog()
    if not catalog.has_schema(revision):
        return (f"the migrations reached {revision}, but the catalog (made with MLflow "
                f"{catalog.made_with}) has no schema for it to check the result against")
    with psycopg.connect(uri, autocommit=True, connect_timeout=10,
                         row_factory=dict_row) as conn:
        found = conn.execute("SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE c.oid = "
                             "to_regclass('alembic_version')").fetchone()
        schema = found["nspname"] if found else "public"
        live = capture(lambda query, params: conn.execute(query, params).fetchall(), schema)
    diff = compare(catalog.schema_at(revision), live)
    problems = (
        [f"table {t} missing" for t in diff.missing_tables]
        + [f"sequence {s} missing" for s in diff.missing_sequences]
        + [f"{t} is {flag}" for t, flag in diff.table_flags if flag == "unlogged"]
        + [f"column {t}.{c.name} missing" for t, c in diff.missing_columns]
        + [f"{c.table}.{c.column} {c.field} is {c.actual!r}, not {c.expected!r}"
           for c in diff.changed_columns]
        + [f"column {t}.{c.name} is NOT NULL without a default" for t, c in
           diff.blocking_columns]
        + [f"constraint {c.table}.{c.name} missing" for c in diff.missing_constraints]
        + [f"constraint {w.table}.{w.name} differs" for w, _ in diff.changed_constraints]
        + [f"trigger {t} missing" for t in diff.missing_triggers]
        + [f"trigger {w.table}.{w.name} differs" for w, _, _ in diff.changed_triggers]
        + [f"index {i.name} missing" for i in diff.missing_indexes]
        + [f"index {h.name} differs" for _, h in diff.redefined_indexes]
        + [f"index {i.name} is invalid" for i in live.indexes
           if not (i.valid and i.ready) and i.table in catalog.schema_at(revision).tables]
    )
    if not problems:
        return None
    more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
    return (f"after the upgrade to {revision} the schema differs from MLflow's: "
            + "; ".join(problems[:5]) + more)


def _lock_text(table: str, mode: str, size: int) -> str:
    from pytest_mlflowdb.config.thresholds import format_value

    return f"{table} ({mode}, {format_value('size', size)})"


# -- the child: runs in a fresh interpreter that needs only MLflow, SQLAlchemy, alembic --

_TABLES = """
SELECT c.oid::bigint, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_'
"""
_LOCKS = """
SELECT relation::bigint, mode FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
  AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
"""
_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")  # they never take a lock that blocks writes


def _emit(event: str, **fields: object) -> None:
    print(_MARK + json.dumps(dict(event=event, **fields)), flush=True)


def _child_main() -> None:  # pragma: no cover - runs in the child process
    import logging

    logging.disable(logging.WARNING)
    try:
        import mlflow.store.db.base_sql_model  # noqa: F401 - env.py's import, paid up front
        import sqlalchemy
        from alembic.runtime.environment import EnvironmentContext
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory
        from mlflow.store.db import utils
        from mlflow.version import VERSION

        try:
            import psycopg as dbapi
            driver = "postgresql+psycopg://"
        except ImportError:
            import psycopg2 as dbapi  # type: ignore[import-untyped, no-redef]
            driver = "postgresql+psycopg2://"
    except ImportError as exc:
        _emit("unavailable", error=f"no MLflow to rehearse the upgrade with in "
              f"{sys.executable} ({exc}): pip install 'pytest-mlflowdb[mlflow]' there")
        return
    conninfo = os.environ[_URI_ENV]  # libpq's form, parsed by the parent (parse_target)
    engine = sqlalchemy.create_engine(driver, creator=lambda: dbapi.connect(
        conninfo, application_name=_APP))
    tables: dict[int, tuple[str, int]] = {}
    held: dict[int, str] = {}

    def look(dbapi_connection) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(_LOCKS)
            for oid, mode in cursor.fetchall():
                if oid in tables and _MODES.index(mode) >= _MODES.index(held.get(oid, mode)):
                    held[oid] = mode
        finally:
            cursor.close()

    @sqlalchemy.event.listens_for(engine, "after_cursor_execute")
    def _after_statement(conn, cursor, statement, parameters, context, executemany):
        words = statement.lstrip().split(None, 1)
        if words and words[0].upper() not in _DML:
            look(cursor.connection)

    @sqlalchemy.event.listens_for(engine, "commit")
    def _before_commit(conn):
        look(conn.connection.dbapi_connection)

    # MLflow's env.py migrates through the connection given below (its engine); a URL
    # that reaches no server keeps any other path from touching a database by default
    config = utils._get_alembic_config(f"{driver}scratch-copy-only.invalid/")
    script = ScriptDirectory.from_config(config)
    revision = current = None
    elapsed = 0.0
    try:
        with engine.connect() as control:
            current = MigrationContext.configure(control).get_current_revision()
            control.commit()
            heads = script.get_heads()
            if len(heads) != 1:
                raise RuntimeError(f"MLflow {VERSION} has {len(heads)} heads: {heads}")
            _emit("start", to=heads[0], mlflow=VERSION, **{"from": current})
            if current is None:
                raise RuntimeError("alembic_version is missing or empty: not an MLflow "
                                   "database at a known revision")
            try:
                script.get_revision(current)
            except Exception:  # noqa: BLE001 - alembic's CommandError or ResolutionError
                raise RuntimeError(f"alembic_version holds {current}, a revision MLflow "
                                   f"{VERSION} does not know (a newer MLflow's, or not "
                                   "MLflow's)") from None
            pending = [r for r in script.iterate_revisions(heads[0], current)
                       if r.revision != current][::-1]
            for step in pending:
                revision = step.revision
                _emit("begin", revision=revision)
                tables.clear()
                held.clear()
                tables.update((oid, (name, size)) for oid, name, size in
                               control.exec_driver_sql(_TABLES).fetchall())
                control.commit()  # its share locks would block the migration
                config.attributes["connection"] = control  # MLflow's env.py uses its engine
                began = time.perf_counter()
                try:
                    with EnvironmentContext(config, script, destination_rev=revision,
                                            fn=lambda rev, _, to=revision:
                                            script._upgrade_revs(to, rev)):
                        script.run_env()
                    if control.in_transaction():
                        control.commit()
                finally:
                    seconds = time.perf_counter() - began
                    elapsed += seconds
                locks = sorted(((tables[oid][0], mode, tables[oid][1])
                                for oid, mode in held.items()),
                               key=lambda lock: (-_MODES.index(lock[1]), -lock[2], lock[0]))
                _emit("step", revision=revision, description=" ".join((step.doc or "").split()),
                      seconds=seconds, locks=locks)
                revision = None
    except Exception as exc:  # noqa: BLE001 - reported as one line
        # pytest_mlflowdb.text.first_line, written out: this child cannot import the package
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        message = lines[0] if lines else type(exc).__name__
        where = f"migration {revision} failed: " if revision else ""
        _emit("error", error=where + message, seconds=elapsed)
        return
    finally:
        engine.dispose()
    _emit("done", seconds=elapsed)


if __name__ == "__mlflowdb_rehearsal__":
    _child_main()
