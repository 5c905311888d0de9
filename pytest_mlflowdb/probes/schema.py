"""The schema of one PostgreSQL schema (namespace), in five catalog queries.

Used alike by the catalog generator (on a scratch database MLflow's migrations just
made) and by the schema and index checks (on the audited database), so that both sides
of every comparison are read the same way. Definitions come from PostgreSQL's own
deparsers (``format_type``, ``pg_get_constraintdef``, ``pg_get_indexdef``…) with the
schema name removed, so a database whose MLflow tables live in another schema compares
equal. The cost does not depend on the number of rows: only catalogs are read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Rows = Callable[[str, Any], list[dict[str, Any]]]

_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS expr, a.attgenerated::text AS generated,
       CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END AS identity,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
            THEN co.collname::text END AS collation,
       c.relpersistence::text AS persistence, c.relrowsecurity AS rls
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS = """
SELECT c.relname AS table_name, con.conname AS name, con.contype::text AS type,
       pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND con.contype IN ('p', 'f', 'u', 'c', 'x')
ORDER BY c.relname, con.conname
"""

_INDEXES = """
SELECT t.relname AS table_name, i.relname AS name, pg_get_indexdef(ix.indexrelid) AS definition,
       ix.indisunique AS is_unique, ix.indisprimary AS is_primary,
       ix.indisvalid AS is_valid, ix.indisready AS is_ready, am.amname AS method,
       EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ix.indexrelid
               AND con.conrelid = ix.indrelid AND con.contype IN ('p', 'u', 'x'))
         AS backs_constraint,
       ARRAY(SELECT pg_get_indexdef(ix.indexrelid, k, true)
             FROM generate_series(1, ix.indnkeyatts) AS k ORDER BY k) AS keys,
       ARRAY(SELECT pg_get_indexdef(ix.indexrelid, k, true)
             FROM generate_series(ix.indnkeyatts + 1, ix.indnatts) AS k ORDER BY k) AS include,
       pg_get_expr(ix.indpred, ix.indrelid) AS predicate, i.oid AS oid
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
WHERE n.nspname = %(schema)s
ORDER BY t.relname, i.relname
"""

# Sequences of identity columns belong to their column (made with it), so they are left
# out; a serial column's sequence is listed with the column that owns it.
_SEQUENCES = """
SELECT c.relname AS name,
       (SELECT t.relname || '.' || a.attname
        FROM pg_depend d
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' LIMIT 1) AS owner
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'S'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'i')
ORDER BY c.relname
"""

_TRIGGERS = """
SELECT c.relname AS table_name, t.tgname AS name, pg_get_triggerdef(t.oid) AS definition,
       p.proname AS function, pg_get_functiondef(p.oid) AS function_definition,
       t.tgenabled <> 'D' AS enabled
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
ORDER BY c.relname, t.tgname
"""


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

    @property
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

    @property
    def key_texts(self) -> tuple[str, ...]:
        """Each key as written in the definition, with its opclass, collation and order
        (``name text_pattern_ops``, ``x DESC``): what redundancy must compare."""
        match = re.search(r" USING \w+ \(", self.definition)
        if not match:
            return self.keys
        depth, start, parts = 1, match.end(), []
        for i in range(match.end(), len(self.definition)):
            char = self.definition[i]
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    parts.append(self.definition[start:i].strip())
                    break
            elif char == "," and depth == 1:
                parts.append(self.definition[start:i].strip())
                start = i + 1
        return tuple(parts)

    @property
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


@dataclass
class Snapshot:
    """One schema's tables, columns, constraints, indexes, sequences and triggers."""

    tables: dict[str, list[Column]] = field(default_factory=dict)
    constraints: list[Constraint] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    #: sequence -> "table.column" that owns it (serial columns)
    sequence_owners: dict[str, str] = field(default_factory=dict)
    #: table -> non-default storage properties: "unlogged", "row level security"
    table_flags: dict[str, list[str]] = field(default_factory=dict)

    def columns(self, table: str) -> dict[str, Column]:
        return {c.name: c for c in self.tables.get(table, [])}

    # -- JSON (the catalog's storage form; validity flags and oids are live-only) ---------
    def to_json(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            tables={t: [Column(*c) for c in cols] for t, cols in data["tables"].items()},
            constraints=[Constraint(*c) for c in data["constraints"]],
            indexes=[Index(table=i[0], name=i[1], definition=i[2], unique=i[3], primary=i[4],
                           method=i[5], keys=tuple(i[6]), include=tuple(i[7]), predicate=i[8],
                           backs_constraint=i[9]) for i in data["indexes"]],
            sequences=list(data["sequences"]),
            triggers=[Trigger(*t) for t in data["triggers"]],
            sequence_owners=dict(data.get("sequence_owners", {})),
            table_flags={t: list(f) for t, f in data.get("table_flags", {}).items()},
        )


def _unqualify(text: str | None, schema: str) -> str | None:
    """Remove ``schema.`` (quoted or not) from a deparsed definition."""
    if text is None:
        return None
    quoted = '"' + schema.replace('"', '""') + '".'
    text = text.replace(quoted, "")
    return re.sub(rf"(?<![\w\"]){re.escape(schema)}\.(?=[\w\"])", "", text)


def capture(rows: Rows, schema: str) -> Snapshot:
    """Read ``schema`` through ``rows(sql, params)`` (5 queries, catalogs only)."""
    params = {"schema": schema}
    snap = Snapshot()
    for r in rows(_COLUMNS, params):
        generated = r["generated"] or ""
        expr = _unqualify(r["expr"], schema)
        snap.tables.setdefault(r["table_name"], []).append(Column(
            r["column_name"], r["type"], r["nullable"],
            None if generated else expr, expr if generated else None,
            r["identity"], r["collation"],
        ))
        flags = [flag for flag, on in (("unlogged", r["persistence"] == "u"),
                                       ("row level security", r["rls"])) if on]
        if flags:
            snap.table_flags[r["table_name"]] = flags
    snap.constraints = [
        Constraint(r["table_name"], r["name"], r["type"], _unqualify(r["definition"], schema))
        for r in rows(_CONSTRAINTS, params)
    ]
    snap.indexes = [
        Index(table=r["table_name"], name=r["name"],
              definition=_unqualify(r["definition"], schema), unique=r["is_unique"],
              primary=r["is_primary"], method=r["method"], keys=tuple(r["keys"]),
              include=tuple(r["include"]), predicate=_unqualify(r["predicate"], schema),
              backs_constraint=r["backs_constraint"], valid=r["is_valid"], ready=r["is_ready"],
              oid=r["oid"])
        for r in rows(_INDEXES, params)
    ]
    for r in rows(_SEQUENCES, params):
        snap.sequences.append(r["name"])
        if r["owner"]:
            snap.sequence_owners[r["name"]] = r["owner"]
    snap.triggers = [
        Trigger(r["table_name"], r["name"], _unqualify(r["definition"], schema), r["function"],
                _unqualify(r["function_definition"], schema), r["enabled"])
        for r in rows(_TRIGGERS, params)
    ]
    return snap


def live_snapshot(db: Any) -> Snapshot:
    """The audited database's MLflow schema, read once per session."""
    schema = db.preflight.mlflow_schema
    return db.cached(f"snapshot:{schema}", lambda d: capture(d.rows, schema))
