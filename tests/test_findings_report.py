"""The findings recorder and the report document (pytest_mlflowdb.results.findings, .report)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import uuid
from decimal import Decimal

import pytest

from pytest_mlflowdb.config.targets import scrub_all
from pytest_mlflowdb.outputs.json_file import to_json
from pytest_mlflowdb.outputs.markdown import to_markdown
from pytest_mlflowdb.outputs.report import build_report, remove_reports, write_reports
from pytest_mlflowdb.outputs.terminal import terminal_tables
from pytest_mlflowdb.results.findings import Finding, Findings
from pytest_mlflowdb.results.records import OUTCOMES

SECRET = "hunter2-long"  # long enough to be searched for (targets.SEARCH_MIN)
TARGET_ID = "db.example:5432/mlflow"


# -- Finding / Findings ----------------------------------------------------------------
def test_finding_rejects_unknown_severity():
    with pytest.raises(ValueError, match="ok, info, warning, failure"):
        Finding("server", "fatal", "boom")


def test_recorders_set_severity_and_return_the_finding():
    findings = Findings()
    recorded = [
        findings.ok("a", "fine", 1, 2),
        findings.info("b", "fyi"),
        findings.warn("c", "hmm", "3", "4"),
        findings.fail("d", "bad"),
    ]
    assert [f.severity for f in recorded] == ["ok", "info", "warning", "failure"]
    assert list(findings) == recorded
    assert len(findings) == 4
    assert recorded[0] == Finding("a", "ok", "fine", 1, 2)
    assert recorded[0].to_json() == {"object": "a", "severity": "ok", "message": "fine",
                                     "value": 1, "threshold": 2, "remedy": None}


def test_object_is_made_a_string():
    assert Findings().ok(42, "answer").object == "42"


@pytest.mark.parametrize(("recorded", "severity", "outcome"), [
    ([], "ok", "passed"),
    (["ok"], "ok", "passed"),
    (["ok", "info"], "info", "passed"),
    (["info", "warning", "ok"], "warning", "warned"),
    (["failure", "warning", "info"], "failure", "failed"),
    (["ok", "failure"], "failure", "failed"),
])
def test_severity_is_the_worst_and_outcome_follows(recorded, severity, outcome):
    findings = Findings()
    for level in recorded:
        findings.add("x", level, level)
    assert findings.severity == severity
    assert findings.outcome == outcome


def test_limit_below_warn_is_ok():
    finding = Findings().limit("server", "median latency", 0.02, unit="duration",
                               warn=0.05, fail=1.0)
    assert finding.severity == "ok"
    assert finding.message == "median latency: 20ms (below 50ms)"
    assert (finding.value, finding.threshold) == ("20ms", "50ms")


@pytest.mark.parametrize("value", [0.05, 0.5])
def test_limit_at_or_above_warn_warns(value):
    finding = Findings().limit("server", "median latency", value, unit="duration",
                               warn=0.05, fail=1.0)
    assert finding.severity == "warning"
    shown = "50ms" if value == 0.05 else "500ms"
    assert finding.message == f"median latency: {shown}, at or above 50ms"
    assert (finding.value, finding.threshold) == (shown, "50ms")


@pytest.mark.parametrize(("value", "shown"), [(95.0, "95%"), (100.0, "100%")])
def test_limit_at_or_above_fail_fails(value, shown):
    findings = Findings()
    finding = findings.limit("max_connections", "connections in use", value, unit="percent",
                             warn=80.0, fail=95.0)
    assert finding.severity == "failure"
    assert finding.message == f"connections in use: {shown}, at or above 95%"
    assert (finding.value, finding.threshold) == (shown, "95%")
    assert findings.outcome == "failed"


def test_limit_with_only_a_fail_limit():
    findings = Findings()
    ok = findings.limit("t", "size", 512 * 1024**2, unit="size", fail=1024**3)
    bad = findings.limit("t", "size", 2 * 1024**3, unit="size", fail=1024**3)
    assert (ok.severity, ok.message, ok.threshold) == ("ok", "size: 512MB (below 1GB)", "1GB")
    assert (bad.severity, bad.message) == ("failure", "size: 2GB, at or above 1GB")


def test_limit_with_only_a_warn_limit_never_fails():
    finding = Findings().limit("t", "rows", 10**9, unit="count", warn=5)
    assert finding.severity == "warning"
    assert finding.message == "rows: 1000000000, at or above 5"


def test_limit_without_limits_records_the_figure():
    finding = Findings().limit("t", "rows", 7, unit="count")
    assert finding.severity == "ok"
    assert finding.message == "rows: 7"
    assert (finding.value, finding.threshold) == ("7", None)


def test_summary_of_nothing_is_empty():
    assert Findings().summary() == ""


def test_summary_shows_only_the_worst_findings():
    findings = Findings()
    findings.ok("a", "fine")
    findings.warn("b", "slow")
    findings.info("c", "fyi")
    findings.warn("d", "slower")
    assert findings.summary() == "b: slow; d: slower"


def test_summary_shows_three_and_counts_the_rest():
    findings = Findings()
    for name in "abcde":
        findings.fail(name, "bad")
    findings.warn("w", "meh")
    assert findings.summary() == "a: bad; b: bad; c: bad; and 2 more"


def test_summary_of_messages_ending_in_statements_has_no_double_semicolon():
    findings = Findings()
    findings.warn("runs", "no index. Fix: CREATE INDEX CONCURRENTLY ON runs (x);", 1, None)
    findings.warn("tags", "no index. Fix: CREATE INDEX CONCURRENTLY ON tags (y);", 1, None)
    findings.warn("params", "plain", 1, None)
    assert findings.summary() == ("runs: no index. Fix: CREATE INDEX CONCURRENTLY ON runs (x); "
                                  "tags: no index. Fix: CREATE INDEX CONCURRENTLY ON tags (y); "
                                  "params: plain")


def test_summary_when_all_is_well():
    findings = Findings()
    findings.ok("server", "median latency: 2ms (below 50ms)")
    assert findings.summary() == "server: median latency: 2ms (below 50ms)"


# -- build_report / scrub_all ----------------------------------------------------------
def _check(check_id: str, outcome: str, message: str = "", target: str | None = TARGET_ID,
           findings: list[dict] | None = None) -> dict:
    return {"id": check_id, "nodeid": f"checks/x.py::{check_id}", "target": target,
            "outcome": outcome, "severity": "ok", "message": message,
            "findings": findings or [], "duration_s": 0.01}


def _target(**extra) -> dict:
    return {"id": TARGET_ID, "uri": "postgresql://mlflow:***@db.example:5432/mlflow",
            "server_version": "16.2", "schema_revision": "4a1b2c3d", **extra}


@pytest.fixture
def document() -> dict:
    findings = Findings()
    findings.ok("server", "connected")
    findings.limit("max_connections", "connections in use", 96.0, unit="percent",
                   warn=80.0, fail=95.0)
    checks = [
        _check("connectivity.connect", "passed", "connected",
               findings=[f.to_json() for f in findings]),
        _check("connectivity.latency", "warned", "slow | very slow"),
        _check("connectivity.headroom", "failed", f"password {SECRET} rejected"),
        _check("connectivity.ssl", "skipped", "no privilege"),
        _check("team.orphan", "error", "boom", target=None),
    ]
    return build_report([_target(notes=[f"note with {SECRET}"])], checks, [SECRET])


def test_report_document_shape(document):
    assert document["version"] == 1
    assert set(document) == {"version", "targets", "checks", "summary", "run"}
    assert document["run"] == {"fail_on": "error", "failing": 2}  # failed + error
    assert document["summary"] == {"passed": 1, "warned": 1, "failed": 1, "skipped": 1,
                                   "error": 1}
    assert list(document["summary"]) == list(OUTCOMES)
    assert [c["id"] for c in document["checks"]][:2] == ["connectivity.connect",
                                                          "connectivity.latency"]
    assert document["targets"][0]["id"] == TARGET_ID


def test_empty_report_counts_zero():
    document = build_report([], [])
    assert document == {"version": 1, "targets": [], "checks": [],
                        "summary": {o: 0 for o in OUTCOMES},
                        "run": {"fail_on": "error", "failing": 0}}


def test_fail_on_warning_counts_warned_checks_as_failing_the_run():
    checks = [_check("a", "warned"), _check("b", "warned"), _check("c", "failed")]
    document = build_report([_target()], checks, fail_on="warning")
    assert document["summary"]["warned"] == 2
    assert document["run"] == {"fail_on": "warning", "failing": 3}
    assert "; 2 warned checks fail this run" in to_markdown(document)
    assert "fail this run" not in to_markdown(build_report([_target()], checks))


def test_summary_counts_repeated_outcomes():
    checks = [_check(f"c{i}", "passed") for i in range(3)] + [_check("x", "failed")]
    summary = build_report([], checks)["summary"]
    assert summary == {"passed": 3, "warned": 0, "failed": 1, "skipped": 0, "error": 0}


def test_report_is_scrubbed_everywhere(document):
    text = json.dumps(document)
    assert SECRET not in text
    assert document["checks"][2]["message"] == "password *** rejected"
    assert document["targets"][0]["notes"] == ["note with ***"]


def test_build_report_does_not_touch_its_input():
    check = _check("c", "failed", f"leaked {SECRET}")
    build_report([], [check], [SECRET])
    assert check["message"] == f"leaked {SECRET}"


def test_scrub_all_nested_values_and_keys():
    value = {
        f"key-{SECRET}": [f"a {SECRET}", ("b", f"{SECRET}c"), {"deep": {"x": SECRET}}],
        "n": 5,
        "none": None,
        "flag": True,
    }
    scrubbed = scrub_all(value, (SECRET,))
    assert scrubbed == {  # keys are the report's own structure: left alone
        f"key-{SECRET}": ["a ***", ["b", "***c"], {"deep": {"x": "***"}}],
        "n": 5,
        "none": None,
        "flag": True,
    }
    assert SECRET in json.dumps(value)  # a copy: the original is unchanged


def test_scrub_all_also_scrubs_percent_encoded_secrets():
    assert scrub_all(["s%40cret-long", "s@cret-long"], ("s@cret-long",)) == ["***", "***"]


def test_short_passwords_are_masked_where_they_stand_not_searched():
    # A password like "mlflow" or "5" must not star every "mlflow" and "5" in a report.
    text = "postgresql://mlflow:mlflow@h/mlflow has 5 of 57 slots; password=mlflow"
    assert scrub_all([text], ("mlflow", "5")) == [
        "postgresql://mlflow:***@h/mlflow has 5 of 57 slots; password=***"]


def test_scrub_all_without_secrets_is_identity():
    value = {"a": ["b", {"c": "d"}]}
    assert scrub_all(value, ()) == value


# -- JSON ------------------------------------------------------------------------------
def test_to_json_is_valid_json(document):
    text = to_json(document)
    assert text.endswith("\n")
    assert json.loads(text) == document


def test_to_json_puts_each_target_and_check_on_a_line_of_its_own(document):
    lines = to_json(document).splitlines()
    checks = lines[lines.index('  "checks": [') + 1:]
    assert [json.loads(line.strip().rstrip(",")) for line in checks[:len(document["checks"])]] \
        == document["checks"]
    assert checks[len(document["checks"])] == "  ],"
    assert json.loads(to_json({"checks": [], "run": {}})) == {"checks": [], "run": {}}


def test_to_json_stringifies_unknown_types(tmp_path):
    assert json.loads(to_json({"path": tmp_path}))["path"] == str(tmp_path)


# -- Markdown --------------------------------------------------------------------------
def test_markdown_has_a_heading_per_target_and_the_summary(document):
    text = to_markdown(document)
    lines = text.splitlines()
    assert lines[0] == "# MLflow database audit"
    assert "**Summary:** 1 passed, 1 warned, 1 failed, 1 skipped, 1 error" in lines
    assert f"## {TARGET_ID}" in lines
    assert "## (no target)" in lines
    assert "- server version: `16.2`" in lines
    assert "- schema revision: `4a1b2c3d`" in lines
    assert "- note: note with ***" in lines


def test_markdown_escapes_pipes_in_messages(document):
    text = to_markdown(document)
    assert "slow \\| very slow" in text
    assert "slow | very slow" not in text


def test_markdown_lists_findings_of_checks_that_have_them(document):
    text = to_markdown(document)
    assert "### `connectivity.connect` (passed)" in text
    assert "### `connectivity.latency`" not in text
    row = next(line for line in text.splitlines() if line.startswith("| max_connections"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["max_connections", "failure", "96%", "95%",
                     "connections in use: 96%, at or above 95%"]


def test_markdown_escapes_pipes_and_newlines_in_findings():
    finding = {"object": "a|b", "severity": "warning", "value": "1", "threshold": "2",
               "message": "line one\nline | two"}
    text = to_markdown(build_report([_target()], [_check("c", "warned", findings=[finding])]))
    assert "a\\|b" in text
    assert "line one line \\| two" in text


def test_markdown_finding_without_value_has_empty_cells():
    finding = Findings().ok("server", "connected").to_json()
    text = to_markdown(build_report([_target()], [_check("c", "passed", findings=[finding])]))
    row = next(line for line in text.splitlines() if line.startswith("| server"))
    assert "None" not in row


def test_markdown_with_no_checks():
    text = to_markdown(build_report([], []))
    assert "**Summary:** no checks ran" in text


# -- terminal tables -------------------------------------------------------------------
def test_terminal_tables_one_block_per_target_and_a_count_line(document):
    blocks = terminal_tables(document)
    assert len(blocks) == 3
    assert blocks[-1] == "mlflowdb: 1 passed, 1 warned, 1 failed, 1 skipped, 1 error"
    header = blocks[0].splitlines()[0]
    assert header == (f"target {TARGET_ID} | postgresql://mlflow:***@db.example:5432/mlflow"
                      " | PostgreSQL 16.2 | alembic 4a1b2c3d")
    assert "  note: note with ***" in blocks[0]
    assert "connectivity.latency" in blocks[0]
    assert "WARNED" in blocks[0]
    assert "team.orphan" not in blocks[0]
    assert blocks[1].startswith("target (no target)")
    assert "team.orphan" in blocks[1]
    assert "ERROR" in blocks[1]


def test_terminal_count_line_skips_zero_counts():
    checks = [_check("a", "passed"), _check("b", "passed")]
    blocks = terminal_tables(build_report([_target()], checks))
    assert blocks[-1] == "mlflowdb: 2 passed"


def test_terminal_without_checks():
    assert terminal_tables(build_report([], [])) == ["mlflowdb: no checks ran"]


def test_terminal_truncates_very_long_messages():
    message = "x" * 1000
    blocks = terminal_tables(build_report([_target()], [_check("c", "failed", message)]),
                             width=80)
    assert "…" in blocks[0]
    assert blocks[0].count("x") < 1000


def test_terminal_shortens_unreachable_skips_but_markdown_keeps_the_reason():
    reason = "target unreachable: connection refused on port 5432"
    checks = [_check("connectivity.connect", "failed", "cannot connect: connection refused"),
              _check("connectivity.latency", "skipped", reason),
              _check("connectivity.ssl", "skipped", "no privilege: needs pg_monitor")]
    document = build_report([_target()], checks)
    table = terminal_tables(document)[0]
    latency = next(line for line in table.splitlines() if "connectivity.latency" in line)
    assert latency.split()[-2:] == ["target", "unreachable"]
    assert "no privilege: needs pg_monitor" in table
    assert "cannot connect: connection refused" in table
    assert reason in to_markdown(document)


def test_terminal_header_omits_uri_equal_to_id():
    target = {"id": TARGET_ID, "uri": TARGET_ID}
    blocks = terminal_tables(build_report([target], []))
    assert blocks[0].splitlines()[0] == f"target {TARGET_ID}"


# -- write_reports ---------------------------------------------------------------------
def test_write_reports_by_suffix(tmp_path, document):
    json_path = tmp_path / "out" / "audit.json"
    md_path = tmp_path / "nested" / "deeper" / "audit.md"
    upper_md = tmp_path / "AUDIT.MD"
    written = write_reports(document, [json_path, md_path, upper_md])
    assert written == [json_path, md_path, upper_md]
    assert json.loads(json_path.read_text(encoding="utf-8")) == document
    assert md_path.read_text(encoding="utf-8") == to_markdown(document)
    assert upper_md.read_text(encoding="utf-8").startswith("# MLflow database audit")


def test_write_reports_with_no_paths(document):
    assert write_reports(document, []) == []


def test_write_reports_replaces_the_file_instead_of_rewriting_it(tmp_path, document):
    # Written to a temporary file and renamed over the old one: a reader never sees a
    # half-written report, and another name for the old file keeps the old content.
    path = tmp_path / "audit.json"
    path.write_text("old report\n")
    other_name = tmp_path / "kept.json"
    other_name.hardlink_to(path)
    write_reports(document, [path])
    assert json.loads(path.read_text()) == document
    assert other_name.read_text() == "old report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json", "kept.json"]


def test_remove_reports_removes_only_existing_reports_it_wrote(tmp_path, document):
    stale, empty = tmp_path / "audit.json", tmp_path / "empty.md"
    write_reports(document, [stale])
    empty.write_text("")
    foreign = tmp_path / "mine.json"
    foreign.write_text("{}")
    missing = tmp_path / "none" / "audit.md"
    assert remove_reports([stale, empty, foreign, missing]) == [stale, empty]
    assert not stale.exists() and foreign.read_text() == "{}"


# -- values of any type ----------------------------------------------------------------
@pytest.mark.parametrize(("given", "stored"), [
    (Decimal("42"), 42),
    (Decimal("1.5"), 1.5),
    (Decimal("0.1"), 0.1),
    (Decimal("3.14159265358979323846264338"), "3.14159265358979323846264338"),
    (Decimal("NaN"), "NaN"),
    (float("inf"), "Infinity"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
     "2024-01-02T03:04:05+00:00"),
    (datetime.date(2024, 1, 2), "2024-01-02"),
    (datetime.time(3, 4, 5), "03:04:05"),
    (datetime.timedelta(minutes=1, seconds=30), 90.0),
    (b"\x00\xff", "00ff"),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    (ipaddress.ip_address("10.0.0.1"), "10.0.0.1"),
    ([Decimal("2"), datetime.date(2024, 1, 2)], [2, "2024-01-02"]),
    ({"n": Decimal("2")}, {"n": 2}),
    (True, True), (7, 7), (2.5, 2.5), ("text", "text"), (None, None),
])
def test_finding_values_are_stored_as_json_types(given, stored):
    finding = Findings().ok("x", "measured", given, given)
    assert finding.value == stored and finding.threshold == stored
    assert type(finding.value) is type(stored)
    assert json.loads(json.dumps(finding.to_json(), allow_nan=False))["value"] == stored


def test_long_bytes_are_shortened():
    value = Findings().ok("x", "blob", bytes(range(100))).value
    assert value.startswith(bytes(range(32)).hex()) and value.endswith("(100 bytes)")
