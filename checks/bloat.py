"""Bloat: space tables and btree indexes hold beyond what their live rows need.

Estimated from catalog statistics (no page is read); ``--mlflowdb-bloat=exact`` measures
the relations the estimate flagged with pgstattuple. A finding needs both a percent and a
size: a percent alone fires on tiny tables, a size alone on huge healthy ones.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.probes.bloat import (
    BloatEstimate,
    BloatMeasureError,
    estimate_bloat,
    exact_bloat,
)
from pytest_mlflowdb.results.findings import sql_name

_SIZES = ("bloat_warn_size", "bloat_fail_size")


def _remedy(e: BloatEstimate) -> str:
    name = sql_name(e.schema, e.relation)
    if e.kind == "index":
        return (f"REINDEX INDEX CONCURRENTLY {name}; (then pg_repack --index if it does "
                "not shrink)")
    return (f"VACUUM (ANALYZE) {name}; (frees the space for reuse; if the file must shrink: "
            f"pg_repack --table {name}, or VACUUM FULL under an exclusive lock)")


def _severity(kind: str, bytes_: float, pct: float, t) -> str:
    if pct >= t[f"{kind}_bloat_fail_pct"] and bytes_ >= t["bloat_fail_size"]:
        return "failure"
    if pct >= t[f"{kind}_bloat_warn_pct"] and bytes_ >= t["bloat_warn_size"]:
        return "warning"
    return "ok"


def _estimates(db, settings) -> list:
    """Every estimate of MLflow's relations and the ones the settings name."""
    schema = require_mlflow_schema(db)
    extra = settings.area_options.get("bloat_relations") or ()
    return estimate_bloat(db, schema, set(load_catalog().mlflow_tables()) | set(extra))


def _audit(kind: str, mlflowdb, findings, settings, t) -> None:
    schema = require_mlflow_schema(mlflowdb)
    extra = settings.area_options.get("bloat_relations") or ()
    every = _estimates(mlflowdb, settings)
    if kind == "table":  # once, in the first of the two checks: a name is either kind
        found = {e.relation for e in every}
        for name in sorted(set(extra) - found):
            findings.warn(f"{schema}.{name}", f"mlflowdb_bloat_relations names {name}, but "
                          f"schema {schema} holds no table or index of that name this role "
                          "can see: not checked", "not found", None)
    estimates = [e for e in every if e.kind == kind]
    floor = min(t["bloat_warn_size"], t["bloat_fail_size"])
    exact = settings.area_options.get("bloat_mode") == "exact"
    blind, flagged = [], 0
    for e in estimates:
        obj = f"{schema}.{e.relation}"
        of = f" of {e.table}" if kind == "index" else ""
        if not e.trusted:
            if e.size_bytes < floor:  # even all of it wasted could not reach a threshold
                findings.ok(obj, f"{format_value('size', e.size_bytes)}{of}, below "
                            f"{format_value('size', floor)}: cannot reach a bloat threshold "
                            f"(not estimated: {e.reason})", format_value("size", e.size_bytes),
                            format_value("size", floor))
            else:
                blind.append(e)
                findings.info(obj, f"not estimated: {e.reason}", None, None)
            continue
        bytes_, pct, basis = e.bloat_bytes, e.bloat_pct, "estimated"
        severity = _severity(kind, bytes_, pct, t)
        if severity != "ok" and exact:
            try:
                bytes_, pct = exact_bloat(mlflowdb, schema, e.relation, kind)
            except BloatMeasureError as exc:
                pytest.skip(f"exact mode: {exc}; the estimate flags {obj} at "
                            f"{format_value('size', e.bloat_bytes)} ({e.bloat_pct:g}%)")
            basis = "measured (pgstattuple)"
            severity = _severity(kind, bytes_, pct, t)
        text = (f"{basis} bloat{of}: {format_value('size', bytes_)} of "
                f"{format_value('size', e.size_bytes)} ({pct:g}%)")
        value = f"{format_value('size', bytes_)} ({pct:g}%)"
        if severity == "ok":
            findings.ok(obj, text, value, f"{t.text(f'{kind}_bloat_warn_pct')} and "
                        f"{t.text('bloat_warn_size')}")
            continue
        flagged += 1
        level = "fail" if severity == "failure" else "warn"
        limit = f"{t.text(f'{kind}_bloat_{level}_pct')} and {t.text(f'bloat_{level}_size')}"
        add = findings.fail if severity == "failure" else findings.warn
        add(obj, f"{text}, at or above {limit}", value, limit, remedy=_remedy(e))
    if blind and not flagged:
        pytest.skip("could not estimate " + "; ".join(
            f"{e.schema}.{e.relation} ({format_value('size', e.size_bytes)}): {e.reason}"
            for e in blind))
    if not estimates:
        findings.ok(schema, f"no {kind} of MLflow's to estimate", 0, None)


@check("bloat.tables", thresholds=("table_bloat_warn_pct", "table_bloat_fail_pct") + _SIZES,
       probes=(_estimates,))
def test_tables(mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_thresholds):
    """MLflow's tables hold no more dead or free space than the thresholds allow."""
    _audit("table", mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_thresholds)


@check("bloat.indexes", thresholds=("index_bloat_warn_pct", "index_bloat_fail_pct") + _SIZES,
       probes=(_estimates,))
def test_indexes(mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_thresholds):
    """The btree indexes of MLflow's tables are not much larger than their entries need."""
    _audit("index", mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_thresholds)
