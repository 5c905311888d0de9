"""The examples/ team checks run as documented against real databases."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import psycopg
import pytest
from helpers import checks_by_id, genuine_head, major_bin_dir, past_end_of_life, report

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def server_major(server) -> int:
    from pytest_mlflowdb.servers.binaries import version_of

    return int(version_of(server.bin_dir).split(".")[0])


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
    result = pytester.runpytest_subprocess("examples/", f"--mlflowdb-uri={mlflow_uri}",
                                           "--mlflowdb-verbose")  # the table names each check
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


# -- team checks of the registry -------------------------------------------------------
def test_registry_team_checks_pass_then_name_their_faults(pytester, mlflow_uri):
    shutil.copytree(EXAMPLES / "team_checks", pytester.path / "team_checks")
    json_path = pytester.path / "a.json"
    args = ("team_checks", f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={json_path}",
            "--mlflowdb-no-builtin")
    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        conn.execute("INSERT INTO registered_models (name) VALUES ('fraud.scorer-v2')")
        conn.execute("INSERT INTO model_versions (name, version, status, current_stage) "
                     "VALUES ('fraud.scorer-v2', 1, 'READY', 'None')")
        conn.execute("INSERT INTO registered_model_aliases (alias, version, name) "
                     "VALUES ('champion', 1, 'fraud.scorer-v2')")
    result = pytester.runpytest(*args)
    checks = checks_by_id(report(json_path))
    assert result.ret == 0, result.stdout.str()
    assert checks["team.model_names"]["outcome"] == "passed"
    assert checks["team.serving_aliases"]["outcome"] == "passed"
    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        conn.execute("INSERT INTO registered_models (name) VALUES ('Fraud Scorer')")
        conn.execute("INSERT INTO model_versions (name, version, status, current_stage) "
                     "VALUES ('Fraud Scorer', 1, 'FAILED_REGISTRATION', 'None')")
        conn.execute("INSERT INTO registered_model_aliases (alias, version, name) "
                     "VALUES ('production', 1, 'Fraud Scorer')")
    result = pytester.runpytest(*args)
    checks = checks_by_id(report(json_path))
    assert result.ret == 1
    names = checks["team.model_names"]
    assert names["outcome"] == "warned" and "'Fraud Scorer'" in names["message"]
    aliases = checks["team.serving_aliases"]
    assert aliases["outcome"] == "failed"
    (bad,) = [f for f in aliases["findings"] if f["severity"] == "failure"]
    assert bad["object"] == "Fraud Scorer@production" and "FAILED_REGISTRATION" in bad["message"]


# -- the compose stack, without Docker -------------------------------------------------
def _pytest_commands(text: str) -> list[list[str]]:
    """The ``pytest ...`` commands inside a shell command line, split into words."""
    import re
    import shlex

    return [shlex.split(m.group(0)) for m in re.finditer(r"(?<![\w-])pytest\s[^;&'|>]*", text)]


AUDITOR_PASSWORD = "aud-Secret-2"


@pytest.fixture(scope="module")
def compose_server():
    """A throwaway server of the major the compose file names (14), else the path one, set
    up as the compose stack sets up its database: the init script, MLflow's migrations as
    the mlflow role (as its server does at start), the index service's statements."""
    import subprocess

    import yaml

    from pytest_mlflowdb.catalog.mlflow_schema import apply_mlflow_schema
    from pytest_mlflowdb.servers import start_server

    compose = yaml.safe_load((EXAMPLES / "docker-compose.yml").read_text())
    major = int(compose["services"]["postgres"]["image"].split(":")[1])
    server = start_server("path", pg_bin=major_bin_dir(major))
    try:
        env = {**os.environ, "PGHOST": server.host, "PGPORT": str(server.port),
               "PGPASSWORD": server.password, "POSTGRES_USER": server.user,
               "MLFLOW_DB_PASSWORD": "db-Secret-1", "MLFLOW_AUDITOR_PASSWORD": AUDITOR_PASSWORD,
               "PATH": f"{server.bin_dir}:{os.environ['PATH']}"}
        script = EXAMPLES / "compose" / "initdb" / "10-mlflow-roles.sh"
        subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True,
                       timeout=60)
        mlflow_uri = f"postgresql://mlflow:db-Secret-1@{server.host}:{server.port}/mlflow"
        apply_mlflow_schema(mlflow_uri, owner=None)  # as the mlflow server does: as itself
        command = compose["services"]["mlflow-indexes"]["command"]
        for statement in re.findall(r"-c '([^']+)'", command):
            with psycopg.connect(mlflow_uri, autocommit=True) as conn:
                conn.execute(statement)
        yield compose, server, {**env, "PGPASSWORD": AUDITOR_PASSWORD}
    finally:
        server.stop()


def _quiet(checks: dict, server) -> None:
    """No warning nor failure, but the end-of-life warning a major past it deserves."""
    noisy = {k: c["message"] for k, c in checks.items() if c["outcome"] not in ("passed",
                                                                              "skipped")}
    eol = {"connectivity.server_version"} if past_end_of_life(str(server_major(server))) \
        else set()
    assert set(noisy) == eol, noisy


@pytest.mark.slow
def test_compose_stack_set_up_passes_the_default_audit(pytester, compose_server):
    """The audit service's command on the database the stack sets up: no warning."""
    import subprocess
    import sys

    compose, server, env = compose_server
    services = compose["services"]
    assert set(services) >= {"postgres", "mlflow", "mlflow-indexes", "audit", "audit-cron"}
    assert services["audit"]["environment"]["PGPASSWORD"] == "${MLFLOW_AUDITOR_PASSWORD}"
    (command,) = _pytest_commands(services["audit"]["command"])
    reports = pytester.path / "reports"
    reports.mkdir()
    command = [arg.replace("@postgres:5432", f"@{server.host}:{server.port}")
                  .replace("/reports/", f"{reports}/") for arg in command]
    done = subprocess.run([sys.executable, "-m", *command], cwd=reports, timeout=300,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    _quiet(checks_by_id(report(reports / "audit.json")), server)
    assert AUDITOR_PASSWORD not in done.stdout and "db-Secret-1" not in done.stdout
    assert (reports / "audit.md").exists() and (reports / "audit.xml").exists()
    (cron,) = _pytest_commands(services["audit-cron"]["command"])
    cron = [arg.replace("@postgres:5432", f"@{server.host}:{server.port}")
               .replace("/textfile/", f"{reports}/") for arg in cron]
    done = subprocess.run([sys.executable, "-m", *cron], cwd=reports, timeout=300, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name for f in text_string_to_metric_families(
        (reports / "mlflowdb.prom").read_text())}
    assert {"mlflowdb_check_status", "mlflowdb_audit_end_time_seconds"} <= families


def _ci_steps(path: Path) -> list[tuple[str, str]]:
    """(job, shell text) of every pytest step of a GitHub Actions or GitLab CI file."""
    import yaml

    document = yaml.safe_load(path.read_text())
    found = []
    for name, job in (document.get("jobs") or document).items():
        if not isinstance(job, dict):
            continue
        for step in job.get("steps", []):
            if "pytest " in str(step.get("run", "")) and "pip install" not in step["run"]:
                found.append((name, step["run"]))
        for line in job.get("script", []):
            if str(line).lstrip().startswith("pytest "):
                found.append((name, line))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("ci_file", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_gate_commands_run_as_written(pytester, compose_server, ci_file):
    """Each pytest step of the CI examples, run by bash as the runner would, with the
    workflow's variables pointing at the compose-style database: the rehearsal passes,
    the gate passes at the installed MLflow release, the step summary is appended to."""
    import subprocess
    import sys

    compose, server, env = compose_server
    steps = _ci_steps(EXAMPLES / ci_file)
    assert {job for job, _ in steps} >= ({"rehearse", "gate"} if ci_file.startswith("github")
                                         else {"mlflowdb-rehearse", "mlflowdb-gate"})
    summary = pytester.path / "step_summary"
    summary.write_text("## an earlier step\n")
    uri = f"postgresql://mlflow_auditor@{server.host}:{server.port}/mlflow"
    version, _ = genuine_head()
    for job, text in steps:
        folder = pytester.path / job
        folder.mkdir()
        done = subprocess.run(
            ["bash", "-c", text.replace("\n", " ")], cwd=folder, timeout=900,
            env={**env, "MLFLOW_DB_URI": uri, "MLFLOW_VERSION": version,
                 "GITHUB_STEP_SUMMARY": str(summary),
                 "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
            capture_output=True, text=True)
        noisy = [line for line in done.stdout.splitlines()
                 if " FAILED " in line or " WARNED " in line or " ERROR " in line]
        if "gate" in job and past_end_of_life(str(server_major(server))):
            # the compose stack's PostgreSQL 14 is past its end of life: a strict gate
            # rightly stops there, and for that reason only
            assert done.returncode == 1, (job, noisy)
            _quiet(checks_by_id(report(folder / "audit.json")), server)
        else:
            assert done.returncode == 0, (job, noisy or done.stdout[-3000:],
                                          done.stderr[-2000:])
        assert AUDITOR_PASSWORD not in done.stdout + done.stderr
        assert (folder / ("audit.xml" if "gate" in job else "rehearsal.xml")).exists()
    if ci_file.startswith("github"):
        text = summary.read_text()
        assert text.startswith("## an earlier step") and text.count("MLflow database audit") == 2
