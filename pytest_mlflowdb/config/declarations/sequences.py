"""The declaration of the area of ``checks/sequences.py``: its thresholds."""

from __future__ import annotations

from pytest_mlflowdb.config.declare import Area
from pytest_mlflowdb.config.thresholds import Threshold

# PgHero alarms at 90% of the column type's maximum, check_postgres at 85% / 95% of the
# sequence's; pgwatch counts those above 75%. A warning at 75% leaves a quarter of the
# range (half a billion ids of an integer column) to plan the bigint migration.
THRESHOLDS = (
    Threshold("sequence_warn", "75%", "percent", "share of the values its column (or its "
              "own maximum) allows that a sequence has used, to warn at",
              minimum=0, maximum=100),
    Threshold("sequence_fail", "90%", "percent", "share of the values its column (or its "
              "own maximum) allows that a sequence has used, to fail at",
              minimum=0, maximum=100),
)

AREA = Area("sequences", thresholds=THRESHOLDS)
