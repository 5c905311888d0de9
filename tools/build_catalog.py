"""Regenerate the shipped schema catalog from MLflow's real migrations.

For the installed MLflow (mlflow-skinny with sqlalchemy and alembic is enough) this
starts a throwaway PostgreSQL, creates MLflow's pre-alembic tables the way MLflow does
(``InitialBase.metadata.create_all``), then upgrades one revision at a time and reads
the schema after each step with the same probe the checks use. The result, one full
snapshot per revision, is written xz-compressed to
``pytest_mlflowdb/catalog/data/schemas.json.xz`` (repeated content compresses to
almost nothing), each snapshot as JSON text that the audit parses only when it needs
that revision (``catalog.packed``).

When MLflow releases::

    pip install -U mlflow-skinny sqlalchemy alembic "psycopg[binary]" pytest tabulate
    # if the newest `mlflow` has no matching `mlflow-skinny` yet (3.18.0 had none), install
    # it over the newest skinny's dependencies: pip install --no-deps mlflow==X.Y.Z
    python tools/release_map.py          # release -> head revision, from the archives
    python tools/build_catalog.py        # schemas per revision, from the migrations
    pytest tests/test_catalog.py         # the drift test compares head with MLflow

MLflow's SQLAlchemy models are never used as the oracle: they differ from what the
migrations create.
"""

from __future__ import annotations

import argparse
import json
import logging
import lzma
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "pytest_mlflowdb" / "catalog" / "data" / "schemas.json.xz"


def build(kind: str = "auto", schema: str = "public") -> dict:
    """Run every migration of the installed MLflow and snapshot the schema after each."""
    logging.disable(logging.WARNING)
    import mlflow
    import psycopg
    import sqlalchemy
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
    from psycopg.rows import dict_row

    sys.path.insert(0, str(ROOT))
    from pytest_mlflowdb.probes.schema import capture
    from pytest_mlflowdb.servers import start_server

    server = start_server(kind)
    try:
        uri = server.create_database("catalog")
        url = "postgresql+psycopg://" + uri.split("://", 1)[1]
        engine = sqlalchemy.create_engine(url)
        config = utils._get_alembic_config(engine.url.render_as_string(hide_password=False))
        chain = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
        with psycopg.connect(uri, row_factory=dict_row) as conn:
            version = conn.execute("SHOW server_version").fetchone()["server_version"]

            def snapshot() -> dict:
                return capture(lambda sql, p: conn.execute(sql, p).fetchall(), schema).to_json()

            InitialBase.metadata.create_all(engine)
            base = snapshot()
            revisions = []
            for script in chain:
                with engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, script.revision)
                doc = (script.doc or "").strip().splitlines()
                revisions.append({
                    "revision": script.revision,
                    "down_revision": script.down_revision,
                    "description": doc[0] if doc else "",
                    "schema": snapshot(),
                })
        engine.dispose()
    finally:
        server.stop()
    return {
        "generated_by": "tools/build_catalog.py",
        "mlflow_version": mlflow.__version__,
        "postgres_version": version,
        "base": base,
        "revisions": revisions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--kind", default="auto", help="throwaway server kind (auto, wheel, path)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from pytest_mlflowdb.catalog import packed

    catalog = packed(build(args.kind))
    data = json.dumps(catalog, sort_keys=True, separators=(",", ":")).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    head = catalog["revisions"][-1]
    print(f"{len(catalog['revisions'])} revisions from MLflow {catalog['mlflow_version']} on "
          f"PostgreSQL {catalog['postgres_version']}; head {head['revision']} has "
          f"{len(json.loads(head['schema'])['tables'])} tables, "
          f"{len(json.loads(head['schema'])['indexes'])} indexes; "
          f"{len(data)} bytes of JSON -> {args.out.stat().st_size} bytes in {args.out.name}; "
          f"{time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
