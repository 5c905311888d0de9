"""The indexes the platform guide (README, "Set up your MLflow database") recommends.

One list, quoted by the README and read by ``indexes.recommended`` and the stock-database
test, so the guide, the check and the test cannot drift apart. Each entry says why it is
worth having (checked against MLflow's SQL store, ``mlflow/store/tracking/
sqlalchemy_store.py``) and what it costs, because every index is paid for on each insert.
MLflow's own indexes are not here: ``indexes.required`` checks those.

The list's edits (``mlflowdb_recommended_indexes``, an option the indexes area declares)
are parsed here too, by :func:`parse_index_plan`. This module imports nothing (it is
data): the settings read it when the plugin may be dormant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: What every recommended index costs to build, whatever the table.
BUILD_COST = ("builds without blocking writes with CREATE INDEX CONCURRENTLY (run it "
              "outside a transaction; a failed build leaves an INVALID index that "
              "indexes.invalid reports: drop it and run it again)")


@dataclass(frozen=True)
class RecommendedIndex:
    table: str
    columns: tuple[str, ...]
    #: the index's name in the guide: prefixed so it never collides with one MLflow adds
    name: str
    #: why it is worth having, and for which queries
    reason: str
    #: what it costs besides the build (``BUILD_COST``), e.g. on every insert
    write_cost: str

    @property
    def statement(self) -> str:
        """The guide's statement, exactly as the README shows it."""
        return (f"CREATE INDEX CONCURRENTLY {self.name} ON {self.table} "
                f"({', '.join(self.columns)});")


RECOMMENDED_INDEXES: tuple[RecommendedIndex, ...] = (
    RecommendedIndex(
        "runs", ("experiment_id",), "mlflowdb_runs_experiment_id",
        "search_runs filters runs on experiment_id (WHERE experiment_id IN (...) AND "
        "lifecycle_stage IN (...)), which every experiment page of the UI runs, and "
        "deleting an experiment (soft, or for good by mlflow gc) looks up its runs; "
        "MLflow makes no index leading with experiment_id, so both read all of runs",
        "adds one small index entry per new run (runs has one row per run)"),
    RecommendedIndex(
        "metrics", ("key", "value"), "mlflowdb_metrics_key_value",
        "for the platform guide's analysis queries over the whole metric history (best "
        "runs by a metric: WHERE key = ... ORDER BY value DESC LIMIT n), not MLflow's own "
        "queries: MLflow reads metrics by run (index_metrics_run_uuid_key_step) and "
        "search_runs filters on latest_metrics",
        "metrics is MLflow's largest table: every logged metric pays one more index "
        "insert, and the index grows with the table (drop this entry with "
        "-metrics(key, value) where nobody runs such queries)"),
)


#: The platform guide's recommended indexes; any valid btree index whose leading columns
#: are these satisfies one.
DEFAULT_RECOMMENDED = tuple((r.table, r.columns) for r in RECOMMENDED_INDEXES)
FOREIGN_KEYS_ENTRY = "foreign_keys"
_INDEX_SPEC = re.compile(r"^\s*(-?)\s*([A-Za-z_][\w$]*)\s*\(\s*([^()]*?)\s*\)\s*$")


@dataclass(frozen=True)
class IndexPlan:
    """The indexes ``indexes.recommended`` asks for: the guide's, as the team edited them."""

    #: (table, leading columns) per wanted index
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_RECOMMENDED
    #: whether every foreign key of a big enough MLflow table wants a supporting index
    foreign_keys: bool = True


def parse_index_plan(entries: Iterable[str] | None) -> IndexPlan:
    """The ``mlflowdb_recommended_indexes`` lines applied to the guide's list: each
    ``table(col, ...)`` adds, ``-table(col, ...)`` removes, ``-foreign_keys`` turns off the
    rule that every foreign key wants a supporting index. A ValueError names the line."""
    result = list(DEFAULT_RECOMMENDED)
    with_fks = True
    for entry in entries or ():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.lstrip("-+ ") == FOREIGN_KEYS_ENTRY:
            with_fks = not entry.startswith("-")
            continue
        match = _INDEX_SPEC.match(entry)
        columns = tuple(c.strip() for c in match.group(3).split(",")) if match else ()
        if not match or not all(re.fullmatch(r"[A-Za-z_][\w$]*", c) for c in columns):
            raise ValueError(f"{entry!r} is not table(column, ...) or -table(column, ...) "
                             f"or -{FOREIGN_KEYS_ENTRY}")
        # unquoted identifiers fold to lower case in PostgreSQL
        spec = (match.group(2).lower(), tuple(c.lower() for c in columns))
        if match.group(1):
            if spec not in result:
                raise ValueError(f"{entry!r} removes an entry that is not in the list")
            result.remove(spec)
        elif spec not in result:
            result.append(spec)
    return IndexPlan(tuple(result), with_fks)
