"""Indexes: the ones MLflow makes, the ones its queries need, and the ones that cost for nothing."""

from __future__ import annotations

import re

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.probes.indexes import IndexShape, index_shapes, index_usage, stats_age
from pytest_mlflowdb.probes.schema import Index, live_snapshot
from pytest_mlflowdb.requirements import require_catalog_schema, require_mlflow_schema
from pytest_mlflowdb.thresholds import format_value

_FK_COLUMNS = re.compile(r"^FOREIGN KEY \(([^)]*)\)")


def _ident(text: str) -> str:
    return text.strip().strip('"')


@check("indexes.required")
def test_required(mlflowdb, mlflowdb_findings):
    """Every index MLflow makes at this revision exists and is valid (matched by definition)."""
    schema, revision, expected, diff = require_catalog_schema(mlflowdb)
    live = live_snapshot(mlflowdb)
    missing_tables = set(expected.tables) - set(live.tables)
    for index in diff.missing_indexes:
        mlflowdb_findings.fail(f"{schema}.{index.name}", f"index missing: {index.definition}",
                               "missing", index.definition)
    for want, have in diff.redefined_indexes:
        mlflowdb_findings.fail(f"{schema}.{have.name}", f"index differs: {have.definition}; "
                               f"MLflow makes {want.definition}", have.definition,
                               want.definition)
    for want, have in diff.renamed_indexes:
        mlflowdb_findings.info(f"{schema}.{have.name}", f"equivalent to MLflow's {want.name} "
                               "(same definition, another name)", have.name, want.name)
    matched = {(i.table, i.name) for i in live.indexes}
    twins = {want.name: have for want, have in diff.renamed_indexes}
    by_name = {(i.table, i.name): i for i in live.indexes}
    for index in expected.indexes:
        if index.table in missing_tables:
            continue
        found = twins.get(index.name) or (by_name.get((index.table, index.name))
                                          if (index.table, index.name) in matched else None)
        if found is not None and not (found.valid and found.ready):
            mlflowdb_findings.fail(f"{schema}.{found.name}", "index exists but is INVALID (a "
                                   "failed CREATE INDEX CONCURRENTLY?): queries cannot use it",
                                   "invalid", "valid")
    if not mlflowdb_findings.severity == "failure":
        mlflowdb_findings.ok(schema, f"all {len(expected.indexes)} indexes of revision "
                             f"{revision} present and valid", len(expected.indexes),
                             len(expected.indexes))


def _leads_with(index: Index, columns: tuple[str, ...], any_order: bool) -> bool:
    """A valid, unconditional btree whose first keys are ``columns`` (plain columns, in
    that order unless ``any_order``, as for a foreign key's equality lookups)."""
    keys = tuple(_ident(k) for k in index.key_texts[: len(columns)])
    matches = set(keys) == set(columns) if any_order else keys == columns
    return (len(keys) == len(columns) and matches and index.method == "btree"
            and index.valid and index.ready and index.predicate is None)


@check("indexes.recommended")
def test_recommended(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """Indexes MLflow's queries need but MLflow does not make, and foreign-key indexes."""
    schema = require_mlflow_schema(mlflowdb)
    live = live_snapshot(mlflowdb)
    by_table: dict[str, list[Index]] = {}
    for index in live.indexes:
        by_table.setdefault(index.table, []).append(index)
    wanted = [(table, cols, "MLflow's queries filter on it", False)
              for table, cols in mlflowdb_settings.recommended_indexes]
    if mlflowdb_settings.recommend_foreign_key_indexes:
        for c in live.constraints:
            match = _FK_COLUMNS.match(c.definition) if c.type == "f" else None
            if match:
                cols = tuple(_ident(x) for x in match.group(1).split(","))
                wanted.append((c.table, cols, f"foreign key {c.name}: deletes and joins on "
                               "the referenced table scan this one", True))
    seen = set()
    for table, cols, why, any_order in wanted:
        if (table, cols) in seen:
            continue
        seen.add((table, cols))
        target = f"{schema}.{table}({', '.join(cols)})"
        if table not in live.tables or not set(cols) <= set(live.columns(table)):
            mlflowdb_findings.warn(target, "no such table or column in the MLflow schema: "
                                   "check mlflowdb_recommended_indexes", "not found", None)
            continue
        satisfied = [i for i in by_table.get(table, []) if _leads_with(i, cols, any_order)]
        if satisfied:
            mlflowdb_findings.ok(target, f"served by {satisfied[0].name}", satisfied[0].name,
                                 "a btree index leading with these columns")
        else:
            mlflowdb_findings.warn(target, f"no valid btree index leads with these columns; "
                                   f"{why}", "none", "a btree index leading with these columns")


@check("indexes.invalid")
def test_invalid(mlflowdb, mlflowdb_findings):
    """No index is left invalid or not ready (a failed CREATE INDEX CONCURRENTLY)."""
    schema = require_mlflow_schema(mlflowdb)
    live = live_snapshot(mlflowdb)
    broken = [i for i in live.indexes if not (i.valid and i.ready)]
    for index in broken:
        state = "invalid" if not index.valid else "not ready"
        detail = " and not ready (writes do not even maintain it)" if not index.ready else ""
        mlflowdb_findings.fail(f"{schema}.{index.name}", f"index on {index.table} is {state}"
                               f"{detail}: queries cannot use it; drop it and build it again",
                               state, "valid")
    if not broken:
        mlflowdb_findings.ok(schema, f"all {len(live.indexes)} indexes valid",
                             len(live.indexes), None)


def _why_redundant(a: IndexShape, b: IndexShape) -> str | None:
    """Why ``b`` makes ``a`` redundant ("a duplicate", "a left prefix"), or None.

    Keys compare by their catalog identity (deparsed key, opclass, collation, order), so
    ``name text_pattern_ops`` does not duplicate ``name``. Both must have the same method
    and predicate (a partial index is neither a twin nor a prefix of a whole one), ``b``
    must hold every INCLUDE column of ``a``, and a unique index is redundant only to a
    unique twin that treats NULLs alike: what it enforces must stay enforced."""
    if (a.table, a.method, a.predicate) != (b.table, b.method, b.predicate):
        return None
    if not a.include <= b.include | {k.text for k in b.keys}:
        return None
    ka = tuple(k.identity for k in a.keys)
    kb = tuple(k.identity for k in b.keys)
    if ka == kb:
        if a.unique and not (b.unique and a.nulls_not_distinct == b.nulls_not_distinct):
            return None
        return "a duplicate"
    if a.method == "btree" and not a.unique and len(ka) < len(kb) and kb[: len(ka)] == ka:
        return "a left prefix"
    return None


def _redundant_pairs(indexes: list[IndexShape]) -> list[tuple[IndexShape, IndexShape, str]]:
    """(redundant, covering, why) for every usable index another usable one makes
    redundant; of two mutual twins only one is reported (not the one behind a constraint,
    else the later name)."""
    pairs = []
    usable = [i for i in indexes if i.usable]
    covering_first = sorted(usable, key=lambda i: (not i.backs_constraint, not i.unique, i.name))
    for a in usable:
        if a.backs_constraint:
            continue  # it goes with its constraint
        for b in covering_first:
            why = None if b is a else _why_redundant(a, b)
            if why is None:
                continue
            if (why == "a duplicate" and _why_redundant(b, a) and not b.backs_constraint
                    and b.name > a.name):
                continue  # mutual twins: report the later name once
            pairs.append((a, b, why))
            break
    return pairs


@check("indexes.redundant")
def test_redundant(mlflowdb, mlflowdb_findings):
    """Duplicate indexes, and indexes whose columns lead another's, with the space they take."""
    schema = require_mlflow_schema(mlflowdb)
    live = {i.name: i for i in live_snapshot(mlflowdb).indexes}
    usage = index_usage(mlflowdb, schema)
    # Pairs MLflow itself makes (at any revision) are information: dropping one would fail
    # indexes.required. Known without reading alembic_version, which pg_monitor cannot.
    mlflow_made = load_catalog().mlflow_indexes()
    pairs = _redundant_pairs(index_shapes(mlflowdb, schema))
    for redundant, covering, why in pairs:
        size = usage.get(redundant.name)
        shown = format_value("size", size.bytes) if size else "unknown"
        message = (f"is {why} of {covering.name} on {redundant.table}; it takes {shown}")
        if all((i.name, live[i.name].signature) in mlflow_made for i in (redundant, covering)):
            mlflowdb_findings.info(f"{schema}.{redundant.name}", message + " (both made by "
                                   "MLflow: keep it, MLflow expects it)", shown, None)
        else:
            mlflowdb_findings.warn(f"{schema}.{redundant.name}", message, shown, None)
    if not pairs:
        mlflowdb_findings.ok(schema, "no duplicate or left-prefix indexes", 0, 0)


@check("indexes.unused", thresholds=("unused_index_min_size", "stats_min_age"))
def test_unused(mlflowdb, mlflowdb_findings, mlflowdb_thresholds):
    """Non-unique indexes above a size never scanned since statistics began (information)."""
    schema = require_mlflow_schema(mlflowdb)
    if mlflowdb.preflight.in_recovery:
        pytest.skip("on a replica, index scans on the primary are not counted here")
    age, _ = stats_age(mlflowdb)
    if age < mlflowdb_thresholds["stats_min_age"]:
        pytest.skip(f"statistics are {format_value('duration', age)} old, younger than "
                    f"stats_min_age {mlflowdb_thresholds.text('stats_min_age')}: too young "
                    "to say an index is unused")
    live = live_snapshot(mlflowdb)
    usage = index_usage(mlflowdb, schema)
    minimum = mlflowdb_thresholds["unused_index_min_size"]
    unused = []
    for index in live.indexes:
        used = usage.get(index.name)
        if (index.unique or index.backs_constraint or used is None or used.scans
                or used.bytes < minimum):
            continue
        unused.append(index)
        mlflowdb_findings.info(f"{schema}.{index.name}", f"never scanned in "
                               f"{format_value('duration', age)}; takes "
                               f"{format_value('size', used.bytes)}",
                               format_value("size", used.bytes),
                               mlflowdb_thresholds.text("unused_index_min_size"))
    if not unused:
        mlflowdb_findings.ok(schema, f"every non-unique index of "
                             f"{mlflowdb_thresholds.text('unused_index_min_size')} or more was "
                             "scanned", 0, mlflowdb_thresholds.text("unused_index_min_size"))
