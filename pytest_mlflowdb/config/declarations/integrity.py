"""The declaration of the area of ``checks/integrity.py``: its thresholds and options."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area, Option
from pytest_mlflowdb.config.thresholds import Threshold

THRESHOLDS = (
    Threshold("stuck_run_age", "7d", "duration", "a run RUNNING with no end time for longer "
              "than this is stuck (integrity.stuck_runs)", minimum=60.0,
              maximum=3650 * 86400.0),
    Threshold("gc_age", "30d", "duration", "soft-deleted runs and experiments older than "
              "this should have been collected by mlflow gc (integrity.gc_backlog)",
              minimum=0.0, maximum=3650 * 86400.0),
    Threshold("integrity_max_ids", "10", "count", "ids listed per integrity finding (the "
              "total is always given)", minimum=1, maximum=1000),
)
OPTIONS = (
    Option("integrity_full", "--mlflowdb-integrity-full", None,
           "also run the slow integrity checks (integrity.latest_metrics reads all of "
           "metrics and latest_metrics)", None,
           (("action", "store_true"), ("default", False))),
)

AREA = Area("integrity", thresholds=THRESHOLDS, options=OPTIONS)
