"""The plugin's wiring: options, hook specs, the audit session object and the fixtures.

Dormant unless ``--mlflowdb-uri``, ``--mlflowdb-ephemeral`` or the ``mlflowdb_uris`` ini
setting is given: then it collects nothing extra, parametrizes nothing and imports
nothing heavy (psycopg, tabulate and testcontainers load only when active). When active,
an :class:`~pytest_mlflowdb.run.session.AuditSession` is registered at configure time and
holds the run's state and hooks. The layers are described in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import sys

import pytest

from pytest_mlflowdb.config.areas import builtin_checks_dir, check_paths, register_areas
from pytest_mlflowdb.config.read import add_options, anything_given
from pytest_mlflowdb.keys import LIVE_RUNS, MARKER
from pytest_mlflowdb.run import hookspecs
from pytest_mlflowdb.run.fixtures import (  # noqa: F401 - fixtures are found in the plugin's namespace
    _mlflowdb_janitor,
    _mlflowdb_key,
    mlflowdb,
    mlflowdb_connection,
    mlflowdb_database_factory,
    mlflowdb_findings,
    mlflowdb_server,
    mlflowdb_settings,
    mlflowdb_target,
    mlflowdb_thresholds,
)

SESSION_NAME = "mlflowdb-session"
# keeps each run's report in --mlflowdb-history (a plugin: reports are made on the
# controller, while checks run on workers); --mlflowdb-nagios wraps the whole run; under
# xdist each target's checks go to one worker
pytest_plugins = ("pytest_mlflowdb.size.history", "pytest_mlflowdb.outputs.nagios",
                  "pytest_mlflowdb.run.grouping")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    register_areas(pluginmanager)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("mlflowdb_print_grants") is not None:
        from pytest_mlflowdb.run.commands import print_grants

        return print_grants(config)
    if not config.getoption("mlflowdb_list_checks"):
        return None
    from pytest_mlflowdb.run.commands import list_checks

    return list_checks(config)


def pytest_configure(config: pytest.Config) -> None:
    LIVE_RUNS.add(id(config))
    from pytest_mlflowdb.run.secrecy import Scrubber, mask_debug_log

    config.addinivalue_line(
        "markers", f"{MARKER}(id, thresholds=()): a pytest-mlflowdb check with a stable id"
    )
    config.addinivalue_line("markers", "slow: a costly check or test (restores, dumps, "
                            "full scans); deselect with -m 'not slow'")
    config.pluginmanager.register(Scrubber(lambda: _secrets(config)), "mlflowdb-scrubber")
    if config.getoption("debug", None):
        mask_debug_log(config, lambda: _secrets(config))
    if not anything_given(config):  # dormant: no target, no report, nothing to read
        return
    from pytest_mlflowdb.config.read import read_settings, usage_error
    from pytest_mlflowdb.config.validate import SettingsError
    from pytest_mlflowdb.keys import SESSION, SETTINGS
    from pytest_mlflowdb.outputs import collect_outputs
    from pytest_mlflowdb.run.commands import check_expectation
    from pytest_mlflowdb.run.session import AuditSession

    outputs = collect_outputs(config)
    try:  # conftest.py files below the rootdir add their thresholds during collection
        settings = read_settings(config, unknown_thresholds_later=True,
                                 report_suffixes=outputs.suffixes)
    except SettingsError as exc:
        raise usage_error(str(exc)) from None
    config.stash[SETTINGS] = settings
    if not hasattr(config, "workerinput"):
        from pytest_mlflowdb.outputs.report import foreign_report

        foreign = foreign_report(settings.reports, outputs)
        if foreign:
            raise usage_error(f"--mlflowdb-report: {foreign}")
    if not settings.active:
        return
    check_expectation(settings)
    session = AuditSession(config, settings, outputs)
    config.stash[SESSION] = session
    import importlib.util

    if importlib.util.find_spec("pytest_html") is not None:  # its rows get the findings
        from pytest_mlflowdb.outputs import html_extras

        config.pluginmanager.register(html_extras, "mlflowdb-html-extras")
    config.pluginmanager.register(session, SESSION_NAME)
    if builtin_checks_dir() is None:
        raise usage_error("the built-in checks (pytest_mlflowdb.checks) are not installed: "
                          "reinstall pytest-mlflowdb")
    # With --mlflowdb-no-builtin only connectivity.connect is collected (_ConnectOnly)
    config.args.extend(str(path) for path in check_paths())


def _secrets(config: pytest.Config) -> tuple[str, ...]:
    """Every password this process knows: the targets' and the throwaway servers'. Asked
    for every test report: a dormant plugin that started no server imports nothing."""
    found: tuple[str, ...] = ()
    if "pytest_mlflowdb.servers.base" in sys.modules:
        from pytest_mlflowdb.servers.base import server_secrets

        found = server_secrets()
    if "pytest_mlflowdb.run.session" in sys.modules:  # an audit session, or a fixture's lookup
        from pytest_mlflowdb.keys import SESSION

        session = config.stash.get(SESSION, None)
        if session is not None:
            found += session.secrets
    return found


def pytest_unconfigure(config: pytest.Config) -> None:
    LIVE_RUNS.discard(id(config))
    if "pytest_mlflowdb.run.session" not in sys.modules:  # dormant: no session to close
        return
    from pytest_mlflowdb.keys import SESSION

    session = config.stash.get(SESSION, None)
    if session is not None:
        session.close()
