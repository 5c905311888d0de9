"""The plugin's fixtures: the current target, its session, findings, settings, servers.

Target fixtures are parametrized over the targets by the audit session
(:mod:`pytest_mlflowdb.run.session`); without a target they skip. The server fixtures work
without any target: they hold a :class:`~pytest_mlflowdb.servers.janitor.Janitor`
that drops what it made and stops the server at their teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:  # the rest is imported where a fixture runs: a dormant plugin loads this
    from pytest_mlflowdb.audit.sessions import ConnectionAttempt, TargetParam, TargetUnavailable
    from pytest_mlflowdb.config.targets import Target
    from pytest_mlflowdb.config.thresholds import ThresholdValues
    from pytest_mlflowdb.config.validate import Settings
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.results.findings import Findings
    from pytest_mlflowdb.run.session import AuditSession
    from pytest_mlflowdb.servers import Server
    from pytest_mlflowdb.servers.janitor import Janitor

_NO_TARGET = "no MLflow database to audit: give --mlflowdb-uri or --mlflowdb-ephemeral"


def _settings(request: pytest.FixtureRequest) -> Settings:
    from pytest_mlflowdb.config.read import settings_of

    return settings_of(request.config)


def _session(request: pytest.FixtureRequest) -> AuditSession:
    from pytest_mlflowdb.keys import SESSION

    return request.config.stash[SESSION]


@pytest.fixture(scope="session")
def _mlflowdb_key(request: pytest.FixtureRequest) -> TargetParam:
    """The key of the current target; parametrized over the targets when active."""
    from pytest_mlflowdb.keys import SESSION

    key = getattr(request, "param", None)
    if key is None or request.config.stash.get(SESSION, None) is None:
        pytest.skip(_NO_TARGET)
    return key


@pytest.fixture(scope="session")
def mlflowdb_target(request: pytest.FixtureRequest, _mlflowdb_key: TargetParam) -> Target:
    """The target of the current check (parametrized: each check runs once per target).

    A :class:`pytest_mlflowdb.config.targets.Target`; ``.id`` is ``host:port/db`` and
    ``.redacted`` the URI without its password. Skips when no target was given.
    """
    from pytest_mlflowdb.audit.sessions import TargetUnavailable

    try:
        return _session(request).sessions.target(_mlflowdb_key.slot)
    except TargetUnavailable as exc:
        _unreachable(request, _mlflowdb_key, exc)


@pytest.fixture(scope="session")
def mlflowdb_connection(request: pytest.FixtureRequest,
                        _mlflowdb_key: TargetParam) -> ConnectionAttempt:
    """The attempt to open the current target's read-only session (never skips).

    Has ``.database`` (or None), ``.error`` (one line, no password), ``.seconds``.
    """
    return _session(request).sessions.attempt(_mlflowdb_key.slot, _mlflowdb_key.id)


@pytest.fixture(scope="session")
def mlflowdb(request: pytest.FixtureRequest, _mlflowdb_key: TargetParam) -> Database:
    """The read-only :class:`pytest_mlflowdb.db.database.Database` of the current target.

    ``rows(sql)``, ``row(sql)``, ``value(sql)``, ``setting(name)`` and ``preflight``
    (server version, role, memberships, extensions). What MLflow sees through the URI
    (its schema and revision) is ``pytest_mlflowdb.probes.mlflow.mlflow_facts(mlflowdb)``.
    Skips as "target unreachable" when the target cannot be reached.
    """
    from pytest_mlflowdb.audit.sessions import TargetUnavailable

    try:
        return _session(request).sessions.database(_mlflowdb_key.slot, _mlflowdb_key.id)
    except TargetUnavailable as exc:
        _unreachable(request, _mlflowdb_key, exc)


def _unreachable(request: pytest.FixtureRequest, key: TargetParam,
                 exc: TargetUnavailable) -> NoReturn:
    """Skip a check whose target cannot be reached, or fail it when nothing else would.

    ``connectivity.connect`` is always collected (even with ``--mlflowdb-no-builtin``)
    and fails for an unreachable target, so the other checks skip as "target
    unreachable". When the run deselected it (``-k``, ``--deselect``), the check fails
    instead: an unreachable target must never leave a green run.
    """
    from pytest_mlflowdb.keys import CONNECT, target_param_of
    from pytest_mlflowdb.results.records import check_id

    reason = exc.skip_reason
    connects = {target_param_of(item) for item in request.session.items
                if check_id(item) == CONNECT}
    if key in connects:
        pytest.skip(reason)
    pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def mlflowdb_thresholds(request: pytest.FixtureRequest) -> ThresholdValues:
    """The thresholds in force (defaults, ini ``mlflowdb_thresholds``, ``--mlflowdb-set``).

    A mapping of name to value: sizes in bytes, durations in seconds, percents 0-100;
    ``.text(name)`` gives the value back in the grammar.
    """
    return _settings(request).thresholds


@pytest.fixture(scope="session")
def mlflowdb_settings(request: pytest.FixtureRequest) -> Settings:
    """All ``--mlflowdb-*`` settings, validated and frozen (no passwords in its repr)."""
    return _settings(request)


@pytest.fixture
def mlflowdb_findings(request: pytest.FixtureRequest) -> Findings:
    """Record what a check found: ``ok``, ``info``, ``warn``, ``fail`` or ``limit``.

    The check's outcome is its worst finding; findings appear in every report.
    """
    from pytest_mlflowdb.keys import FINDINGS
    from pytest_mlflowdb.results.findings import Findings

    findings = Findings()
    request.node.stash[FINDINGS] = findings
    return findings


@pytest.fixture(scope="session")
def _mlflowdb_janitor(request: pytest.FixtureRequest) -> Iterator[Janitor]:
    """The owner of this session's throwaway server and scratch databases."""
    from pytest_mlflowdb.servers.janitor import Janitor

    settings = _settings(request)
    janitor = Janitor(settings.server_kind, settings.pg_bin)
    yield janitor
    janitor.close()


@pytest.fixture(scope="session")
def mlflowdb_server(_mlflowdb_janitor: Janitor) -> Server:
    """A throwaway PostgreSQL server for this test session (works without any target).

    Kind from ``--mlflowdb-ephemeral`` or the ``mlflowdb_ephemeral`` ini, else ``auto``
    (container, then wheel, then PATH binaries). Stopped and removed at the end.
    """
    from pytest_mlflowdb.servers import ServerError

    try:
        return _mlflowdb_janitor.server()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def mlflowdb_database_factory(mlflowdb_server: Server,
                              _mlflowdb_janitor: Janitor) -> Iterator[Callable[..., str]]:
    """Make fresh databases on ``mlflowdb_server``: ``create(mlflow=True, revision="heads")``.

    Returns the new database's URI. With ``mlflow=True`` the database gets a genuine
    MLflow schema from MLflow's own migrations (made once per revision, then copied);
    ``source="catalog"`` makes it from the shipped catalog's DDL instead (no MLflow
    needed; ``revision="heads"`` then means the catalog's head). Every database made is
    dropped at the end of the session.
    """
    yield _mlflowdb_janitor.create
    _mlflowdb_janitor.drop_all()
