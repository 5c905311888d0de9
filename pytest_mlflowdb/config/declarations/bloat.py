"""The declaration of the area of ``checks/bloat.py``: its thresholds and options."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area, Option
from pytest_mlflowdb.config.thresholds import Threshold

# Tables: warn at 30% and 64MB, fail at 50% and 1GB: a percent AND a size of wasted bytes
# (Heroku's 64MB floor, pgx's 50%, check_postgres's 1GB; between pg_gather's 20% and pgx's
# 50%). Indexes: a btree filled by inserts into the middle of its key range (MLflow's
# (run_uuid, key, step) index, its metrics primary key) settles at 50-70% leaf density,
# 22-44% below a fresh build at fillfactor 90, on a perfectly healthy database: only
# beyond that is it bloat a REINDEX keeps away, hence 55% and 70%.
THRESHOLDS = (
    Threshold("table_bloat_warn_pct", "30%", "percent",
              "table bloat warns at this share of the table (and bloat_warn_size)",
              minimum=0, maximum=100),
    Threshold("table_bloat_fail_pct", "50%", "percent",
              "table bloat fails at this share of the table (and bloat_fail_size)",
              minimum=0, maximum=100),
    Threshold("index_bloat_warn_pct", "55%", "percent",
              "btree index bloat warns at this share of the index (and bloat_warn_size)",
              minimum=0, maximum=100),
    Threshold("index_bloat_fail_pct", "70%", "percent",
              "btree index bloat fails at this share of the index (and bloat_fail_size)",
              minimum=0, maximum=100),
    Threshold("bloat_warn_size", "64MB", "size",
              "bloat warns from this many wasted bytes (and the warn percent)", minimum=0),
    Threshold("bloat_fail_size", "1GB", "size",
              "bloat fails from this many wasted bytes (and the fail percent)", minimum=0),
)
OPTIONS = (
    Option("bloat_mode", "--mlflowdb-bloat", "mlflowdb_bloat",
           "bloat from catalog statistics (estimate, the default) or measured with "
           "pgstattuple for the relations the estimate flags (exact)", "MODE",
           choices=("estimate", "exact"), default="estimate"),
    Option("bloat_relations", None, "mlflowdb_bloat_relations",
           "more tables or indexes of MLflow's schema to check for bloat, one per line",
           ini_type="linelist"),
)

AREA = Area("bloat", thresholds=THRESHOLDS, options=OPTIONS)
