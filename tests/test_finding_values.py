"""Findings hold whatever a query returns, serially and across xdist workers."""

from __future__ import annotations

import datetime

import pytest
from helpers import checks_by_id, report

# -- item: findings hold whatever a query returns --------------------------------------
TYPES = r"""
from pytest_mlflowdb import check

QUERIES = {
    "integer_numeric": "SELECT 42::numeric",
    "numeric": "SELECT 12.5::numeric",
    "long_numeric": "SELECT 3.14159265358979323846264338::numeric",
    "timestamptz": "SELECT '2024-01-02 03:04:05+00'::timestamptz",
    "date": "SELECT '2024-01-02'::date",
    "time": "SELECT '03:04:05'::time",
    "interval": "SELECT '1 minute 30 seconds'::interval",
    "bytea": "SELECT '\\x00ff'::bytea",
    "uuid": "SELECT '00000000-0000-0000-0000-000000000001'::uuid",
    "inet": "SELECT '10.0.0.1'::inet",
    "numeric_array": "SELECT ARRAY[1.5, 2]::numeric[]",
}


@check("team.types")
def test_types(mlflowdb, mlflowdb_findings):
    for name, sql in QUERIES.items():
        value = mlflowdb.value(sql)
        mlflowdb_findings.ok(name, "read", value, value)
"""

EXPECTED = {
    "integer_numeric": 42, "numeric": 12.5, "long_numeric": "3.14159265358979323846264338",
    "date": "2024-01-02", "time": "03:04:05", "interval": 90.0, "bytea": "00ff",
    "uuid": "00000000-0000-0000-0000-000000000001", "inet": "10.0.0.1",
    "numeric_array": [1.5, 2],
}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_findings_hold_every_type_a_query_returns(pytester, mlflow_uri, workers):
    pytester.makepyfile(test_team=TYPES)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest_subprocess(*workers, f"--mlflowdb-uri={mlflow_uri}",
                                           "--mlflowdb-no-builtin",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    findings = {f["object"]: f for f in checks_by_id(report(json_path))["team.types"]["findings"]}
    values = {name: f["value"] for name, f in findings.items()}
    assert {name: f["threshold"] for name, f in findings.items()} == values
    stamp = datetime.datetime.fromisoformat(values.pop("timestamptz"))
    assert stamp == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert values == EXPECTED
    assert all(type(values[k]) is type(EXPECTED[k]) for k in EXPECTED)
