#!/usr/bin/env python3
"""Capture the schema of MLflow's basic-auth database from MLflow's auth migrations.

MLflow's authentication plugin keeps its users and permissions in a database of its own,
migrated by alembic with the version table ``alembic_version_auth``
(``mlflow/server/auth/db/migrations``). This runs those migrations on a THROWAWAY
database (``--uri``, an empty scratch database; without it a Janitor starts a throwaway
server and makes one), one revision at a time, captures the schema after each with the
audit's own reader (``pytest_mlflowdb.probes.schema.capture``) and writes
``pytest_mlflowdb/workload/data/auth_schemas.json``: the revision chain and the schema at
each revision.

The migrations are run through alembic directly (their ``env.py`` imports
``mlflow.server``, which needs flask, absent from ``mlflow-skinny``); the revision
scripts themselves import only alembic, SQLAlchemy and small parts of MLflow.

    python3 tools/capture_auth_schema.py [--uri postgresql://...] [--out FILE]
    python3 tools/capture_auth_schema.py --migrate postgresql://...   # to head, no capture
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "pytest_mlflowdb" / "workload" / "data" / "auth_schemas.json"
VERSION_TABLE = "alembic_version_auth"


def migrations_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mlflow")
    assert spec and spec.origin
    return Path(spec.origin).parent / "server" / "auth" / "db" / "migrations"


def chain() -> list[str]:
    """MLflow's auth revisions, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def migrate(uri: str, revision: str = "heads") -> None:
    """Upgrade the scratch database at ``uri`` to ``revision`` of MLflow's auth schema."""
    import sqlalchemy
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    engine = sqlalchemy.create_engine("postgresql+psycopg://" + uri.split("://", 1)[1])
    try:
        with engine.begin() as conn:
            context = MigrationContext.configure(conn, opts={
                "version_table": VERSION_TABLE, "script": script,
                "fn": lambda rev, _context: script._upgrade_revs(revision, rev)})
            with Operations.context(context):
                context.run_migrations()
    finally:
        engine.dispose()


def capture(uri: str) -> dict:
    """Every auth revision's schema, made on the empty scratch database at ``uri``."""
    import importlib.metadata

    import psycopg
    from psycopg.rows import dict_row

    from pytest_mlflowdb.probes.schema import capture as capture_schema

    revisions = chain()
    schemas = {}
    for revision in revisions:
        migrate(uri, revision)
        with psycopg.connect(uri, row_factory=dict_row) as conn:
            snapshot = capture_schema(lambda q, p: conn.execute(q, p).fetchall(), "public")
        schemas[revision] = snapshot.to_json()
    return {"mlflow": importlib.metadata.version("mlflow-skinny"), "version_table":
            VERSION_TABLE, "chain": revisions, "schemas": schemas}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", help="an EMPTY THROWAWAY database")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--migrate", metavar="URI",
                        help="only migrate this THROWAWAY database to the auth head")
    args = parser.parse_args(argv)
    if args.migrate:
        migrate(args.migrate)
        return 0
    if args.uri:
        document = capture(args.uri)
    else:
        from pytest_mlflowdb.servers.janitor import Janitor

        janitor = Janitor("auto")
        try:
            document = capture(janitor.create(mlflow=False))
        finally:
            janitor.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"{len(document['chain'])} auth revisions (MLflow {document['mlflow']}) written to "
          f"{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
