"""DDL that recreates a catalog snapshot, so a throwaway database needs no MLflow install.

Every definition comes from PostgreSQL's own deparsers (captured after MLflow's real
migrations), so executing them in order rebuilds the same catalog: sequences, tables
(with defaults and generated columns), primary/unique/check constraints, foreign keys,
the remaining indexes, trigger functions and triggers, and the ``alembic_version`` row.
"""

from __future__ import annotations

from pytest_mlflowdb.catalog.model import Snapshot


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ddl(snapshot: Snapshot, revision: str | None) -> list[str]:
    """Statements, in an executable order, for ``snapshot`` at ``revision``."""
    statements = [f"CREATE SEQUENCE {quote_ident(s)}" for s in snapshot.sequences]
    for table, columns in sorted(snapshot.tables.items()):
        parts = []
        for c in columns:
            line = f"{quote_ident(c.name)} {c.type}"
            if c.collation:
                line += f" COLLATE {quote_ident(c.collation)}"
            if c.generated:
                line += f" GENERATED ALWAYS AS ({c.generated}) STORED"
            elif c.identity:
                line += f" GENERATED {c.identity.upper()} AS IDENTITY"
            elif c.default is not None:
                line += f" DEFAULT {c.default}"
            if not c.nullable:
                line += " NOT NULL"
            parts.append(line)
        statements.append(f"CREATE TABLE {quote_ident(table)} (\n    " + ",\n    ".join(parts)
                          + "\n)")
    for sequence, owner in sorted(snapshot.sequence_owners.items()):
        table, _, column = owner.partition(".")
        statements.append(f"ALTER SEQUENCE {quote_ident(sequence)} OWNED BY "
                          f"{quote_ident(table)}.{quote_ident(column)}")
    order = {"p": 0, "u": 1, "x": 1, "c": 2, "f": 3}
    for con in sorted(snapshot.constraints, key=lambda c: (order[c.type], c.table, c.name)):
        statements.append(f"ALTER TABLE {quote_ident(con.table)} ADD CONSTRAINT "
                          f"{quote_ident(con.name)} {con.definition}")
    for index in snapshot.indexes:
        if not index.backs_constraint:
            statements.append(index.definition)
    functions = {t.function: t.function_definition for t in snapshot.triggers}
    statements += list(functions.values())
    statements += [t.definition for t in snapshot.triggers]
    if revision is not None and "alembic_version" in snapshot.tables:
        statements.append(
            f"INSERT INTO alembic_version (version_num) VALUES ({_literal(revision)})"
        )
    return statements
