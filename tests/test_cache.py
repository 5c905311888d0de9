"""cache.hit_ratio: information only, with the figures and the age of the counters."""

from __future__ import annotations

import datetime
import re

import psycopg
from helpers import audit, dbname_of, role_uri, sql


def by_object(check: dict) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"]}


def _hits_reads(message: str) -> tuple[int, int]:
    found = re.search(r"(\d+) hits, (\d+) reads", message)
    assert found, message
    return int(found.group(1)), int(found.group(2))


def test_healthy_database_gets_information_with_the_counters_age(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    check = checks["cache.hit_ratio"]
    assert check["outcome"] == "passed", check
    assert {f["severity"] for f in check["findings"]} == {"info"}
    findings = by_object(check)
    db = findings[dbname_of(mlflow_uri)]
    hits, reads = _hits_reads(db["message"])
    assert hits > 0
    assert abs(float(db["value"].rstrip("%")) - 100 * hits / (hits + reads)) < 0.1
    assert db["threshold"] is None
    # a database created for the test was never reset: the counters start with the server
    assert "counted since the server started at" in db["message"], db
    assert "public (MLflow's tables)" in findings and "public (MLflow's indexes)" in findings
    assert result.ret == 0


def test_a_reset_is_the_start_of_the_counters(pytester, mlflow_uri):
    sql(mlflow_uri, "SELECT pg_stat_reset()")
    with psycopg.connect(mlflow_uri.replace("+psycopg2", "")) as conn:
        reset = conn.execute("SELECT stats_reset FROM pg_stat_database "
                             "WHERE datname = current_database()").fetchone()[0]
    _, checks = audit(pytester, mlflow_uri)
    db = by_object(checks["cache.hit_ratio"])[dbname_of(mlflow_uri)]
    stamp = reset.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert f"counted since the statistics were reset at {stamp} UTC" in db["message"], db


def test_a_role_without_pg_monitor_sees_the_same_counters(pytester, mlflow_uri, pg18,
                                                         mlflow_role):
    user, password = mlflow_role
    _, checks = audit(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password))
    check = checks["cache.hit_ratio"]
    assert check["outcome"] == "passed", check
    assert _hits_reads(by_object(check)[dbname_of(mlflow_uri)]["message"])[0] > 0
