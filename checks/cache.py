"""Cache: how often the blocks the audited database asked for were already in
shared_buffers, for the whole database and for MLflow's tables and indexes.

Information only, never a warning: a ratio below the usual 99% is normal on a freshly
started server, after a reset or when the operating system's cache serves the reads
(PostgreSQL counts those as reads too), so the figures come with the age of the counters
(their last reset, else the server's start) and no threshold that would cry wolf.
"""

from __future__ import annotations

import datetime

from pytest_mlflowdb import check
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.probes.cache import CacheStats, Hits, cache_stats
from pytest_mlflowdb.probes.mlflow import mlflow_facts


def _since(stats: CacheStats, major: int) -> str:
    when = stats.since.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    age = format_value("duration", round(stats.age_seconds))
    if stats.reset:
        return f"counted since the statistics were reset at {when} ({age} ago)"
    kept = ", or earlier: PostgreSQL 15+ keeps them across clean restarts" if major >= 15 \
        else ""
    return f"counted since the server started at {when} ({age} ago; never reset{kept})"


def _record(findings, obj: str, what: str, hits: Hits, since: str) -> None:
    ratio = hits.ratio_pct
    counts = f"{hits.hits} hits, {hits.reads} reads of blocks from outside shared_buffers"
    if ratio is None:
        findings.info(obj, f"{what}: no block asked for yet; {since}", None, None)
    else:
        findings.info(obj, f"{what} {format_value('percent', ratio)} ({counts}); {since}",
                      format_value("percent", ratio), None)


def _stats(db) -> CacheStats:
    schema = mlflow_facts(db).schema
    return cache_stats(db, schema or "", load_catalog().mlflow_tables() if schema else ())


@check("cache.hit_ratio", probes=(_stats,))
def test_hit_ratio(mlflowdb, mlflowdb_findings):
    """Buffer cache hit ratio of the database and MLflow's tables (information)."""
    schema = mlflow_facts(mlflowdb).schema
    stats = _stats(mlflowdb)
    since = _since(stats, mlflowdb.preflight.major)
    _record(mlflowdb_findings, stats.database, "cache hit ratio", stats.overall, since)
    if schema and stats.table_count:
        _record(mlflowdb_findings, f"{schema} (MLflow's tables)",
                f"cache hit ratio of {stats.table_count} tables' heap", stats.tables, since)
        _record(mlflowdb_findings, f"{schema} (MLflow's indexes)",
                f"cache hit ratio of {stats.table_count} tables' indexes", stats.indexes,
                since)
