"""The record contract: check and target records survive JSON (as between xdist workers)."""

from __future__ import annotations

import dataclasses

from pytest_mlflowdb.results.records import CheckRecord, TargetRecord, check_of_nodeid


def test_check_record_round_trips_through_json():
    record = CheckRecord(id="indexes.recommended", nodeid="checks/indexes.py::t[x]",
                         target="h:5432/db", outcome="warned", severity="warning",
                         message="1 missing", duration_s=0.25,
                         findings=({"object": "runs", "severity": "warning", "message": "m",
                                    "remedy": "CREATE INDEX ..."},))
    data = record.to_json()
    assert list(data) == ["id", "nodeid", "target", "outcome", "severity", "message",
                          "findings", "duration_s"]
    assert list(data) == [f.name for f in dataclasses.fields(CheckRecord)]  # none forgotten
    data["findings"][0]["message"] = "changed"  # a copy: the record's findings stay as they were
    assert record.findings[0]["message"] == "m"
    data["findings"][0]["message"] = "m"
    assert CheckRecord.from_json(data) == record


def test_target_record_json_keys_say_whether_the_session_read_the_catalog():
    connected = TargetRecord(id="t", uri="postgresql://u:***@h/db", server_version="16.2",
                             schema_revision="abc", mlflow_versions=("3.1",),
                             mlflow_schema="public", connected=True, notes=("n",))
    failed = TargetRecord(id="t", uri=None, error="connection refused")
    assert connected.to_json() == {"id": "t", "uri": "postgresql://u:***@h/db",
                                   "server_version": "16.2", "schema_revision": "abc",
                                   "mlflow_versions": ["3.1"], "mlflow_schema": "public",
                                   "notes": ["n"]}
    assert failed.to_json() == {"id": "t", "uri": None, "server_version": None,
                                "schema_revision": None, "mlflow_versions": [],
                                "error": "connection refused"}
    for record in (connected, failed):
        assert TargetRecord.from_json(record.to_json()) == record


def test_check_of_nodeid_finds_the_target_in_the_parameters():
    assert check_of_nodeid("tests/test_team.py::test_orphans[db:5432/m]", ["db:5432/m"]) == (
        "custom.team.orphans", "db:5432/m")
