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


def _copy_examples_tree(pytester) -> Path:
    """examples/ as the repository has it, under pytester's folder."""
    target = pytester.path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_readme_command_for_team_checks_passes_a_healthy_database(pytester, mlflow_uri):
    """README: ``pytest examples/ --mlflowdb-uri=...`` audits, it is not the strict CI gate."""
    _copy_examples_tree(pytester)
    result = pytester.runpytest_subprocess("examples/", f"--mlflowdb-uri={mlflow_uri}")
    assert result.ret == 0, result.stdout.str()
    assert "fail-on" not in result.stdout.str() and "fail_on" not in result.stdout.str()
    assert not (pytester.path / "audit.json").exists()
    result.stdout.fnmatch_lines(["*team.deleted_runs_collectable*PASSED*"])


def test_example_ci_gate_is_strict_and_says_where_that_came_from(pytester, mlflow_uri):
    """README: ``pytest examples/ci-gate --mlflowdb-uri=... --junitxml=audit.xml``."""
    examples = _copy_examples_tree(pytester)
    result = pytester.runpytest_subprocess("examples/ci-gate", f"--mlflowdb-uri={mlflow_uri}",
                                           "--mlflowdb-set=latency_warn=1us",
                                           "--junitxml=audit.xml")
    assert result.ret == 1
    inipath = examples / "ci-gate" / "pytest.ini"
    result.stdout.fnmatch_lines([
        f"mlflowdb: warned checks fail this run (mlflowdb_fail_on = warning in {inipath})"])
    checks = checks_by_id(report(pytester.path / "audit.json"))
    assert checks["connectivity.latency"]["outcome"] == "warned"
    assert not [c for c in checks if c.startswith(("team.", "custom."))]  # built-ins only
    assert (pytester.path / "audit.md").read_text().startswith("# MLflow database audit")
    assert (pytester.path / "audit.xml").exists()


def test_example_ci_gate_from_a_repository_root_collects_only_the_audit(pytester, mlflow_uri):
    """Run from a folder that has its own tests/: the gate must not collect them."""
    _copy_examples_tree(pytester)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_project.py").write_text("def test_p():\n    assert 0\n")
    result = pytester.runpytest_subprocess("examples/ci-gate", f"--mlflowdb-uri={mlflow_uri}",
                                           "--co", "-q")
    assert "test_project" not in result.stdout.str()
    assert "connectivity.py::test_connect" in result.stdout.str()
