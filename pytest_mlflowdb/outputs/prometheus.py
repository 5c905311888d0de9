"""The Prometheus text file (``.prom``), for node_exporter's textfile collector.

Point ``--mlflowdb-report`` at a ``.prom`` file in the collector's directory: the report
writer writes it to a temporary file beside it (whose name does not end in ``.prom``, so
the collector never reads half a file) and renames it into place. Every metric is a
gauge without a timestamp (the collector refuses timestamps), with HELP and TYPE lines.

Labels are the target's id (``host:port/db``, never a password: the document is masked
before any output renders it), the check's id, and for findings the object. A finding's
value is exported in base units when the check recorded it in the threshold grammar
(``12ms`` -> seconds, ``64MB`` -> bytes, ``80%`` -> a 0-1 ratio, with the three
significant digits the finding shows); a plain number as it is; text not at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pytest_mlflowdb.outputs import Output, target_counts

PREFIX = "mlflowdb_"
#: a check's outcome as a Nagios state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
STATUS = {"passed": 0, "warned": 1, "failed": 2, "error": 2, "skipped": 3}
OUTCOMES = ("passed", "warned", "failed", "skipped", "error")

_GRAMMAR = re.compile(r"^\s*(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*"
                      r"(B|kB|MB|GB|TB|us|ms|s|min|h|d|%)\s*$")
#: a suffix the findings use (thresholds.format_value) -> (metric suffix, base factor)
_UNITS: dict[str, tuple[str, float]] = {
    "B": ("_bytes", 1.0), "kB": ("_bytes", 1024.0), "MB": ("_bytes", 1024.0**2),
    "GB": ("_bytes", 1024.0**3), "TB": ("_bytes", 1024.0**4),
    "us": ("_seconds", 1e-6), "ms": ("_seconds", 1e-3), "s": ("_seconds", 1.0),
    "min": ("_seconds", 60.0), "h": ("_seconds", 3600.0), "d": ("_seconds", 86400.0),
    "%": ("_ratio", 0.01),
}

HELP = {
    "check_status": "Outcome of a check on a target as a Nagios state: 0 passed, 1 warned, "
                    "2 failed or error, 3 skipped.",
    "check_outcome": "1 for the outcome a check had on a target, 0 for the other outcomes.",
    "check_duration_seconds": "Time a check took on a target.",
    "checks": "Checks of a target by outcome (the summary across targets).",
    "target_up": "1 when the audit's read-only session to the target opened, else 0.",
    "target_info": "The target's PostgreSQL version and MLflow schema revision (always 1).",
    "finding_value_bytes": "A finding's measured size.",
    "finding_value_seconds": "A finding's measured duration.",
    "finding_value_ratio": "A finding's measured share (0 to 1).",
    "finding_value": "A finding's measured number (a count, or a number without a unit).",
    "finding_threshold_bytes": "The size limit a finding was compared with.",
    "finding_threshold_seconds": "The duration limit a finding was compared with.",
    "finding_threshold_ratio": "The share limit a finding was compared with (0 to 1).",
    "finding_threshold": "The limit a finding was compared with (no unit).",
    "audit_duration_seconds": "Wall time of the audit run, from configuration to its end.",
    "audit_end_time_seconds": "When the audit run ended, in seconds since the Unix epoch.",
}

Sample = tuple[dict[str, str], float]


def base_value(value: Any) -> tuple[str, float] | None:
    """``(metric suffix, value in base units)`` of a finding's value, or None when it is no
    measurement (text, a list, a boolean, null)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return "", float(value)
    match = _GRAMMAR.match(str(value))
    if not match:
        return None
    suffix, factor = _UNITS[match.group(2)]
    return suffix, float(match.group(1)) * factor


def escape(value: str) -> str:
    """A label value as the text format writes it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


class _Families:
    """Samples grouped by metric name, each family written once with HELP and TYPE."""

    def __init__(self) -> None:
        self.samples: dict[str, list[Sample]] = {}

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        self.samples.setdefault(name, []).append((labels, value))

    def text(self) -> str:
        lines = []
        for name in sorted(self.samples, key=lambda n: list(HELP).index(n)):
            lines += [f"# HELP {PREFIX}{name} {HELP[name]}", f"# TYPE {PREFIX}{name} gauge"]
            for labels, value in self.samples[name]:
                pairs = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
                lines.append(f"{PREFIX}{name}{{{pairs}}} {_number(value)}" if pairs
                             else f"{PREFIX}{name} {_number(value)}")
        return "\n".join(lines) + "\n"


def _findings(families: _Families, check: dict[str, Any], labels: dict[str, str]) -> None:
    seen: dict[str, int] = {}
    for finding in check.get("findings") or ():
        obj = str(finding.get("object", ""))
        seen[obj] = seen.get(obj, 0) + 1
        # two findings of one check on one object (rare) must not make one series twice
        where = {**labels, "object": obj if seen[obj] == 1 else f"{obj} #{seen[obj]}"}
        for kind in ("value", "threshold"):
            measured = base_value(finding.get(kind))
            if measured is not None:
                families.add(f"finding_{kind}{measured[0]}", where, measured[1])


def to_prometheus(document: dict[str, Any]) -> str:
    """The document as Prometheus text exposition format (version 0.0.4)."""
    families = _Families()
    for target in document["targets"]:
        tid = str(target["id"])
        families.add("target_up", {"target": tid}, 1.0 if "mlflow_schema" in target else 0.0)
        families.add("target_info", {"target": tid,
                                     "server_version": str(target.get("server_version") or ""),
                                     "schema_revision": str(target.get("schema_revision") or "")},
                     1.0)
    for tid, counts in target_counts(document):
        for outcome in OUTCOMES:
            families.add("checks", {"target": tid, "outcome": outcome}, counts.get(outcome, 0))
    for check in document["checks"]:
        labels = {"target": str(check.get("target") or ""), "check": str(check["id"])}
        families.add("check_status", labels, STATUS.get(check["outcome"], 3))
        for outcome in OUTCOMES:
            families.add("check_outcome", {**labels, "outcome": outcome},
                         1.0 if check["outcome"] == outcome else 0.0)
        families.add("check_duration_seconds", labels, float(check.get("duration_s") or 0))
        _findings(families, check, labels)
    run = document.get("run", {})
    for key, name in (("duration_s", "audit_duration_seconds"),
                      ("end_time", "audit_end_time_seconds")):
        if run.get(key) is not None:
            families.add(name, {}, float(run[key]))
    return families.text()


def metric_names() -> Iterable[str]:
    """Every metric this output may write, with its prefix."""
    return (PREFIX + name for name in HELP)


class PrometheusTextFile(Output):
    name = "prometheus"
    suffixes = (".prom",)

    def render(self, document: dict[str, Any]) -> str:
        return to_prometheus(document)

    def wrote(self, head: str) -> bool:
        return head.startswith("# HELP mlflowdb_")
