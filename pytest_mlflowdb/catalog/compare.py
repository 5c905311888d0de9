"""Differences between an expected schema (the catalog's) and an actual one.

Tables and columns match by name. Constraints and indexes match by *definition*, not
by name: an equivalent index under another name is present (noted as renamed); a
foreign key whose ON DELETE rule changed is reported as changed, naming both rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..probes.schema import Column, Constraint, Index, Snapshot

CONSTRAINT_KINDS = {"p": "PRIMARY KEY", "f": "FOREIGN KEY", "u": "UNIQUE", "c": "CHECK",
                    "x": "EXCLUDE"}


@dataclass
class ColumnChange:
    table: str
    column: str
    field: str  # type, nullable, default, generated
    expected: object
    actual: object


@dataclass
class SchemaDiff:
    missing_tables: list[str] = field(default_factory=list)
    extra_tables: list[str] = field(default_factory=list)
    missing_columns: list[tuple[str, Column]] = field(default_factory=list)
    extra_columns: list[tuple[str, Column]] = field(default_factory=list)
    changed_columns: list[ColumnChange] = field(default_factory=list)
    missing_constraints: list[Constraint] = field(default_factory=list)
    extra_constraints: list[Constraint] = field(default_factory=list)
    changed_constraints: list[tuple[Constraint, Constraint]] = field(default_factory=list)
    renamed_constraints: list[tuple[Constraint, Constraint]] = field(default_factory=list)
    missing_indexes: list[Index] = field(default_factory=list)
    extra_indexes: list[Index] = field(default_factory=list)
    renamed_indexes: list[tuple[Index, Index]] = field(default_factory=list)
    missing_sequences: list[str] = field(default_factory=list)
    missing_triggers: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__dataclass_fields__)


def compare(expected: Snapshot, actual: Snapshot) -> SchemaDiff:
    diff = SchemaDiff()
    diff.missing_tables = sorted(set(expected.tables) - set(actual.tables))
    diff.extra_tables = sorted(set(actual.tables) - set(expected.tables))
    for table in sorted(set(expected.tables) & set(actual.tables)):
        want, have = expected.columns(table), actual.columns(table)
        diff.missing_columns += [(table, want[c]) for c in want if c not in have]
        diff.extra_columns += [(table, have[c]) for c in have if c not in want]
        for name in (c for c in want if c in have):
            for attr in ("type", "nullable", "default", "generated"):
                if getattr(want[name], attr) != getattr(have[name], attr):
                    diff.changed_columns.append(ColumnChange(
                        table, name, attr, getattr(want[name], attr), getattr(have[name], attr)))
    _constraints(expected, actual, diff)
    _indexes(expected, actual, diff)
    diff.missing_sequences = sorted(set(expected.sequences) - set(actual.sequences))
    have_triggers = {(t.table, t.definition) for t in actual.triggers}
    diff.missing_triggers = sorted(f"{t.table}.{t.name}" for t in expected.triggers
                                   if (t.table, t.definition) not in have_triggers)
    return diff


def _constraints(expected: Snapshot, actual: Snapshot, diff: SchemaDiff) -> None:
    missing_tables = set(expected.tables) - set(actual.tables)
    have = {c.signature: c for c in actual.constraints}
    want = {c.signature: c for c in expected.constraints}
    missing = [c for s, c in want.items() if s not in have and c.table not in missing_tables]
    extra = [c for s, c in have.items() if s not in want and c.table in expected.tables]
    by_name = {(c.table, c.name): c for c in extra}
    by_kind: dict[tuple[str, str], list[Constraint]] = {}
    for c in extra:
        by_kind.setdefault((c.table, c.type), []).append(c)
    for c in missing:
        other = by_name.get((c.table, c.name))
        if other is not None and other.type == c.type:
            diff.changed_constraints.append((c, other))
            extra.remove(other)
        else:
            diff.missing_constraints.append(c)
    diff.extra_constraints = extra
    for signature, c in want.items():
        if signature in have and have[signature].name != c.name:
            diff.renamed_constraints.append((c, have[signature]))


def _indexes(expected: Snapshot, actual: Snapshot, diff: SchemaDiff) -> None:
    missing_tables = set(expected.tables) - set(actual.tables)
    have: dict[str, Index] = {}
    for index in actual.indexes:
        # prefer a same-named index when several are equivalent
        have.setdefault(index.signature, index)
    names = {(i.table, i.name): i for i in actual.indexes}
    for index in expected.indexes:
        if index.table in missing_tables:
            continue
        found = names.get((index.table, index.name))
        if found is not None and found.signature == index.signature:
            continue
        twin = have.get(index.signature)
        if twin is None:
            diff.missing_indexes.append(index)
        else:
            diff.renamed_indexes.append((index, twin))
    wanted = {i.signature for i in expected.indexes}
    diff.extra_indexes = [i for i in actual.indexes
                          if i.signature not in wanted and i.table in expected.tables]


def describe_constraint(c: Constraint) -> str:
    return f"{c.table}.{c.name} ({c.definition})"
