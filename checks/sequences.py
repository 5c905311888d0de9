"""Sequences: each sequence that feeds a column of an MLflow table, against the largest
value its COLUMN can hold (an integer column overflows long before a bigint sequence
does), and against the largest value already in that column (after a data-only restore
the next insert fails with a duplicate key: mlflow/mlflow#13321).

Catalog reads, one row of each sequence, and one index entry per column (``max()``
through a btree index that leads with the column): the cost does not grow with the rows.
A sequence the role may not read is a skip naming the GRANT, never 0% used.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.config.thresholds import ThresholdValues, format_value
from pytest_mlflowdb.probes.grants import advice
from pytest_mlflowdb.probes.sequences import ColumnSequence, column_extreme, column_sequences
from pytest_mlflowdb.results.findings import Findings, sql_name


def _sequences(mlflowdb) -> tuple[str, list[ColumnSequence]]:
    schema = require_mlflow_schema(mlflowdb)
    return schema, column_sequences(mlflowdb, schema, load_catalog().mlflow_tables())


def _extremes(db) -> None:
    """Each sequence and the largest value of its column, read side by side."""
    schema, sequences = _sequences(db)
    db.each(lambda s: column_extreme(db, schema, s.table, s.column, s.ascending),
            [s for s in sequences if s.readable and s.next_value is not None
             and s.column_readable and not s.rows_hidden and s.indexed])


def _grant(mlflowdb, seq: ColumnSequence) -> str:
    name = sql_name(seq.schema, seq.name)
    return (f"no privilege: cannot read sequence {name} "
            f"({advice(mlflowdb, f'GRANT SELECT ON SEQUENCE {name}')})")


def _column(seq: ColumnSequence) -> str:
    return f"{seq.table}.{seq.column} {seq.column_type}"


def _capacity_remedy(schema: str, seq: ColumnSequence) -> str | None:
    """Widen what limits the sequence: its own bound, or its column (None: a bigint column
    has no wider integer type)."""
    name = sql_name(seq.schema, seq.name)
    if not seq.limited_by_type:
        if seq.type_bounds is None:
            bound = "NO MAXVALUE" if seq.ascending else "NO MINVALUE"
            return f"ALTER SEQUENCE {name} AS bigint {bound};"
        bound = (f"MAXVALUE {seq.type_bounds[1]}" if seq.ascending
                 else f"MINVALUE {seq.type_bounds[0]}")
        return f"ALTER SEQUENCE {name} AS {seq.column_type} {bound};"
    if seq.column_type == "bigint":
        return None
    widen = (f"ALTER TABLE {sql_name(schema, seq.table)} ALTER COLUMN {sql_name(seq.column)} "
             "TYPE bigint; (and every column that references it; rewrites the table under "
             "an exclusive lock)")
    # an identity sequence follows its column's type; a serial's does not
    return widen if seq.how == "identity" else f"ALTER SEQUENCE {name} AS bigint; {widen}"


def _blind(findings: Findings, obj: str, reason: str, blind: list[str]) -> None:
    findings.info(obj, f"not checked: {reason}")
    blind.append(f"{obj}: {reason}")


def _end(findings: Findings, schema: str, sequences: list, blind: list[str],
         flagged: bool) -> None:
    """Skip when something could not be looked at and nothing was found wrong."""
    if blind and not flagged:
        pytest.skip("; ".join(blind))
    if not sequences:
        findings.ok(schema, "no sequence feeds a column of MLflow's tables", 0, None)


def _with_next_value(db, findings: Findings, sequences, blind: list[str]):
    """(object name, sequence) of each sequence whose next value could be read; the others
    are recorded as not looked at (no privilege, or the reading error)."""
    for seq in sequences:
        obj = f"{seq.schema}.{seq.name}"
        if not seq.readable:
            _blind(findings, obj, _grant(db, seq), blind)
        elif seq.next_value is None:
            _blind(findings, obj, str(seq.error), blind)
        else:
            yield obj, seq


@check("sequences.capacity", thresholds=("sequence_warn", "sequence_fail"), probes=(_sequences,))
def test_capacity(mlflowdb, mlflowdb_findings, mlflowdb_thresholds: ThresholdValues):
    """Each MLflow sequence's used share of its column type's (or its own) range."""
    schema, sequences = _sequences(mlflowdb)
    blind: list[str] = []
    flagged = False
    t = mlflowdb_thresholds
    for obj, seq in _with_next_value(mlflowdb, mlflowdb_findings, sequences, blind):
        pct = seq.used_pct()
        whose = "the column's type" if seq.limited_by_type else (
            "the sequence's MAXVALUE" if seq.ascending else "the sequence's MINVALUE")
        text = (f"{_column(seq)} ({seq.how}): next value {seq.next_value}, limit "
                f"{seq.limit} ({whose}){', CYCLE' if seq.cycles else ''}")
        shown = format_value("percent", pct)
        if pct >= t["sequence_fail"]:
            flagged = True
            mlflowdb_findings.fail(obj, f"{text}: {shown} used, at or above "
                                   f"{t.text('sequence_fail')}", shown, t.text("sequence_fail"),
                                   remedy=_capacity_remedy(schema, seq))
        elif pct >= t["sequence_warn"]:
            flagged = True
            mlflowdb_findings.warn(obj, f"{text}: {shown} used, at or above "
                                   f"{t.text('sequence_warn')}", shown, t.text("sequence_warn"),
                                   remedy=_capacity_remedy(schema, seq))
        else:
            mlflowdb_findings.ok(obj, f"{text}: {shown} used", shown, t.text("sequence_warn"))
    _end(mlflowdb_findings, schema, sequences, blind, flagged)


def _setval(schema: str, seq: ColumnSequence) -> str:
    name = sql_name(seq.schema, seq.name).replace("'", "''")
    extreme = "max" if seq.ascending else "min"
    return (f"SELECT setval('{name}', (SELECT {extreme}({sql_name(seq.column)}) FROM "
            f"{sql_name(schema, seq.table)}));")


@check("sequences.behind", probes=(_extremes,))
def test_behind(mlflowdb, mlflowdb_findings):
    """No MLflow sequence's next value is already taken in its column (read by index)."""
    schema, sequences = _sequences(mlflowdb)
    blind: list[str] = []
    flagged = False
    for obj, seq in _with_next_value(mlflowdb, mlflowdb_findings, sequences, blind):
        column = f"{seq.table}.{seq.column}"
        if not seq.column_readable:
            _blind(mlflowdb_findings, obj, (
                f"no privilege: cannot read {column} ("
                + advice(mlflowdb, f"GRANT SELECT ({sql_name(seq.column)}) ON "
                         f"{sql_name(schema, seq.table)}") + ")"), blind)
            continue
        if seq.rows_hidden:
            _blind(mlflowdb_findings, obj, f"row-level security hides rows of {seq.table} "
                   f"from role {mlflowdb.preflight.current_user}: its largest value may be "
                   "one of them (audit as the owner or a BYPASSRLS role)", blind)
            continue
        if not seq.indexed:
            _blind(mlflowdb_findings, obj, f"no valid btree index leads with {column}: its "
                   "largest value is not read (that would scan the table)", blind)
            continue
        extreme = column_extreme(mlflowdb, schema, seq.table, seq.column, seq.ascending)
        if extreme.error:
            _blind(mlflowdb_findings, obj, f"{column}: {extreme.error}", blind)
            continue
        fn = "max" if seq.ascending else "min"
        if extreme.value is None:
            mlflowdb_findings.ok(obj, f"{column} is empty; next value {seq.next_value}",
                                 None, seq.next_value)
            continue
        taken = (extreme.value >= seq.next_value if seq.ascending
                 else extreme.value <= seq.next_value)
        figures = f"{fn}({seq.column}) {extreme.value}"
        if taken:
            flagged = True
            mlflowdb_findings.fail(
                obj, f"{figures} {'>=' if seq.ascending else '<='} next value "
                f"{seq.next_value}: the next insert into {seq.table} without "
                f"{seq.column} takes a value already there (duplicate key)", extreme.value,
                seq.next_value, remedy=_setval(schema, seq))
        else:
            mlflowdb_findings.ok(obj, f"{figures}, next value {seq.next_value}",
                                 extreme.value, seq.next_value)
    _end(mlflowdb_findings, schema, sequences, blind, flagged)
