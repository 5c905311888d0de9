"""The schema of one PostgreSQL schema (namespace), in seven catalog queries.

Used alike by the catalog generator (on a scratch database MLflow's migrations just
made) and by the schema and index checks (on the audited database), so that both sides
of every comparison are read the same way. Definitions come from PostgreSQL's own
deparsers (``format_type``, ``pg_get_constraintdef``, ``pg_get_indexdef``…) with the
schema name removed, so a database whose MLflow tables live in another schema compares
equal. The cost does not depend on the number of rows: only catalogs are read. The data model
itself (:class:`Snapshot` and its parts) lives in :mod:`pytest_mlflowdb.catalog.model`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from pytest_mlflowdb.catalog.model import Column, Constraint, Index, Policy, Rule, Snapshot, Trigger
from pytest_mlflowdb.probes.mlflow import mlflow_facts

if TYPE_CHECKING:
    from pytest_mlflowdb.catalog.compare import CatalogDiff
    from pytest_mlflowdb.db.database import Database

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

# Each key as the catalog holds it (pg_index, not the definition text, whose literals and
# quoted names may hold brackets and commas): deparsed alone, its column (indkey; none for
# an expression), opclass, collation and DESC/NULLS FIRST bits (indoption).
_INDEXES = """
SELECT t.relname AS table_name, i.relname AS name, pg_get_indexdef(ix.indexrelid) AS definition,
       ix.indisunique AS is_unique, ix.indisprimary AS is_primary,
       ix.indisvalid AS is_valid, ix.indisready AS is_ready, am.amname AS method,
       coalesce((to_jsonb(ix) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_not_distinct,
       EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ix.indexrelid
               AND con.conrelid = ix.indrelid AND con.contype IN ('p', 'u', 'x'))
         AS backs_constraint,
       ARRAY(SELECT jsonb_build_array(
                      pg_get_indexdef(ix.indexrelid, k, true), a.attname,
                      ix.indclass[k - 1], ix.indcollation[k - 1], ix.indoption[k - 1])::text
             FROM generate_series(1, ix.indnkeyatts) AS k
             LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid
                                     AND a.attnum = ix.indkey[k - 1] AND ix.indkey[k - 1] > 0
             ORDER BY k) AS keys,
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

# Rules other than a view's _RETURN, and row-level-security policies: MLflow makes neither,
# and both act on every write to the table they are on.
_RULES = """
SELECT c.relname AS table_name, r.rulename AS name, pg_get_ruledef(r.oid) AS definition,
       r.ev_enabled <> 'D' AS enabled
FROM pg_rewrite r
JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND r.rulename <> '_RETURN'
ORDER BY c.relname, r.rulename
"""

_POLICIES = """
SELECT c.relname AS table_name, p.polname AS name,
       'CREATE POLICY ' || quote_ident(p.polname) || ' ON ' || quote_ident(c.relname)
       || ' AS ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END
       || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                   WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
       || ' TO ' || array_to_string(ARRAY(
            SELECT CASE WHEN r.role = 0 THEN 'PUBLIC' ELSE quote_ident(a.rolname) END
            FROM unnest(p.polroles) AS r(role) LEFT JOIN pg_roles a ON a.oid = r.role
            ORDER BY 1), ', ')
       || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '')
       || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')
         AS definition
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
ORDER BY c.relname, p.polname
"""


@overload
def _unqualify(text: str, schema: str) -> str: ...
@overload
def _unqualify(text: None, schema: str) -> None: ...
@overload
def _unqualify(text: str | None, schema: str) -> str | None: ...
def _unqualify(text: str | None, schema: str) -> str | None:
    """Remove ``schema.`` (quoted or not) from a deparsed definition."""
    if text is None:
        return None
    quoted = '"' + schema.replace('"', '""') + '".'
    text = text.replace(quoted, "")
    return re.sub(rf"(?<![\w\"]){re.escape(schema)}\.(?=[\w\"])", "", text)


def capture(rows: Rows, schema: str) -> Snapshot:
    """Read ``schema`` through ``rows(sql, params)`` (7 queries, catalogs only)."""
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
    snap.indexes = []
    for r in rows(_INDEXES, params):
        keys = [json.loads(k) for k in r["keys"]]
        snap.indexes.append(Index(
            table=r["table_name"], name=r["name"], definition=_unqualify(r["definition"], schema),
            unique=r["is_unique"], primary=r["is_primary"], method=r["method"],
            keys=tuple(k[0] for k in keys), include=tuple(r["include"]),
            predicate=_unqualify(r["predicate"], schema), backs_constraint=r["backs_constraint"],
            valid=r["is_valid"], ready=r["is_ready"], oid=r["oid"],
            key_columns=tuple(k[1] for k in keys),
            key_identities=tuple((k[0], int(k[2]), int(k[3]), int(k[4])) for k in keys),
            nulls_not_distinct=bool(r["nulls_not_distinct"])))
    for r in rows(_SEQUENCES, params):
        snap.sequences.append(r["name"])
        if r["owner"]:
            snap.sequence_owners[r["name"]] = r["owner"]
    snap.triggers = [
        Trigger(r["table_name"], r["name"], _unqualify(r["definition"], schema), r["function"],
                _unqualify(r["function_definition"], schema), r["enabled"])
        for r in rows(_TRIGGERS, params)
    ]
    snap.rules = [Rule(r["table_name"], r["name"], _unqualify(r["definition"], schema),
                       r["enabled"]) for r in rows(_RULES, params)]
    snap.policies = [Policy(r["table_name"], r["name"], _unqualify(r["definition"], schema))
                     for r in rows(_POLICIES, params)]
    return snap


def live_snapshot(db: Database) -> Snapshot:
    """The audited database's MLflow schema (see :func:`~.mlflow.mlflow_facts`), read once
    per session; call it after ``require_mlflow_schema`` (an empty snapshot otherwise)."""
    schema = mlflow_facts(db).schema
    if schema is None:
        return Snapshot()
    def collect(d: Database) -> Snapshot:
        # capture's seven catalog reads are independent: one flight for all of them
        params = {"schema": schema}
        queries = (_COLUMNS, _CONSTRAINTS, _INDEXES, _SEQUENCES, _TRIGGERS, _RULES, _POLICIES)
        found = dict(zip(queries, d.rows_many([(q, params) for q in queries]), strict=True))
        return capture(lambda query, _: found[query], schema)

    return db.cached(f"snapshot:{schema}", collect)


def catalog_diff(db: Database) -> CatalogDiff:
    """The audited schema against the catalog's at its revision, worked out once per session.

    Call it once ``require_catalog_revision`` has passed: it raises
    :class:`~pytest_mlflowdb.catalog.CatalogError` when there is no single revision with a
    schema in the catalog to compare with.
    """
    from pytest_mlflowdb.catalog import CatalogError, load_catalog
    from pytest_mlflowdb.catalog.compare import CatalogDiff, compare

    facts = mlflow_facts(db)
    schema, revision = facts.schema, facts.revision
    catalog = load_catalog()
    if schema is None or revision is None or not catalog.has_schema(revision):
        raise CatalogError(f"no catalog schema to compare {schema}.alembic_version's "
                           f"revision {revision} with")
    expected = catalog.schema_at(revision)
    return db.cached(f"diff:{schema}:{revision}", lambda d: CatalogDiff(
        schema, revision, expected, compare(expected, live_snapshot(d))))


def newer_than_catalog(db: Database) -> str | None:
    """Why the database's revision, one the catalog does not know, is probably a newer
    MLflow's (a sentence naming it), or None. It is when every table of the catalog's head
    is there: a rewound or foreign revision of an older schema lacks some. A migration of
    a team's own on top of MLflow's head looks the same, so the sentence says both."""
    from pytest_mlflowdb.catalog import load_catalog

    revision = mlflow_facts(db).revision
    catalog = load_catalog()
    if revision is None or catalog.knows(revision):
        return None
    if not set(catalog.schema_at(catalog.head).tables) <= set(live_snapshot(db).tables):
        return None
    return (f"revision {revision} is newer than this pytest-mlflowdb knows (the database "
            f"holds every table of {catalog.head}, the head of MLflow "
            f"{catalog.newest_release}): a newer MLflow release, or a migration of your own "
            "on top of it; upgrade pytest-mlflowdb to check this schema")
