"""Checks that read privilege-dependent views count what they cannot see in detail.

An auditor without ``pg_read_all_stats`` sees every row of ``pg_stat_activity`` but
not the details (``backend_type`` is NULL) of other roles' sessions: a check must not
silently count fewer of them than a ``pg_monitor`` auditor does.
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import audit, role_uri
from psycopg import sql as pgsql

PASSWORD = "Vis1ble?pw"
ROLES = {"vis_plain": "", "vis_monitor": "IN ROLE pg_monitor", "vis_app": ""}


@pytest.fixture
def visibility_roles(pg15):
    """Three login roles on pg15: a plain auditor, a pg_monitor auditor, an application."""
    with pg15.admin() as conn:
        for name, extra in ROLES.items():
            conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(name)))
            conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + extra).format(
                pgsql.Identifier(name), pgsql.Literal(PASSWORD)))
    yield pg15
    with pg15.admin() as conn:
        for name in ROLES:
            conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(name)))


def _wait_for_audit_sessions_to_end(watcher, bound: float = 30) -> None:
    """A closed session's backend leaves pg_stat_activity a moment later: wait for it, so
    that both auditors count the same sessions (bounded: this only proves no hang)."""
    import time

    deadline = time.monotonic() + bound
    while watcher.execute("SELECT count(*) FROM pg_stat_activity "
                          "WHERE application_name = 'pytest-mlflowdb'").fetchone()[0]:
        assert time.monotonic() < deadline, "an audit session outlived its audit"
        time.sleep(0.05)


def _percent(check: dict) -> float:
    (finding,) = check["findings"]
    return float(finding["value"].rstrip("%"))


def test_headroom_counts_sessions_of_other_roles_without_pg_read_all_stats(
        pytester, visibility_roles):
    server = visibility_roles
    watcher = server.admin()  # open throughout: a session closing midway would skew counts
    usable = int(watcher.execute("SHOW max_connections").fetchone()[0]) - int(
        watcher.execute("SHOW superuser_reserved_connections").fetchone()[0])
    idle = usable // 2  # well above the 30% set below, well below the slots left
    held = [psycopg.connect(role_uri(server, "postgres", "vis_app", PASSWORD).replace(
        "+psycopg2", "")) for _ in range(idle)]
    try:
        seen = {}
        for role in ("vis_monitor", "vis_plain"):
            _wait_for_audit_sessions_to_end(watcher)
            _, checks = audit(pytester, role_uri(server, "postgres", role, PASSWORD),
                              "--mlflowdb-set=connections_warn=30%")
            seen[role] = checks["connectivity.headroom"]
    finally:
        for conn in held + [watcher]:
            conn.close()
    monitor, plain = seen["vis_monitor"], seen["vis_plain"]
    assert monitor["outcome"] == "warned", monitor
    assert _percent(monitor) >= 100 * idle / usable
    assert plain["outcome"] == "warned", plain
    assert _percent(plain) == _percent(monitor), (plain, monitor)
    assert "of other roles" in plain["findings"][0]["message"], plain
