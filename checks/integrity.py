"""Integrity: MLflow's own data, as MLflow's users report it in its issue tracker.

Runs stuck in RUNNING after their process died (MLflow has no reaper), soft-deleted runs
and experiments waiting for ``mlflow gc`` or invisible to it (no ``deleted_time``), model
versions and aliases pointing at what no longer exists, rows ``mlflow gc`` leaves behind,
values MLflow never writes, and the experiment id sequence behind its table after a
restore. Each finding names the rows' ids (at most ``integrity_max_ids``) with the total.

Every default query reads small tables or probes MLflow's indexes (never a scan of
metrics, params, tags or latest_metrics); ``integrity.latest_metrics``, which compares
every metric, runs only with ``--mlflowdb-integrity-full``. A table or column older
MLflow releases lack is a part not checked, said with the release that adds it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

import psycopg
import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import ThresholdValues
from pytest_mlflowdb.probes import integrity as probe
from pytest_mlflowdb.probes.integrity import Layout, Listing
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.results.findings import Findings

_CAP = "integrity_max_ids"
_GC = "mlflow gc --backend-store-uri <URI> --tracking-uri <URI>"


def _absent(db, lay: Layout, table: str, column: str | None = None) -> str:
    """Why ``table`` (or its ``column``) is not there: the release that adds it, from the
    catalog, when the database's revision predates it."""
    what = f"{lay.schema}.{table}" + (f".{column}" if column else "")
    revision = mlflow_facts(db).revision
    catalog = load_catalog()
    if revision is None or not catalog.knows(revision):
        return f"{what} does not exist (revision {revision or 'unknown'})"
    at = catalog.position(revision)
    for later in catalog.chain:
        if not catalog.has_schema(later.revision):
            continue
        snapshot = catalog.schema_at(later.revision)
        if table in snapshot.tables and (column is None or column in snapshot.columns(table)):
            if catalog.position(later.revision) <= at:
                return (f"{what} is missing although revision {revision} has it "
                        "(see the schema checks)")
            release = f"MLflow {later.first_release}" if later.first_release else "MLflow"
            return (f"{what} does not exist at revision {revision}: {release} adds it "
                    f"({later.revision})")
    return f"{what} is not an MLflow table or column at any revision"


class _Parts:
    """The parts of one check: what it could not look at, and the skip that follows when
    nothing else it found is worth a warning (a check never passes blind)."""

    def __init__(self, db, findings: Findings, needs: tuple[str, ...]) -> None:
        self.db, self.findings = db, findings
        self.lay = probe.layout(db, require_mlflow_schema(db))
        self.blind: list[str] = []
        hidden = [self.lay.tables[t].hidden for t in needs
                  if t in self.lay.tables and self.lay.tables[t].hidden]
        if hidden:
            pytest.skip("; ".join(h for h in hidden if h))

    def readable(self, table: str, *columns: str) -> bool:
        """Whether ``table`` (and ``columns``) can be read (no finding recorded)."""
        found = self.lay.tables.get(table)
        return found is not None and not found.hidden and set(columns) <= set(found.columns)

    def usable(self, table: str, *columns: str) -> bool:
        """Whether ``table`` (and ``columns``) can be read; else an info finding says why."""
        found = self.lay.tables.get(table)
        if found is None:
            self.findings.info(f"{self.lay.schema}.{table}", "not checked: "
                               + _absent(self.db, self.lay, table))
            return False
        if found.hidden:
            self.blind.append(found.hidden)
            self.findings.info(f"{self.lay.schema}.{table}", f"not checked: {found.hidden}")
            return False
        for column in columns:
            if column not in found.columns:
                self.findings.info(f"{self.lay.schema}.{table}", "not checked: "
                                   + _absent(self.db, self.lay, table, column))
                return False
        return True

    def close(self) -> None:
        if self.blind and self.findings.severity in ("ok", "info"):
            pytest.skip("; ".join(dict.fromkeys(self.blind)))


def _walk(name: str):
    """A check's own walk as its probe, its findings dropped: what these checks read
    depends on what they found a step before (a table hidden, a column or an index
    missing), so the walk itself says which reads are safe to make."""
    def probe(db, settings) -> None:
        globals()[name](db, Findings(), settings.thresholds)

    return probe


def _quietly(read) -> None:
    with contextlib.suppress(Exception):
        read()


def _ids(listing: Listing) -> str:
    return listing.text()


@check("integrity.stuck_runs", thresholds=("stuck_run_age", _CAP),
       probes=(_walk("test_stuck_runs"),))
def test_stuck_runs(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues):
    """No active run is RUNNING with no end time longer than stuck_run_age (a dead process)."""
    parts = _Parts(mlflowdb, mlflowdb_findings, ("runs",))
    obj, age = f"{parts.lay.schema}.runs", mlflowdb_thresholds.text("stuck_run_age")
    if parts.usable("runs", "status", "end_time", "start_time", "lifecycle_stage"):
        stuck, running = probe.stuck_runs(mlflowdb, parts.lay,
                                          mlflowdb_thresholds["stuck_run_age"],
                                          int(mlflowdb_thresholds[_CAP]))
        if stuck.total:
            ids = ",".join(stuck.ids)
            mlflowdb_findings.warn(
                obj, f"{stuck.total} run(s) RUNNING with no end time, started more than "
                f"{age} ago (their process is gone; MLflow never ends them; the remedy marks "
                f"them KILLED): {_ids(stuck)}", stuck.total, age,
                remedy=("python -c \"from mlflow import MlflowClient; c = MlflowClient("
                        f"'<URI>'); [c.set_terminated(r, 'KILLED') for r in '{ids}'.split("
                        "',')]\""))
        else:
            mlflowdb_findings.ok(obj, f"no run RUNNING for more than {age} ({running} "
                                 "running now)", 0, age)
    parts.close()


def _gc_duration(seconds: float) -> str:
    """``seconds`` in ``mlflow gc --older-than``'s grammar (#d#h#m#s)."""
    left, text = int(seconds), ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            text, left = text + f"{left // size}{unit}", left % size
    return text or "0s"


def _gc_part(parts: _Parts, table: str, t: ThresholdValues) -> None:
    """Deleted ``runs`` or ``experiments``: due for ``mlflow gc`` and invisible to it."""
    stamp, key, other = (("deleted_time", "--run-ids", "experiment") if table == "runs"
                         else ("last_update_time", "--experiment-ids", "run"))
    if not parts.usable(table, "lifecycle_stage", stamp):
        return
    obj, age = f"{parts.lay.schema}.{table}", t.text("gc_age")
    found = probe.gc_backlog(parts.db, parts.lay, table, t["gc_age"], int(t[_CAP]))
    noun = table[:-1]
    if found.due.total:
        parts.findings.warn(
            obj, f"{found.due.total} {noun}(s) soft-deleted more than {age} ago wait for "
            f"mlflow gc: {_ids(found.due)}", found.due.total, age,
            remedy=f"{_GC} --older-than {_gc_duration(t['gc_age'])} (purges them, their "
            "artifacts and rows)")
    if found.undated.total:
        parts.findings.warn(
            obj, f"{found.undated.total} soft-deleted {noun}(s) have no {stamp}: mlflow gc "
            f"--older-than never collects them: {_ids(found.undated)}", found.undated.total,
            None, remedy=f"{_GC} {key} {','.join(found.undated.ids)} (names them; gc also "
            f"purges every other deleted {other} then)")
    if not found.due.total and not found.undated.total:
        count = f"{found.deleted} soft-deleted {noun}(s)" if found.deleted else \
            f"no soft-deleted {noun}"
        parts.findings.ok(obj, f"{count}, none older than {age} or without {stamp}",
                          found.deleted, age)


def _gc(db, settings) -> None:
    """The gc backlog's walk, runs and experiments side by side."""
    db.each(lambda table: _gc_part(_Parts(db, Findings(), ()), table, settings.thresholds),
            ["runs", "experiments"])


@check("integrity.gc_backlog", thresholds=("gc_age", _CAP), probes=(_gc,))
def test_gc_backlog(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues):
    """Soft-deleted runs and experiments: none older than gc_age, none invisible to gc."""
    parts = _Parts(mlflowdb, mlflowdb_findings, ("runs", "experiments"))
    _gc_part(parts, "runs", mlflowdb_thresholds)
    _gc_part(parts, "experiments", mlflowdb_thresholds)
    parts.close()


def _registry_orphans(parts: _Parts, cap: int) -> None:
    schema, findings = parts.lay.schema, parts.findings
    if parts.usable("model_versions", "run_id", "source", "current_stage") and \
            parts.usable("runs"):
        _version_orphans(parts, cap)
    if parts.usable("registered_model_aliases", "alias", "version") and \
            parts.usable("model_versions", "current_stage"):
        obj = f"{schema}.registered_model_aliases"
        stale = probe.stale_aliases(parts.db, parts.lay, cap)
        if stale.total:
            findings.fail(obj, f"{stale.total} alias(es) point at a missing or deleted model "
                          f"version (models:/name@alias fails to load): {_ids(stale)}",
                          stale.total, 0, remedy="MlflowClient().set_registered_model_alias("
                          "name, alias, version) to a live version, or "
                          "delete_registered_model_alias(name, alias)")
        else:
            findings.ok(obj, "every alias points at a live model version", 0, 0)


def _version_orphans(parts: _Parts, cap: int) -> None:
    """Model versions naming a run that does not exist (when this database holds runs)."""
    findings, obj = parts.findings, f"{parts.lay.schema}.model_versions"
    if not probe.has_rows(parts.db, parts.lay, "model_versions"):
        findings.ok(obj, "no model version yet", 0, 0)
    elif not probe.has_rows(parts.db, parts.lay, "runs"):
        findings.info(obj, "not checked: runs is empty (the registry's runs are in another "
                      "tracking database)")
    else:
        broken = probe.orphan_versions(parts.db, parts.lay, cap, runs_source=True)
        dangling = probe.orphan_versions(parts.db, parts.lay, cap, runs_source=False)
        if broken.total:
            findings.fail(obj, f"{broken.total} model version(s) with a runs:/ source name a "
                          f"run that no longer exists (loading them fails): {_ids(broken)}",
                          broken.total, 0, remedy="re-register the model from its artifacts "
                          "(mlflow.register_model with the artifact location) or delete the "
                          "version (MlflowClient().delete_model_version)")
        if dangling.total:
            findings.warn(obj, f"{dangling.total} model version(s) name a run that no longer "
                          f"exists (their run link is dead): {_ids(dangling)}",
                          dangling.total, 0)
        if not broken.total and not dangling.total:
            findings.ok(obj, "every model version's run exists (or was redacted by MLflow)",
                        0, 0)


_INPUTS_REMEDY = ("DELETE FROM input_tags t USING inputs i WHERE t.input_uuid = i.input_uuid "
                  "AND i.destination_type = 'RUN' AND i.destination_id IN (<ids>); DELETE FROM "
                  "inputs WHERE destination_type = 'RUN' AND destination_id IN (<ids>);")


def _tracking_orphans(parts: _Parts, cap: int) -> None:
    schema, findings, lay = parts.lay.schema, parts.findings, parts.lay
    if parts.usable("inputs", "destination_type", "destination_id") and parts.usable("runs"):
        obj = f"{schema}.inputs"
        if "destination_type" not in lay.tables["inputs"].indexed:
            findings.info(obj, "not checked: no index leads with destination_type (the "
                          "search would scan the table)")
        else:
            found = probe.orphan_inputs(parts.db, lay, cap)
            if found.total:
                ids = ", ".join(f"'{i}'" for i in found.ids)
                findings.warn(obj, f"inputs rows of {found.total} run(s) that no longer exist "
                              f"(mlflow gc leaves them): {_ids(found)}", found.total, 0,
                              remedy=_INPUTS_REMEDY.replace("<ids>", ids))
            else:
                findings.ok(obj, "every inputs row names a run that exists", 0, 0)
    for table in probe.RUN_CHILDREN:
        if not (parts.usable(table, "run_uuid") and parts.usable("runs")):
            continue
        obj, child = f"{schema}.{table}", lay.tables[table]
        if child.run_fk:
            findings.ok(obj, f"foreign key {child.run_fk} prevents rows of missing runs")
            continue
        if "run_uuid" not in child.indexed:
            findings.info(obj, "not checked: no foreign key to runs and no index leads with "
                          "run_uuid (the search would scan the table)")
            continue
        found = probe.orphan_children(parts.db, lay, table, cap)
        if found.total:
            ids = ", ".join(f"'{i}'" for i in found.ids)
            findings.warn(obj, f"no foreign key to runs, and rows of {found.total} run(s) that "
                          f"do not exist: {_ids(found)}", found.total, 0,
                          remedy=f"DELETE FROM {table} WHERE run_uuid IN ({ids}); then restore "
                          f"the foreign key {table}_run_uuid_fkey (see schema.constraints)")
        else:
            findings.ok(obj, "no foreign key to runs, but every row names a run that exists",
                        0, 0)
    if all(t in lay.tables and not lay.tables[t].hidden and "run_uuid" in lay.tables[t].indexed
           for t in ("latest_metrics", "metrics")) and parts.usable("runs"):
        obj = f"{schema}.latest_metrics"
        found = probe.latest_without_metrics(parts.db, lay, cap)
        if found.total:
            findings.warn(obj, f"{found.total} run(s) have latest_metrics but no metrics rows "
                          f"(their charts are empty): {_ids(found)}", found.total, 0)
        else:
            findings.ok(obj, "every run with latest_metrics has metrics rows (per key: "
                        "integrity.latest_metrics with --mlflowdb-integrity-full)", 0, 0)


def _orphans(db, settings) -> None:
    """The orphan checks' walk, the registry's and the tracking tables' side by side."""
    cap = int(settings.thresholds[_CAP])
    db.each(lambda part: part(_Parts(db, Findings(), ()), cap),
            [_registry_orphans, _tracking_orphans])


@check("integrity.orphans", thresholds=(_CAP,), probes=(_orphans,))
def test_orphans(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues):
    """No row names a run, model version or metric that no longer exists.

    A failure where MLflow then breaks (loading a model version or alias), a warning
    otherwise."""
    parts = _Parts(mlflowdb, mlflowdb_findings, ())
    cap = int(mlflowdb_thresholds[_CAP])
    _registry_orphans(parts, cap)
    _tracking_orphans(parts, cap)
    parts.close()


#: (table, column, values MLflow writes, the rows' id (SQL), severity of another value)
_DOMAINS = (
    ("runs", "status", probe.RUN_STATUSES, "run_uuid", "failure"),
    ("runs", "lifecycle_stage", probe.LIFECYCLE_STAGES, "run_uuid", "warning"),
    ("experiments", "lifecycle_stage", probe.LIFECYCLE_STAGES, "experiment_id", "warning"),
    ("model_versions", "current_stage", probe.VERSION_STAGES, "name || ' v' || version",
     "warning"),
    ("model_versions", "status", probe.VERSION_STATUSES, "name || ' v' || version",
     "warning"),
)
_EFFECT = {"failure": "MLflow fails to read these rows", "warning": "MLflow hides or "
           "mishandles these rows"}


def _experiment_zero(parts: _Parts) -> None:
    obj, found = f"{parts.lay.schema}.experiments", probe.experiment_zero(parts.db, parts.lay)
    if found.exists and found.lifecycle_stage == "deleted":
        parts.findings.warn(obj, "experiment 0 (Default) is deleted: runs started without an "
                            "experiment fail", 0, None, remedy="mlflow experiments restore "
                            "--experiment-id 0")
    elif found.exists:
        parts.findings.ok(obj, "experiment 0 (Default) exists", 0, None)
    elif found.default_name_taken_by is not None:
        parts.findings.fail(obj, "experiment 0 is missing and experiment "
                            f"{found.default_name_taken_by} is named Default: MLflow's store "
                            "fails to start (it inserts experiment 0 named Default)", None,
                            None, remedy="mlflow experiments rename --experiment-id "
                            f"{found.default_name_taken_by} --new-name <another name>")
    elif found.experiments:
        parts.findings.warn(obj, f"experiment 0 (Default) is missing ({found.experiments} "
                            "other experiments): a tracking server re-creates it only on its "
                            "next start", None, None, remedy="restart the tracking server "
                            "(it creates experiment 0)")
    else:
        parts.findings.info(obj, "experiment 0 (Default) not created yet: no experiment at "
                            "all (MLflow's server creates it on its first start)")


def _sequence(parts: _Parts) -> None:
    obj = f"{parts.lay.schema}.experiments"
    seq = probe.experiment_sequence(parts.db, parts.lay)
    if seq.name is None:
        parts.findings.fail(obj, f"{seq.error}: creating an experiment fails (null value in "
                            "experiment_id)", None, None, remedy="see schema.columns for the "
                            "missing default")
        return
    if seq.error:
        parts.blind.append(seq.error)
        parts.findings.info(obj, f"sequence not checked: {seq.error}")
        return
    if seq.max_id is not None and seq.next_value is not None and seq.next_value <= seq.max_id:
        parts.findings.fail(seq.name or obj, f"the next experiment id would be "
                            f"{seq.next_value}, not above the largest, {seq.max_id}: creating "
                            "an experiment fails with a duplicate key on experiment_pk",
                            seq.next_value, seq.max_id,
                            remedy=f"SELECT setval('{seq.name}', (SELECT max(experiment_id) "
                            f"FROM {parts.lay.schema}.experiments));")
    else:
        largest = f"above the largest ({seq.max_id})" if seq.max_id is not None else \
            "no experiment yet"
        parts.findings.ok(seq.name or obj, f"next experiment id {seq.next_value}, {largest}",
                          seq.next_value, seq.max_id)


@check("integrity.invariants", thresholds=(_CAP,), probes=(_walk("test_invariants"),))
def test_invariants(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues):
    """Experiment 0 exists, its id sequence is ahead, statuses are ones MLflow writes.

    The sequence is experiments_experiment_id_seq (behind after a data-only restore); the
    values are run status and lifecycle stages, experiment lifecycle stages, model version
    stages and statuses."""
    parts = _Parts(mlflowdb, mlflowdb_findings, ())
    cap = int(mlflowdb_thresholds[_CAP])
    # every read at once (side by side while the audit collects), then judged in order
    reads: list[Callable[[], object]] = [
        partial(probe.unknown_values, mlflowdb, parts.lay, table, column, allowed, key, cap)
        for table, column, allowed, key, _ in _DOMAINS if parts.readable(table, column)]
    if parts.readable("experiments", "lifecycle_stage"):
        reads += [partial(probe.experiment_zero, mlflowdb, parts.lay),
                  partial(probe.experiment_sequence, mlflowdb, parts.lay)]
    mlflowdb.each(_quietly, reads)  # an error is met again below, where it was before
    if parts.usable("experiments", "lifecycle_stage"):
        _experiment_zero(parts)
        _sequence(parts)
    for table, column, allowed, key, severity in _DOMAINS:
        if not parts.usable(table, column):
            continue
        obj = f"{parts.lay.schema}.{table}.{column}"
        found = probe.unknown_values(mlflowdb, parts.lay, table, column, allowed, key, cap)
        for value, rows in found:
            add = mlflowdb_findings.fail if severity == "failure" else mlflowdb_findings.warn
            add(obj, f"{rows.total} row(s) hold {value!r}, a value MLflow never writes "
                f"({_EFFECT[severity]}): {_ids(rows)}", rows.total, ", ".join(allowed))
        if not found:
            mlflowdb_findings.ok(obj, "only values MLflow writes", 0, ", ".join(allowed))
    parts.close()


@check("integrity.latest_metrics", thresholds=(_CAP,), enabled_by=("integrity_full",))
@pytest.mark.slow
def test_latest_metrics(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues,
                        mlflowdb_settings):
    """latest_metrics holds each run's newest metric values (slow: reads all of metrics).

    Newest by (step, timestamp, value), as MLflow keeps it; opt-in with
    --mlflowdb-integrity-full."""
    parts = _Parts(mlflowdb, mlflowdb_findings, ("metrics", "latest_metrics"))
    if not (parts.usable("metrics", "run_uuid", "key", "step", "timestamp", "value")
            and parts.usable("latest_metrics", "run_uuid", "key", "step", "timestamp")):
        pytest.skip("; ".join(f.message for f in mlflowdb_findings))
    try:
        diff = probe.latest_metric_disagreements(mlflowdb, parts.lay,
                                                 int(mlflowdb_thresholds[_CAP]))
    except psycopg.errors.QueryCanceled:
        pytest.skip(f"reading all of metrics exceeded the statement timeout "
                    f"({mlflowdb_settings.statement_timeout:g}s): raise "
                    "--mlflowdb-statement-timeout for this slow check")
    obj = f"{parts.lay.schema}.latest_metrics"
    said = {"missing": "metrics with no latest_metrics row (search and the run page miss "
                       "them)",
            "stale": "latest_metrics rows that are not the newest metric (search and the run "
                     "page show an old value)",
            "extra": "latest_metrics rows with no metrics row"}
    for kind, text in said.items():
        rows = getattr(diff, kind)
        if rows.total:
            mlflowdb_findings.warn(obj, f"{rows.total} {text}: {_ids(rows)} (run/key)",
                                   rows.total, 0)
    if not (diff.missing.total or diff.stale.total or diff.extra.total):
        mlflowdb_findings.ok(obj, f"{diff.compared} run/key pairs agree with metrics",
                             diff.compared, 0)
