"""Connectivity: can we reach the target, how fast, is it a server MLflow can use?"""

from __future__ import annotations

import datetime

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.collect import alone
from pytest_mlflowdb.probes import connectivity
from pytest_mlflowdb.probes.grants import is_mlflow_role, remedy
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.probes.security import is_local

# Community end-of-life dates (postgresql.org/support/versioning).
EOL = {
    13: datetime.date(2025, 11, 13),
    14: datetime.date(2026, 11, 12),
    15: datetime.date(2027, 11, 11),
    16: datetime.date(2028, 11, 9),
    17: datetime.date(2029, 11, 8),
    18: datetime.date(2030, 11, 14),
}
SUPPORTED = range(14, 19)



@check("connectivity.connect")
def test_connect(mlflowdb_connection, mlflowdb_findings):
    """A read-only session opens within the connect timeout."""
    attempt = mlflowdb_connection
    took = f"{attempt.seconds * 1000:.0f}ms"
    if attempt.connected and attempt.error:
        # the session opened: what failed is a read on it (a lock, a timeout), not connecting
        mlflowdb_findings.ok(attempt.target_id, f"connected in {took}", took,
                             f"{attempt.connect_timeout:g}s")
        mlflowdb_findings.fail(attempt.target_id, attempt.error, None, None)
        return
    if attempt.error:
        mlflowdb_findings.fail(attempt.target_id, f"cannot connect: {attempt.error}",
                               None, f"{attempt.connect_timeout:g}s")
        return
    pre = attempt.database.preflight
    mlflowdb_findings.ok(
        attempt.target_id,
        f"connected in {took} as {pre.current_user}, read-only session",
        took, f"{attempt.connect_timeout:g}s",
    )


@alone
def _latency(db, settings) -> connectivity.Latency:
    return connectivity.latency(db, samples=int(settings.thresholds["latency_samples"]))


def _grant_advice(db) -> None:
    """What the privilege advice reads, when this role cannot read every statistic."""
    if not db.preflight.can_read_all_stats():
        is_mlflow_role(db)


@check("connectivity.latency", thresholds=("latency_warn", "latency_fail", "latency_samples"),
       probes=(_latency,))
def test_latency(mlflowdb, mlflowdb_thresholds, mlflowdb_findings, mlflowdb_settings):
    """Median round trip of trivial queries."""
    t = mlflowdb_thresholds
    measured = _latency(mlflowdb, mlflowdb_settings)
    mlflowdb_findings.limit(
        "server", f"median of {measured.samples} round trips", measured.median_s,
        unit="duration", warn=t["latency_warn"], fail=t["latency_fail"],
    )


def assess_version(major: int, version: str, today: datetime.date) -> tuple[str, str, str]:
    """(severity, message, threshold) for a server's major version on ``today``."""
    label = f"PostgreSQL {version}"
    if major > max(SUPPORTED):
        return "warning", f"{label} is newer than the versions tested (14-18)", "14-18"
    if major not in SUPPORTED:
        return "failure", f"{label} is not supported (14-18)", "14-18"
    eol = EOL[major].isoformat()
    if EOL[major] <= today:
        return "warning", f"{label} reached end of life on {eol}; plan an upgrade", f"EOL {eol}"
    return "ok", f"{label}, supported until {eol}", f"EOL {eol}"


@check("connectivity.server_version")
def test_server_version(mlflowdb, mlflowdb_findings):
    """PostgreSQL 14-18; a major version past its end of life warns."""
    pre = mlflowdb.preflight
    severity, message, threshold = assess_version(pre.major, pre.server_version,
                                                  datetime.date.today())
    mlflowdb_findings.add("server", severity, message, pre.server_version, threshold)


@check("connectivity.primary")
def test_primary(mlflowdb, mlflowdb_findings):
    """The target is a primary: MLflow must write to its backend store."""
    if mlflowdb.preflight.in_recovery:
        mlflowdb_findings.fail("server", "the server is a replica in recovery; MLflow needs "
                               "a writable primary", "replica", "primary")
    else:
        mlflowdb_findings.ok("server", "the server is a primary", "primary", "primary")


@check("connectivity.ssl")
def test_ssl(mlflowdb, mlflowdb_findings):
    """SSL is in use when the server is not on this host (by name or by address)."""
    pre = mlflowdb.preflight
    if pre.ssl_in_use:
        mlflowdb_findings.ok(pre.host, "the session uses SSL", "ssl", "ssl")
    elif is_local(pre.host, pre.hostaddr):
        mlflowdb_findings.ok(pre.host, "no SSL, but the server is local", "no ssl", "ssl if remote")
    else:
        mlflowdb_findings.fail(pre.host, "the session to a remote server is not encrypted "
                               "(use sslmode=require or verify-full)", "no ssl", "ssl")


@check("connectivity.headroom", thresholds=("connections_warn", "connections_fail"),
       probes=(connectivity.connection_usage,))
def test_connection_headroom(mlflowdb, mlflowdb_thresholds, mlflowdb_findings):
    """Client connections in use against the slots ordinary roles can use."""
    usage = connectivity.connection_usage(mlflowdb)
    hidden = (f"; {usage.hidden} of them sessions of other roles whose type is hidden "
              "without pg_read_all_stats, counted as clients" if usage.hidden else "")
    mlflowdb_findings.limit(
        "max_connections",
        f"connections in use ({usage.in_use} of {usage.usable} usable slots{hidden})",
        usage.percent, unit="percent",
        warn=mlflowdb_thresholds["connections_warn"], fail=mlflowdb_thresholds["connections_fail"],
    )


@check("connectivity.privileges", probes=(_grant_advice,))
def test_privileges(mlflowdb, mlflowdb_findings):
    """What this role may see: superuser, monitoring roles, extensions, MLflow's schema."""
    pre = mlflowdb.preflight
    roles = ", ".join(pre.roles) or "none"
    if pre.is_superuser:
        mlflowdb_findings.info(pre.current_user, "superuser: sees everything (an audit needs "
                               "only pg_monitor)", "superuser", None)
    else:
        mlflowdb_findings.info(pre.current_user, f"superuser: no; monitoring roles: {roles}",
                               roles, None)
    if not pre.can_read_all_stats():
        mlflowdb_findings.info(
            pre.current_user,
            "without pg_monitor or pg_read_all_stats, checks that need other sessions' "
            "details are skipped", roles, "pg_monitor",
            remedy=remedy(mlflowdb, "GRANT pg_monitor"),
        )
    extensions = ", ".join(f"{k} {v}" for k, v in sorted(pre.extensions.items())) or "none"
    mlflowdb_findings.info("extensions", f"installed: {extensions}", extensions, None)
    found = mlflow_facts(mlflowdb)
    if found.schema:
        mlflowdb_findings.info(
            found.schema,
            f"MLflow tables found in schema {found.schema}, alembic revision "
            f"{found.revision or 'unknown'}", found.revision, None,
        )
    elif found.elsewhere:
        mlflowdb_findings.info("schema", f"MLflow tables found in schema(s) "
                               f"{', '.join(found.elsewhere)}, not on this URI's "
                               f"search_path ({found.search_path})", found.current_schema, None)
    else:
        mlflowdb_findings.info("schema", "no MLflow tables found in any schema this role can see",
                               None, None)
    for note in found.notes:
        mlflowdb_findings.info("preflight", note, None, None)
