"""The growth history and forecast (pure Python): least squares, what a forecast needs,
and a history folder with files that are not kept reports."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from pytest_mlflowdb.config.declarations.size import parse_history_dir, parse_max_size
from pytest_mlflowdb.size.forecast import (
    MAX_BYTES,
    Growth,
    fit,
    load_history,
    save_report,
)

DAY = 86400.0
MB = 1024.0**2
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def kept(target: str, db_bytes: int, tables: dict[str, int] | None = None) -> dict:
    """A report as the size checks leave it (only what the forecast reads, plus noise)."""
    return {"version": 1, "targets": [{"id": target}], "summary": {}, "run": {},
            "checks": [
                {"id": "size.database", "target": target, "outcome": "passed",
                 "findings": [{"object": "mlflow", "value": db_bytes, "severity": "ok"}]},
                {"id": "size.tables", "target": target, "outcome": "passed",
                 "findings": [{"object": k, "value": v, "severity": "ok"}
                              for k, v in (tables or {}).items()]},
                {"id": "schema.revision", "target": target, "outcome": "passed",
                 "findings": [{"object": "public", "value": 5, "severity": "ok"}]}]}


def test_least_squares_slope_and_what_it_rests_on():
    # 10 MB/day with noise of +-1 MB around the line: the fit recovers the slope
    noise = [0, 1, -1, 1, 0, -1, 0]
    points = [(i * DAY, 100 * MB + i * 10 * MB + n * MB) for i, n in enumerate(noise)]
    growth = fit(points)
    assert isinstance(growth, Growth)
    assert growth.per_day == pytest.approx(10 * MB, rel=0.05)
    assert (growth.points, growth.days) == (7, 6.0)
    assert "least squares over 7 points spanning 6.0 days" in growth.text()
    assert growth.days_to(160 * MB, 200 * MB) == pytest.approx(4.0, rel=0.06)


def test_no_forecast_from_too_few_reports_or_points_an_hour_apart():
    assert "1 earlier report(s) kept; a forecast needs at least 2" in fit(
        [(0, 1.0), (2 * DAY, 2.0)])
    hourly = fit([(0, 1.0), (1800, 2.0), (3600, 3.0)])
    assert isinstance(hourly, str) and "span 1h" in hourly


def test_shrinking_or_flat_growth_never_reaches_a_limit():
    growth = fit([(0, 3 * MB), (DAY, 2 * MB), (2 * DAY, MB)])
    assert isinstance(growth, Growth) and growth.per_day < 0
    assert growth.days_to(MB, 10 * MB) is None
    assert "-1MB/day" in growth.text()


def test_kept_reports_round_trip_per_target(tmp_path):
    for day, size in ((0, 100), (1, 200), (2, 300)):
        save_report(tmp_path, kept("h:5432/a", size, {"public.metrics": size // 2}),
                    T0 + datetime.timedelta(days=day))
    save_report(tmp_path, kept("h:5432/other", 999), T0 + datetime.timedelta(days=3))
    history = load_history(tmp_path, "h:5432/a")
    assert history.reports == 3 and not history.ignored
    assert [v for _, v in history.points["mlflow"]] == [100, 200, 300]
    assert [v for _, v in history.points["public.metrics"]] == [50, 100, 150]
    assert "public" not in history.points  # other checks' figures are not sizes
    growth = fit(history.points["mlflow"])
    assert isinstance(growth, Growth) and growth.per_day == pytest.approx(100)


def test_foreign_and_unreadable_files_are_ignored_in_one_line(tmp_path):
    save_report(tmp_path, kept("h:5432/a", 100), T0)
    (tmp_path / "notes.txt").write_text("not json")
    (tmp_path / "other.json").write_text(json.dumps({"version": 1, "checks": []}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError
    with open(tmp_path / "huge.json", "wb") as huge:
        huge.truncate(MAX_BYTES + 1)  # sparse: read never, refused by its size
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "pipe.json")  # never opened: reading it would wait forever
    history = load_history(tmp_path, "h:5432/a")
    assert history.reports == 1
    assert set(history.ignored) == {"notes.txt", "other.json", "list.json", "binary.json",
                                    "deep.json", "huge.json"}
    assert history.ignored["huge.json"] == "larger than 64 MiB"
    line = history.ignored_line()
    assert line is not None and "\n" not in line
    assert line.startswith("ignored 6 file(s) in the history folder: ")
    assert load_history(tmp_path / "missing", "h:5432/a").reports == 0


@pytest.mark.parametrize("raw, error", [
    ("10 parsecs", "is not a size"), ("-5GB", "is not a size"), ("0", "outside"),
    ("5000TB", "outside"), ("GB", "is not a size")])
def test_max_size_option_refuses_bad_values(raw, error):
    with pytest.raises(ValueError, match=error):
        parse_max_size(raw)


def test_max_size_option_grammar_forms():
    assert parse_max_size("1.5GB") == 1.5 * 1024**3
    assert parse_max_size("512 mib") == 512 * MB
    assert parse_max_size("1t") == 1024.0**4
    assert parse_max_size(None) is None


def test_history_option_must_not_name_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        parse_history_dir(str(tmp_path / "f"))
    assert parse_history_dir(str(tmp_path / "new")) == str(tmp_path / "new")
