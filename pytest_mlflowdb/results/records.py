"""The record contract: what one check and one target leave for the outputs.

A :class:`CheckRecord` is made once, where pytest reports a check's outcome (on the
process that ran it: an xdist worker included), and travels to the controller as JSON
on the test report (``report.mlflowdb``); a :class:`TargetRecord` likewise
(``report.mlflowdb_target``). Records are not masked here: passwords are masked once
where output leaves a process (:mod:`pytest_mlflowdb.run.secrecy` for test reports, the
session for the finished document).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_mlflowdb.keys import MARKER
from pytest_mlflowdb.results.findings import Findings
from pytest_mlflowdb.text import first_line

#: the outcomes of a check record, in the order of the report's summary
OUTCOMES = ("passed", "warned", "failed", "skipped", "error")
#: characters of a failure's first line a record keeps as its message
MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class CheckRecord:
    """One check on one target, as the JSON report's ``checks`` list holds it.

    ``findings`` are the findings' JSON as :meth:`Finding.to_json` gave it (with a
    ``remedy`` key where a fix exists).
    """

    id: str
    nodeid: str
    target: str | None
    outcome: str
    severity: str
    message: str
    findings: tuple[dict[str, Any], ...] = ()
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        # by hand rather than dataclasses.asdict, which deep-copies every finding's values
        return {"id": self.id, "nodeid": self.nodeid, "target": self.target,
                "outcome": self.outcome, "severity": self.severity, "message": self.message,
                "findings": [dict(f) for f in self.findings], "duration_s": self.duration_s}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckRecord:
        return cls(id=data["id"], nodeid=data["nodeid"], target=data.get("target"),
                   outcome=data["outcome"], severity=data["severity"],
                   message=data.get("message") or "",
                   findings=tuple(dict(f) for f in data.get("findings") or ()),
                   duration_s=float(data.get("duration_s") or 0.0))

    @classmethod
    def of_crash(cls, report: pytest.TestReport, check_id: str,
                 target: str | None) -> CheckRecord:
        """The record of a check whose xdist worker died while running it."""
        return cls(id=check_id, nodeid=report.nodeid, target=target, outcome="failed",
                   severity="failure",
                   message=first_line(str(report.longrepr), limit=MESSAGE_LIMIT),
                   duration_s=round(report.duration, 4))


@dataclass(frozen=True)
class TargetRecord:
    """What the report says of a target (never its password)."""

    id: str
    uri: str | None = None
    server_version: str | None = None
    schema_revision: str | None = None
    mlflow_versions: tuple[str, ...] = ()
    #: the schema MLflow's tables are in; reported once the session's reads succeeded
    mlflow_schema: str | None = None
    connected: bool = False
    error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "uri": self.uri,
                                "server_version": self.server_version,
                                "schema_revision": self.schema_revision,
                                "mlflow_versions": list(self.mlflow_versions)}
        if self.connected:
            data["mlflow_schema"] = self.mlflow_schema
        elif self.error is not None:
            data["error"] = self.error
        if self.notes:
            data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetRecord:
        return cls(id=data["id"], uri=data.get("uri"),
                   server_version=data.get("server_version"),
                   schema_revision=data.get("schema_revision"),
                   mlflow_versions=tuple(data.get("mlflow_versions") or ()),
                   mlflow_schema=data.get("mlflow_schema"),
                   connected="mlflow_schema" in data, error=data.get("error"),
                   notes=tuple(data.get("notes") or ()))


def check_id(item: pytest.Item) -> str:
    """The check's stable id: the marker's, else ``custom.<module>.<name>``."""
    marker = item.get_closest_marker(MARKER)
    if marker and marker.args:
        return str(marker.args[0])
    module = Path(str(item.path)).stem.removeprefix("test_")
    name = getattr(item, "originalname", item.name).removeprefix("test_")
    return f"custom.{module}.{name}"


def check_of_nodeid(nodeid: str, target_ids: list[str]) -> tuple[str, str | None]:
    """A check's id and target from its node id alone (the marker is not known here)."""
    path, _, name = nodeid.partition("::")
    name, _, params = name.partition("[")
    params = params.removesuffix("]")
    module = Path(path).stem.removeprefix("test_")
    target = next((t for t in target_ids if params == t or params.endswith(f"-{t}")
                   or params.startswith(f"{t}-")), None)
    return f"custom.{module}.{name.removeprefix('test_')}", target


def check_record(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport,
                 findings: Findings | None, failed_by_findings: bool,
                 target: str | None) -> CheckRecord:
    """The record of one outcome pytest counts: the call, a setup that did not pass, or a
    teardown error (a record of its own, as pytest counts "1 passed, 1 error")."""
    findings = findings or Findings()
    if call.when == "teardown":  # the call's record already holds the findings
        findings = Findings()
    if report.skipped:
        outcome = "skipped"
        longrepr = report.longrepr
        message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        message = message.removeprefix("Skipped: ")
    elif report.passed:
        outcome = findings.outcome
        message = findings.summary()
    else:
        outcome, message = _failure(call, findings, failed_by_findings)
    severity = findings.severity if len(findings) else (
        "failure" if outcome in ("failed", "error") else "ok")
    return CheckRecord(id=check_id(item), nodeid=item.nodeid, target=target, outcome=outcome,
                       severity=severity, message=message,
                       findings=tuple(f.to_json() for f in findings),
                       duration_s=round(report.duration, 4))


def _failure(call: pytest.CallInfo[None], findings: Findings,
             by_findings: bool) -> tuple[str, str]:
    excinfo = call.excinfo
    assertion = excinfo is not None and excinfo.errisinstance(
        (AssertionError, pytest.fail.Exception))
    outcome = "failed" if (call.when == "call" and (by_findings or assertion)) else "error"
    if by_findings:
        outcome = findings.outcome  # "warned" stays warned with --mlflowdb-fail-on=warning
        message = findings.summary()
    elif excinfo is not None and excinfo.errisinstance(pytest.fail.Exception):
        message = first_line(str(excinfo.value), limit=MESSAGE_LIMIT)
    elif excinfo is not None:
        message = first_line(excinfo.exconly(), limit=MESSAGE_LIMIT)
    else:
        message = "failed"
    if call.when == "teardown":
        message = f"error in teardown: {message}"
    return outcome, message


def failure_text(findings: Findings, limit: int = 60) -> str:
    """A failed check's message: the one-line summary, then every finding that is not
    plain ok, one per line."""
    lines = [findings.summary()]
    notable = [f for f in findings
               if f.severity != "ok" and f"{f.object}: {f.message}" not in lines[0]]
    for f in notable[:limit]:
        lines.append(f"  {f.severity:<7} {f.object}: {f.message}")
    if len(notable) > limit:
        lines.append(f"  ... and {len(notable) - limit} more in the report")
    return "\n".join(lines)
