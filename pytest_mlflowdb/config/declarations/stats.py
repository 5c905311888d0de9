"""The declaration of the area of ``checks/stats.py``: its thresholds."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

# No anchor has defaults here (check_postgres's checkpoint and commitratio need the user's;
# pg_gather flags temp files and aborts > 4000). Most checkpoints requested rather than
# timed is the usual sign of a too-small max_wal_size; a handful after a start, a
# CREATE DATABASE or a base backup is not, hence a minimum count. Rates are per day of
# the counters' age, at least one day (a young server's counts are not extrapolated).
THRESHOLDS = (
    Threshold("checkpoints_requested_warn", "50%", "percent",
              "share of checkpoints forced by WAL filling max_wal_size (requested, no "
              "more than the WAL written could force) rather than timed that warns",
              minimum=0, maximum=100),
    Threshold("checkpoints_min", "10", "count",
              "checkpoints counted before their share is judged", minimum=1, maximum=1e9),
    Threshold("temp_bytes_per_day_warn", "10GB", "size",
              "temporary file bytes the database writes per day (sorts and hashes past "
              "work_mem) that warn", minimum=0, maximum=1024.0**5),
    Threshold("deadlocks_per_day_warn", "1", "number",
              "deadlocks per day in the database that warn", minimum=0, maximum=1e9),
    Threshold("rollback_ratio_warn", "20%", "percent",
              "share of the database's transactions rolled back that warns",
              minimum=0, maximum=100),
    Threshold("rollback_min_xacts", "1000", "count",
              "transactions counted before the rollback ratio is judged", minimum=1,
              maximum=1e12),
    Threshold("conflicts_per_day_warn", "10", "number",
              "queries cancelled per day by recovery conflicts on a standby that warn",
              minimum=0, maximum=1e9),
)

AREA = Area("stats", thresholds=THRESHOLDS)
