"""The declaration of the area of ``checks/connectivity.py``: its thresholds."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

THRESHOLDS = (
    Threshold("latency_warn", "50ms", "duration",
              "median round trip above which the latency check warns"),
    Threshold("latency_fail", "1s", "duration",
              "median round trip above which the latency check fails"),
    Threshold("latency_samples", "5", "count",
              "round trips measured for the latency median", minimum=1, maximum=1000),
    Threshold("connections_warn", "80%", "percent",
              "share of usable connection slots in use at which headroom warns"),
    Threshold("connections_fail", "95%", "percent",
              "share of usable connection slots in use at which headroom fails"),
)

AREA = Area("connectivity", thresholds=THRESHOLDS)
