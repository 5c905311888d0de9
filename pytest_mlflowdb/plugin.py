"""pytest hooks: options, fixtures, outcome mapping and the summary. No SQL here.

Dormant unless ``--mlflowdb-uri``, ``--mlflowdb-ephemeral`` or the ``mlflowdb_uris`` ini
setting is given: then it collects nothing extra, parametrizes nothing and imports
nothing heavy (psycopg, tabulate and testcontainers load only when active).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import hookspecs
from .areas import (
    builtin_checks_dir,
    builtin_thresholds,
    check_paths,
    is_check_module,
    register_areas,
)
from .findings import Findings
from .registry import MARKER, REGISTRY
from .settings import COMMAND_LINE, Settings, SettingsError, build_settings
from .thresholds import ThresholdRegistry

if TYPE_CHECKING:
    from .audit import TargetUnavailable


_STATE = pytest.StashKey["_State"]()


# -- options ---------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlflowdb", "MLflow database audit (pytest-mlflowdb)")
    group.addoption("--mlflowdb-uri", action="append", default=[], metavar="URI",
                    help="database to audit (repeatable); postgresql://, postgres://, "
                         "postgresql+psycopg2://, postgresql+psycopg:// or libpq key=value")
    group.addoption("--mlflowdb-ephemeral", nargs="?", const="", default=None,
                    metavar="KIND",
                    help="audit a throwaway PostgreSQL with a genuine MLflow schema; KIND is "
                         "auto (default), container, wheel or path")
    group.addoption("--mlflowdb-report", action="append", default=[], metavar="PATH",
                    help="write the audit report to PATH (.json or .md; repeatable)")
    group.addoption("--mlflowdb-fail-on", default=None, metavar="LEVEL",
                    help="error (default): only failed checks fail the run; warning: warned "
                         "checks fail it too")
    group.addoption("--mlflowdb-connect-timeout", default=None, metavar="DURATION",
                    help="connect timeout per target (default 10s)")
    group.addoption("--mlflowdb-statement-timeout", default=None, metavar="DURATION",
                    help="statement_timeout of the audit session (default 30s)")
    group.addoption("--mlflowdb-lock-timeout", default=None, metavar="DURATION",
                    help="lock_timeout of the audit session (default 1s)")
    group.addoption("--mlflowdb-set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a threshold (repeatable), e.g. latency_warn=100ms")
    group.addoption("--mlflowdb-pg-bin", default=None, metavar="DIR",
                    help="directory of PostgreSQL server binaries for throwaway servers")
    group.addoption("--mlflowdb-expect-mlflow", default=None, metavar="VERSION",
                    help="the MLflow release about to be deployed: schema.revision fails when "
                         "the database is behind it (listing the pending migrations) or ahead")
    group.addoption("--mlflowdb-expect-revision", default=None, metavar="REVISION",
                    help="like --mlflowdb-expect-mlflow, with an alembic revision")
    group.addoption("--mlflowdb-no-builtin", action="store_true", default=False,
                    help="run only your own checks, not the built-in suite (connectivity.connect "
                         "still runs, so an unreachable target fails the run)")
    group.addoption("--mlflowdb-list-checks", action="store_true", default=False,
                    help="list the built-in checks with their thresholds and exit")
    parser.addini("mlflowdb_uris", "databases to audit, one per line", type="linelist")
    parser.addini("mlflowdb_ephemeral", "kind of throwaway server (auto, container, wheel, "
                  "path) for --mlflowdb-ephemeral and the mlflowdb_server fixture", default="")
    parser.addini("mlflowdb_reports", "report files to write (.json, .md)", type="linelist")
    parser.addini("mlflowdb_fail_on", "error or warning", default="")
    parser.addini("mlflowdb_connect_timeout", "connect timeout per target", default="")
    parser.addini("mlflowdb_statement_timeout", "statement_timeout of the session", default="")
    parser.addini("mlflowdb_lock_timeout", "lock_timeout of the session", default="")
    parser.addini("mlflowdb_thresholds", "threshold overrides, NAME=VALUE per line",
                  type="linelist")
    parser.addini("mlflowdb_pg_bin", "directory of PostgreSQL server binaries", default="")
    parser.addini("mlflowdb_expect_mlflow", "the MLflow release about to be deployed", default="")
    parser.addini("mlflowdb_expect_revision", "the alembic revision about to be deployed",
                  default="")
    parser.addini("mlflowdb_recommended_indexes",
                  "indexes to recommend, table(column, ...) per line; -table(...) removes a "
                  "default, -foreign_keys stops asking for foreign-key indexes", type="linelist")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    register_areas(pluginmanager)


def _usage_error(message: str) -> pytest.UsageError:
    """A usage error whose message masks any password it echoes (a URI given to the wrong
    option, say)."""
    from .targets import redact_text

    return pytest.UsageError(redact_text(message))


def _threshold_registry(config: pytest.Config) -> ThresholdRegistry:
    registry = ThresholdRegistry(builtin_thresholds())
    for added in config.hook.pytest_mlflowdb_thresholds(config=config):
        for threshold in added or ():
            registry.add(threshold)
    return registry


def _expectation(config: pytest.Config) -> dict[str, str | None]:
    """The command line's expectation wins over the ini's, whichever kind each gives."""
    cli = {"expect_mlflow": config.getoption("mlflowdb_expect_mlflow"),
           "expect_revision": config.getoption("mlflowdb_expect_revision")}
    if any(cli.values()):
        return cli
    return {"expect_mlflow": config.getini("mlflowdb_expect_mlflow") or None,
            "expect_revision": config.getini("mlflowdb_expect_revision") or None}


def _source(config: pytest.Config, option: str | None, ini: str) -> str:
    """Where a setting's value came from: the command line (typed, or added by the ini's
    ``addopts`` or ``PYTEST_ADDOPTS``), ``-o`` or the ini file."""
    import os

    from .settings import ADDOPTS_IN, ENV_ADDOPTS, OVERRIDE

    if option is not None and config.getoption(option) not in (None, "", []):
        flag = "--" + option.replace("_", "-")

        def names(args: Any) -> bool:
            return any(str(a) == flag or str(a).startswith(flag + "=") for a in args)

        if names(config.invocation_params.args):
            return COMMAND_LINE
        if names(config.getini("addopts") or ()):
            return f"{ADDOPTS_IN}{config.inipath}"
        if names(os.environ.get("PYTEST_ADDOPTS", "").split()):
            return ENV_ADDOPTS
        return COMMAND_LINE
    overrides = config.getoption("override_ini", None) or []
    if any(item.partition("=")[0].strip() == ini for item in overrides):
        return OVERRIDE
    return str(config.inipath) if config.inipath else "ini"


def _ephemeral_kind(config: pytest.Config) -> str | None:
    """--mlflowdb-ephemeral=KIND wins; the bare flag takes the ini's kind, else auto."""
    from .settings import EPHEMERAL_KINDS, setting_label

    ini = (config.getini("mlflowdb_ephemeral") or "").strip()
    if ini and ini.lower() not in EPHEMERAL_KINDS:
        label = setting_label("ephemeral", _source(config, None, "mlflowdb_ephemeral"))
        raise SettingsError(f"{label}: unknown kind {ini!r}; choose one of "
                            f"{', '.join(EPHEMERAL_KINDS)}")
    given = config.getoption("mlflowdb_ephemeral")
    if given is None:
        return None
    return given or ini or "auto"


#: setting -> (dest of its option or None, its ini key)
_SETTINGS = {
    "uris": ("mlflowdb_uri", "mlflowdb_uris"),
    "ephemeral": ("mlflowdb_ephemeral", "mlflowdb_ephemeral"),
    "reports": ("mlflowdb_report", "mlflowdb_reports"),
    "fail_on": ("mlflowdb_fail_on", "mlflowdb_fail_on"),
    "connect_timeout": ("mlflowdb_connect_timeout", "mlflowdb_connect_timeout"),
    "statement_timeout": ("mlflowdb_statement_timeout", "mlflowdb_statement_timeout"),
    "lock_timeout": ("mlflowdb_lock_timeout", "mlflowdb_lock_timeout"),
    "pg_bin": ("mlflowdb_pg_bin", "mlflowdb_pg_bin"),
    "expect_mlflow": ("mlflowdb_expect_mlflow", "mlflowdb_expect_mlflow"),
    "expect_revision": ("mlflowdb_expect_revision", "mlflowdb_expect_revision"),
    "recommended_indexes": (None, "mlflowdb_recommended_indexes"),
}


def _settings(config: pytest.Config, *, unknown_thresholds_later: bool = False) -> Settings:
    """Settings from the command line and the ini, each value with where it came from."""
    def pick(option: str, ini: str) -> Any:
        value = config.getoption(option)
        return value if value not in (None, "", []) else (config.getini(ini) or None)

    sources = {name: _source(config, option, ini) for name, (option, ini) in _SETTINGS.items()}
    ini_source = _source(config, None, "mlflowdb_thresholds")
    return build_settings(
        uris=list(config.getoption("mlflowdb_uri")) or list(config.getini("mlflowdb_uris")),
        ephemeral=_ephemeral_kind(config),
        reports=list(config.getoption("mlflowdb_report"))
        or list(config.getini("mlflowdb_reports")),
        fail_on=pick("mlflowdb_fail_on", "mlflowdb_fail_on"),
        connect_timeout=pick("mlflowdb_connect_timeout", "mlflowdb_connect_timeout"),
        statement_timeout=pick("mlflowdb_statement_timeout", "mlflowdb_statement_timeout"),
        lock_timeout=pick("mlflowdb_lock_timeout", "mlflowdb_lock_timeout"),
        pg_bin=pick("mlflowdb_pg_bin", "mlflowdb_pg_bin"),
        builtin_checks=not config.getoption("mlflowdb_no_builtin"),
        threshold_assignments=[(ini_source, list(config.getini("mlflowdb_thresholds"))),
                               (_source(config, "mlflowdb_set", "mlflowdb_thresholds"),
                                list(config.getoption("mlflowdb_set")))],
        registry=_threshold_registry(config),
        **_expectation(config),
        recommended_indexes=list(config.getini("mlflowdb_recommended_indexes")),
        sources=sources,
        unknown_thresholds_later=unknown_thresholds_later,
    )


# -- list-checks -----------------------------------------------------------------------
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("mlflowdb_list_checks"):
        return None
    from .areas import import_builtin_checks

    import_builtin_checks()
    try:
        settings = _settings(config)
    except SettingsError as exc:
        raise _usage_error(str(exc)) from None
    registry, values = _threshold_registry(config), settings.thresholds
    lines = []
    for spec in sorted(REGISTRY.values(), key=lambda s: s.id):
        lines.append(f"{spec.id}: {spec.description}")
        for name in spec.thresholds:
            definition = registry.definition(name)
            lines.append(f"    {name} = {values.text(name)} ({definition.unit}; default "
                         f"{definition.default}): {definition.description}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# -- configure -------------------------------------------------------------------------
class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.audit: Any = None
        self.records: list[dict[str, Any]] = []
        self.targets: dict[str, dict[str, Any]] = {}
        self.server: Any = None
        self.document: dict[str, Any] | None = None
        self.report_error: str | None = None
        self.threshold_error: str | None = None  # found on an xdist worker after collection


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(id, thresholds=()): a pytest-mlflowdb check with a stable id"
    )
    try:  # conftest.py files below the rootdir add their thresholds during collection
        settings = _settings(config, unknown_thresholds_later=True)
    except SettingsError as exc:
        _remove_stale_reports(config, None)
        raise _usage_error(str(exc)) from None
    state = _State(settings)
    config.stash[_STATE] = state
    _remove_stale_reports(config, settings)
    from .secrecy import Scrubber

    config.pluginmanager.register(Scrubber(lambda: _secrets(config)), "mlflowdb-scrubber")
    if not settings.active:
        return
    from .audit import Audit

    _check_expectation(settings)
    state.audit = Audit(settings)
    config.pluginmanager.register(_Collector(state), "mlflowdb-collector")
    if builtin_checks_dir() is None:
        raise _usage_error("the built-in checks (pytest_mlflowdb.checks) are not installed: "
                           "reinstall pytest-mlflowdb")
    # With --mlflowdb-no-builtin only connectivity.connect is collected (_ConnectOnly)
    config.args.extend(str(path) for path in check_paths())


def _remove_stale_reports(config: pytest.Config, settings: Settings | None) -> None:
    """Remove the report files an earlier run left, before this run does anything.

    Reports are written only at the end of a run that ran checks; without this, a usage
    error, ``--collect-only`` or a crash would leave the older report at the path for a
    CI job to read as this run's. On a usage error (``settings`` is None) the paths as
    given are used, if they name report files at all.
    """
    from .report import remove_reports
    from .settings import REPORT_SUFFIXES

    if _is_worker(config) or config.getoption("help", False):
        return
    if settings is not None:
        paths = list(settings.reports)
    else:
        given = list(config.getoption("mlflowdb_report") or ()) or list(
            config.getini("mlflowdb_reports"))
        paths = [Path(p) for p in given if Path(p).suffix.lower() in REPORT_SUFFIXES]
    try:
        remove_reports(paths)
    except OSError:
        pass  # not ours to remove (permissions): the write at the end reports the problem


def _secrets(config: pytest.Config) -> tuple[str, ...]:
    """Every password this process knows: the targets' and the throwaway servers'."""
    found: tuple[str, ...] = ()
    if "pytest_mlflowdb.servers.base" in sys.modules:  # no server started: import nothing
        from .servers.base import server_secrets

        found = server_secrets()
    state = config.stash.get(_STATE, None)
    if state is not None and state.audit is not None:
        found += state.audit.secrets
    return found


def _check_expectation(settings: Settings) -> None:
    """An expected release or revision must be one the catalog knows: a usage error if not."""
    if not (settings.expect_mlflow or settings.expect_revision):
        return
    from .catalog import CatalogError, load_catalog

    catalog = load_catalog()
    try:
        if settings.expect_mlflow:
            catalog.head_for_release(settings.expect_mlflow)
        else:
            catalog.position(settings.expect_revision or "")
    except CatalogError as exc:
        from .settings import setting_label

        name = "expect_mlflow" if settings.expect_mlflow else "expect_revision"
        label = setting_label(name, settings.sources.get(name, COMMAND_LINE))
        raise _usage_error(f"{label}: {exc}") from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect the built-in check modules whatever ``python_files`` says."""
    if is_check_module(file_path):
        state = parent.config.stash.get(_STATE, None)
        patterns = parent.config.getini("python_files")
        if any(file_path.match(p) for p in patterns):
            return None  # pytest's own collector takes it (python_files = *.py, say)
        if state is not None and state.settings.active:
            connect_only = pytest_pycollect_makemodule(file_path, parent)
            return connect_only or pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``--mlflowdb-no-builtin`` the built-in modules are not collected, but one."""
    state = config.stash.get(_STATE, None)
    if (state is not None and state.settings.active and not state.settings.builtin_checks
            and collection_path.parent == builtin_checks_dir()
            and collection_path != _connect_module()):
        return True
    return None


def _connect_module() -> Path | None:
    checks_dir = builtin_checks_dir()
    return checks_dir / "connectivity.py" if checks_dir is not None else None


class _ConnectOnly(pytest.Module):
    """``checks/connectivity.py`` with only ``connectivity.connect`` in it.

    Collected with ``--mlflowdb-no-builtin``: a run of team checks alone must still fail
    when a target does not answer, in the terminal, the reports, JUnit XML and the exit
    code alike, and that needs a test item that fails.
    """

    def collect(self):
        return [node for node in super().collect()
                if getattr(node, "originalname", node.name) == "test_connect"]


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector):
    state = parent.config.stash.get(_STATE, None)
    if (module_path == _connect_module() and state is not None and state.settings.active
            and not state.settings.builtin_checks):
        return _ConnectOnly.from_parent(parent, path=module_path)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Resolve the thresholds again now that every collected conftest.py is loaded.

    ``pytest_configure`` runs before collection loads the conftest.py files below the
    rootdir, so their ``pytest_mlflowdb_thresholds`` hooks were not heard yet: their
    thresholds get their defaults now, ``--mlflowdb-set`` values for them are checked
    now, and a name that no hook defines is a usage error (one line, exit code 4).
    """
    import dataclasses

    from .settings import resolve_thresholds

    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    try:
        values = resolve_thresholds(state.settings.threshold_assignments,
                                    _threshold_registry(config))
    except SettingsError as exc:
        if _is_worker(config):  # xdist cannot take a usage error from a worker: fail each test
            state.threshold_error = _usage_error(str(exc)).args[0]
            return
        raise _usage_error(str(exc)) from None
    state.settings = dataclasses.replace(state.settings, thresholds=values)
    if state.audit is not None:
        state.audit.settings = state.settings


def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash.get(_STATE, None)
    if state is not None and state.threshold_error:
        pytest.fail(state.threshold_error, pytrace=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if state.audit is not None:
        state.audit.close()
    if state.server is not None:
        state.server.stop()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "_mlflowdb_key" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash.get(_STATE, None)
    if state is None or state.audit is None:
        return
    keys = state.audit.keys()
    metafunc.parametrize("_mlflowdb_key", keys, ids=[k.id for k in keys], indirect=True,
                         scope="session")


# -- fixtures --------------------------------------------------------------------------
_NO_TARGET = "no MLflow database to audit: give --mlflowdb-uri or --mlflowdb-ephemeral"


@pytest.fixture(scope="session")
def _mlflowdb_key(request: pytest.FixtureRequest):
    """The key of the current target; parametrized over the targets when active."""
    key = getattr(request, "param", None)
    if key is None or _state(request.config).audit is None:
        pytest.skip(_NO_TARGET)
    return key


@pytest.fixture(scope="session")
def mlflowdb_target(request: pytest.FixtureRequest, _mlflowdb_key):
    """The target of the current check (parametrized: each check runs once per target).

    A :class:`pytest_mlflowdb.targets.Target`; ``.id`` is ``host:port/db`` and
    ``.redacted`` the URI without its password. Skips when no target was given.
    """
    from .audit import TargetUnavailable

    try:
        return _state(request.config).audit.target(_mlflowdb_key.key)
    except TargetUnavailable as exc:
        _unreachable(request, _mlflowdb_key, exc)


@pytest.fixture(scope="session")
def mlflowdb_connection(request: pytest.FixtureRequest, _mlflowdb_key):
    """The attempt to open the current target's read-only session (never skips).

    Has ``.database`` (or None), ``.error`` (one line, no password), ``.seconds``.
    """
    return _state(request.config).audit.attempt(_mlflowdb_key.key, _mlflowdb_key.id)


@pytest.fixture(scope="session")
def mlflowdb(request: pytest.FixtureRequest, _mlflowdb_key):
    """The read-only :class:`pytest_mlflowdb.database.Database` of the current target.

    ``rows(sql)``, ``row(sql)``, ``value(sql)``, ``setting(name)`` and ``preflight``
    (server version, role, memberships, extensions, MLflow schema and revision). Skips
    as "target unreachable" when the target cannot be reached.
    """
    from .audit import TargetUnavailable

    try:
        return _state(request.config).audit.database(_mlflowdb_key.key, _mlflowdb_key.id)
    except TargetUnavailable as exc:
        _unreachable(request, _mlflowdb_key, exc)


def _unreachable(request: pytest.FixtureRequest, key: Any, exc: TargetUnavailable) -> None:
    """Skip a check whose target cannot be reached, or fail it when nothing else would.

    ``connectivity.connect`` is always collected (even with ``--mlflowdb-no-builtin``)
    and fails for an unreachable target, so the other checks skip as "target
    unreachable". When the run deselected it (``-k``, ``--deselect``), the check fails
    instead: an unreachable target must never leave a green run.
    """
    reason = exc.skip_reason
    connects = {_target_key_of(item) for item in request.session.items
                if _check_id(item) == CONNECT}
    if key in connects:
        pytest.skip(reason)
    pytest.fail(reason, pytrace=False)


CONNECT = "connectivity.connect"


@pytest.fixture(scope="session")
def mlflowdb_thresholds(request: pytest.FixtureRequest):
    """The thresholds in force (defaults, ini ``mlflowdb_thresholds``, ``--mlflowdb-set``).

    A mapping of name to value: sizes in bytes, durations in seconds, percents 0-100;
    ``.text(name)`` gives the value back in the grammar.
    """
    return _state(request.config).settings.thresholds


@pytest.fixture(scope="session")
def mlflowdb_settings(request: pytest.FixtureRequest) -> Settings:
    """All ``--mlflowdb-*`` settings, validated and frozen (no passwords in its repr)."""
    return _state(request.config).settings


@pytest.fixture
def mlflowdb_findings(request: pytest.FixtureRequest) -> Findings:
    """Record what a check found: ``ok``, ``info``, ``warn``, ``fail`` or ``limit``.

    The check's outcome is its worst finding; findings appear in every report.
    """
    findings = Findings()
    request.node.stash[_FINDINGS] = findings
    return findings


_FINDINGS = pytest.StashKey[Findings]()


@pytest.fixture(scope="session")
def mlflowdb_server(request: pytest.FixtureRequest):
    """A throwaway PostgreSQL server for this test session (works without any target).

    Kind from ``--mlflowdb-ephemeral`` or the ``mlflowdb_ephemeral`` ini, else ``auto``
    (container, then wheel, then PATH binaries). Stopped and removed at the end.
    """
    from .servers import ServerError, start_server

    state = _state(request.config)
    if state.server is None:
        settings = state.settings
        kind = settings.ephemeral or (request.config.getini("mlflowdb_ephemeral").strip()
                                      or "auto")
        try:
            state.server = start_server(kind, settings.pg_bin)
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
    return state.server


@pytest.fixture(scope="session")
def mlflowdb_database_factory(mlflowdb_server):
    """Make fresh databases on ``mlflowdb_server``: ``create(mlflow=True, revision="heads")``.

    Returns the new database's URI. With ``mlflow=True`` the database gets a genuine
    MLflow schema from MLflow's own migrations (made once per revision, then copied);
    ``source="catalog"`` makes it from the shipped catalog's DDL instead (no MLflow
    needed; ``revision="heads"`` then means the catalog's head). Every database made is
    dropped at the end of the session.
    """
    from .mlflow_schema import apply_catalog_schema, apply_mlflow_schema
    from .servers import SCRATCH_PREFIX

    made: list[str] = []
    templates: dict[tuple[str, str], str] = {}
    counter = iter(range(1, 1_000_000))

    def create(mlflow: bool = True, revision: str = "heads", source: str = "migrations") -> str:
        if source not in ("migrations", "catalog"):
            raise ValueError("source must be 'migrations' or 'catalog'")
        name = f"{SCRATCH_PREFIX}{next(counter)}"
        template = None
        if mlflow:
            if (source, revision) not in templates:
                template_name = f"{SCRATCH_PREFIX}tpl_{len(templates) + 1}"
                uri = mlflowdb_server.create_database(template_name)
                made.append(template_name)
                if source == "catalog":
                    apply_catalog_schema(uri, None if revision == "heads" else revision)
                else:
                    apply_mlflow_schema(uri, revision)
                templates[(source, revision)] = template_name
            template = templates[(source, revision)]
        uri = mlflowdb_server.create_database(name, template=template)
        made.append(name)
        return uri

    yield create
    for name in reversed(made):
        try:
            mlflowdb_server.drop_database(name)
        except Exception:  # the server may already be gone; it is removed anyway
            pass


# -- outcomes --------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    reason = None
    try:
        result = yield
    except RuntimeError as exc:
        from .database import DatabaseError

        if not isinstance(exc, DatabaseError):
            raise
        reason = str(exc)
    if reason is not None:  # one line, no traceback: the target stopped answering, say
        pytest.fail(_secret_free(item.config, reason), pytrace=False)
    findings = item.stash.get(_FINDINGS, None)
    if findings is not None and findings.severity in _failing_severities(item.config):
        item.stash[_FAILED_BY_FINDINGS] = True
        pytest.fail(_secret_free(item.config, _failure_text(findings)), pytrace=False)
    return result


def _failing_severities(config: pytest.Config) -> tuple[str, ...]:
    """Findings that fail the test itself, so pytest, JUnit XML and the exit code agree.

    With ``--mlflowdb-fail-on=warning`` a warned check is a failed test in pytest's
    accounting (a JUnit failure); its report record keeps the outcome ``warned``.
    """
    state = config.stash.get(_STATE, None)
    if state is not None and state.settings.fail_on == "warning":
        return ("failure", "warning")
    return ("failure",)


_FAILED_BY_FINDINGS = pytest.StashKey[bool]()


def _failure_text(findings: Findings, limit: int = 60) -> str:
    """The one-line summary, then every finding that is not plain ok, one per line."""
    lines = [findings.summary()]
    notable = [f for f in findings
               if f.severity != "ok" and f"{f.object}: {f.message}" not in lines[0]]
    if notable:
        for f in notable[:limit]:
            lines.append(f"  {f.severity:<7} {f.object}: {f.message}")
        if len(notable) > limit:
            lines.append(f"  ... and {len(notable) - limit} more in the report")
    return "\n".join(lines)


def _is_check(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or bool(
        {"_mlflowdb_key"} & set(item.fixturenames)
    )


def _check_id(item: pytest.Item) -> str:
    marker = item.get_closest_marker(MARKER)
    if marker and marker.args:
        return str(marker.args[0])
    module = Path(str(item.path)).stem.removeprefix("test_")
    name = getattr(item, "originalname", item.name).removeprefix("test_")
    return f"custom.{module}.{name}"


def _secret_free(config: pytest.Config, text: str) -> str:
    from .targets import scrub

    state = config.stash.get(_STATE, None)
    if state is None or state.audit is None:
        return text
    return scrub(text, state.audit.secrets)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    state = item.config.stash.get(_STATE, None)
    if state is None or state.audit is None or not _is_check(item):
        return report
    # One record per outcome pytest counts: the call (or a setup that did not pass), and
    # a teardown error as a record of its own, as pytest counts "1 passed, 1 error".
    teardown_error = call.when == "teardown" and report.failed
    decisive = call.when == "call" or (call.when == "setup" and not report.passed)
    key = _target_key_of(item)
    if not (decisive or teardown_error):
        # who the item is, for the record of a crash the controller may have to write
        report.mlflowdb_check = {"id": _check_id(item), "target": key.id if key else None}
        return report
    record = _record(item, call, report)
    report.mlflowdb = record
    if decisive:
        item.user_properties.append(("mlflowdb.check", record["id"]))
        item.user_properties.append(("mlflowdb.outcome", record["outcome"]))
        for finding in record["findings"]:
            item.user_properties.append(("mlflowdb.finding", json.dumps(finding, default=str)))
    if key is not None:
        report.mlflowdb_target = _secret_free_record(
            item.config, state.audit.target_record(key.key, key.id)
        )
    return report


def _target_key_of(item: pytest.Item):
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        return callspec.params.get("_mlflowdb_key")
    return None


def _secret_free_record(config: pytest.Config, record: dict[str, Any]) -> dict[str, Any]:
    from .report import scrub_all

    state = _state(config)
    return scrub_all(record, state.audit.secrets)


def _record(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport):
    findings = item.stash.get(_FINDINGS, None) or Findings()
    key = _target_key_of(item)
    if call.when == "teardown":  # the call's record already holds the findings
        findings = Findings()
    if report.skipped:
        outcome = "skipped"
        longrepr = report.longrepr
        message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        message = message.removeprefix("Skipped: ")
    elif report.passed:
        outcome = findings.outcome
        message = findings.summary()
    else:
        by_findings = item.stash.get(_FAILED_BY_FINDINGS, False)
        assertion = call.excinfo is not None and call.excinfo.errisinstance(
            (AssertionError, pytest.fail.Exception)
        )
        outcome = "failed" if (call.when == "call" and (by_findings or assertion)) else "error"
        if by_findings:
            outcome = findings.outcome  # "warned" stays warned with --mlflowdb-fail-on=warning
            message = findings.summary()
        elif call.excinfo is not None and call.excinfo.errisinstance(pytest.fail.Exception):
            message = _one_line(str(call.excinfo.value))
        elif call.excinfo is not None:
            message = _one_line(call.excinfo.exconly())
        else:
            message = "failed"
        if call.when == "teardown":
            message = f"error in teardown: {message}"
    return {
        "id": _check_id(item),
        "nodeid": item.nodeid,
        "target": key.id if key is not None else None,
        "outcome": outcome,
        "severity": findings.severity if len(findings) else (
            "failure" if outcome in ("failed", "error") else "ok"
        ),
        "message": _secret_free(item.config, message),
        "findings": [
            {k: (_secret_free(item.config, v) if isinstance(v, str) else v)
             for k, v in f.to_json().items()}
            for f in findings
        ],
        "duration_s": round(report.duration, 4),
    }


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:500] if lines else ""


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    record = getattr(report, "mlflowdb", None)
    if not record:
        return None
    if record["outcome"] == "warned" and report.failed:  # --mlflowdb-fail-on=warning
        return "failed", "W", ("WARNED", {"red": True})
    if record["outcome"] == "warned":
        return "warned", "W", ("WARNED", {"yellow": True})
    if record["outcome"] == "error" and report.when == "call":
        return "error", "E", ("ERROR", {"red": True})
    return None


class _Collector:
    """Gathers check records on the controller, also those relayed by xdist workers.

    A worker that dies mid-check sends nothing: xdist reports the item as failed with
    ``when == "???"``, and the collector writes its record from what the item's setup
    report said (or, failing that, from the node id).
    """

    def __init__(self, state: _State) -> None:
        self.state = state
        self.checks: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "mlflowdb_check", None):
            self.checks[report.nodeid] = report.mlflowdb_check
        record = getattr(report, "mlflowdb", None)
        if not record and report.when == "???" and report.failed:
            record = self._crash_record(report)
        if not record:
            return
        self.state.records.append(record)
        target = getattr(report, "mlflowdb_target", None)
        if target:
            known = self.state.targets.get(target["id"])
            if known is None or (not known.get("server_version") and target.get("server_version")):
                self.state.targets[target["id"]] = target


    def _crash_record(self, report: pytest.TestReport) -> dict[str, Any]:
        from .targets import scrub

        known = self.checks.get(report.nodeid) or _check_of_nodeid(
            report.nodeid, [k.id for k in self.state.audit.keys()])
        message = _one_line(str(report.longrepr))
        return {
            "id": known["id"], "nodeid": report.nodeid, "target": known["target"],
            "outcome": "failed", "severity": "failure",
            "message": scrub(message, self.state.audit.secrets),
            "findings": [], "duration_s": round(report.duration, 4),
        }


def _check_of_nodeid(nodeid: str, target_ids: list[str]) -> dict[str, Any]:
    """A check's id and target from its node id alone (the marker is not known here)."""
    path, _, name = nodeid.partition("::")
    name, _, params = name.partition("[")
    params = params.removesuffix("]")
    module = Path(path).stem.removeprefix("test_")
    target = next((t for t in target_ids if params == t or params.endswith(f"-{t}")
                   or params.startswith(f"{t}-")), None)
    return {"id": f"custom.{module}.{name.removeprefix('test_')}", "target": target}


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None or state.audit is None or _is_worker(config):
        return
    if config.option.collectonly or not state.records:
        return  # no check ran: no report (and the stale one went at configure)
    from .report import build_report, scrub_all, write_reports

    order = {k.id: i for i, k in enumerate(state.audit.keys())}
    targets = sorted(state.targets.values(), key=lambda t: order.get(t["id"], len(order)))
    for key in state.audit.keys():
        if key.id not in state.targets:
            targets.append(state.audit.target_record(key.key, key.id))
    records = sorted(state.records, key=lambda r: (order.get(r["target"], len(order)), r["id"]))
    document = build_report(targets, records, state.audit.secrets,
                            fail_on=state.settings.fail_on)
    config.hook.pytest_mlflowdb_report(report=document, config=config)
    state.document = scrub_all(document, state.audit.secrets)  # what a hook added, too
    try:
        write_reports(state.document, state.settings.reports)
    except OSError as exc:
        state.report_error = f"could not write the report: {exc.strerror or exc} " \
                             f"({exc.filename or ''})"
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    warned = state.document["summary"].get("warned", 0)
    if state.settings.fail_on == "warning" and warned and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _table_width(terminalreporter) -> int | None:
    """The terminal's width; None (no limit) in a log without a terminal, unless the
    user set ``COLUMNS`` (pytest's own width then honours it)."""
    import os

    writer = terminalreporter._tw
    stream = getattr(writer, "_file", None)
    if "COLUMNS" in os.environ or (stream is not None and getattr(stream, "isatty", bool)()):
        return writer.fullwidth
    return None


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.document is None or _is_worker(config):
        return
    from .report import terminal_tables

    terminalreporter.section("mlflowdb audit")
    for block in terminal_tables(state.document, _table_width(terminalreporter)):
        terminalreporter.write_line(block)
        terminalreporter.write_line("")
    if state.report_error:
        terminalreporter.write_line(f"mlflowdb: {state.report_error}", red=True)
    else:
        for path in state.settings.reports:
            terminalreporter.write_line(f"mlflowdb report written to {path}")
    if state.settings.fail_on == "warning" and state.document["summary"].get("warned"):
        terminalreporter.write_line("mlflowdb: warned checks fail this run "
                                    f"({state.settings.describe_source('fail_on')})")
