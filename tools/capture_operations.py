#!/usr/bin/env python3
"""Capture the SQL of MLflow's operations from MLflow itself, into the shipped catalog.

Runs MLflow's own SQLAlchemy stores (tracking and model registry) against a THROWAWAY
database (given with ``--uri``: a scratch database with MLflow's schema, as
``mlflowdb_database_factory`` or ``Janitor.create()`` make; without it, a Janitor
starts a throwaway server and makes one), calls each operation the workload area
names, records every statement each one sends (SQLAlchemy's ``before_cursor_execute``
event), and writes ``pytest_mlflowdb/workload/data/operations.json``: each statement's
shape (``pytest_mlflowdb.workload.shapes``) mapped to the operations that send it, in
the order of :data:`OPERATIONS`, with one example text with its constants as ``$n``
(as ``pg_stat_statements`` shows it). An operation this MLflow lacks (traces in an old
release) is listed under ``missing`` with the reason.

Never give it an audited database: it writes (it is MLflow, logging runs).

    python3 tools/capture_operations.py [--uri postgresql://...] [--role mlflow] [--out FILE]

The stores connect as ``--role`` (``SET ROLE`` through the connection's options; default
the owner of MLflow's tables on scratch databases, ``mlflow``), as MLflow connects as its
own role: the statements are then MLflow's in ``pg_stat_statements``, not the
superuser's that the URI names.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "pytest_mlflowdb" / "workload" / "data" / "operations.json"

#: (name, what it is) of every operation captured, in the order a statement sent by
#: several is attributed: the one a user waits on first
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("search_runs", "search runs (the UI's runs table: filter, order, page; with each "
                    "run's latest metrics, params and tags)"),
    ("get_metric_history", "a run's metric history (the UI's charts)"),
    ("get_metric_history_bulk_interval", "sampled metric histories of several runs (the "
                                         "UI's chart comparison)"),
    ("get_run", "one run with its latest metrics, params and tags"),
    ("log_batch", "log a batch of metrics, params and tags (the client's autologging)"),
    ("log_metric", "log one metric"),
    ("search_experiments", "search experiments (the UI's experiment list)"),
    ("get_experiment", "one experiment by id or name"),
    ("search_registered_models", "search registered models (the registry's list)"),
    ("search_model_versions", "search model versions"),
    ("get_latest_versions", "a registered model's latest versions"),
    ("search_traces", "search traces by experiment and time"),
    ("start_trace", "record a trace"),
    ("gc_hard_delete_run", "mlflow gc: permanently delete a deleted run and its rows"),
    ("gc_hard_delete_experiment", "mlflow gc: permanently delete a deleted experiment"),
    ("gc_deleted_runs", "mlflow gc: list deleted runs"),
    ("create_run", "create a run"),
    ("update_run", "end a run, set a tag"),
    ("create_experiment", "create an experiment"),
    ("create_model_version", "register a model version"),
    ("create_registered_model", "create a registered model"),
    ("delete_run", "mark a run deleted"),
    ("delete_experiment", "mark an experiment deleted"),
    ("store_start", "the tracking and registry stores' start (schema check, default "
                    "experiment)"),
)

_PLACEHOLDER = re.compile(r"%\([^)]*\)s|%s")


def _dollars(statement: str) -> str:
    """``statement`` with its driver placeholders numbered ``$1``, ``$2``... in order."""
    counter = iter(range(1, 1_000_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", statement).replace("%%", "%")


class Recorder:
    """Collects the statements sent while an operation runs, by operation."""

    def __init__(self) -> None:
        self.current = "store_start"
        self.sent: dict[str, list[str]] = {}

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.sent.setdefault(self.current, []).append(statement)


def _workload(uri: str, record: Recorder, missing: dict[str, str]) -> None:
    """Run every operation of :data:`OPERATIONS` through MLflow's own stores at ``uri``."""
    from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
    from mlflow.store.model_registry.sqlalchemy_store import (
        SqlAlchemyStore as RegistryStore,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    artifacts = tempfile.mkdtemp(prefix="mlflowdb-capture-")
    tracking = SqlAlchemyStore(uri, artifacts)
    registry = RegistryStore(uri)
    now = int(time.time() * 1000)

    def op(name: str, call: Callable[[], object]) -> object:
        record.current = name
        try:
            return call()
        except Exception as exc:  # an operation this MLflow lacks or refuses
            missing[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            return None
        finally:
            record.current = "store_start"

    exp = str(op("create_experiment", lambda: tracking.create_experiment("capture")))
    runs = []
    for i in range(3):
        run = op("create_run", lambda i=i: tracking.create_run(
            exp, "capture", now + i, [RunTag("team", "a")], f"run-{i}"))
        runs.append(run.info.run_id)  # type: ignore[attr-defined]
    for i, run_id in enumerate(runs):
        op("log_batch", lambda run_id=run_id, i=i: tracking.log_batch(
            run_id, [Metric("loss", 1.0 / (s + 1 + i), now + s, s) for s in range(5)]
            + [Metric("acc", 0.5 + i / 10, now, 0)],
            [Param("lr", str(0.1 * (i + 1))), Param("model", "cnn")],
            [RunTag("stage", "dev")]))
        op("log_metric", lambda run_id=run_id: tracking.log_metric(
            run_id, Metric("loss", 0.01, now + 99, 99)))
    op("search_runs", lambda: tracking.search_runs(
        [exp], "metrics.loss < 1 and params.model = 'cnn'", ViewType.ACTIVE_ONLY, 100,
        ["attributes.start_time DESC"], None))
    op("search_runs", lambda: tracking.search_runs(
        [exp], "", ViewType.ACTIVE_ONLY, 100, ["attributes.start_time DESC"], None))
    op("search_runs", lambda: tracking.search_runs(
        [exp], "tags.team = 'a'", ViewType.ALL, 100, ["metrics.loss ASC"], None))
    op("get_metric_history", lambda: tracking.get_metric_history(runs[0], "loss"))
    op("get_metric_history_bulk_interval", lambda: tracking.get_metric_history_bulk_interval(
        runs, "loss", 10, None, None))
    op("get_run", lambda: tracking.get_run(runs[0]))
    op("update_run", lambda: tracking.update_run_info(
        runs[0], RunStatus.FINISHED, now + 100, None))
    op("update_run", lambda: tracking.set_tag(runs[0], RunTag("note", "x")))
    op("search_experiments", lambda: tracking.search_experiments(
        ViewType.ACTIVE_ONLY, 100, None, ["last_update_time DESC"]))
    op("search_experiments", lambda: tracking.search_experiments(
        ViewType.ACTIVE_ONLY, 100, "name LIKE 'cap%'", None))
    op("get_experiment", lambda: tracking.get_experiment(exp))
    op("get_experiment", lambda: tracking.get_experiment_by_name("capture"))

    op("create_registered_model", lambda: registry.create_registered_model("capture-model"))
    op("create_model_version", lambda: registry.create_model_version(
        "capture-model", f"runs:/{runs[0]}/model", runs[0]))
    op("search_registered_models", lambda: registry.search_registered_models(
        "name LIKE 'cap%'", 100, ["name ASC"]))
    op("search_registered_models", lambda: registry.search_registered_models(None, 100))
    op("search_model_versions", lambda: registry.search_model_versions(
        "name = 'capture-model'", 100, None))
    op("get_latest_versions", lambda: registry.get_latest_versions("capture-model"))

    op("start_trace", lambda: tracking.start_trace(_trace_info(exp, now)))
    op("search_traces", lambda: tracking.search_traces(
        [exp], f"timestamp_ms > {now - 1000}", 100, ["timestamp_ms DESC"]))

    gone = runs[2]
    op("delete_run", lambda: tracking.delete_run(gone))
    op("gc_deleted_runs", lambda: tracking._get_deleted_runs(older_than=0))
    op("gc_hard_delete_run", lambda: tracking._hard_delete_run(gone))
    doomed = str(op("create_experiment", lambda: tracking.create_experiment("doomed")))
    op("delete_experiment", lambda: tracking.delete_experiment(doomed))
    op("gc_hard_delete_experiment", lambda: tracking._hard_delete_experiment(doomed))
    tracking._dispose_engine() if hasattr(tracking, "_dispose_engine") else None


def _trace_info(experiment_id: str, now: int):
    from mlflow.entities import TraceInfo, TraceLocation, TraceState

    return TraceInfo(trace_id=f"tr-{os.urandom(16).hex()}",
                     trace_location=TraceLocation.from_experiment_id(experiment_id),
                     request_time=now, state=TraceState.OK, execution_duration=5,
                     request_preview="q", response_preview="a", trace_metadata={},
                     tags={})


def capture(uri: str, role: str | None = None) -> dict:
    """The catalog of MLflow's operations, captured on the scratch database at ``uri``
    by MLflow's stores connected as ``role`` (None: the URI's)."""
    import importlib.metadata
    import logging

    logging.disable(logging.WARNING)
    import sqlalchemy

    from pytest_mlflowdb.catalog import load_catalog
    from pytest_mlflowdb.workload.shapes import shape, tables_in

    record, missing = Recorder(), {}
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        _workload(_sqlalchemy_url(uri, role), record, missing)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    order = [name for name, _ in OPERATIONS]
    mlflow_tables = load_catalog().mlflow_tables()
    shapes: dict[str, dict] = {}
    for name in order:
        for statement in record.sent.get(name, ()):
            if not tables_in(statement, mlflow_tables):
                continue  # the driver's own questions (version, schema, savepoints)
            entry = shapes.setdefault(shape(statement), {"operations": [],
                                                        "example": _dollars(statement)})
            if name not in entry["operations"]:
                entry["operations"].append(name)
    return {
        "mlflow": importlib.metadata.version("mlflow-skinny"),
        "operations": {name: what for name, what in OPERATIONS},
        "missing": dict(sorted(missing.items())),
        "statements": {k: shapes[k] for k in sorted(shapes)},
    }


def _sqlalchemy_url(uri: str, role: str | None) -> str:
    from urllib.parse import quote

    scheme, sep, rest = uri.partition("://")
    url = "postgresql+psycopg://" + rest if sep else uri
    if role:
        url += ("&" if "?" in url else "?") + "options=" + quote(f"-c role={role}", safe="")
    return url


def write(catalog: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(catalog, indent=1, sort_keys=False) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", help="a THROWAWAY database with MLflow's schema")
    parser.add_argument("--role", default="mlflow",
                        help="the role MLflow's stores act as ('' for the URI's own)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.uri:
        catalog = capture(args.uri, args.role or None)
    else:
        from pytest_mlflowdb.servers.janitor import Janitor

        janitor = Janitor("auto")
        try:
            catalog = capture(janitor.create(), args.role or None)
        finally:
            janitor.close()
    write(catalog, args.out)
    print(f"{len(catalog['statements'])} statement shapes of "
          f"{len(catalog['operations']) - len(catalog['missing'])} operations "
          f"(MLflow {catalog['mlflow']}) written to {args.out}"
          + (f"; not captured: {', '.join(catalog['missing'])}" if catalog["missing"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
