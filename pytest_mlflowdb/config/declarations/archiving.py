"""The declaration of the area of ``checks/archiving.py``: its thresholds and option."""

from __future__ import annotations

from typing import Any

from pytest_mlflowdb.config.declare import Area, Option
from pytest_mlflowdb.config.thresholds import Threshold


def parse_require(raw: Any) -> bool:
    """``mlflowdb_require_archiving``: true/false (the flag gives True)."""
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not true or false")


# pg_gather: archiving failing for over 300 s is a finding; pgEdge's pg-healthcheck: an
# archiver failure within the last hour is critical. A segment waits for the archiver
# while a failing command is retried: 15 min of WAL that a point-in-time restore cannot
# reach warns, an hour fails.
THRESHOLDS = (
    Threshold("archive_age_warn", "15min", "duration",
              "time since the last good archive, while segments wait or archiving fails, "
              "that warns", minimum=0, maximum=3650 * 86400.0),
    Threshold("archive_age_fail", "1h", "duration",
              "the same that fails", minimum=0, maximum=3650 * 86400.0),
    Threshold("archive_ready_warn", "16", "count",
              "WAL segments waiting to be archived (.ready files) that warn", minimum=1,
              maximum=1e9),
)
OPTIONS = (
    Option("require_archiving", "--mlflowdb-require-archiving", "mlflowdb_require_archiving",
           "archive_mode off on a primary fails archiving.status (a policy that needs "
           "point-in-time recovery); information otherwise", None,
           (("action", "store_true"), ("default", None)), parse=parse_require),
)

AREA = Area("archiving", thresholds=THRESHOLDS, options=OPTIONS)
