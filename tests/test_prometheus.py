"""The Prometheus text file (.prom): parsed with prometheus_client's own parser."""

from __future__ import annotations

import re
import time

import pytest
from helpers import dbname_of, report, role_uri

from pytest_mlflowdb.outputs.prometheus import STATUS, base_value, to_prometheus
from pytest_mlflowdb.outputs.report import build_report

parser = pytest.importorskip("prometheus_client.parser")

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
UNREACHABLE_PASSWORD = "Unr3achable-s3cret"


def _samples(text: str) -> dict[str, list]:
    families = list(parser.text_string_to_metric_families(text))
    for family in families:
        assert family.type == "gauge" and family.documentation, family.name
        assert METRIC_NAME.match(family.name) and family.name.startswith("mlflowdb_")
    found: dict[str, list] = {}
    for family in families:
        for sample in family.samples:
            assert all(LABEL_NAME.match(k) for k in sample.labels)
            found.setdefault(sample.name, []).append(sample)
    series = [(s.name, tuple(sorted(s.labels.items()))) for ss in found.values() for s in ss]
    assert len(series) == len(set(series)), "a series written twice"
    return found


def test_prom_file_parses_and_tells_what_the_json_report_tells(
        pytester, pg18, mlflow_uri, mlflow_role):
    user, password = mlflow_role
    role = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    down = f"postgresql://u:{UNREACHABLE_PASSWORD}@127.0.0.1:1/nowhere"
    collector = pytester.path / "textfile_collector"
    collector.mkdir()
    prom, json_path = collector / "mlflowdb.prom", pytester.path / "a.json"
    before = time.time()
    result = pytester.runpytest_subprocess(
        f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-uri={role}", f"--mlflowdb-uri={down}",
        "--mlflowdb-connect-timeout=3s", f"--mlflowdb-report={prom}",
        f"--mlflowdb-report={json_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the unreachable target
    text = prom.read_text()
    for secret in (password, pg18.password, UNREACHABLE_PASSWORD):
        assert secret not in text
    assert sorted(p.name for p in collector.iterdir()) == ["mlflowdb.prom"]  # no temp left
    samples = _samples(text)
    document = report(json_path)

    status = {(s.labels["target"], s.labels["check"]): s.value
              for s in samples["mlflowdb_check_status"]}
    assert status == {(c["target"], c["id"]): STATUS[c["outcome"]] for c in document["checks"]}
    one_hot = [s for s in samples["mlflowdb_check_outcome"] if s.value == 1]
    assert sorted((s.labels["target"], s.labels["check"], s.labels["outcome"])
                  for s in one_hot) == sorted((c["target"], c["id"], c["outcome"])
                                              for c in document["checks"])
    up = {s.labels["target"]: s.value for s in samples["mlflowdb_target_up"]}
    ids = [t["id"] for t in document["targets"]]
    assert up == {ids[0]: 1, ids[1]: 1, ids[2]: 0}
    assert status[(ids[2], "connectivity.connect")] == 2
    counts = {(s.labels["target"], s.labels["outcome"]): s.value
              for s in samples["mlflowdb_checks"]}
    for target_id in ids:
        for outcome in ("passed", "warned", "failed", "skipped", "error"):
            assert counts[(target_id, outcome)] == sum(
                c["outcome"] == outcome for c in document["checks"] if c["target"] == target_id)

    seconds = {(s.labels["target"], s.labels["check"], s.labels["object"]): s.value
               for s in samples["mlflowdb_finding_value_seconds"]}
    latency = next(c for c in document["checks"]
                   if c["id"] == "connectivity.latency" and c["target"] == ids[0])
    shown = latency["findings"][0]["value"]  # e.g. "0.31ms"
    assert seconds[(ids[0], "connectivity.latency", "server")] == pytest.approx(
        base_value(shown)[1]) and 0 < base_value(shown)[1] < 1
    assert samples["mlflowdb_finding_value_bytes"], "sizes are exported in bytes"
    thresholds = {(s.labels["check"], s.labels["object"]): s.value
                  for s in samples["mlflowdb_finding_threshold_seconds"]}
    assert thresholds[("connectivity.latency", "server")] == pytest.approx(0.05)  # 50ms

    end = samples["mlflowdb_audit_end_time_seconds"][0].value
    duration = samples["mlflowdb_audit_duration_seconds"][0].value
    assert before < end <= time.time()
    assert 0 < duration <= end - before + 1
    assert document["run"]["end_time"] == pytest.approx(end)


def test_label_values_are_escaped_and_units_become_base_units():
    odd = 'idx "quoted" \\ back\nslash'
    findings = [
        {"object": odd, "severity": "ok", "message": "", "value": "64MB", "threshold": "1GB"},
        {"object": odd, "severity": "ok", "message": "", "value": "80%", "threshold": None},
        {"object": "t", "severity": "ok", "message": "", "value": "1.5min", "threshold": None},
        {"object": "n", "severity": "ok", "message": "", "value": 8192, "threshold": None},
        {"object": "s", "severity": "ok", "message": "", "value": "text", "threshold": True},
    ]
    check = {"id": "area.x", "nodeid": "n", "target": 'h:5432/d"b', "outcome": "passed",
             "severity": "ok", "message": "", "findings": findings, "duration_s": 0.25}
    document = build_report([{"id": 'h:5432/d"b', "uri": None}], [check], timing=(1.5, 1e9))
    samples = _samples(to_prometheus(document))
    size = samples["mlflowdb_finding_value_bytes"][0]
    assert size.labels == {"target": 'h:5432/d"b', "check": "area.x", "object": odd}
    assert size.value == 64 * 1024**2
    assert samples["mlflowdb_finding_threshold_bytes"][0].value == 1024**3
    ratio = samples["mlflowdb_finding_value_ratio"][0]
    assert (ratio.labels["object"], ratio.value) == (f"{odd} #2", 0.8)
    assert samples["mlflowdb_finding_value_seconds"][0].value == 90
    assert [(s.labels["object"], s.value) for s in samples["mlflowdb_finding_value"]] == [
        ("n", 8192)]
    assert samples["mlflowdb_check_duration_seconds"][0].value == 0.25
    assert samples["mlflowdb_audit_duration_seconds"][0].value == 1.5
    assert samples["mlflowdb_audit_end_time_seconds"][0].value == 1e9
    assert base_value(None) is None and base_value(False) is None
