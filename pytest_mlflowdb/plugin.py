"""pytest hooks: options, fixtures, outcome mapping and the summary. No SQL here.

Dormant unless ``--mlflowdb-uri``, ``--mlflowdb-ephemeral`` or the ``mlflowdb_uris`` ini
setting is given: then it collects nothing extra, parametrizes nothing and imports
nothing heavy (psycopg, tabulate and testcontainers load only when active).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .findings import Findings
from .registry import MARKER, REGISTRY
from .settings import Settings, SettingsError, build_settings
from .thresholds import BUILTIN, ThresholdRegistry


def _checks_dir() -> Path:
    # Found through the import system: in a wheel it is pytest_mlflowdb/checks, in an
    # editable install it is the repository's top-level checks/ folder.
    spec = importlib.util.find_spec("pytest_mlflowdb.checks")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]).resolve()


CHECKS_DIR = _checks_dir()
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
                    help="run only your own checks, not the built-in suite")
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


def _usage_error(message: str) -> pytest.UsageError:
    """A usage error whose message masks any password it echoes (a URI given to the wrong
    option, say)."""
    from .targets import redact_text

    return pytest.UsageError(redact_text(message))


def _threshold_registry(config: pytest.Config) -> ThresholdRegistry:
    registry = ThresholdRegistry(BUILTIN)
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


def _ephemeral_kind(config: pytest.Config) -> str | None:
    """--mlflowdb-ephemeral=KIND wins; the bare flag takes the ini's kind, else auto."""
    from .settings import EPHEMERAL_KINDS

    ini = (config.getini("mlflowdb_ephemeral") or "").strip()
    if ini and ini.lower() not in EPHEMERAL_KINDS:
        raise SettingsError(f"mlflowdb_ephemeral: unknown kind {ini!r}; choose one of "
                            f"{', '.join(EPHEMERAL_KINDS)}")
    given = config.getoption("mlflowdb_ephemeral")
    if given is None:
        return None
    return given or ini or "auto"


def _settings(config: pytest.Config) -> Settings:
    def pick(option: str, ini: str) -> Any:
        value = config.getoption(option)
        return value if value not in (None, "", []) else (config.getini(ini) or None)

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
        threshold_assignments=list(config.getini("mlflowdb_thresholds"))
        + list(config.getoption("mlflowdb_set")),
        registry=_threshold_registry(config),
        **_expectation(config),
        recommended_indexes=list(config.getini("mlflowdb_recommended_indexes")),
    )


# -- list-checks -----------------------------------------------------------------------
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("mlflowdb_list_checks"):
        return None
    import importlib
    import pkgutil

    from . import checks

    for module in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{checks.__name__}.{module.name}")
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(id, thresholds=()): a pytest-mlflowdb check with a stable id"
    )
    try:
        settings = _settings(config)
    except SettingsError as exc:
        raise _usage_error(str(exc)) from None
    state = _State(settings)
    config.stash[_STATE] = state
    if not settings.active:
        return
    from .audit import Audit

    _check_expectation(settings)
    state.audit = Audit(settings)
    config.pluginmanager.register(_Collector(state), "mlflowdb-collector")
    if settings.builtin_checks:
        config.args.append(str(CHECKS_DIR))


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
        option = "--mlflowdb-expect-mlflow" if settings.expect_mlflow else (
            "--mlflowdb-expect-revision")
        raise _usage_error(f"{option}: {exc}") from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect the built-in check modules whatever ``python_files`` says."""
    if (file_path.suffix == ".py" and file_path.parent == CHECKS_DIR
            and not file_path.name.startswith("_")):
        state = parent.config.stash.get(_STATE, None)
        patterns = parent.config.getini("python_files")
        if any(file_path.match(p) for p in patterns):
            return None  # pytest's own collector takes it (python_files = *.py, say)
        if state is not None and state.settings.active:
            return pytest.Module.from_parent(parent, path=file_path)
    return None


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
        pytest.skip(f"target unreachable: {exc}")


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
        pytest.skip(f"target unreachable: {exc}")


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
    if findings is not None and findings.severity == "failure":
        item.stash[_FAILED_BY_FINDINGS] = True
        pytest.fail(_secret_free(item.config, _failure_text(findings)), pytrace=False)
    return result


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
    decisive = call.when == "call" or (call.when == "setup" and not report.passed)
    if not decisive:
        return report
    record = _record(item, call, report)
    report.mlflowdb = record
    item.user_properties.append(("mlflowdb.check", record["id"]))
    item.user_properties.append(("mlflowdb.outcome", record["outcome"]))
    for finding in record["findings"]:
        item.user_properties.append(("mlflowdb.finding", json.dumps(finding, default=str)))
    key = _target_key_of(item)
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
            message = findings.summary()
        elif call.excinfo is not None:
            message = _one_line(call.excinfo.exconly())
        else:
            message = "failed"
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
    if record["outcome"] == "warned":
        return "warned", "W", ("WARNED", {"yellow": True})
    if record["outcome"] == "error" and report.when == "call":
        return "error", "E", ("ERROR", {"red": True})
    return None


class _Collector:
    """Gathers check records on the controller, also those relayed by xdist workers."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "mlflowdb", None)
        if not record:
            return
        self.state.records.append(record)
        target = getattr(report, "mlflowdb_target", None)
        if target:
            known = self.state.targets.get(target["id"])
            if known is None or (not known.get("server_version") and target.get("server_version")):
                self.state.targets[target["id"]] = target


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None or state.audit is None or _is_worker(config):
        return
    from .report import build_report, scrub_all, write_reports

    order = {k.id: i for i, k in enumerate(state.audit.keys())}
    targets = sorted(state.targets.values(), key=lambda t: order.get(t["id"], len(order)))
    for key in state.audit.keys():
        if key.id not in state.targets:
            targets.append(state.audit.target_record(key.key, key.id))
    records = sorted(state.records, key=lambda r: (order.get(r["target"], len(order)), r["id"]))
    document = build_report(targets, records, state.audit.secrets)
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


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.document is None or _is_worker(config):
        return
    from .report import terminal_tables

    terminalreporter.section("mlflowdb audit")
    for block in terminal_tables(state.document, terminalreporter._tw.fullwidth):
        terminalreporter.write_line(block)
        terminalreporter.write_line("")
    if state.report_error:
        terminalreporter.write_line(f"mlflowdb: {state.report_error}", red=True)
    else:
        for path in state.settings.reports:
            terminalreporter.write_line(f"mlflowdb report written to {path}")
    if state.settings.fail_on == "warning" and state.document["summary"].get("warned"):
        terminalreporter.write_line("mlflowdb: warned checks fail this run (--mlflowdb-fail-on="
                                    "warning)")
