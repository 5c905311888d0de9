"""The declaration of the area of ``checks/vacuum.py``: its thresholds."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

# Dead rows: autovacuum's default trigger (50 rows + 20% of the table) lets a table reach
# ~17% dead rows before it runs, so 30% means it is behind and 60% that it is not working
# (or something holds the xmin horizon back). Tables under 64MB of heap are not judged.
# Wraparound: check_postgres's 1.3B/1.4B of 2^31 are near the cliff; 1.2B/1.6B leave
# time; reaching autovacuum_freeze_max_age (200M by default) is normal and only twice
# that says the anti-wraparound vacuum is overdue (cloudnative-pg suggests ~300M).
THRESHOLDS = (
    Threshold("dead_tuples_warn", "30%", "percent",
              "dead rows' share of a table (n_dead_tup of live + dead) that warns, from "
              "dead_tuples_min_size of heap", minimum=0, maximum=100),
    Threshold("dead_tuples_fail", "60%", "percent",
              "dead rows' share of a table that fails, from dead_tuples_min_size of heap",
              minimum=0, maximum=100),
    Threshold("dead_tuples_min_size", "64MB", "size",
              "tables with less heap than this are not judged for dead rows", minimum=0,
              maximum=1024.0**5),
    Threshold("stale_stats_age", "1d", "duration",
              "a table's statistics are stale when its last (auto)analyze is older than "
              "this and stale_stats_changed of its rows changed since", minimum=1.0,
              maximum=3650 * 86400.0),
    Threshold("stale_stats_changed", "20%", "percent",
              "share of a table's rows changed since its last (auto)analyze (and at least "
              "its autoanalyze threshold) that, after stale_stats_age, makes it stale",
              minimum=0, maximum=100),
    Threshold("stale_stats_naptimes", "3", "number",
              "autovacuum_naptime rounds (at least a minute in all) autovacuum is given, "
              "from the server's start or the statistics' reset, before a table it would "
              "analyse counts as stale; 0 gives none", minimum=0, maximum=1000),
    Threshold("xid_age_warn", "1200000000", "count",
              "transaction ID age (of the database or an MLflow table) that warns; "
              "PostgreSQL stops writing ~3M short of 2^31 (2147483648)", minimum=1,
              maximum=2144483648),
    Threshold("xid_age_fail", "1600000000", "count",
              "transaction ID age that fails", minimum=1, maximum=2144483648),
    Threshold("multixact_age_warn", "1200000000", "count",
              "multixact ID age (of the database or an MLflow table) that warns", minimum=1,
              maximum=2144483648),
    Threshold("multixact_age_fail", "1600000000", "count",
              "multixact ID age that fails", minimum=1, maximum=2144483648),
    Threshold("freeze_overdue_factor", "2", "number",
              "an age beyond this many times autovacuum_freeze_max_age (or "
              "autovacuum_multixact_freeze_max_age) warns: the anti-wraparound vacuum is "
              "overdue (reaching 1x is autovacuum's normal trigger)", minimum=1.1,
              maximum=100),
)

AREA = Area("vacuum", thresholds=THRESHOLDS)
