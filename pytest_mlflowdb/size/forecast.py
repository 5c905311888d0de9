"""Growth history and forecast: each run's JSON report kept in a folder, and a
least-squares line through the sizes it recorded.

Pure Python (no database, no pytest): the size checks read the history, the ``history``
plugin writes it. A forecast says what it rests on (points and days) and is refused when
the points span less than :data:`MIN_SPAN_S`: sizes an hour apart say nothing about a
month.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_mlflowdb.config.thresholds import format_value

#: points must span at least this (seconds) before a growth rate is given
MIN_SPAN_S = 86400.0
#: earlier reports needed (besides the current measurement) for a forecast
MIN_EARLIER = 2
#: history files read at most (the newest), so a forgotten folder cannot slow a run
MAX_FILES = 400
#: a kept report larger than this is no report of ours (a fleet's is a few MiB)
MAX_BYTES = 64 * 2**20
PREFIX = "mlflowdb-report-"
#: the checks whose findings hold sizes in bytes (object -> value)
SIZE_CHECKS = ("size.database", "size.tables")


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def save_report(folder: str | Path, document: dict[str, Any],
                when: datetime.datetime | None = None) -> Path:
    """Keep ``document`` (an already masked report) in ``folder`` with the time it was
    made; written to a temporary name then renamed, so a reader never sees half a file."""
    when = when or now_utc()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kept = dict(document, saved_at=when.isoformat())
    path = folder / f"{PREFIX}{when.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(kept, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def prune_reports(folder: str | Path, keep: tuple[str, float],
                  now: datetime.datetime | None = None) -> list[Path]:
    """Remove the kept reports beyond ``keep`` (``("count", n)``: all but the newest n;
    ``("age", seconds)``: those saved longer ago), oldest first; returns those removed.
    Only files named as :func:`save_report` names them: nothing else in the folder."""
    import re

    pattern = re.compile(rf"{re.escape(PREFIX)}(\d{{8}}T\d{{12}})Z\.json")
    kept: list[tuple[datetime.datetime, Path]] = []
    for path in Path(folder).iterdir():
        found = pattern.fullmatch(path.name)
        if found and path.is_file():
            when = datetime.datetime.strptime(found[1], "%Y%m%dT%H%M%S%f").replace(
                tzinfo=datetime.timezone.utc)
            kept.append((when, path))
    kept.sort()
    kind, amount = keep
    if kind == "count":
        doomed = kept[: max(len(kept) - int(amount), 0)]
    else:
        oldest = (now or now_utc()) - datetime.timedelta(seconds=amount)
        doomed = [(when, path) for when, path in kept[:-1] if when < oldest]
    removed = []
    for _, path in doomed:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@dataclass
class History:
    """Sizes kept for one target: ``points[object]`` is a list of (epoch seconds, bytes)."""

    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    reports: int = 0
    #: files that are not kept reports (name: why), each ignored
    ignored: dict[str, str] = field(default_factory=dict)

    def ignored_line(self) -> str | None:
        """One line naming the ignored files, or None."""
        if not self.ignored:
            return None
        shown = "; ".join(f"{n} ({why})" for n, why in sorted(self.ignored.items())[:3])
        more = len(self.ignored) - 3
        return (f"ignored {len(self.ignored)} file(s) in the history folder: {shown}"
                + (f"; and {more} more" if more > 0 else ""))


def load_history(folder: str | Path, target: str) -> History:
    """The sizes earlier reports in ``folder`` recorded for ``target`` (its id)."""
    history = History()
    folder = Path(folder)
    if not folder.is_dir():
        return history
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        history.ignored[folder.name] = f"unreadable folder: {exc.strerror or exc}"
        return history
    for path in files[-MAX_FILES:]:
        try:
            if path.stat().st_size > MAX_BYTES:
                history.ignored[path.name] = f"larger than {MAX_BYTES // 2**20} MiB"
                continue
            found = _sizes_in(json.loads(path.read_text(encoding="utf-8")), target)
        except (OSError, UnicodeDecodeError) as exc:
            history.ignored[path.name] = f"unreadable: {getattr(exc, 'strerror', None) or exc}"
            continue
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            history.ignored[path.name] = "not a pytest-mlflowdb report"
            continue
        if found is None:
            continue  # a report of other targets
        when, sizes = found
        history.reports += 1
        for obj, size in sizes.items():
            history.points.setdefault(obj, []).append((when, size))
    return history


def _sizes_in(doc: Any, target: str) -> tuple[float, dict[str, float]] | None:
    """(time, sizes by object) of one kept report for ``target``; None when it has none;
    ValueError/KeyError/TypeError when ``doc`` is not a kept report."""
    if not isinstance(doc, dict) or doc.get("version") != 1 or "saved_at" not in doc:
        raise ValueError("not a kept report")
    when = datetime.datetime.fromisoformat(doc["saved_at"])
    if when.tzinfo is None:
        raise ValueError("saved_at without a time zone")
    sizes: dict[str, float] = {}
    for record in doc["checks"]:
        if record["id"] not in SIZE_CHECKS or record["target"] != target:
            continue
        for finding in record["findings"]:
            value = finding.get("value")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                sizes[str(finding["object"])] = float(value)
    return (when.timestamp(), sizes) if sizes else None


@dataclass(frozen=True)
class Growth:
    """A least-squares line through (time, bytes): its slope and what it rests on."""

    per_day: float
    points: int
    days: float

    def basis(self) -> str:
        return f"least squares over {self.points} points spanning {self.days:.1f} days"

    def text(self) -> str:
        sign = "+" if self.per_day >= 0 else "-"
        return f"{sign}{format_value('size', abs(self.per_day))}/day ({self.basis()})"

    def days_to(self, current: float, limit: float) -> float | None:
        """Days until ``current`` reaches ``limit`` at this rate; None if it never does."""
        if current >= limit:
            return 0.0
        if self.per_day <= 0:
            return None
        return (limit - current) / self.per_day


def fit(points: Iterable[tuple[float, float]]) -> Growth | str:
    """The growth through ``points`` (epoch seconds, bytes), or why there is none: fewer
    than three points, or points spanning less than a day."""
    pts = sorted(points)
    if len(pts) < MIN_EARLIER + 1:
        return (f"{len(pts) - 1} earlier report(s) kept; a forecast needs at least "
                f"{MIN_EARLIER}")
    span = pts[-1][0] - pts[0][0]
    if span < MIN_SPAN_S:
        return (f"the kept reports span {format_value('duration', span)}; a forecast needs "
                f"at least {format_value('duration', MIN_SPAN_S)}")
    n = len(pts)
    mean_t = sum(t for t, _ in pts) / n
    mean_y = sum(y for _, y in pts) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in pts)
    sxy = sum((t - mean_t) * (y - mean_y) for t, y in pts)
    return Growth(per_day=sxy / sxx * 86400.0, points=n, days=span / 86400.0)
