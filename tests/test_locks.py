"""A table another session holds ACCESS EXCLUSIVE: the checks that need it skip with the
reason after the lock timeout, none errors with a traceback, and the audit ends."""

from __future__ import annotations

import psycopg
from helpers import audit, genuine_head


def test_a_locked_table_skips_the_checks_that_need_it_with_the_reason(pytester, mlflow_uri):
    holder = psycopg.connect(mlflow_uri)
    try:
        holder.execute("LOCK TABLE params IN ACCESS EXCLUSIVE MODE")
        result, checks = audit(pytester, mlflow_uri, "--mlflowdb-lock-timeout=200ms")
    finally:
        holder.rollback()
        holder.close()
    out = result.stdout.str()
    assert "Traceback" not in out and "LockNotAvailable" not in out
    assert not [c["id"] for c in checks.values() if c["outcome"] == "error"], checks
    skipped = {cid: c["message"] for cid, c in checks.items()
               if c["outcome"] == "skipped" and "lock" in c["message"]}
    assert skipped, {cid: (c["outcome"], c["message"]) for cid, c in checks.items()}
    for message in skipped.values():
        assert "another session holds a lock" in message and "lock_timeout 0.2s" in message
    assert checks["connectivity.connect"]["outcome"] == "passed"


def test_a_gate_that_could_not_look_fails(pytester, mlflow_uri):
    """With an expectation stated (a deployment gate) a check that could not look for a
    lock, as a migration holds, fails the run instead of passing it as skipped."""
    release, _ = genuine_head()
    holder = psycopg.connect(mlflow_uri)
    try:
        holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        result, checks = audit(pytester, mlflow_uri, "--mlflowdb-lock-timeout=200ms",
                               f"--mlflowdb-expect-mlflow={release}")
    finally:
        holder.rollback()
        holder.close()
    blind = {cid: c for cid, c in checks.items() if "could not look" in c["message"]}
    assert blind and all(c["outcome"] == "failed" for c in blind.values()), blind
    assert all(f"MLflow {release} is expected" in c["message"] for c in blind.values())
    assert "schema.revision" in blind or checks["schema.revision"]["outcome"] == "failed"
    assert result.ret == 1
