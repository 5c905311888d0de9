"""Build a genuine MLflow database of a chosen size on a throwaway server, for benchmarks.

The schema is MLflow's own, made by its migrations at head
(``pytest_mlflowdb.catalog.mlflow_schema.apply_mlflow_schema``); the data is loaded the way a
restore loads it: bulk ``COPY`` of realistic experiments, runs, params, tags, metrics
and latest_metrics (metrics' indexes and primary key dropped first and rebuilt with
their exact definitions afterwards, as ``pg_restore`` does), then ``VACUUM ANALYZE``.
``--bloat`` then makes bloat on purpose the way a busy tracking server does when
autovacuum cannot keep up: autovacuum off on params, tags, metrics and latest_metrics,
updates of params/tags/latest_metrics values and deletes of whole runs' metrics, then
``ANALYZE`` only (statistics fresh, dead space left in place).

Only for throwaway servers this process starts: it writes. Usage::

    python tools/build_mlflow_db.py --rows 10000000            # build, print timings, stop
    python tools/build_mlflow_db.py --rows 100000 --bloat --hold --uri-file /tmp/uri
        # keep the server until Ctrl-C; its URI (with the password) goes to a 0600 file

Benchmarks import :func:`build_database`.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The tables MLflow's busy paths update and delete from: where bloat is made on purpose.
BLOAT_TABLES = ("params", "tags", "metrics", "latest_metrics")
_METRIC_KEYS = ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
                "grad_norm", "epoch_time_s", "throughput_samples_per_s", "gpu_mem_mb",
                "precision", "recall", "f1")
_PARAM_KEYS = ("learning_rate", "batch_size", "optimizer", "epochs", "dropout",
               "weight_decay", "model_name", "seed", "warmup_steps", "max_seq_len")
_TAG_KEYS = ("mlflow.user", "mlflow.source.name", "mlflow.source.type",
             "mlflow.source.git.commit", "mlflow.runName", "team", "dataset")
_CHUNK = 200_000  # rows per COPY write: bounded memory whatever N is


@dataclass
class BuildStats:
    """What was built and how long each step took (seconds)."""

    database: str
    metric_rows: int
    runs: int
    bloat: bool
    live_indexes: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        total = sum(self.timings.values())
        mb = sum(self.sizes.values()) / 2**20
        return (f"{self.database}: {self.metric_rows:,} metric rows, {self.runs:,} runs, "
                f"bloat={'yes' if self.bloat else 'no'}, "
                f"indexes={'live' if self.live_indexes else 'rebuilt'}; "
                f"{mb:,.0f} MiB in MLflow's tables; "
                f"built in {total:.1f}s ({steps})")


class _Timer:
    def __init__(self, stats: BuildStats, step: str) -> None:
        self.stats, self.step = stats, step

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.stats.timings[self.step] = time.perf_counter() - self.start


def _copy(conn, table: str, columns: tuple[str, ...], lines) -> None:
    """COPY text lines (already tab-separated) into ``table``, in bounded chunks."""
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor().copy(statement) as copy:
        buffer = io.StringIO()
        count = 0
        for line in lines:
            buffer.write(line)
            count += 1
            if count % _CHUNK == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def _runs_for(rows: int) -> int:
    """A realistic shape: about 2,000 metric rows per run (12 keys, ~170 steps)."""
    return max(10, rows // 2_000)


def _load(conn, rows: int, runs: int, rng: random.Random) -> None:
    experiments = max(1, runs // 50)
    now_ms = 1_760_000_000_000
    # MLflow's server makes the Default experiment 0 first, with an explicit id
    conn.execute(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
        "creation_time, last_update_time) VALUES (0, 'Default', 's3://bucket/mlflow/0', "
        "'active', %s, %s)", (now_ms, now_ms))
    conn.execute(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time,"
        " last_update_time) SELECT 'bench-exp-' || g, 's3://bucket/mlflow/' || g, 'active',"
        " %s, %s FROM generate_series(1, %s) g", (now_ms, now_ms, experiments))
    exp_ids = [r[0] for r in conn.execute("SELECT experiment_id FROM experiments "
                                          "WHERE name LIKE 'bench-exp-%' ORDER BY 1")]
    run_ids = [f"{rng.getrandbits(128):032x}" for _ in range(runs)]
    starts = [now_ms - rng.randrange(90 * 86_400_000) for _ in range(runs)]
    _copy(conn, "runs", ("run_uuid", "name", "source_type", "source_name", "entry_point_name",
                         "user_id", "status", "start_time", "end_time", "source_version",
                         "lifecycle_stage", "artifact_uri", "experiment_id"),
          (f"{run}\trun-{i}\tLOCAL\ttrain.py\tmain\tuser{i % 17}\tFINISHED\t{starts[i]}\t"
           f"{starts[i] + 3_600_000}\t{rng.getrandbits(160):040x}\tactive\t"
           f"s3://bucket/mlflow/{exp_ids[i % len(exp_ids)]}/{run}/artifacts\t"
           f"{exp_ids[i % len(exp_ids)]}\n" for i, run in enumerate(run_ids)))
    _copy(conn, "params", ("key", "value", "run_uuid"),
          (f"{key}\t{rng.choice(('0.001', '32', 'adamw', '1e-4', 'resnet50', '128'))}\t{run}\n"
           for run in run_ids for key in _PARAM_KEYS))
    _copy(conn, "tags", ("key", "value", "run_uuid"),
          (f"{key}\t{key.split('.')[-1]}-{i % 97}\t{run}\n"
           for i, run in enumerate(run_ids) for key in _TAG_KEYS))
    per_run = -(-rows // runs)
    steps = -(-per_run // len(_METRIC_KEYS))
    random_value = rng.random

    def metric_lines():
        left = rows
        for i, run in enumerate(run_ids):
            start = starts[i]
            for step in range(steps):
                ts = start + step * 1_000
                for key in _METRIC_KEYS:
                    if left == 0:
                        return
                    left -= 1
                    yield f"{key}\t{random_value():.6f}\t{ts}\t{run}\t{step}\tf\n"

    _copy(conn, "metrics", ("key", "value", "timestamp", "run_uuid", "step", "is_nan"),
          metric_lines())
    conn.execute(
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
        " SELECT DISTINCT ON (run_uuid, key) key, value, timestamp, step, is_nan, run_uuid"
        " FROM metrics ORDER BY run_uuid, key, step DESC, timestamp DESC")


def _drop_indexes(conn, table: str) -> list[str]:
    """Drop ``table``'s indexes and key constraints; return the DDL that rebuilds them
    exactly as they were (constraints first), as ``pg_restore`` orders it."""
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'u')", (table,)).fetchall()
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
        " WHERE c.conindid = i.indexrelid)", (table,)).fetchall()
    for name, _ in constraints:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    return ([f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
             for name, definition in constraints] + [definition for _, definition in indexes])


def _make_bloat(conn, delete_share: float) -> None:
    """Updates and deletes with autovacuum off, as a tracking server without vacuum makes."""
    for table in BLOAT_TABLES:
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    # re-logged params and tags: values rewritten, every row once, a third twice
    for table in ("params", "tags"):
        conn.execute(f"UPDATE {table} SET value = value || '-v2'")
        conn.execute(f"UPDATE {table} SET value = value || '-v3' WHERE abs(hashtext(key)) % 3 = 0")
    # latest_metrics rewritten at every logged step: three passes
    for n in range(3):
        conn.execute("UPDATE latest_metrics SET value = value + 1, step = step + 1"
                     " WHERE abs(hashtext(run_uuid || key)) %% 2 = %s OR %s = 2", (n % 2, n))
    # deleted runs' metrics gone (heap holes, index pages half empty) and some values fixed
    conn.execute("DELETE FROM metrics WHERE abs(hashtext(run_uuid)) %% 100 < %s",
                 (int(delete_share * 100),))
    conn.execute("UPDATE metrics SET is_nan = false WHERE abs(hashtext(run_uuid)) % 100 >= 90")
    conn.execute("ANALYZE params, tags, metrics, latest_metrics")


def build_database(server, name: str, rows: int, bloat: bool = False,
                   delete_share: float = 0.4, seed: int = 8,
                   rebuild_indexes: bool = True, guide_indexes: bool = True) -> BuildStats:
    """Create database ``name`` on ``server`` (a throwaway ``servers.Server``), give it
    MLflow's schema at head with MLflow's migrations, load ``rows`` metric rows, VACUUM
    ANALYZE, and with ``bloat`` make bloat on purpose. Returns timings and sizes.

    ``rebuild_indexes`` (the default) loads metrics as a restore does: indexes dropped,
    COPY, indexes rebuilt (leaves packed to their fillfactor). Without it the rows go
    into the live indexes, as a tracking server fills them (leaves split at random,
    about 70% full): slower, and the index shape a long-lived database has.
    ``guide_indexes`` adds the platform guide's recommended indexes (README, "Set up your
    MLflow database") before the load, so the database is set up as the guide sets up a
    real one and the default audit has nothing to warn about."""
    import psycopg

    from pytest_mlflowdb.catalog.mlflow_schema import apply_guide_indexes, apply_mlflow_schema

    rng = random.Random(seed)
    stats = BuildStats(database=name, metric_rows=rows, runs=_runs_for(rows), bloat=bloat,
                       live_indexes=not rebuild_indexes)
    uri = server.create_database(name)
    with _Timer(stats, "migrations"):
        apply_mlflow_schema(uri)
        if guide_indexes:
            apply_guide_indexes(uri)
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        with _Timer(stats, "copy"):
            with conn.transaction():
                rebuild = _drop_indexes(conn, "metrics") if rebuild_indexes else []
                _load(conn, rows, stats.runs, rng)
        with _Timer(stats, "indexes"):
            for statement in rebuild:
                conn.execute(statement)
        with _Timer(stats, "vacuum_analyze"):
            conn.execute("VACUUM ANALYZE")
        if bloat:
            with _Timer(stats, "bloat"):
                _make_bloat(conn, delete_share)
        stats.sizes = {t: conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
                       for t in ("experiments", "runs", "params", "tags", "metrics",
                                 "latest_metrics")}
    return stats


def tune_for_bulk_load(server) -> None:
    """Larger WAL between checkpoints so a 10M-row COPY is not checkpoint-bound."""
    with server.admin() as conn:
        conn.execute("ALTER SYSTEM SET max_wal_size = '4GB'")
        conn.execute("SELECT pg_reload_conf()")


def settle(server, wait: float = 180.0) -> None:
    """Let the server finish what a bulk load leaves behind before anything is timed: a
    checkpoint (and the kernel's write-back of it) and autovacuum's workers, bounded."""
    with server.admin() as conn:
        conn.execute("CHECKPOINT")
        os.sync()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'autovacuum worker'").fetchone()[0]:
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="metric rows (default 100000)")
    parser.add_argument("--bloat", action="store_true", help="make bloat on purpose")
    parser.add_argument("--delete-share", type=float, default=0.4,
                        help="with --bloat: share of runs whose metrics are deleted (0.4)")
    parser.add_argument("--live-indexes", action="store_true",
                        help="COPY into metrics' live indexes instead of rebuilding them after")
    parser.add_argument("--no-guide-indexes", action="store_true",
                        help="leave out the platform guide's recommended indexes")
    parser.add_argument("--server", default="auto", help="auto, wheel, path or container")
    parser.add_argument("--hold", action="store_true",
                        help="keep the server running until Ctrl-C")
    parser.add_argument("--uri-file", type=Path,
                        help="with --hold: write the database URI (with password) here, 0600")
    args = parser.parse_args(argv)
    if args.rows < 1 or not 0 <= args.delete_share < 1:
        parser.error("--rows must be positive and --delete-share in [0, 1)")

    from pytest_mlflowdb.servers import start_server

    server = start_server(args.server)
    try:
        tune_for_bulk_load(server)
        stats = build_database(server, "mlflow_bench", args.rows, args.bloat, args.delete_share,
                               rebuild_indexes=not args.live_indexes,
                               guide_indexes=not args.no_guide_indexes)
        print(stats.summary())
        if args.hold:
            if args.uri_file:
                fd = os.open(args.uri_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(server.uri("mlflow_bench") + "\n")
                print(f"URI written to {args.uri_file}; Ctrl-C stops the server")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
