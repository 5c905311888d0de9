"""backup.*: good dumps of a genuine MLflow database pass every check in each format,
with the figures that answer "would it restore, how old is it, how long would it take"."""

from __future__ import annotations

import json

# imported before any in-process pytester run: one that imported psycopg first would drop
# it at its end, and the next would load a second psycopg beside psycopg_binary's
import psycopg  # noqa: F401
import pytest
from backup_support import BACKUP, pg_dump, scratch_databases, seed
from helpers import audit, failing, path_major

from pytest_mlflowdb.catalog.mlflow_schema import apply_mlflow_schema
from pytest_mlflowdb.servers.locate import wheel_bin_dir

pytestmark = pytest.mark.slow


def passed_with_findings(checks: dict) -> None:
    for name in BACKUP:
        check = checks[name]
        assert check["outcome"] == "passed", check
        assert check["findings"], name
        assert not [f for f in check["findings"] if f["severity"] in ("warning", "failure")]


@pytest.mark.parametrize("fmt", ["c", "d", "t", "p", "p.gz"])
def test_a_good_dump_passes_every_backup_check(pytester, mlflow_uri, pg18, tmp_path, fmt):
    seed(mlflow_uri)
    dump = pg_dump(pg18, mlflow_uri, tmp_path / f"nightly.{fmt}", fmt)
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-backup={dump}",
                           f"--mlflowdb-scratch-uri={pg18.uri()}")
    passed_with_findings(checks)
    assert "read end to end" in checks["backup.readable"]["message"]
    restore = checks["backup.restore"]["findings"][0]
    assert restore["object"].startswith("mlflowdb_scratch_")
    assert ("-j " in restore["message"]) == (fmt in ("c", "d"))
    complete = {f["object"]: f for f in checks["backup.complete"]["findings"]}
    assert complete["public.runs"]["value"] == 30
    assert complete["public.metrics"]["value"] == 600
    assert checks["backup.complete"]["findings"][0]["object"] == "public"  # the answer first
    assert "are in the copy (" in checks["backup.complete"]["message"]
    assert "revision" in checks["backup.schema"]["message"]
    rto = checks["backup.rto"]["findings"][0]
    assert rto["value"] > 0 and "no max_restore_time set" in rto["message"]
    fresh = {f["object"]: f for f in checks["backup.freshness"]["findings"]}
    assert fresh["public.runs"]["value"] == 0
    assert pg18.password not in result.stdout.str()
    assert not scratch_databases(pg18)  # dropped after the checks
    assert result.ret == 0


def test_the_backup_checks_are_absent_unless_asked_for(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    assert not [c for c in checks if c.startswith("backup.")]
    assert "skipped" not in result.parseoutcomes() or all(
        not c.startswith("backup.") for c in checks)


def test_restore_test_dumps_the_live_target_into_a_throwaway_server(pytester, mlflow_uri):
    seed(mlflow_uri)
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-restore-test",
                           "--mlflowdb-set", "max_restore_time=10min")
    passed_with_findings(checks)
    assert "live.dump" in checks["backup.readable"]["findings"][0]["object"]
    rto = {f["object"]: f for f in checks["backup.rto"]["findings"]}
    assert rto["restore"]["threshold"] == "10min"
    assert "not part of the RTO" in rto["pg_dump"]["message"]
    assert not failing(checks["backup.freshness"])
    assert result.ret == 0


def test_under_xdist_the_backup_is_restored_once_for_all_its_checks(pytester, mlflow_uri,
                                                                    pg18, tmp_path):
    seed(mlflow_uri)
    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    json_path = pytester.path / "audit.json"
    result = pytester.runpytest_subprocess(
        f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-backup={dump}",
        f"--mlflowdb-scratch-uri={pg18.uri()}", f"--mlflowdb-report={json_path}",
        "-n", "2", "--maxschedchunk", "1", "-p", "no:cacheprovider")
    from helpers import checks_by_id, report

    checks = checks_by_id(report(json_path))
    passed_with_findings(checks)
    import re

    named = {name for check in checks.values() for name in re.findall(
        r"mlflowdb_scratch_[0-9a-f]{12}", json.dumps(check["findings"]))}
    assert len(named) == 1  # one restore, whichever worker ran which check
    assert not scratch_databases(pg18)
    assert result.ret == 0


def test_a_shared_folder_another_user_planted_in_tmp_is_neither_followed_nor_in_the_way(
        pytester, monkeypatch, mlflow_uri, pg18, tmp_path):
    """Another local user pre-creates a fixed folder the xdist workers could share, with a
    link where a worker would write its findings: the audit (root here) neither writes
    through it nor fails."""
    import hashlib
    import os
    import pwd

    from helpers import dbname_of

    dump = pg_dump(pg18, mlflow_uri, tmp_path / "nightly.dump")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    tmpdir.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    planted = tmpdir / "pytest-mlflowdb-backup"
    planted.mkdir()
    run_uid = "a-run-id-the-other-user-guessed"
    target_id = f"{pg18.host}:{pg18.port}/{dbname_of(mlflow_uri)}"
    digest = hashlib.sha256(f"{run_uid}\0{target_id}".encode()).hexdigest()[:24]
    for suffix in (".tmp", ".lock"):
        (planted / f"{digest}{suffix}").symlink_to(victim)
    nobody = pwd.getpwnam("nobody")
    for path in (planted, *planted.iterdir()):
        os.lchown(path, nobody.pw_uid, nobody.pw_gid)
    json_path = pytester.path / "audit.json"
    result = pytester.runpytest_subprocess(
        f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-backup={dump}",
        f"--mlflowdb-scratch-uri={pg18.uri()}", f"--mlflowdb-report={json_path}",
        "-n", "2", f"--testrunuid={run_uid}", "-p", "no:cacheprovider")
    from helpers import checks_by_id, report

    assert result.ret == 0, result.stdout.str()
    passed_with_findings(checks_by_id(report(json_path)))
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in planted.iterdir()) == [f"{digest}.lock", f"{digest}.tmp"]
    assert not list(tmpdir.glob("pytest-mlflowdb-backup-*"))  # the run's own: removed


NOTE = "timings and locks may differ"


@pytest.fixture
def mlflow_on_pg15(pg15):
    """A database on the pg15 fixture's server with MLflow's schema from its migrations."""
    uri = pg15.create_database("backup_live_pg15")
    try:
        apply_mlflow_schema(uri)
        yield uri
    finally:
        pg15.drop_database("backup_live_pg15")


def test_a_throwaway_scratch_server_is_of_the_live_servers_major(mlflow_on_pg15, pytester,
                                                                  pg18):
    assert wheel_bin_dir()  # the wheel's server (18) is at hand, and not chosen
    seed(mlflow_on_pg15)
    result, checks = audit(pytester, mlflow_on_pg15, "--mlflowdb-restore-test")
    passed_with_findings(checks)
    restore = checks["backup.restore"]["findings"][0]["message"]
    assert f" on PostgreSQL {path_major()}." in restore, restore
    assert not [f for c in BACKUP for f in checks[c]["findings"] if NOTE in f["message"]]
    assert result.ret == 0


def test_a_copy_restored_on_another_major_says_so_in_every_finding(mlflow_on_pg15, pytester,
                                                                    pg18, tmp_path):
    if path_major() == "18":
        pytest.skip("the path server is of the wheel's major")
    seed(mlflow_on_pg15)
    result, checks = audit(pytester, mlflow_on_pg15, "--mlflowdb-restore-test",
                           f"--mlflowdb-scratch-uri={pg18.uri()}",
                           "--mlflowdb-upgrade-rehearsal")
    note = f"restored on PostgreSQL 18 (the live server is {path_major()}): {NOTE}"
    for name in (*BACKUP, "backup.upgrade"):
        assert checks[name]["findings"], name
        for finding in checks[name]["findings"]:
            assert finding["message"].endswith(note), finding
    assert checks["backup.upgrade"]["outcome"] == "passed"
    assert result.ret == 0


def test_a_restore_into_an_older_scratch_server_uses_a_pg_restore_it_accepts(
        mlflow_on_pg15, pytester, pg15, tmp_path):
    """The wheel's pg_restore 18 is at hand too; it sends ``SET transaction_timeout``,
    which PostgreSQL 16 and older refuse: a false failure of every restore into them."""
    assert wheel_bin_dir()
    seed(mlflow_on_pg15)
    dump = pg_dump(pg15, mlflow_on_pg15, tmp_path / "nightly.dump")
    args = (f"--mlflowdb-backup={dump}", f"--mlflowdb-scratch-uri={pg15.uri()}")
    result, checks = audit(pytester, mlflow_on_pg15, *args)
    passed_with_findings(checks)
    assert f" on PostgreSQL {path_major()}." in checks["backup.restore"]["message"]
    assert result.ret == 0
    if int(path_major()) >= 17:
        return  # the wheel's pg_restore restores into it
    # only a pg_restore too new for the scratch server: the versions it needs, one line
    result, checks = audit(pytester, mlflow_on_pg15, *args,
                           f"--mlflowdb-pg-bin={wheel_bin_dir()}")
    (finding,) = failing(checks["backup.restore"])
    message = finding["message"]
    assert "\n" not in message and "transaction_timeout" in message
    assert f"needs pg_dump/pg_restore/psql {path_major()} to 16 (the scratch server is " \
        f"PostgreSQL {path_major()}." in message, message
    assert "too new" in message and "give --mlflowdb-pg-bin" in message
    assert checks["backup.readable"]["outcome"] == "passed"  # read with the tools at hand
    assert not scratch_databases(pg15)
    assert result.ret == 1
