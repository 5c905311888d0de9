"""Helpers of the backup tests: genuine MLflow data and dumps made with pg18's pg_dump."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
from pathlib import Path

from helpers import sql

DAY_MS = 86_400_000
BACKUP = ("backup.readable", "backup.restore", "backup.schema", "backup.complete",
          "backup.freshness", "backup.rto")


def now_ms() -> int:
    return int(time.time() * 1000)


def seed(uri: str, runs: int = 30, started_ms: int | None = None, first: int = 1) -> None:
    """``runs`` runs (ids r<first>...) with metrics, latest_metrics, params and a model
    version, all started at ``started_ms`` (default now), then ANALYZE."""
    started = now_ms() if started_ms is None else started_ms
    last = first + runs - 1
    sql(uri,
        "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES "
        "(1, 'e', 'active') ON CONFLICT DO NOTHING",
        # an explicit id leaves the sequence behind (sequences.behind): move it on
        "SELECT setval('experiments_experiment_id_seq', greatest(1, "
        "(SELECT max(experiment_id) FROM experiments)))",
        "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status, start_time) "
        f"SELECT 'r' || g, 1, 'active', 'FINISHED', {started} "
        f"FROM generate_series({first}, {last}) g",
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
        f"SELECT 'loss', random(), {started} + s, 'r' || g, s, false "
        f"FROM generate_series({first}, {last}) g, generate_series(1, 20) s",
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
        f"SELECT 'loss', 0.5, {started} + 20, 20, false, 'r' || g "
        f"FROM generate_series({first}, {last}) g",
        "INSERT INTO params (key, value, run_uuid) "
        f"SELECT 'lr', '0.1', 'r' || g FROM generate_series({first}, {last}) g",
        "INSERT INTO registered_models (name, creation_time, last_updated_time) "
        f"VALUES ('m{first}', {started}, {started})",
        "INSERT INTO model_versions (name, version, creation_time, last_updated_time, "
        f"current_stage, status, run_id) VALUES ('m{first}', 1, {started}, {started}, "
        f"'None', 'READY', 'r{first}')",
        "ANALYZE")


def pg_dump(server, uri: str, path: Path, fmt: str = "c") -> Path:
    """Dump ``uri`` with the server's own pg_dump: c, d, t, p, or p.gz."""
    from helpers import dbname_of

    plain_gz = fmt == "p.gz"
    out = path.with_suffix(".sql") if plain_gz else path
    env = dict(os.environ, PGPASSWORD=server.password)
    subprocess.run([str(server.bin_dir / "pg_dump"), f"-F{fmt[0]}", "-f", str(out),
                    "-h", server.host, "-p", str(server.port), "-U", server.user,
                    dbname_of(uri)], env=env, check=True, capture_output=True)
    if plain_gz:
        with out.open("rb") as source, gzip.open(path, "wb") as target:
            shutil.copyfileobj(source, target)
        out.unlink()
    return path


def scratch_databases(server) -> set[str]:
    import psycopg

    with psycopg.connect(server.uri(), connect_timeout=5) as conn:
        return {r[0] for r in conn.execute(
            "SELECT datname FROM pg_database "
            "WHERE datname ~ '^mlflowdb_scratch_[0-9a-f]{12}$'")}
