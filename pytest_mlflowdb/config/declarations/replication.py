"""The declaration of the area of ``checks/replication.py``: its thresholds."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

# PgHero calls a replica healthy under 5 s of lag; check_postgres's hot_standby_delay
# needs the user's. A failover loses the runs logged within the lag: a minute warns, a
# quarter of an hour fails; bytes as the activity area's slots (1GB/10GB).
THRESHOLDS = (
    Threshold("replication_lag_warn", "1min", "duration",
              "a standby's write, flush or replay lag (time) that warns", minimum=0,
              maximum=30 * 86400.0),
    Threshold("replication_lag_fail", "15min", "duration",
              "the same that fails", minimum=0, maximum=30 * 86400.0),
    Threshold("replication_lag_bytes_warn", "1GB", "size",
              "WAL a standby has not yet replayed (bytes) that warns", minimum=0,
              maximum=1024.0**5),
    Threshold("replication_lag_bytes_fail", "10GB", "size",
              "the same that fails", minimum=0, maximum=1024.0**5),
)

AREA = Area("replication", thresholds=THRESHOLDS)
