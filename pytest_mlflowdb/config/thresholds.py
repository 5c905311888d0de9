"""Threshold registry and the one grammar for sizes, durations, percents and counts.

A threshold is a named, typed limit that checks compare measurements with. Users
override them with ``--mlflowdb-set NAME=VALUE`` or the ``mlflowdb_thresholds`` ini
list; plugins add their own through the ``pytest_mlflowdb_thresholds`` hook. Values
are parsed once, here, so a typo is a usage error before any database is touched.

The built-in thresholds are declared by the areas that read them (each area's ``AREA``,
in ``pytest_mlflowdb/config/declarations/``). This module imports nothing heavy: it is
loaded even when the plugin is dormant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

UNITS = ("size", "duration", "percent", "count", "number")

_SIZE_FACTORS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_DURATION_FACTORS = {
    "us": 1e-6,
    "ms": 1e-3,
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z%]*)\s*$")


class ThresholdError(ValueError):
    """A threshold name or value that cannot be used; the message is one line for the user."""


def parse_value(unit: str, text: str) -> float:
    """Parse ``text`` as a ``unit``: sizes give bytes, durations seconds, percents 0-100."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)
    match = _NUMBER_UNIT.match(str(text))
    if not match:
        raise ThresholdError(f"{text!r} is not a {unit} ({_EXAMPLES[unit]})")
    number, suffix = float(match.group(1)), match.group(2).lower()
    if unit == "size":
        if suffix not in _SIZE_FACTORS:
            raise ThresholdError(f"{text!r} is not a size ({_EXAMPLES[unit]})")
        return number * _SIZE_FACTORS[suffix]
    if unit == "duration":
        if suffix not in _DURATION_FACTORS:
            raise ThresholdError(f"{text!r} is not a duration ({_EXAMPLES[unit]})")
        return number * _DURATION_FACTORS[suffix]
    if unit == "percent":
        if suffix not in ("", "%"):
            raise ThresholdError(f"{text!r} is not a percent ({_EXAMPLES[unit]})")
        if number > 100:
            raise ThresholdError(f"{text!r} is more than 100%")
        return number
    if unit == "count":
        if suffix or number != int(number):
            raise ThresholdError(f"{text!r} is not a count ({_EXAMPLES[unit]})")
        return number
    if suffix:
        raise ThresholdError(f"{text!r} is not a number ({_EXAMPLES[unit]})")
    return number


_EXAMPLES = {
    "size": "e.g. 512kB, 64MB, 1.5GB",
    "duration": "e.g. 250ms, 30s, 15min, 7d",
    "percent": "e.g. 80%",
    "count": "e.g. 5",
    "number": "e.g. 0.5",
}


def _num(value: float) -> str:
    """About three significant digits, never in scientific notation (so it parses back)."""
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    digits = 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def format_value(unit: str, value: float) -> str:
    """Render a parsed value back in the grammar, for messages and reports."""
    if unit == "size":
        for suffix, factor in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
            if abs(value) >= factor:
                return f"{_num(value / factor)}{suffix}"
        return f"{value:.0f}B"
    if unit == "duration":
        if value == 0:
            return "0s"
        for suffix, factor in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
            if abs(value) >= factor:
                return f"{_num(value / factor)}{suffix}"
        if abs(value) >= 1e-3:
            return f"{_num(value * 1000)}ms"
        return f"{_num(value * 1e6)}us"
    if unit == "percent":
        return f"{_num(value)}%"
    if unit == "count":
        return str(int(value))
    return _num(value)


@dataclass(frozen=True)
class Threshold:
    """One named limit: its default (in the grammar), unit and what it limits.

    An area declares its thresholds in its ``AREA``; the checks that read
    one name it in ``@check(thresholds=...)``, so ``checks`` may stay empty.
    """

    name: str
    default: str
    unit: str
    description: str
    checks: tuple[str, ...] = field(default_factory=tuple)
    #: bounds of a sensible value, in the unit's base (bytes, seconds, percent, count)
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ThresholdError(f"threshold {self.name}: unit must be one of {', '.join(UNITS)}")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ThresholdError(f"threshold name {self.name!r} must be lower_snake_case")
        try:
            parse_value(self.unit, self.default)
        except ThresholdError as exc:
            raise ThresholdError(f"threshold {self.name}: default {exc}") from None


class ThresholdRegistry:
    """All known thresholds plus the values in force (defaults, then ini, then options).

    :func:`pytest_mlflowdb.config.areas.builtin_registry` holds those the built-in areas declare.
    """

    def __init__(self, thresholds: Iterable[Threshold] = ()) -> None:
        self._defs: dict[str, Threshold] = {}
        for threshold in thresholds:
            self.add(threshold)

    def add(self, threshold: Threshold) -> None:
        """Register or replace a threshold (a plugin may change a built-in default)."""
        self._defs[threshold.name] = threshold

    def names(self) -> list[str]:
        """The names of the known thresholds, sorted."""
        return sorted(self._defs)

    def definition(self, name: str) -> Threshold:
        """The declaration of ``name``, or ThresholdError listing the valid names."""
        try:
            return self._defs[name]
        except KeyError:
            raise ThresholdError(
                f"unknown threshold {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def __iter__(self) -> Iterator[Threshold]:
        return iter(self._defs[name] for name in self.names())

    def resolve(self, overrides: Mapping[str, str]) -> ThresholdValues:
        """Parse defaults and overrides into the values in force, or raise ThresholdError."""
        values = {t.name: parse_value(t.unit, t.default) for t in self._defs.values()}
        written = {t.name: t.default for t in self._defs.values()}
        for name, text in overrides.items():
            definition = self.definition(name)
            try:
                values[name] = parse_value(definition.unit, text)
                written[name] = text.strip()
            except ThresholdError as exc:
                raise ThresholdError(f"threshold {name}: {exc}") from None
            low, high = definition.minimum, definition.maximum
            if (low is not None and values[name] < low) or (
                    high is not None and values[name] > high):
                raise ThresholdError(
                    f"threshold {name}: {text!r} is outside "
                    f"{format_value(definition.unit, low if low is not None else 0)} to "
                    f"{format_value(definition.unit, high) if high is not None else 'any'}")
        for name in values:  # a pair's warning limit cannot lie beyond its failure limit
            if name.endswith("_warn") and name[:-5] + "_fail" in values:
                fail = name[:-5] + "_fail"
                if values[name] > values[fail]:
                    unit = self._defs[name].unit
                    raise ThresholdError(
                        f"threshold {name} ({format_value(unit, values[name])}) is above "
                        f"{fail} ({format_value(unit, values[fail])})")
        return ThresholdValues(values, {n: d.unit for n, d in self._defs.items()}, written)


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Split ``NAME=VALUE`` strings (from ``--mlflowdb-set`` or ini) into a dict."""
    result: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ThresholdError(f"{item!r} is not NAME=VALUE (e.g. latency_warn=100ms)")
        result[name.strip()] = value.strip()
    return result


class ThresholdValues(Mapping[str, float]):
    """Read-only view of the thresholds in force, with their units for formatting."""

    def __init__(self, values: dict[str, float], units: dict[str, str],
                 written: Mapping[str, str] | None = None) -> None:
        self._values = dict(values)
        self._units = dict(units)
        self._written = dict(written or {})

    def __getitem__(self, name: str) -> float:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(
                f"unknown threshold {name!r}; valid names: {', '.join(sorted(self._values))}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def unit(self, name: str) -> str:
        """The unit of ``name`` (size, duration, percent, count or number)."""
        return self._units[name]

    def text(self, name: str) -> str:
        """The value of ``name`` as it was written (``'26h'`` stays ``'26h'``), else in
        the grammar, e.g. ``'50ms'``."""
        return self._written.get(name) or format_value(self._units[name], self[name])

    def __repr__(self) -> str:
        return f"ThresholdValues({ {n: self.text(n) for n in sorted(self._values)} })"
