"""The declaration of the area of ``checks/workload.py``: its thresholds."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

# PgHero calls a query slow at an average of 20 ms over at least 100 calls;
# ruby-pg-extras' outliers and postgres-checkup's K000 single out what takes a third
# (30%) of all execution time. MLflow's main operation takes that share of a healthy
# database's time, so the share is stated, and warns only with a slow mean.
THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("workload_slow_mean", "20ms", "duration",
              "an MLflow operation whose statements take this long on average warns "
              "(over workload_min_calls calls)", minimum=0, maximum=3600.0),
    Threshold("workload_min_calls", "100", "count",
              "calls an operation needs before its mean time is judged", minimum=1,
              maximum=1e12),
    Threshold("workload_share", "33%", "percent",
              "share of the database's statement time above which an operation is "
              "named as the top consumer", minimum=0, maximum=100),
)

# Plans: a seq scan of a table under 64MB (the size the index and vacuum areas start
# judging at) is the planner's right choice; MLflow's hot reads on an indexed database cost
# hundreds to thousands of units even on millions of rows.
THRESHOLDS += (
    Threshold("plan_seq_scan_min_size", "64MB", "size",
              "an MLflow table at least this large read whole by a hot query's plan warns",
              minimum=0, maximum=1024.0**5),
    Threshold("plan_cost_warn", "1000000", "number",
              "a hot query whose estimated plan cost reaches this warns", minimum=0,
              maximum=1e15),
)

# gc and the UI: mlflow gc ran out of memory on one run of millions of metric rows
# (mlflow/mlflow #25615); search_runs took minutes on tens of thousands of runs (#2730,
# #15231); registration is instant unless a registry hook failed, so a day in a
# registration state is stuck.
THRESHOLDS += (
    Threshold("run_metric_rows_warn", "1000000", "count",
              "a run with this many metric rows (estimated) warns", minimum=1,
              maximum=1e15),
    Threshold("experiment_runs_warn", "50000", "count",
              "an experiment with this many runs (estimated) warns", minimum=1,
              maximum=1e15),
    Threshold("stuck_version_age", "1d", "duration",
              "a model version left this long in PENDING_REGISTRATION or "
              "FAILED_REGISTRATION warns", minimum=0, maximum=3650 * 86400.0),
)

# Connections: MLflow's tracking server keeps a SQLAlchemy pool per worker process (5 + 10
# overflow by default), idle between requests (mlflow/mlflow #1565, #5209). No anchor has
# a default for one holder's share; half the usable slots, mostly idle, leaves the other
# clients and the server's next workers little.
THRESHOLDS += (
    Threshold("pool_slots_warn", "50%", "percent",
              "one role, application and client holding this share of the usable "
              "connection slots, mostly idle, warns", minimum=0, maximum=100),
)

AREA = Area("workload", thresholds=THRESHOLDS)
