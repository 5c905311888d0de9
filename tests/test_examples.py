"""The examples/ team checks run as documented against real databases."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from helpers import checks_by_id, report

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _copy_examples(pytester) -> None:
    for name in ("conftest.py", "test_team_checks.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)


def test_team_checks_pass_on_a_genuine_database(pytester, mlflow_uri):
    _copy_examples(pytester)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}")
    assert result.ret == 0, result.stdout.str()
    checks = checks_by_id(report(json_path))
    for check_id in ("team.deleted_runs_collectable", "team.active_experiments",
                     "team.read_only_session", "custom.team_checks.alembic_revision_is_known",
                     "connectivity.connect"):
        assert checks[check_id]["outcome"] == "passed", checks[check_id]


def test_team_checks_catch_their_faults(pytester, mlflow_uri):
    _copy_examples(pytester)
    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        conn.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
                     "VALUES (1, 'a', 'active'), (2, 'b', 'active')")
        conn.execute("INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) "
                     "VALUES ('r1', 1, 'deleted', 'FINISHED')")
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
                                "--mlflowdb-set=team_max_active_experiments=2",
                                "--mlflowdb-no-builtin")
    checks = checks_by_id(report(json_path))
    deleted = checks["team.deleted_runs_collectable"]
    assert deleted["outcome"] == "warned"
    assert deleted["findings"][0]["object"] == "public.runs"
    assert deleted["findings"][0]["value"] == 1
    active = checks["team.active_experiments"]
    assert active["outcome"] == "warned" and active["findings"][0]["value"] == "2"
    assert result.ret == 0
    strict = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-fail-on=warning",
                                "--mlflowdb-no-builtin")
    assert strict.ret == 1


def test_example_ini_is_a_strict_ci_gate(pytester, mlflow_uri):
    _copy_examples(pytester)
    shutil.copy(EXAMPLES / "pytest.ini", pytester.path / "pytest.ini")
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}",
                                "--mlflowdb-set=latency_warn=1us")
    assert result.ret == 1
    checks = checks_by_id(report(pytester.path / "audit.json"))
    warned = {c for c, v in checks.items() if v["outcome"] == "warned"}
    assert warned == {"connectivity.latency", "indexes.recommended"}
    assert (pytester.path / "audit.md").read_text().startswith("# MLflow database audit")
