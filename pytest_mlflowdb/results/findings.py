"""Findings: what a check measured, about which object, against which threshold.

A check records findings; its outcome is its worst finding: any ``failure`` fails it,
any ``warning`` makes it *warned*, otherwise it passes. ``ok`` and ``info`` findings
carry the figures a passing check measured, so reports show real numbers. A finding
may carry a ``remedy``: a SQL statement or command that fixes it, shown in the reports for
a person to run (the tool never runs it: the audited database is only read).
"""

from __future__ import annotations

import copy
import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from pytest_mlflowdb.config.thresholds import format_value

SEVERITIES = ("ok", "info", "warning", "failure")
OUTCOME_OF = {"ok": "passed", "info": "passed", "warning": "warned", "failure": "failed"}


BYTES_SHOWN = 32


def json_value(value: Any) -> Any:
    """``value`` as a JSON type, whatever a query returned.

    Findings travel from xdist workers to the controller (execnet serialises only
    plain types) and into JSON reports, so they must hold the same plain value serially
    and across workers: exact decimals become int or float (str when a float would round
    them), dates and times ISO strings, intervals seconds, bytes hex, anything else str.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) <= BYTES_SHOWN:
            return data.hex()
        return f"{data[:BYTES_SHOWN].hex()}... ({len(data)} bytes)"
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(v) for v in value]
    return str(value)


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _decimal(value: Decimal) -> int | float | str:
    if not value.is_finite():
        return _non_finite(float(value))
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def sql_name(*parts: str) -> str:
    """A (qualified) identifier quoted as a remedy's SQL must write it, whatever its name."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


@dataclass(frozen=True)
class Finding:
    object: str
    severity: str
    message: str
    value: Any = None
    threshold: Any = None
    #: a statement or command that fixes what the finding reports, or None
    remedy: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        object.__setattr__(self, "value", json_value(self.value))
        object.__setattr__(self, "threshold", json_value(self.threshold))

    def to_json(self) -> dict[str, Any]:
        """The finding as plain JSON types; ``remedy`` is always there (null when none)."""
        # by hand: dataclasses.asdict deep-copies every field, and reports hold thousands;
        # only a value (JSON types by now) may be a container worth copying
        data = {name: getattr(self, name) for name in _FINDING_FIELDS}
        for name, value in data.items():
            if isinstance(value, (dict, list)):
                data[name] = copy.deepcopy(value)
        return data


_FINDING_FIELDS = tuple(f.name for f in fields(Finding))


class Findings:
    """The recorder a check writes to (the ``mlflowdb_findings`` fixture)."""

    def __init__(self) -> None:
        self._items: list[Finding] = []

    def __iter__(self) -> Iterator[Finding]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, object: str, severity: str, message: str, value: Any = None,
            threshold: Any = None, *, remedy: str | None = None) -> Finding:
        finding = Finding(str(object), severity, message, value, threshold, remedy)
        self._items.append(finding)
        return finding

    def ok(self, object: str, message: str, value: Any = None, threshold: Any = None, *,
           remedy: str | None = None) -> Finding:
        return self.add(object, "ok", message, value, threshold, remedy=remedy)

    def info(self, object: str, message: str, value: Any = None, threshold: Any = None, *,
             remedy: str | None = None) -> Finding:
        return self.add(object, "info", message, value, threshold, remedy=remedy)

    def warn(self, object: str, message: str, value: Any = None, threshold: Any = None, *,
             remedy: str | None = None) -> Finding:
        return self.add(object, "warning", message, value, threshold, remedy=remedy)

    def fail(self, object: str, message: str, value: Any = None, threshold: Any = None, *,
             remedy: str | None = None) -> Finding:
        return self.add(object, "failure", message, value, threshold, remedy=remedy)

    def limit(self, object: str, what: str, value: float, *, unit: str,
              warn: float | None = None, fail: float | None = None,
              remedy: str | None = None) -> Finding:
        """Compare ``value`` (higher is worse) with ``warn``/``fail`` limits and record it."""
        shown = format_value(unit, value)
        if fail is not None and value >= fail:
            limit_text = format_value(unit, fail)
            return self.fail(object, f"{what}: {shown}, at or above {limit_text}", shown,
                             limit_text, remedy=remedy)
        if warn is not None and value >= warn:
            limit_text = format_value(unit, warn)
            return self.warn(object, f"{what}: {shown}, at or above {limit_text}", shown,
                             limit_text, remedy=remedy)
        limit = warn if warn is not None else fail
        below = format_value(unit, limit) if limit is not None else None
        suffix = f" (below {below})" if below else ""
        return self.ok(object, f"{what}: {shown}{suffix}", shown, below, remedy=remedy)

    @property
    def severity(self) -> str:
        worst = "ok"
        for finding in self._items:
            if SEVERITIES.index(finding.severity) > SEVERITIES.index(worst):
                worst = finding.severity
        return worst

    @property
    def outcome(self) -> str:
        return OUTCOME_OF[self.severity]

    def summary(self) -> str:
        """One line: the messages of the worst findings (at most three, then a count)."""
        worst = self.severity
        chosen = [f for f in self._items if f.severity == worst] or self._items
        if not chosen:
            return ""
        parts = [f"{f.object}: {f.message}" for f in chosen[:3]]
        more = len(chosen) - 3
        if more > 0:
            parts.append(f"and {more} more")
        # a message ending in a statement ends with ";" already: one separator, not two
        return "".join(p + ("" if p.rstrip().endswith(";") else ";") + " "
                       for p in parts[:-1]) + parts[-1]
