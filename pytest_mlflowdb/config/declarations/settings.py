"""The declaration of the area of ``checks/settings.py``: its threshold."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

# postgres-checkup's F001/F008 only display the autovacuum settings; the usual advice for
# a table of tens of millions of rows is a per-table scale factor. Ten million rows
# changed (or inserted) before autovacuum visits metrics is where a vacuum's pass, and the
# dead rows index scans wade through meanwhile, stop being small.
THRESHOLDS = (
    Threshold("autovacuum_trigger_warn", "10000000", "count",
              "rows changed or inserted in one of metrics, latest_metrics, params, tags "
              "before autovacuum visits it (its trigger at its current size) that warns",
              minimum=1, maximum=1e12),
)

AREA = Area("settings", thresholds=THRESHOLDS)
