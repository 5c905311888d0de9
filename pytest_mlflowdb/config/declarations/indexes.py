"""The declaration of the area of ``checks/indexes.py``: its thresholds and options."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pytest_mlflowdb.config.declare import Area, Option
from pytest_mlflowdb.config.thresholds import Threshold

if TYPE_CHECKING:
    from pytest_mlflowdb.indexes.recommended import IndexPlan


def parse_index_plan(entries: Iterable[str] | None) -> IndexPlan:
    """``mlflowdb_recommended_indexes``: the guide's list with these lines applied
    (:func:`pytest_mlflowdb.indexes.recommended.parse_index_plan`, imported when a value
    is read: the guide's list is not needed to add the option)."""
    from pytest_mlflowdb.indexes.recommended import parse_index_plan as parse

    return parse(entries)


THRESHOLDS = (
    Threshold("unused_index_min_size", "1MB", "size",
              "never-scanned indexes smaller than this are not worth reporting"),
    Threshold("fk_index_min_size", "64MB", "size",
              "a foreign key without a supporting index warns from this table size (each "
              "delete on the referenced table scans it); below, it is information"),
    Threshold("stats_min_age", "7d", "duration",
              "statistics younger than this (since reset or restart) say nothing about use"),
)
#: the value is an IndexPlan
OPTIONS = (
    Option("recommended_indexes", None, "mlflowdb_recommended_indexes",
           "indexes to recommend, table(column, ...) per line; -table(...) removes a "
           "default, -foreign_keys stops asking for foreign-key indexes",
           ini_type="linelist", parse=parse_index_plan),
)

AREA = Area("indexes", thresholds=THRESHOLDS, options=OPTIONS)
