"""The upgrade rehearsal engine (pytest_mlflowdb.backup.rehearsal) on genuine MLflow databases:
a database made by MLflow 2.9's migrations, with rows, upgraded to the installed head
step by step with the locks each step held; a database already at head; a schema that
is not MLflow's after the upgrade; an unknown revision; a migration that fails half way;
the timeout; no MLflow in the interpreter; no password in any message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from helpers import dbname_of, sql

from pytest_mlflowdb.backup.rehearsal import PYTHON_ENV, Rehearsal, RehearsalUnavailable, rehearse
from pytest_mlflowdb.catalog import load_catalog

pytestmark = pytest.mark.slow

#: the head of MLflow 2.9: 44 migrations behind MLflow 3.17
OLD = load_catalog().head_for_release("2.9.0")
#: rows in the tables later migrations alter or index (metrics gets an index in 3.12)
ROWS = (
    "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (1, 'e', 'active')",
    "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status, start_time) "
    "SELECT md5(g::text), 1, 'active', 'FINISHED', g FROM generate_series(1, 200) g",
    "INSERT INTO tags (key, value, run_uuid) SELECT 'mlflow.user', 'me', md5(g::text) "
    "FROM generate_series(1, 200) g",
    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
    "SELECT 'loss', g, g, md5((g % 200 + 1)::text), g, false FROM generate_series(1, 30000) g",
)


def revision_of(uri: str) -> str:
    with psycopg.connect(uri) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def one_line(result: Rehearsal) -> str:
    assert not result.ok and result.error and "\n" not in result.error, result
    return result.error


@pytest.fixture
def old_uri(mlflowdb_database_factory) -> str:
    """A database migrated by MLflow's own alembic to MLflow 2.9's head, with rows."""
    uri = mlflowdb_database_factory(revision=OLD)
    sql(uri, *ROWS)
    return uri


def test_an_old_database_is_upgraded_step_by_step_with_its_locks(old_uri):
    result = rehearse(old_uri)
    assert result.ok and result.error is None, result
    assert result.from_revision == OLD and revision_of(old_uri) == result.to_revision
    # every migration between the two, in the chain's order (the catalog's, an
    # independent record of MLflow's migrations)
    pending = load_catalog().between(OLD, result.to_revision)
    assert [s.revision for s in result.steps] == [r.revision for r in pending]
    assert [s.description for s in result.steps] == [r.description for r in pending]
    assert all(s.seconds > 0 for s in result.steps)
    assert result.seconds == pytest.approx(sum(s.seconds for s in result.steps))
    steps = {s.revision: s for s in result.steps}
    # 2.17 widens tags.value: ALTER TABLE holds an ACCESS EXCLUSIVE lock on tags
    assert [lock.split(" (")[0] for lock in steps["f5a4f2784254"].locks] == ["public.tags"]
    assert steps["f5a4f2784254"].locks[0].startswith("public.tags (AccessExclusiveLock, ")
    # 3.12 indexes metrics (run_uuid, key, step) without CONCURRENTLY: SHARE lock on a
    # table of MBs, with its size
    (metrics,) = [lock for lock in steps["a5b4c3d2e1f0"].locks if "metrics" in lock]
    assert metrics.startswith("public.metrics (ShareLock, ") and metrics.endswith("MB)")
    # tables a step creates are nobody else's yet: never reported
    assert not any("logged_models" in lock for lock in steps["400f98739977"].locks)


def test_a_database_at_head_is_ok_with_zero_steps(mlflow_uri):
    result = rehearse(mlflow_uri)
    assert result.ok and result.error is None and result.steps == (), result
    assert result.from_revision == result.to_revision == revision_of(mlflow_uri)
    assert result.seconds == 0


def test_a_schema_that_is_not_mlflows_at_head_is_not_ok(mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE runs DROP COLUMN deleted_time",
        "DROP INDEX index_latest_metrics_run_uuid")
    error = one_line(rehearse(mlflow_uri))
    assert "schema differs from MLflow's" in error
    assert "column runs.deleted_time missing" in error
    assert "index index_latest_metrics_run_uuid missing" in error


def test_an_unknown_revision_is_one_line_and_nothing_runs(mlflow_uri):
    sql(mlflow_uri, "UPDATE alembic_version SET version_num = 'deadbeef0000'")
    result = rehearse(mlflow_uri)
    assert "alembic_version holds deadbeef0000" in one_line(result)
    assert result.from_revision == "deadbeef0000" and result.steps == ()
    assert revision_of(mlflow_uri) == "deadbeef0000"


def test_no_alembic_version_is_one_line(mlflowdb_database_factory):
    uri = mlflowdb_database_factory(mlflow=False)
    result = rehearse(uri)
    assert "alembic_version is missing or empty" in one_line(result)
    assert result.from_revision == "" and result.steps == ()


def test_a_migration_that_fails_half_way_names_it_and_keeps_the_steps_done(old_uri):
    # MLflow 3.0 creates logged_models: a table of that name already there breaks it
    sql(old_uri, "CREATE TABLE logged_models (id int)")
    result = rehearse(old_uri)
    error = one_line(result)
    assert error.startswith("migration 400f98739977 failed: ") and "logged_models" in error
    done = [r.revision for r in load_catalog().between(OLD, "0584bdc529eb")]
    assert [s.revision for s in result.steps] == done
    # each step is its own transaction: the failed one rolled back, the ones before stay
    assert revision_of(old_uri) == "0584bdc529eb"
    assert result.seconds >= sum(s.seconds for s in result.steps)


def test_the_timeout_stops_the_migrations_and_their_server_sessions(old_uri):
    # the first migration (MLflow 2.13) adds foreign keys to experiments: it waits for
    # this session's lock until the timeout
    with psycopg.connect(old_uri) as blocker:
        blocker.execute("LOCK TABLE experiments IN ROW EXCLUSIVE MODE")
        result = rehearse(old_uri, timeout=30)
        error = one_line(result)
        first = load_catalog().between(OLD, load_catalog().head)[0].revision
        # the first migration waits for the lock (unless MLflow's import alone took 30s)
        assert error in ("the migrations took longer than 30s",
                         f"the migrations took longer than 30s, stopped during {first}")
        # a backend waiting for a lock does not notice its client died: it was ended
        with psycopg.connect(old_uri) as conn:
            left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                "current_database() AND application_name = "
                                "'mlflowdb_rehearsal'").fetchone()[0]
        assert left == 0
    assert result.steps == () and revision_of(old_uri) == OLD


@pytest.fixture(scope="module")
def python_without_mlflow(tmp_path_factory) -> str:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def test_no_mlflow_in_the_interpreter_is_unavailable(mlflow_uri, python_without_mlflow,
                                                     monkeypatch):
    monkeypatch.setenv(PYTHON_ENV, python_without_mlflow)
    with pytest.raises(RehearsalUnavailable) as caught:
        rehearse(mlflow_uri)
    message = str(caught.value)
    assert "no MLflow to rehearse the upgrade with" in message and "\n" not in message
    assert python_without_mlflow in message
    monkeypatch.setenv(PYTHON_ENV, "/nonexistent/python3")
    with pytest.raises(RehearsalUnavailable, match="cannot start /nonexistent/python3"):
        rehearse(mlflow_uri)


def test_another_python_with_mlflow_but_not_this_package_rehearses(old_uri, tmp_path,
                                                                   monkeypatch):
    """How a team rehearses the MLflow release it is about to deploy: PYTHON_ENV names a
    Python that has that MLflow. The child needs MLflow only, not pytest-mlflowdb."""
    import sysconfig

    venv = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    # this environment's packages but this one, as a plain path (links in a folder that is
    # not a site dir: no .pth runs, so neither an installed nor an editable copy imports)
    others = tmp_path / "others"
    others.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("pytest_mlflowdb", "__editable__")):
            (others / entry.name).symlink_to(entry)
    (venv / site.stdout.strip() / "mlflow.pth").write_text(str(others))
    probe = subprocess.run([python, "-c", "import mlflow, importlib.util; print(importlib."
                            "util.find_spec('pytest_mlflowdb'))"], capture_output=True,
                           text=True, cwd=tmp_path)
    assert probe.stdout.strip() == "None", probe
    monkeypatch.setenv(PYTHON_ENV, python)
    monkeypatch.chdir(tmp_path)  # not the checkout, where the package would import
    result = rehearse(old_uri)
    assert result.ok and len(result.steps) == len(load_catalog().between(
        OLD, result.to_revision)), result


def test_a_database_not_named_as_a_scratch_copy_is_refused_untouched(pg18, old_uri):
    """The rehearsal writes: a URI the janitor did not make (say the audited database,
    passed by mistake) is refused before anything connects to it."""
    with pg18.admin() as conn:
        conn.execute(f"CREATE DATABASE mlflow_production TEMPLATE {dbname_of(old_uri)}")
    try:
        uri = pg18.uri("mlflow_production")
        result = rehearse(uri)
        assert one_line(result) == ("refused: mlflow_production is not a scratch copy (its "
                                    "name does not start with mlflowdb_scratch_); the "
                                    "rehearsal writes, so it runs only on the janitor's copies")
        assert revision_of(uri) == OLD and result.steps == ()
    finally:
        pg18.drop_database("mlflow_production")


def test_no_password_in_any_message(pg18, mlflow_role):
    user, password = mlflow_role
    from urllib.parse import quote

    # no such database, and a password written unencoded as SQLAlchemy users do
    db = "mlflowdb_scratch_none"
    for uri in (f"postgresql://{user}:{quote(password, safe='')}@{pg18.host}:{pg18.port}/{db}",
                f"postgresql://{user}:{password}@{pg18.host}:{pg18.port}/{db}",
                f"postgresql://{user}:{password}@{pg18.host}:notaport/{db}",
                f"postgresql://{user}:{password}@{pg18.host}:{pg18.port}/production"):
        error = one_line(rehearse(uri))
        assert password not in error and quote(password, safe="") not in error
        assert "x%y" not in error, error
