"""Make a lived-in MLflow database through MLflow's own stores, in a CHILD process.

Usage: ``python tests/mlflow_data.py URI ARTIFACT_DIR`` (URI: a SQLAlchemy URI of a TEST
database, e.g. ``postgresql+psycopg://...``). Prints one JSON object naming what it made.

The rows come from MLflow's SQL stores (the ones a tracking server runs), so their shape
is exactly what MLflow writes: experiments (one deleted), runs finished, failed, running
and deleted, params, tags, metric histories (and the latest_metrics MLflow keeps), dataset
inputs with input tags, registered models, versions (one deleted through the registry,
which redacts its run id), aliases. Nothing here is a fault: tests inject those with SQL
(or with ``mlflow gc``) afterwards. Never import this module in the pytest process: MLflow
imported there breaks later in-process pytester runs.
"""

from __future__ import annotations

import json
import sys
import time


def populate(uri: str, artifacts: str) -> dict:
    """The lived-in data set; returns the ids tests need, by role."""
    from mlflow.entities import (
        Dataset,
        DatasetInput,
        InputTag,
        Metric,
        Param,
        RunStatus,
        RunTag,
    )
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as Tracking

    tracking = Tracking(uri, artifacts)  # creates experiment 0 like a server's first start
    registry = Registry(uri)
    now = int(time.time() * 1000)
    experiment = tracking.create_experiment("training", tags=[])
    tracking.set_experiment_tag(experiment, RunTag("team", "platform"))
    dataset = Dataset(name="churn", digest="d41d8cd9", source_type="local",
                      source='{"uri": "/data/churn.csv"}')

    def run(name: str, status: str | None, *, inputs: bool = True) -> str:
        made = tracking.create_run(experiment, "alice", now - 3_600_000, [], name)
        run_id = made.info.run_id
        metrics = [Metric("loss", 1.0 / (step + 1), now - 3_600_000 + step, step)
                   for step in range(5)]
        tracking.log_batch(run_id, metrics=metrics, params=[Param("lr", "0.01")],
                           tags=[RunTag("stage", "test")])
        if inputs:
            tracking.log_inputs(run_id, [DatasetInput(dataset, [InputTag("context",
                                                                         "train")])])
        if status:
            tracking.update_run_info(run_id, RunStatus.from_string(status), now, name)
        return run_id

    finished = [run(f"finished-{i}", "FINISHED") for i in range(3)]
    failed = run("failed", "FAILED")
    running = run("running", None)  # started an hour ago: still at work, not stuck
    deleted = run("deleted", "FINISHED")
    tracking.delete_run(deleted)  # soft delete: deleted_time = now, not yet due for gc

    doomed = tracking.create_experiment("doomed")
    made = tracking.create_run(doomed, "bob", now - 7_200_000, [], "doomed-run")
    tracking.log_metric(made.info.run_id, Metric("loss", 0.5, now - 7_200_000, 0))
    tracking.update_run_info(made.info.run_id, RunStatus.FINISHED, now, "doomed-run")
    tracking.delete_experiment(doomed)

    registry.create_registered_model("churn")
    for run_id in finished:
        registry.create_model_version("churn", f"runs:/{run_id}/model", run_id)
    registry.set_registered_model_alias("churn", "champion", "2")
    registry.set_registered_model_alias("churn", "challenger", "3")
    registry.delete_model_version("churn", "1")  # redacts run_id to MLflow's placeholder
    registry.create_registered_model("ranker")
    registry.create_model_version("ranker", f"runs:/{deleted}/model", deleted)
    return {"experiment": experiment, "doomed": doomed, "doomed_run": made.info.run_id,
            "finished": finished, "failed": failed, "running": running, "deleted": deleted}


if __name__ == "__main__":
    json.dump(populate(sys.argv[1], sys.argv[2]), sys.stdout)
