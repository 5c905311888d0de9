"""size.* checks: figures on a healthy MLflow database, each fault caught by name, the
growth forecast from kept reports, bad input, and a table locked by another session."""

from __future__ import annotations

import datetime
import json
import re
import threading
from urllib.parse import unquote, urlsplit

import psycopg
from helpers import audit, dbname_of, failing, report, role_uri, sql

MB = 1024**2
SEED = (
    # no explicit id: the sequence gives 1 and stays ahead (integrity.invariants checks it)
    "INSERT INTO experiments (name, lifecycle_stage) VALUES ('e', 'active')",
    "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) VALUES "
    "('r1', 1, 'active', 'FINISHED')",
    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
    "SELECT 'loss', random(), g, 'r1', g, false FROM generate_series(1, 5000) g",
    "VACUUM ANALYZE metrics",
)


def by_severity(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def quiet(checks: dict) -> None:
    for name in ("size.database", "size.tables", "size.rows"):
        assert checks[name]["outcome"] == "passed", checks[name]
        assert not [f for f in checks[name]["findings"]
                    if f["severity"] in ("warning", "failure")]


def test_healthy_fresh_and_loaded_databases_pass_with_their_figures(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    quiet(checks)
    (db,) = checks["size.database"]["findings"]
    assert db["object"] == dbname_of(mlflow_uri) and db["value"] > 0
    assert "no max_db_size set" in db["message"]
    sql(mlflow_uri, *SEED)
    result, checks = audit(pytester, mlflow_uri)
    quiet(checks)
    tables = checks["size.tables"]["findings"]
    assert tables[0]["object"] == "public.metrics"  # the largest first
    assert [t["value"] for t in tables] == sorted((t["value"] for t in tables), reverse=True)
    assert "heap " in tables[0]["message"] and "indexes " in tables[0]["message"]
    rows = by_severity(checks["size.rows"], "ok")
    assert 4500 <= rows["public.metrics"]["value"] <= 5500
    assert result.ret == 0


def test_size_limits_below_the_actual_size_fail_by_name(pytester, mlflow_uri):
    sql(mlflow_uri, *SEED)
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-max-db-size=1MB",
                           "--mlflowdb-set", "max_table_size=256kB")
    (db,) = failing(checks["size.database"])
    assert db["object"] == dbname_of(mlflow_uri)
    assert "at or above max_db_size 1MB" in db["message"] and db["value"] > MB
    (table,) = failing(checks["size.tables"])
    assert table["object"] == "public.metrics" and table["threshold"] == "256kB"
    assert table["value"] > 256 * 1024
    assert 'VACUUM (ANALYZE) "public"."metrics"' in table["remedy"]
    assert result.ret == 1


def test_a_row_limit_exceeded_fails_by_name(pytester, mlflow_uri):
    sql(mlflow_uri, *SEED)
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "max_rows_metrics=1000",
                           "--mlflowdb-set", "max_rows_params=1000")
    (finding,) = failing(checks["size.rows"])
    assert finding["object"] == "public.metrics" and finding["threshold"] == 1000
    assert "rows (estimate), at or above max_rows_metrics 1000" in finding["message"]
    assert result.ret == 1


def test_row_limits_on_never_analysed_tables_are_a_skip_not_a_pass(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "max_rows_metrics=1000")
    assert checks["size.rows"]["outcome"] == "skipped"
    assert "no row estimate for metrics" in checks["size.rows"]["message"]


def _kept_report(target: str, db: str, size: int, days_ago: float,
                 tables: dict[str, int] | None = None) -> dict:
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    return {"version": 1, "saved_at": when.isoformat(), "targets": [{"id": target}],
            "checks": [{"id": "size.database", "target": target, "outcome": "passed",
                        "findings": [{"object": db, "value": size, "severity": "ok"}]},
                       {"id": "size.tables", "target": target, "outcome": "passed",
                        "findings": [{"object": k, "value": v, "severity": "ok"}
                                     for k, v in (tables or {}).items()]}]}


def test_forecast_crossing_within_the_horizon_from_three_kept_reports(pytester, mlflow_uri):
    history = pytester.path / "history"
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-history={history}")
    kept = sorted(history.glob("mlflowdb-report-*.json"))
    assert len(kept) == 1  # this run was kept, masked like every report file
    password = unquote(urlsplit(mlflow_uri).password or "")
    assert password and password not in kept[0].read_text()
    assert report(kept[0])["saved_at"].endswith("+00:00")
    (earlier,) = [c for c in report(kept[0])["checks"] if c["id"] == "size.database"]
    assert checks["size.database"]["findings"][0]["message"].startswith("database is")
    target, finding = earlier["target"], earlier["findings"][0]
    db, size = finding["object"], finding["value"]
    largest = checks["size.tables"]["findings"][0]
    name, biggest = largest["object"], largest["value"]
    kept[0].unlink()
    for days_ago in (20, 10, 5):  # 100kB a day, 2kB a day for the largest table
        (history / f"r{days_ago}.json").write_text(json.dumps(_kept_report(
            target, db, size - days_ago * 100 * 1024, days_ago,
            {name: biggest - days_ago * 2048})))
    (history / "README.txt").write_text("not a report")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-history={history}",
                           f"--mlflowdb-max-db-size={size + 1000 * 1024}",
                           "--mlflowdb-set", f"max_table_size={biggest + 10 * 1024}")
    check = checks["size.database"]
    assert check["outcome"] == "warned"
    (warning,) = by_severity(check, "warning").values()
    assert warning["object"] == f"{db} growth"
    # autovacuum may add a table's free-space and visibility maps between the two audits
    # (a few dozen kB): the slope and the crossing are read back, not matched exactly
    found = re.search(r"grows \+(\d+)kB/day \(least squares over 4 points spanning 20\.0 "
                      r"days\): reaches the limit .* in (\d+) days", warning["message"])
    assert found, warning["message"]
    assert 100 <= int(found[1]) <= 110 and 8 <= int(found[2]) <= 10
    (table,) = by_severity(checks["size.tables"], "warning").values()
    assert table["object"] == f"{name} growth"
    assert "grows +2kB/day" in table["message"] and "in 5 days" in table["message"]
    note = by_severity(check, "info")[str(history)]
    assert note["message"] == ("ignored 1 file(s) in the history folder: README.txt "
                               "(not a pytest-mlflowdb report)")
    assert result.ret == 0
    # the same history without a limit: the growth is information, not a warning
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-history={history}")
    assert checks["size.database"]["outcome"] == "passed"
    assert "grows +100kB/day" in by_severity(checks["size.database"], "ok")[f"{db} growth"][
        "message"]


def test_reports_an_hour_apart_give_no_forecast(pytester, mlflow_uri):
    history = pytester.path / "history"
    history.mkdir()
    _, checks = audit(pytester, mlflow_uri)
    target = checks["size.database"]["target"]
    (finding,) = checks["size.database"]["findings"]
    for hours in (1, 0.5):
        (history / f"r{hours}.json").write_text(json.dumps(_kept_report(
            target, finding["object"], finding["value"] // 2, hours / 24)))
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-history={history}",
                      f"--mlflowdb-max-db-size={finding['value'] + MB}")
    check = checks["size.database"]
    assert check["outcome"] == "passed"
    assert "no forecast: the kept reports span 1h" in by_severity(check, "ok")[
        f"{finding['object']} growth"]["message"]


def test_bad_size_values_are_one_line_usage_errors(pytester, mlflow_uri, tmp_path):
    (tmp_path / "file").write_text("")
    for args, words in (
            (["--mlflowdb-max-db-size=10 parsecs"], "is not a size"),
            (["--mlflowdb-max-db-size=-1GB"], "is not a size"),
            (["--mlflowdb-max-db-size=9000TB"], "outside"),
            (["--mlflowdb-set", "max_table_size=12 furlongs"], "is not a size"),
            (["--mlflowdb-set", "max_rows_metrics=1.5"], "is not a count"),
            (["--mlflowdb-set", "max_rows_spans=-3"], "is not a count"),
            (["--mlflowdb-set", "forecast_horizon=1h"], "outside"),
            (["--mlflowdb-set", "max_db_size=2000TB"], "outside"),
            ([f"--mlflowdb-history={tmp_path / 'file'}"], "is not a folder")):
        result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}", *args)
        assert result.ret == 4, args
        errors = [line for line in result.errlines if line.strip()]
        assert len(errors) == 1 and words in errors[0], (args, errors)
        assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_table_locked_by_another_session_is_not_measured(pytester, mlflow_uri):
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(mlflow_uri) as conn:
            conn.execute("LOCK TABLE params IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(30)
        # other areas' checks may stop at the lock too: size's answer is what is tested
        _, checks = audit(pytester, mlflow_uri, "--mlflowdb-lock-timeout=200ms")
    finally:
        release.set()
        holder.join()
    tables = checks["size.tables"]
    assert tables["outcome"] == "passed"
    assert "not measured: another session holds a lock on it" in \
        by_severity(tables, "info")["public.params"]["message"]
    assert by_severity(tables, "ok")["public.metrics"]["value"] > 0
    assert "public.params" in by_severity(checks["size.rows"], "ok")  # reltuples: no lock


def test_a_role_without_privileges_still_gets_catalog_figures(pytester, mlflow_uri, pg18,
                                                               mlflow_role):
    """Sizes and reltuples need no SELECT on MLflow's tables nor pg_monitor: the figures
    are the same a superuser sees."""
    sql(mlflow_uri, *SEED)
    user, password = mlflow_role
    _, as_admin = audit(pytester, mlflow_uri)
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    result, checks = audit(pytester, uri, "--mlflowdb-set", "max_rows_metrics=1000")
    (finding,) = failing(checks["size.rows"])
    assert finding["object"] == "public.metrics"
    assert by_severity(checks["size.tables"], "ok")["public.metrics"]["value"] == \
        by_severity(as_admin["size.tables"], "ok")["public.metrics"]["value"]
    assert password not in result.stdout.str()
