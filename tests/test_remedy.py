"""A finding may carry a remedy: a statement or command that fixes it, never run by the tool."""

from __future__ import annotations

import pytest

from pytest_mlflowdb import Finding, Findings


def test_a_finding_without_a_remedy_still_has_the_key_in_its_json():
    assert Finding("server", "ok", "fine").to_json()["remedy"] is None


@pytest.mark.parametrize("method", ["ok", "info", "warn", "fail"])
def test_every_recording_method_takes_a_remedy(method):
    findings = Findings()
    finding = getattr(findings, method)("public.t", "something", remedy="VACUUM public.t;")
    assert finding.remedy == "VACUUM public.t;"
    assert finding.to_json()["remedy"] == "VACUUM public.t;"


@pytest.mark.parametrize("value, severity", [(2.0, "failure"), (1.5, "warning"), (0.5, "ok")])
def test_limit_takes_a_remedy_whatever_the_outcome(value, severity):
    finding = Findings().limit("server", "load", value, unit="number", warn=1, fail=2,
                               remedy="SELECT 1;")
    assert (finding.severity, finding.remedy) == (severity, "SELECT 1;")


def test_add_takes_a_remedy():
    finding = Findings().add("x", "warning", "m", remedy="REINDEX INDEX CONCURRENTLY x;")
    assert finding.remedy == "REINDEX INDEX CONCURRENTLY x;"
