"""The data model of one PostgreSQL schema: tables, columns, constraints, indexes, triggers,
rules and row-level-security policies.

One model for both sides of every comparison: :mod:`pytest_mlflowdb.probes.schema` fills it
from a live database, :mod:`pytest_mlflowdb.catalog` loads it from the shipped JSON (what
MLflow's migrations made at each revision), and :mod:`pytest_mlflowdb.catalog.compare`
compares two of them. Nothing here reads a database.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None
    generated: str | None = None
    identity: str | None = None  # "always" or "by default"
    collation: str | None = None  # only when not the type's default


@dataclass(frozen=True)
class Constraint:
    table: str
    name: str
    type: str  # p, f, u, c, x
    definition: str

    @functools.cached_property  # compared pairwise by the index and schema checks
    def signature(self) -> tuple[str, str, str]:
        if self.type == "c":
            return (self.table, self.type, normalise_check(self.definition))
        return (self.table, self.type, self.definition)


_STRING = re.compile(r"'(?:[^']|'')*'")
_WRAPPED_ARRAY = re.compile(r"\(ARRAY\[([^\]]*)\]\)::\w+(?: \w+)*\[\]")
_ARRAY = re.compile(r"ARRAY\[([^\]]*)\]")


def normalise_check(definition: str) -> str:
    """A CHECK definition with its ``IN`` lists in one spelling, for comparison only.

    PostgreSQL deparses ``x IN ('a','b')`` on a varchar column as
    ``(x)::text = ANY ((ARRAY['a'::character varying, ...])::text[])`` when MLflow's
    migration made it, but as ``... ANY (ARRAY[('a'::character varying)::text, ...])``
    once that text is executed again (by pg_dump/pg_restore or by our DDL): the same
    constraint, spelled two ways. Only array literals are rewritten (to their string
    elements); everything else, parentheses included, must match as written.
    """
    def literals(match: re.Match) -> str:
        return "ARRAY[" + ", ".join(_STRING.findall(match.group(1))) + "]"

    return _ARRAY.sub(literals, _WRAPPED_ARRAY.sub(literals, definition))


@dataclass(frozen=True)
class Index:
    table: str
    name: str
    definition: str
    unique: bool
    primary: bool
    method: str
    keys: tuple[str, ...]
    include: tuple[str, ...] = ()
    predicate: str | None = None
    backs_constraint: bool = False
    valid: bool = True
    ready: bool = True
    oid: int | None = None
    #: read from a live database only (the catalog's JSON has none, and they never count in
    #: a comparison): each key's column (None for an expression); each key's identity
    #: (the key alone, opclass, collation, DESC/NULLS FIRST bits), equal for keys that index
    #: the same values in the same order; whether NULLs are not distinct
    key_columns: tuple[str | None, ...] = field(default=(), compare=False)
    key_identities: tuple[tuple[str, int, int, int], ...] = field(default=(), compare=False)
    nulls_not_distinct: bool = field(default=False, compare=False)

    @property
    def usable(self) -> bool:
        """Valid and ready: queries may use it."""
        return self.valid and self.ready

    @classmethod
    def from_row(cls, i: list[Any]) -> Index:
        """An index from its row in :meth:`Snapshot.to_json`'s ``indexes``."""
        return cls(table=i[0], name=i[1], definition=i[2], unique=i[3], primary=i[4],
                   method=i[5], keys=tuple(i[6]), include=tuple(i[7]), predicate=i[8],
                   backs_constraint=i[9])

    @functools.cached_property  # compared pairwise by the index and schema checks
    def signature(self) -> str:
        """The definition without the index's own name: equal for equivalent indexes."""
        body = re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ ", "", self.definition)
        return f"{self.table} {'UNIQUE ' if self.unique else ''}{body}"


@dataclass(frozen=True)
class Trigger:
    table: str
    name: str
    definition: str
    function: str
    function_definition: str
    enabled: bool = True


@dataclass(frozen=True)
class Rule:
    """A rewrite rule on a table (``CREATE RULE``; a view's ``_RETURN`` is not one)."""

    table: str
    name: str
    definition: str
    enabled: bool = True


@dataclass(frozen=True)
class Policy:
    """A row-level-security policy on a table (``CREATE POLICY``)."""

    table: str
    name: str
    definition: str


@dataclass
class Snapshot:
    """One schema's tables, columns, constraints, indexes, sequences, triggers, rules and
    row-level-security policies."""

    tables: dict[str, list[Column]] = field(default_factory=dict)
    constraints: list[Constraint] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    #: sequence -> "table.column" that owns it (serial columns)
    sequence_owners: dict[str, str] = field(default_factory=dict)
    #: table -> non-default storage properties: "unlogged", "row level security"
    table_flags: dict[str, list[str]] = field(default_factory=dict)
    #: rewrite rules and row-level-security policies: MLflow makes none, so the catalog's
    #: JSON carries them only when there are some (older catalog JSON has no such keys)
    rules: list[Rule] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)

    def columns(self, table: str) -> dict[str, Column]:
        return {c.name: c for c in self.tables.get(table, [])}

    # -- JSON (the catalog's storage form; validity flags and oids are live-only) ---------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tables": {t: [[c.name, c.type, c.nullable, c.default, c.generated, c.identity,
                            c.collation] for c in cols]
                       for t, cols in sorted(self.tables.items())},
            "constraints": [[c.table, c.name, c.type, c.definition]
                            for c in sorted(self.constraints, key=lambda c: (c.table, c.name))],
            "indexes": [[i.table, i.name, i.definition, i.unique, i.primary, i.method,
                         list(i.keys), list(i.include), i.predicate, i.backs_constraint]
                        for i in sorted(self.indexes, key=lambda i: (i.table, i.name))],
            "sequences": sorted(self.sequences),
            "sequence_owners": dict(sorted(self.sequence_owners.items())),
            "triggers": [[t.table, t.name, t.definition, t.function, t.function_definition,
                          t.enabled]
                         for t in sorted(self.triggers, key=lambda t: (t.table, t.name))],
            "table_flags": {t: list(f) for t, f in sorted(self.table_flags.items())},
        }
        if self.rules:
            data["rules"] = [[r.table, r.name, r.definition, r.enabled]
                             for r in sorted(self.rules, key=lambda r: (r.table, r.name))]
        if self.policies:
            data["policies"] = [[p.table, p.name, p.definition]
                                for p in sorted(self.policies, key=lambda p: (p.table, p.name))]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            tables={t: [Column(*c) for c in cols] for t, cols in data["tables"].items()},
            constraints=[Constraint(*c) for c in data["constraints"]],
            indexes=[Index.from_row(i) for i in data["indexes"]],
            sequences=list(data["sequences"]),
            triggers=[Trigger(*t) for t in data["triggers"]],
            sequence_owners=dict(data.get("sequence_owners", {})),
            table_flags={t: list(f) for t, f in data.get("table_flags", {}).items()},
            rules=[Rule(*r) for r in data.get("rules", [])],
            policies=[Policy(*p) for p in data.get("policies", [])],
        )
