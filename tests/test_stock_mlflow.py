"""A stock MLflow database, made and used by MLflow itself, passes the default audit.

The database gets its schema from MLflow's migrations and its rows from MLflow's own
client on MLflow's SQL store (the store the tracking server runs), then `mlflow gc`, then
the platform guide's recommended indexes exactly as the README shows them. MLflow runs
in child processes: its connection pool must be gone before the database is dropped,
and this process must not import it (the dormant-plugin test looks at sys.modules).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import audit, sql

from pytest_mlflowdb.indexes.recommended import RECOMMENDED_INDEXES

README = Path(__file__).resolve().parent.parent / "README.md"

POPULATE = r"""
import sys
from mlflow.tracking import MlflowClient

uri = sys.argv[1]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
experiment = client.create_experiment("stock")
client.set_experiment_tag(experiment, "team", "platform")
runs = []
for i in range(3):
    run = client.create_run(experiment, run_name=f"run-{i}", tags={"stage": "test"})
    client.log_param(run.info.run_id, "lr", str(0.1 * (i + 1)))
    for step in range(5):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + i + 1), step=step)
    client.set_terminated(run.info.run_id)
    runs.append(run.info.run_id)
found = client.search_runs([experiment], "metrics.loss < 1", order_by=["metrics.loss ASC"])
assert len(found) == 3, found
client.create_registered_model("stock-model", tags={"owner": "platform"})
for run_id in runs[:2]:
    version = client.create_model_version("stock-model", f"runs:/{run_id}/model", run_id)
    client.set_model_version_tag("stock-model", version.version, "validated", "yes")
client.set_registered_model_alias("stock-model", "champion", "2")
client.delete_run(runs[2])
doomed = client.create_experiment("doomed")
run = client.create_run(doomed)
client.log_metric(run.info.run_id, "loss", 0.5)
client.delete_experiment(doomed)
"""


def guide_statements() -> list[str]:
    """The README's recommended statements (the test below proves the README shows them)."""
    return [index.statement for index in RECOMMENDED_INDEXES]


def test_readme_shows_every_recommended_statement():
    readme = README.read_text()
    for statement in guide_statements():
        assert statement in readme


def _mlflow(tmp_path: Path, uri: str, *command: str) -> None:
    """Run MLflow in a child process (tracking URI set, artifacts under ``tmp_path``)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_stock_mlflow_database_with_guide_indexes_passes_without_warning(
        pytester, mlflow_uri, tmp_path):
    # find, never import: MLflow imported here breaks the plugin's loading in every later
    # in-process pytester run of this worker (and the dormancy test watches sys.modules)
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("MLflow is not installed")
    # psycopg 3 is what this environment has; MLflow's SqlAlchemyStore accepts it by URI
    store_uri = "postgresql+psycopg://" + mlflow_uri.partition("://")[2]
    _mlflow(tmp_path, store_uri, sys.executable, "-c", POPULATE, store_uri)
    _mlflow(tmp_path, store_uri, str(Path(sys.executable).with_name("mlflow")), "gc",
            "--backend-store-uri", store_uri)
    import psycopg

    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        left = conn.execute("SELECT (SELECT count(*) FROM runs WHERE lifecycle_stage = "
                            "'deleted'), (SELECT count(*) FROM experiments WHERE "
                            "lifecycle_stage = 'deleted'), (SELECT count(*) FROM metrics), "
                            "(SELECT count(*) FROM registered_model_aliases)").fetchone()
    assert left == (0, 0, 10, 1), left  # gc removed the deleted run and experiment
    sql(mlflow_uri, "ANALYZE", *guide_statements())

    result, checks = audit(pytester, mlflow_uri)
    bad = {cid: [f["message"] for f in c["findings"] if f["severity"] in ("warning",
                                                                          "failure")]
           or c["message"]
           for cid, c in checks.items() if c["outcome"] in ("warned", "failed", "error")}
    assert bad == {}
    recommended = {f["object"]: f["value"] for f in checks["indexes.recommended"]["findings"]
                   if f["severity"] == "ok"}
    for index in RECOMMENDED_INDEXES:
        assert recommended[f"public.{index.table}({', '.join(index.columns)})"] == index.name
    assert checks["indexes.redundant"]["outcome"] == "passed"
    assert result.ret == 0
