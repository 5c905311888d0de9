"""Size: the database, each MLflow table (heap, TOAST, indexes) and its estimated rows,
against limits the team sets, with the growth per day from kept reports.

Figures come from the catalog (``pg_database_size``, ``pg_*_size``, ``reltuples``), never
``count(*)``, so the cost does not grow with the rows. No size has a sane default limit
(a 50 GB MLflow database is normal for one team and absurd for another), so every limit
is off (0) until set; the findings always show the figures, largest tables first.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import ThresholdValues, format_value
from pytest_mlflowdb.probes.size import TableSize, database_size, table_sizes
from pytest_mlflowdb.results.findings import Findings, sql_name
from pytest_mlflowdb.size.forecast import History, fit, load_history, now_utc

ROW_LIMITED = ("metrics", "params", "tags", "latest_metrics", "trace_info", "spans")
#: tables whose growth is shown (the largest); each one's limit is forecast anyway
GROWTH_SHOWN = 5


_DB_REMEDY = ("mlflow gc --backend-store-uri <URI> (purges runs deleted in MLflow), then "
              "VACUUM (ANALYZE) the largest tables of size.tables; pg_repack to give the "
              "space back")


def _remedy(table: str) -> str:
    return (f"mlflow gc --backend-store-uri <URI> (purges runs deleted in MLflow), then "
            f"VACUUM (ANALYZE) {table}; pg_repack -t {table} to give the space back")


def _history(db, folder: str, target: str) -> History:
    """The kept reports, read once per session (not once per table)."""
    return db.cached(f"size:history:{folder}:{target}", lambda _: load_history(folder, target))


def _forecast(db, findings: Findings, settings, target: str, obj: str, current: float,
              limit: float, horizon: float, show: bool, quiet: bool = False) -> None:
    """Growth of ``obj`` from the kept reports; a warning when ``limit`` (bytes, 0: none)
    is reached within ``horizon`` seconds. Silent when no history folder is set; ``quiet``
    leaves out why there is no forecast (said once, by size.database)."""
    folder = settings.area_options.get("history")
    if not folder:
        return
    history = _history(db, folder, target)
    earlier = history.points.get(obj, [])
    growth = fit([*earlier, (now_utc().timestamp(), current)])
    if isinstance(growth, str):
        if show and not quiet:
            findings.ok(f"{obj} growth", f"no forecast: {growth}", None, None)
        return
    days = growth.days_to(current, limit) if limit else None
    horizon_days = horizon / 86400.0
    rests = f"; rests on {len(earlier)} kept report(s) and this run, {growth.days:.1f} days"
    if days is not None and 0 < days <= horizon_days:
        findings.warn(f"{obj} growth", f"grows {growth.text()}: reaches the limit "
                      f"{format_value('size', limit)} in {days:.0f} days (within "
                      f"{format_value('duration', horizon)}){rests}", round(growth.per_day),
                      format_value("size", limit))
    elif show:
        findings.ok(f"{obj} growth", f"grows {growth.text()}{rests}", round(growth.per_day),
                    None)


def _history_note(db, findings: Findings, settings, target: str) -> None:
    folder = settings.area_options.get("history")
    line = _history(db, folder, target).ignored_line() if folder else None
    if line:
        findings.info(str(folder), line)


@check("size.database", thresholds=("max_db_size", "forecast_horizon"),
       probes=(database_size,))
def test_database(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues,
                  mlflowdb_settings, mlflowdb_target):
    """The database's size against max_db_size, and its growth per day from kept reports."""
    name, size = database_size(mlflowdb)
    limit = mlflowdb_settings.area_options.get("max_db_size") or mlflowdb_thresholds[
        "max_db_size"]
    shown = format_value("size", size)
    if limit and size >= limit:
        mlflowdb_findings.fail(name, f"database is {shown}, at or above max_db_size "
                               f"{format_value('size', limit)}", size,
                               format_value("size", limit), remedy=_DB_REMEDY)
    else:
        below = f" (below max_db_size {format_value('size', limit)})" if limit else \
            " (no max_db_size set)"
        mlflowdb_findings.ok(name, f"database is {shown}{below}", size,
                             format_value("size", limit) if limit else None)
    _forecast(mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_target.id, name, size, limit,
              mlflowdb_thresholds["forecast_horizon"], show=True)
    _history_note(mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_target.id)


def _measured(mlflowdb) -> tuple[str, list[TableSize]]:
    schema = require_mlflow_schema(mlflowdb)
    return schema, table_sizes(mlflowdb, schema, load_catalog().mlflow_tables())


@check("size.tables", thresholds=("max_table_size", "forecast_horizon"), probes=(_measured,))
def test_tables(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues,
                mlflowdb_settings, mlflowdb_target):
    """Each MLflow table's total size (heap, TOAST, indexes) against max_table_size.

    Largest first; the growth of the largest from kept reports."""
    schema, tables = _measured(mlflowdb)
    measured = [t for t in tables if t.error is None]
    if not measured:
        reasons = "; ".join(sorted({f"{t.name}: {t.error}" for t in tables})[:3])
        pytest.skip(f"no MLflow table could be measured ({reasons or 'none found'})")
    limit = mlflowdb_thresholds["max_table_size"]
    for rank, table in enumerate(tables):
        obj = f"{schema}.{table.name}"
        if table.error:
            mlflowdb_findings.info(obj, f"not measured: {table.error}")
            continue
        parts = (f"{format_value('size', table.total)} (heap {format_value('size', table.heap)}"
                 f", TOAST {format_value('size', table.toast)}, indexes "
                 f"{format_value('size', table.indexes)})")
        if limit and table.total >= limit:
            mlflowdb_findings.fail(obj, f"{parts}, at or above max_table_size "
                                   f"{format_value('size', limit)}", table.total,
                                   format_value("size", limit),
                                   remedy=_remedy(sql_name(schema, table.name)))
        else:
            mlflowdb_findings.ok(obj, parts, table.total,
                                 format_value("size", limit) if limit else None)
        _forecast(mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_target.id, obj,
                  table.total, limit, mlflowdb_thresholds["forecast_horizon"],
                  show=rank < GROWTH_SHOWN, quiet=True)


@check("size.rows", thresholds=tuple(f"max_rows_{t}" for t in ROW_LIMITED),
       probes=(_measured,))
def test_rows(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues):
    """Estimated rows (reltuples, never count(*)) against the max_rows_* limits.

    For metrics, params, tags, latest_metrics, trace_info and spans."""
    schema, tables = _measured(mlflowdb)
    by_name = {t.name: t for t in tables}
    unknown_limited = []
    for name in ROW_LIMITED:
        table = by_name.get(name)
        if table is None:
            continue  # not at this MLflow revision
        obj, limit = f"{schema}.{name}", mlflowdb_thresholds[f"max_rows_{name}"]
        if table.rows is None:
            if limit:
                unknown_limited.append(name)
                mlflowdb_findings.info(obj, f"row estimate unknown (never analysed): "
                                       f"max_rows_{name} not checked",
                                       remedy=f"ANALYZE {sql_name(schema, name)};")
            else:
                mlflowdb_findings.ok(obj, "row estimate unknown (never analysed)")
            continue
        if limit and table.rows >= limit:
            mlflowdb_findings.fail(obj, f"~{table.rows} rows (estimate), at or above "
                                   f"max_rows_{name} {int(limit)}", table.rows, int(limit),
                                   remedy=_remedy(sql_name(schema, name)))
        else:
            mlflowdb_findings.ok(obj, f"~{table.rows} rows (estimate)"
                                 + (f", below max_rows_{name} {int(limit)}" if limit else ""),
                                 table.rows, int(limit) if limit else None)
    limited = [n for n in ROW_LIMITED if n in by_name and mlflowdb_thresholds[f"max_rows_{n}"]]
    if limited and set(limited) == set(unknown_limited):
        pytest.skip(f"no row estimate for {', '.join(limited)} (never analysed): their "
                    "limits cannot be checked")
