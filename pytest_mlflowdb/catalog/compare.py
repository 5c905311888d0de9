"""Differences between an expected schema (the catalog's) and an actual one.

Tables and columns match by name. Constraints and indexes match by *definition*, not
by name: an equivalent index under another name is present (noted as renamed); a
foreign key whose ON DELETE rule changed is reported as changed, naming both rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_mlflowdb.catalog.model import Column, Constraint, Index, Policy, Rule, Snapshot, Trigger

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
    duplicate_constraints: list[tuple[Constraint, Constraint]] = field(default_factory=list)
    missing_indexes: list[Index] = field(default_factory=list)
    extra_indexes: list[Index] = field(default_factory=list)
    renamed_indexes: list[tuple[Index, Index]] = field(default_factory=list)
    redefined_indexes: list[tuple[Index, Index]] = field(default_factory=list)
    missing_sequences: list[str] = field(default_factory=list)
    missing_triggers: list[str] = field(default_factory=list)
    changed_triggers: list[tuple[Trigger, Trigger, str]] = field(default_factory=list)
    extra_triggers: list[Trigger] = field(default_factory=list)
    #: rules and row-level-security policies on MLflow's tables that MLflow does not make
    extra_rules: list[Rule] = field(default_factory=list)
    extra_policies: list[Policy] = field(default_factory=list)
    #: (table, flag) for storage MLflow does not set up: "unlogged", "row level security"
    table_flags: list[tuple[str, str]] = field(default_factory=list)
    #: hand-added columns that are NOT NULL without a default: MLflow's inserts fail
    blocking_columns: list[tuple[str, Column]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class CatalogDiff:
    """The audited MLflow schema against the catalog's at the database's own revision.

    Worked out once per session (:func:`pytest_mlflowdb.probes.mlflow.catalog_diff`) for
    all the checks that read it (schema.tables, schema.columns, schema.constraints,
    indexes.required).
    """

    #: the audited schema (where MLflow's tables are)
    schema: str
    #: the revision alembic_version holds, which the catalog has a schema for
    revision: str
    #: what MLflow's migrations make at that revision
    expected: Snapshot
    #: how the audited schema differs from ``expected``
    diff: SchemaDiff


def compare(expected: Snapshot, actual: Snapshot) -> SchemaDiff:
    """What ``actual`` lacks, adds or changes against ``expected``."""
    diff = SchemaDiff()
    diff.missing_tables = sorted(set(expected.tables) - set(actual.tables))
    diff.extra_tables = sorted(set(actual.tables) - set(expected.tables))
    for table in sorted(set(expected.tables) & set(actual.tables)):
        want, have = expected.columns(table), actual.columns(table)
        diff.missing_columns += [(table, want[c]) for c in want if c not in have]
        diff.extra_columns += [(table, have[c]) for c in have if c not in want]
        diff.blocking_columns += [
            (table, have[c]) for c in have if c not in want and not have[c].nullable
            and have[c].default is None and not have[c].identity and not have[c].generated]
        for flag in actual.table_flags.get(table, []):
            if flag not in expected.table_flags.get(table, []):
                diff.table_flags.append((table, flag))
        for name in (c for c in want if c in have):
            for attr in ("type", "nullable", "default", "generated", "identity", "collation"):
                if getattr(want[name], attr) != getattr(have[name], attr):
                    diff.changed_columns.append(ColumnChange(
                        table, name, attr, getattr(want[name], attr), getattr(have[name], attr)))
    _constraints(expected, actual, diff)
    _indexes(expected, actual, diff)
    diff.missing_sequences = sorted(set(expected.sequences) - set(actual.sequences))
    _triggers(expected, actual, diff)
    made = {(r.table, r.name) for r in expected.rules}
    diff.extra_rules = [r for r in actual.rules
                        if r.table in expected.tables and (r.table, r.name) not in made]
    made = {(p.table, p.name) for p in expected.policies}
    diff.extra_policies = [p for p in actual.policies
                           if p.table in expected.tables and (p.table, p.name) not in made]
    return diff


def _trigger_body(t: Trigger) -> str:
    """The trigger's definition without its own name (equal for a renamed twin)."""
    return t.definition.replace(f"TRIGGER {t.name} ", "TRIGGER ", 1)


def _triggers(expected: Snapshot, actual: Snapshot, diff: SchemaDiff) -> None:
    by_name = {(t.table, t.name): t for t in actual.triggers}
    by_body = {(t.table, _trigger_body(t)): t for t in actual.triggers}
    matched = set()
    for want in expected.triggers:
        have = by_name.get((want.table, want.name)) or by_body.get((want.table,
                                                                     _trigger_body(want)))
        if have is None:
            diff.missing_triggers.append(f"{want.table}.{want.name}")
            continue
        matched.add((have.table, have.name))
        if _trigger_body(have) != _trigger_body(want):
            diff.changed_triggers.append((want, have, f"is {have.definition}"))
        elif have.function_definition != want.function_definition:
            diff.changed_triggers.append((want, have, f"calls {have.function}(), whose body "
                                                      "differs from MLflow's"))
        elif not have.enabled:
            diff.changed_triggers.append((want, have, "is DISABLED"))
        elif have.name != want.name:
            diff.changed_triggers.append((want, have, f"is named {have.name}"))
    diff.extra_triggers = [t for t in actual.triggers if (t.table, t.name) not in matched
                           and t.table in expected.tables]


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
        twins = [x for x in actual.constraints if x.signature == signature]
        own = [x for x in twins if x.name == c.name]
        if twins and not own:
            diff.renamed_constraints.append((c, twins[0]))
            own = twins[:1]
        diff.duplicate_constraints += [(c, x) for x in twins if x not in own]


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
        if twin is not None:
            diff.renamed_indexes.append((index, twin))
        elif found is not None:
            diff.redefined_indexes.append((index, found))
        else:
            diff.missing_indexes.append(index)
    wanted = {i.signature for i in expected.indexes}
    diff.extra_indexes = [i for i in actual.indexes
                          if i.signature not in wanted and i.table in expected.tables]
