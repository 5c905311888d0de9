"""The declaration of the area of ``checks/size.py``: its thresholds and options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_mlflowdb.config.declare import Area, Option
from pytest_mlflowdb.config.thresholds import Threshold, ThresholdError, format_value, parse_value

MAX_SIZE = 1024.0**5  # 1 PB: anything above is a typo


def parse_max_size(raw: Any) -> float | None:
    """``--mlflowdb-max-db-size``: a size in the threshold grammar, above 0 and at most 1PB."""
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = parse_value("size", str(raw))
    except ThresholdError as exc:
        raise ValueError(str(exc)) from None
    if not 0 < value <= MAX_SIZE:
        raise ValueError(f"{raw!r} is outside 1B to {format_value('size', MAX_SIZE)}")
    return value


def parse_history_dir(raw: Any) -> str | None:
    """``--mlflowdb-history``: a folder (made at the end of the run when missing), not a file."""
    if raw is None or str(raw).strip() == "":
        return None
    path = Path(str(raw).strip()).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(raw)!r} is not a folder")
    return str(path)


#: a count of kept reports below this leaves no forecast (two earlier ones and this run)
MIN_KEEP = 3
MIN_KEEP_AGE = 86400.0


def parse_history_keep(raw: Any) -> tuple[str, float] | None:
    """``--mlflowdb-history-keep``: a count of reports (``60``, at least 3) or a duration
    (``90d``, at least a day): ``("count", n)`` or ``("age", seconds)``."""
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip()
    if text.isdigit():
        if int(text) < MIN_KEEP:
            raise ValueError(f"{text!r} keeps fewer than {MIN_KEEP} reports: a forecast needs "
                             f"{MIN_KEEP}")
        return ("count", float(int(text)))
    try:
        seconds = parse_value("duration", text)
    except ThresholdError as exc:
        raise ValueError(f"{text!r} is neither a count of reports nor a duration "
                         f"({exc})") from None
    if seconds < MIN_KEEP_AGE:
        raise ValueError(f"{text!r} is shorter than a day: a forecast needs a day of reports")
    return ("age", seconds)


THRESHOLDS = (
    Threshold("max_db_size", "0", "size", "database size that fails size.database (0: no "
              "limit; --mlflowdb-max-db-size sets it too)", maximum=1024.0**5),
    Threshold("max_table_size", "0", "size", "total size (heap, TOAST, indexes) of one "
              "MLflow table that fails size.tables (0: no limit)", maximum=1024.0**5),
    Threshold("max_rows_metrics", "0", "count", "estimated rows of metrics that fail "
              "size.rows (0: no limit)", maximum=1e13),
    Threshold("max_rows_params", "0", "count", "estimated rows of params (0: no limit)",
              maximum=1e13),
    Threshold("max_rows_tags", "0", "count", "estimated rows of tags (0: no limit)",
              maximum=1e13),
    Threshold("max_rows_latest_metrics", "0", "count", "estimated rows of latest_metrics "
              "(0: no limit)", maximum=1e13),
    Threshold("max_rows_trace_info", "0", "count", "estimated rows of trace_info "
              "(0: no limit)", maximum=1e13),
    Threshold("max_rows_spans", "0", "count", "estimated rows of spans (0: no limit)",
              maximum=1e13),
    Threshold("forecast_horizon", "30d", "duration", "warn when the growth of the kept "
              "reports crosses a size limit within this", minimum=86400.0,
              maximum=3650 * 86400.0),
)
OPTIONS = (
    Option("max_db_size", "--mlflowdb-max-db-size", "mlflowdb_max_db_size",
           "fail size.database above this size (the max_db_size threshold)", "SIZE",
           parse=parse_max_size),
    Option("history", "--mlflowdb-history", "mlflowdb_history",
           "keep each run's JSON report in DIR; with two or more kept, the size checks "
           "give growth per day and warn before a limit is crossed", "DIR",
           parse=parse_history_dir),
    Option("history_keep", "--mlflowdb-history-keep", "mlflowdb_history_keep",
           "prune the history folder after each run: keep the newest N reports, or those "
           "younger than a DURATION (90d); the default keeps every report", "N|DURATION",
           parse=parse_history_keep),
)

AREA = Area("size", thresholds=THRESHOLDS, options=OPTIONS)
