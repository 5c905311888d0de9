"""backup.upgrade: the rehearsal engine (pytest_mlflowdb.backup.rehearsal) runs on the
restored copy, never on the audited database, and its answer becomes
findings: steps with their time and locks, a failure as one line."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import psycopg
import pytest
from backup_support import pg_dump, seed
from helpers import audit, dbname_of, failing

import pytest_mlflowdb.backup

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Step:
    revision: str
    description: str
    seconds: float
    locks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rehearsal:
    ok: bool
    error: str | None
    from_revision: str
    to_revision: str
    seconds: float
    steps: tuple[Step, ...] = ()


class RehearsalUnavailable(RuntimeError):
    pass


@pytest.fixture
def stand_in(monkeypatch):
    """A stand-in engine with the contract's shape that records where it was called."""
    calls: list[str] = []
    answer: dict = {}
    module = types.ModuleType("pytest_mlflowdb.backup.rehearsal")

    def rehearse(uri: str, timeout: float = 1800) -> Rehearsal:
        with psycopg.connect(uri) as conn:
            (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        calls.append(uri)
        if answer.get("unavailable"):
            raise RehearsalUnavailable("MLflow is not installed (pip install "
                                       "pytest-mlflowdb[mlflow])")
        return answer.get("result") or Rehearsal(
            True, None, "old1", revision, 2.5,
            (Step("aaa111", "add a column", 0.5), Step(
                revision, "rebuild an index", 2.0,
                ("public.metrics (AccessExclusiveLock, 1.2 MB)",))))

    module.rehearse = rehearse
    module.RehearsalUnavailable = RehearsalUnavailable
    monkeypatch.setitem(sys.modules, "pytest_mlflowdb.backup.rehearsal", module)
    monkeypatch.setattr(pytest_mlflowdb.backup, "rehearsal", module, raising=False)
    return calls, answer


def test_the_rehearsal_runs_on_the_restored_copy_and_reports_each_step(
        pytester, mlflow_uri, pg18, tmp_path, stand_in):
    calls, _ = stand_in
    seed(mlflow_uri)
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri={pg18.uri()}",
                           "--mlflowdb-upgrade-rehearsal")
    (uri,) = calls
    assert dbname_of(uri).startswith("mlflowdb_scratch_") and dbname_of(uri) != \
        dbname_of(mlflow_uri)
    check = checks["backup.upgrade"]
    assert check["outcome"] == "passed"
    findings = {f["object"]: f for f in check["findings"]}
    assert "2 migration(s) from old1 to" in findings["upgrade"]["message"]
    assert "1 held exclusive or share locks" in findings["upgrade"]["message"]
    step = [f for o, f in findings.items() if o.startswith("02 ")][0]
    assert "locked public.metrics (AccessExclusiveLock, 1.2 MB)" in step["message"]
    assert result.ret == 0


def test_a_failed_or_impossible_rehearsal_fails_in_one_line(pytester, mlflow_uri, pg18,
                                                            tmp_path, stand_in):
    _, answer = stand_in
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    args = (f"--mlflowdb-backup={dump}", f"--mlflowdb-scratch-uri={pg18.uri()}",
            "--mlflowdb-upgrade-rehearsal")
    answer["result"] = Rehearsal(False, "Can't locate revision identified by 'zzz'", "zzz",
                                 "head1", 0.3)
    _, checks = audit(pytester, mlflow_uri, *args)
    (finding,) = failing(checks["backup.upgrade"])
    assert "from zzz to head1 failed on the restored copy: Can't locate revision" in \
        finding["message"]
    answer["unavailable"] = True
    result, checks = audit(pytester, mlflow_uri, *args)
    (finding,) = failing(checks["backup.upgrade"])
    assert finding["message"] == ("cannot rehearse the upgrade: MLflow is not installed "
                                  "(pip install pytest-mlflowdb[mlflow])")
    assert checks["backup.schema"]["outcome"] == "passed"  # the rest is still verified
    assert result.ret == 1


def test_a_rehearsal_without_a_backup_fails_saying_what_is_missing(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-upgrade-rehearsal")
    (finding,) = failing(checks["backup.upgrade"])
    assert "give --mlflowdb-backup=PATH or --mlflowdb-restore-test" in finding["message"]
    assert "backup.restore" not in checks  # only the rehearsal was asked for
    assert result.ret == 1


def test_a_backup_of_an_older_mlflow_is_upgraded_on_its_copy(pytester, pg18, tmp_path,
                                                             mlflowdb_database_factory):
    from pytest_mlflowdb.catalog import load_catalog

    old = load_catalog().head_for_release("2.9.0")
    uri = mlflowdb_database_factory(revision=old)
    dump = pg_dump(pg18, uri, tmp_path / "old.dump")
    result, checks = audit(pytester, uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri={pg18.uri()}",
                           "--mlflowdb-upgrade-rehearsal")
    check = checks["backup.upgrade"]
    assert check["outcome"] == "passed", check
    assert f"from {old} to" in check["message"]
    assert len([f for f in check["findings"] if f["object"][:2].isdigit()]) > 1
    with psycopg.connect(uri) as conn:  # the audited database was never migrated
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (old,)
