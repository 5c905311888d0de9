"""The declaration of the area of ``checks/activity.py``: its thresholds."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

# Idle in transaction: Heroku's checks call anything over a minute red; a quarter of an
# hour of held-back vacuum on metrics is an incident. Queries: PgHero flags 60s, Heroku
# 5min; MLflow's own statements take milliseconds. Lock waits: check_postgres's lockwait
# 1min/2min. Prepared transactions: MLflow never uses two-phase commit, so one that has
# stood for a minute is forgotten (check_postgres: 1s/30s). Slots: no tool has a default;
# an inactive slot warns whatever it holds (it keeps all WAL from now on).
THRESHOLDS = (
    Threshold("idle_in_transaction_warn", "1min", "duration",
              "a session idle in a transaction this long warns", minimum=0, maximum=30 * 86400.0),
    Threshold("idle_in_transaction_fail", "15min", "duration",
              "a session idle in a transaction this long fails", minimum=0, maximum=30 * 86400.0),
    Threshold("long_query_warn", "5min", "duration",
              "a query running this long warns", minimum=0, maximum=30 * 86400.0),
    Threshold("long_query_fail", "1h", "duration",
              "a query running this long fails", minimum=0, maximum=30 * 86400.0),
    Threshold("blocked_warn", "1min", "duration",
              "a session waiting this long for a lock warns", minimum=0, maximum=30 * 86400.0),
    Threshold("blocked_fail", "5min", "duration",
              "a session waiting this long for a lock fails", minimum=0, maximum=30 * 86400.0),
    Threshold("prepared_xact_warn", "1min", "duration",
              "a prepared transaction this old warns", minimum=0, maximum=30 * 86400.0),
    Threshold("prepared_xact_fail", "15min", "duration",
              "a prepared transaction this old fails", minimum=0, maximum=30 * 86400.0),
    Threshold("slot_wal_warn", "1GB", "size",
              "WAL retained by a replication slot that warns (an inactive slot always "
              "warns)", minimum=0, maximum=1024.0**5),
    Threshold("slot_wal_fail", "10GB", "size",
              "WAL retained by a replication slot that fails", minimum=0,
              maximum=1024.0**5),
)

AREA = Area("activity", thresholds=THRESHOLDS)
