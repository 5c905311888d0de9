"""Indexes: the ones MLflow makes, the ones its queries need, and the ones that cost for nothing."""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_catalog_revision, require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.catalog.model import Index
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.indexes.recommended import BUILD_COST, RECOMMENDED_INDEXES
from pytest_mlflowdb.probes.indexes import foreign_keys, index_usage, stats_age, table_sizes
from pytest_mlflowdb.probes.schema import catalog_diff, live_snapshot
from pytest_mlflowdb.results.findings import sql_name


def _drift(db) -> None:
    """What the comparison with MLflow's schema reads."""
    require_catalog_revision(db)
    catalog_diff(db)


def _indexes(db, settings) -> None:
    """What the recommended indexes are judged from."""
    schema = require_mlflow_schema(db)
    live_snapshot(db)
    plan = settings.area_options["recommended_indexes"]
    table_sizes(db, schema, [t for t, _ in plan.indexes])
    if plan.foreign_keys:
        foreign_keys(db, schema)


def _usage(db) -> None:
    """Index scans and what they are compared with."""
    schema = require_mlflow_schema(db)
    live_snapshot(db)
    index_usage(db, schema)
    stats_age(db)


@check("indexes.required", probes=(_drift,))
def test_required(mlflowdb, mlflowdb_findings):
    """Every index MLflow makes at this revision exists and is valid (matched by definition)."""
    require_catalog_revision(mlflowdb)
    drift = catalog_diff(mlflowdb)
    schema, revision, expected, diff = drift.schema, drift.revision, drift.expected, drift.diff
    live = live_snapshot(mlflowdb)
    missing_tables = set(expected.tables) - set(live.tables)
    for index in diff.missing_indexes:
        mlflowdb_findings.fail(f"{schema}.{index.name}", f"index missing: {index.definition}",
                               "missing", index.definition,
                               remedy=_built_concurrently(index.definition))
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
    """A usable, unconditional btree whose first keys are the plain ``columns`` (in that
    order unless ``any_order``, as for a foreign key's equality lookups)."""
    keys = index.key_columns[: len(columns)]
    matches = set(keys) == set(columns) if any_order else keys == columns
    return (len(keys) == len(columns) and matches and index.method == "btree"
            and index.usable and index.predicate is None)


def _statement(table: str, columns: tuple[str, ...]) -> str:
    return f"CREATE INDEX CONCURRENTLY ON {table} ({', '.join(columns)});"


def _built_concurrently(definition: str) -> str:
    """MLflow's ``CREATE [UNIQUE] INDEX`` as a remedy: built without blocking writes."""
    for prefix in ("CREATE UNIQUE INDEX ", "CREATE INDEX "):
        if definition.startswith(prefix):
            return f"{prefix}CONCURRENTLY {definition[len(prefix):]};"
    return f"{definition};"


def _drop(schema: str, index: str) -> str:
    """The remedy for an index that only costs: dropped without blocking reads or writes."""
    return f"DROP INDEX CONCURRENTLY {sql_name(schema, index)};"


@check("indexes.recommended", thresholds=("fk_index_min_size",), probes=(_indexes,))
def test_recommended(mlflowdb, mlflowdb_findings, mlflowdb_settings, mlflowdb_thresholds):
    """The platform guide's indexes, each with its reason and cost, and foreign keys whose
    table is big enough that a delete on the referenced table would scan it."""
    schema = require_mlflow_schema(mlflowdb)
    live = live_snapshot(mlflowdb)
    by_table: dict[str, list[Index]] = {}
    for index in live.indexes:
        by_table.setdefault(index.table, []).append(index)
    guide = {(r.table, r.columns): r for r in RECOMMENDED_INDEXES}
    plan = mlflowdb_settings.area_options["recommended_indexes"]
    sizes = table_sizes(mlflowdb, schema, [t for t, _ in plan.indexes])
    seen = set()
    for table, cols in plan.indexes:
        seen.add((table, cols))
        target = f"{schema}.{table}({', '.join(cols)})"
        if table not in live.tables or not set(cols) <= set(live.columns(table)):
            mlflowdb_findings.warn(target, "no such table or column in the MLflow schema: "
                                   "check mlflowdb_recommended_indexes", "not found", None)
            continue
        served = [i for i in by_table.get(table, []) if _leads_with(i, cols, False)]
        if served:
            mlflowdb_findings.ok(target, f"served by {served[0].name}", served[0].name,
                                 "a btree index leading with these columns")
            continue
        size = sizes.get(table)
        now = f"{table} is now {format_value('size', size.bytes)}, {size.rows_text}" \
            if size else f"{table}'s size is unknown"
        entry = guide.get((table, cols))
        why = (f"{entry.reason}. Cost: {BUILD_COST}; {entry.write_cost}; {now}. "
               f"Fix: {entry.statement}" if entry else
               f"listed in mlflowdb_recommended_indexes. Cost: {BUILD_COST}; every insert "
               f"into {table} maintains it; {now}. Fix: {_statement(table, cols)}")
        mlflowdb_findings.warn(target, f"no valid btree index leads with these columns: {why}",
                               "none", "a btree index leading with these columns",
                               remedy=entry.statement if entry else _statement(table, cols))
    if plan.foreign_keys:
        _foreign_key_indexes(mlflowdb, mlflowdb_findings, mlflowdb_thresholds, schema,
                             by_table, seen)


def _foreign_key_indexes(mlflowdb, findings, thresholds, schema: str,
                         by_table: dict[str, list[Index]], seen: set) -> None:
    """A foreign key of one of MLflow's tables without an index leading with its columns:
    a warning from fk_index_min_size (each delete on the referenced table, as mlflow gc
    does, scans the whole table), information below it."""
    minimum = thresholds["fk_index_min_size"]
    for fk in foreign_keys(mlflowdb, schema):
        if fk.table not in load_catalog().mlflow_tables() or (fk.table, fk.columns) in seen:
            continue
        seen.add((fk.table, fk.columns))
        target = f"{schema}.{fk.table}({', '.join(fk.columns)})"
        served = [i for i in by_table.get(fk.table, []) if _leads_with(i, fk.columns, True)]
        if served:
            findings.ok(target, f"foreign key {fk.name}: served by {served[0].name}",
                        served[0].name, "a btree index leading with these columns")
            continue
        rows = (f"~{fk.estimated_rows} rows" if fk.estimated_rows is not None
                else "row count unknown")
        size = format_value("size", fk.heap_bytes)
        message = (f"foreign key {fk.name} has no index leading with its columns: deleting "
                   f"from {fk.referenced} scans {fk.table} ({size}, {rows}) once per "
                   f"deleted row")
        limit = thresholds.text("fk_index_min_size")
        if fk.heap_bytes >= minimum:
            findings.warn(target, f"{message}; at or above fk_index_min_size {limit}. Cost: "
                          f"{BUILD_COST}; every insert into {fk.table} maintains it. Fix: "
                          f"{_statement(fk.table, fk.columns)}", size, limit,
                          remedy=_statement(fk.table, fk.columns))
        else:
            findings.info(target, f"{message}; below fk_index_min_size {limit}, so cheap "
                          "for now", size, limit)


@check("indexes.invalid", probes=(live_snapshot,))
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
                               state, "valid", remedy=_drop(schema, index.name))
    if not broken:
        mlflowdb_findings.ok(schema, f"all {len(live.indexes)} indexes valid",
                             len(live.indexes), None)


def _why_redundant(a: Index, b: Index) -> str | None:
    """Why ``b`` makes ``a`` redundant ("a duplicate", "a left prefix"), or None.

    Keys compare by their catalog identity (deparsed key, opclass, collation, order), so
    ``name text_pattern_ops`` does not duplicate ``name``. Both must have the same method
    and predicate (a partial index is neither a twin nor a prefix of a whole one), ``b``
    must hold every INCLUDE column of ``a``, and a unique index is redundant only to a
    unique twin that treats NULLs alike: what it enforces must stay enforced."""
    if (a.table, a.method, a.predicate) != (b.table, b.method, b.predicate):
        return None
    if not set(a.include) <= set(b.include) | set(b.keys):
        return None
    ka, kb = a.key_identities, b.key_identities
    if ka == kb:
        if a.unique and not (b.unique and a.nulls_not_distinct == b.nulls_not_distinct):
            return None
        return "a duplicate"
    if a.method == "btree" and not a.unique and len(ka) < len(kb) and kb[: len(ka)] == ka:
        return "a left prefix"
    return None


def _redundant_pairs(indexes: list[Index]) -> list[tuple[Index, Index, str]]:
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


@check("indexes.redundant", probes=(_usage,))
def test_redundant(mlflowdb, mlflowdb_findings):
    """Duplicate indexes, and indexes whose columns lead another's, with the space they take."""
    schema = require_mlflow_schema(mlflowdb)
    indexes = live_snapshot(mlflowdb).indexes
    live = {i.name: i for i in indexes}
    usage = index_usage(mlflowdb, schema)
    # Pairs MLflow itself makes (at any revision) are information: dropping one would fail
    # indexes.required. Known without reading alembic_version, which pg_monitor cannot.
    mlflow_made = load_catalog().mlflow_indexes()
    pairs = _redundant_pairs(indexes)
    for redundant, covering, why in pairs:
        size = usage.get(redundant.name)
        shown = format_value("size", size.bytes) if size else "unknown"
        message = (f"is {why} of {covering.name} on {redundant.table}; it takes {shown}")
        if all((i.name, live[i.name].signature) in mlflow_made for i in (redundant, covering)):
            mlflowdb_findings.info(f"{schema}.{redundant.name}", message + " (both made by "
                                   "MLflow: keep it, MLflow expects it)", shown, None)
        else:
            # dropping MLflow's own index would fail indexes.required: no remedy then
            ours = (redundant.name, live[redundant.name].signature) in mlflow_made
            mlflowdb_findings.warn(f"{schema}.{redundant.name}", message, shown, None,
                                   remedy=None if ours else _drop(schema, redundant.name))
    if not pairs:
        mlflowdb_findings.ok(schema, "no duplicate or left-prefix indexes", 0, 0)


@check("indexes.unused", thresholds=("unused_index_min_size", "stats_min_age"),
       probes=(_usage,))
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
