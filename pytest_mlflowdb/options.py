"""Settings read from the ``--mlflowdb-*`` flags and ``mlflowdb_*`` ini keys
(declared in :mod:`pytest_mlflowdb.flags`).

:func:`read_settings`
resolves them once per run, each value with where it came from (the command line,
``addopts``, ``PYTEST_ADDOPTS``, ``-o`` or the ini file), so an error can say which one
holds the bad value.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

from .areas import builtin_thresholds, declared_options, import_builtin_checks
from .flags import OPTIONS
from .option_spec import Option
from .registry import REGISTRY
from .settings import (
    ADDOPTS_IN,
    COMMAND_LINE,
    ENV_ADDOPTS,
    OVERRIDE,
    Settings,
    SettingsError,
    build_settings,
    setting_label,
)
from .text import first_line
from .thresholds import ThresholdRegistry

if TYPE_CHECKING:
    from .grants import Placement
    from .targets import Target


def _by_setting() -> dict[str, Option]:
    """Every option by setting: the core table's, then those the areas declare."""
    return {option.setting: option for option in OPTIONS + declared_options()}


def settings_of(config: pytest.Config) -> Settings:
    """The run's settings: those read at configure time, else (a dormant run whose test
    asks for a fixture such as ``mlflowdb_server``) read now, once."""
    from .keys import SETTINGS

    settings = config.stash.get(SETTINGS, None)
    if settings is None:
        try:
            settings = config.stash[SETTINGS] = read_settings(config)
        except SettingsError as exc:
            raise usage_error(str(exc)) from None
    return settings


def usage_error(message: str) -> pytest.UsageError:
    """A usage error whose message masks any password it echoes (a URI given to the wrong
    option, say)."""
    from .targets import redact_text

    return pytest.UsageError(redact_text(message))


def threshold_registry(config: pytest.Config) -> ThresholdRegistry:
    """The built-in areas' thresholds, then those every ``pytest_mlflowdb_thresholds``
    implementation adds (conftest.py files heard so far)."""
    registry = ThresholdRegistry(builtin_thresholds())
    for added in config.hook.pytest_mlflowdb_thresholds(config=config):
        for threshold in added or ():
            registry.add(threshold)
    return registry


def source_of(config: pytest.Config, setting: str) -> str:
    """Where a setting's value came from: the command line (typed, or added by the ini's
    ``addopts`` or ``PYTEST_ADDOPTS``), ``-o`` or the ini file."""
    option = _by_setting()[setting]
    if option.dest is not None and config.getoption(option.dest) not in (None, "", []):
        flag = option.flag or ""

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
    if any(item.partition("=")[0].strip() == option.ini for item in overrides):
        return OVERRIDE
    return str(config.inipath) if config.inipath else "ini"


def _ini_source(config: pytest.Config, setting: str) -> str:
    """Where the ini's value of ``setting`` came from, whatever the command line says."""
    ini = _by_setting()[setting].ini
    overrides = config.getoption("override_ini", None) or []
    if any(item.partition("=")[0].strip() == ini for item in overrides):
        return OVERRIDE
    return str(config.inipath) if config.inipath else "ini"


def _ini_kind(config: pytest.Config) -> str:
    """The ``mlflowdb_ephemeral`` ini's kind of throwaway server, validated ("" if none)."""
    from .settings import CHOICES

    ini = (config.getini("mlflowdb_ephemeral") or "").strip()
    if ini and ini.lower() not in CHOICES:
        label = setting_label("ephemeral", _ini_source(config, "ephemeral"))
        raise SettingsError(f"{label}: unknown kind {ini!r}; choose one of "
                            f"{', '.join(CHOICES)}")
    return ini


def _ephemeral_kind(config: pytest.Config, ini: str) -> str | None:
    """--mlflowdb-ephemeral=KIND as given (settings validates it); the bare flag takes the
    ini's kind, else auto."""
    given = config.getoption("mlflowdb_ephemeral")
    if given is None:
        return None
    if str(given):
        return str(given)
    from .settings import kind_of_server

    return kind_of_server(ini)


def _expectation(config: pytest.Config) -> dict[str, str | None]:
    """The command line's expectation wins over the ini's, whichever kind each gives."""
    cli = {"expect_mlflow": config.getoption("mlflowdb_expect_mlflow"),
           "expect_revision": config.getoption("mlflowdb_expect_revision")}
    if any(cli.values()):
        return cli
    return {"expect_mlflow": config.getini("mlflowdb_expect_mlflow") or None,
            "expect_revision": config.getini("mlflowdb_expect_revision") or None}


def _pick(config: pytest.Config, setting: str) -> Any:
    """The command line's value, else the ini's (lists: the whole list of one of them)."""
    option = _by_setting()[setting]
    value = config.getoption(option.dest) if option.dest else None
    if value not in (None, "", []):
        return list(value) if isinstance(value, list) else value
    ini = config.getini(option.ini) if option.ini else None
    if isinstance(ini, list):
        return list(ini)
    return ini or None


_SOURCED = ("uris", "uri_file", "ephemeral", "reports", "fail_on", "connect_timeout",
            "statement_timeout", "lock_timeout", "concurrency", "pg_bin", "expect_mlflow",
            "expect_revision")


def read_settings(config: pytest.Config, *, unknown_thresholds_later: bool = False,
                  report_suffixes: tuple[str, ...] | None = None) -> Settings:
    """Settings from the command line and the ini, each value with where it came from."""
    from .settings import REPORT_SUFFIXES

    sources = {name: source_of(config, name) for name in _SOURCED}
    area_options = _area_options(config, sources)
    ini_kind = _ini_kind(config)
    return build_settings(
        uris=_pick(config, "uris") or [],
        uri_file=_uri_file(config, sources["uri_file"]),
        ephemeral=_ephemeral_kind(config, ini_kind),
        server_kind=ini_kind,
        reports=_pick(config, "reports") or [],
        fail_on=_pick(config, "fail_on"),
        connect_timeout=_pick(config, "connect_timeout"),
        statement_timeout=_pick(config, "statement_timeout"),
        lock_timeout=_pick(config, "lock_timeout"),
        concurrency=_pick(config, "concurrency"),
        pg_bin=_pick(config, "pg_bin"),
        builtin_checks=not config.getoption("mlflowdb_no_builtin"),
        threshold_assignments=[
            (_ini_source(config, "thresholds"), list(config.getini("mlflowdb_thresholds"))),
            (source_of(config, "thresholds"), list(config.getoption("mlflowdb_thresholds")))],
        registry=threshold_registry(config),
        **_expectation(config),
        area_options=area_options,
        sources=sources,
        unknown_thresholds_later=unknown_thresholds_later,
        report_suffixes=report_suffixes or REPORT_SUFFIXES,
    )


def _uri_file(config: pytest.Config, source: str) -> str | None:
    """The fleet file's path; one named in the ini file is relative to the ini's folder."""
    given = _pick(config, "uri_file")
    if not given:
        return None
    from pathlib import Path

    path = Path(str(given).strip()).expanduser()
    if not path.is_absolute() and config.inipath is not None and source == str(config.inipath):
        path = config.inipath.parent / path
    return str(path)


def _area_options(config: pytest.Config, sources: dict[str, str]) -> dict[str, Any]:
    """The areas' options, each resolved once (command line, else ini, else its default)
    and validated; ``sources`` learns where each came from."""
    values: dict[str, Any] = {}
    for option in declared_options():
        source = sources[option.setting] = source_of(config, option.setting)
        label = setting_label(option.setting, source, names=(option.flag, option.ini))
        raw = _pick(config, option.setting)
        if raw is None:
            raw = option.default
        if option.choices and raw is not None:
            given = str(raw).strip()
            raw = given.lower()
            if raw not in option.choices:
                raise SettingsError(f"{label}: unknown value {given!r}; choose one of "
                                    f"{', '.join(option.choices)}")
        if option.parse is not None:
            try:
                raw = option.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{label}: {exc}") from None
        values[option.setting] = raw
    return values


def list_checks(config: pytest.Config) -> int:
    """``--mlflowdb-list-checks``: every built-in check with its thresholds, on stdout."""
    import_builtin_checks()
    try:
        settings = read_settings(config)
    except SettingsError as exc:
        raise usage_error(str(exc)) from None
    registry, values = threshold_registry(config), settings.thresholds
    lines = []
    for spec in sorted(REGISTRY.values(), key=lambda s: s.id):
        lines.append(f"{spec.id}: {spec.description}")
        for name in spec.thresholds:
            definition = registry.definition(name)
            lines.append(f"    {name} = {values.text(name)} ({definition.unit}; default "
                         f"{definition.default}): {definition.description}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def print_grants(config: pytest.Config) -> int:
    """``--mlflowdb-print-grants[=ROLE]``: the SQL of a dedicated read-only auditor role, on
    stdout, for each target (MLflow's schema and table owner read through a read-only
    session), or with ``public`` and a psql variable for the owner when none answers."""
    from .declarations.security import parse_app_role
    from .grants import AUDITOR, Placement, recipe

    raw = config.getoption("mlflowdb_print_grants")
    try:
        role = parse_app_role(raw) if raw else AUDITOR
        settings = read_settings(config)
    except (SettingsError, ValueError) as exc:
        raise usage_error(f"--mlflowdb-print-grants: {exc}" if isinstance(exc, ValueError)
                          else str(exc)) from None
    assert role is not None
    parts = []
    for target in settings.targets:
        place, why = _placement(target, settings)
        if place is None or not place.found:
            parts.append(f"-- {target.id}: {why or 'no MLflow tables found'}; schema public "
                         "assumed, owner of MLflow's tables left to psql's variable "
                         "mlflow_owner\n" + recipe(role, place or Placement()))
        else:
            parts.append(f"-- {target.id}: MLflow's tables in schema {place.schema}, owned "
                         f"by {place.owner}\n" + recipe(role, place))
    if not parts:
        parts.append("-- no target given (--mlflowdb-uri): schema public assumed, owner of "
                     "MLflow's tables left to psql's variable mlflow_owner\n" + recipe(role))
    sys.stdout.write("\n".join(parts))
    return 0


def _placement(target: Target, settings: Settings) -> tuple[Placement | None, str | None]:
    """MLflow's schema and owner on ``target``, through one read-only session; or why not."""
    from .database import Database
    from .probes.mlflow import placement

    db = Database(target, connect_timeout=settings.connect_timeout,
                  statement_timeout=settings.statement_timeout,
                  lock_timeout=settings.lock_timeout)
    try:
        return placement(db.connect()), None
    except Exception as exc:  # DatabaseError, a psycopg error: one line, no password
        line = first_line(exc)
        return None, f"not reached ({target.scrub(line)})"
    finally:
        db.close()


def check_expectation(settings: Settings) -> None:
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
        name = "expect_mlflow" if settings.expect_mlflow else "expect_revision"
        label = setting_label(name, settings.sources.get(name, COMMAND_LINE))
        raise usage_error(f"{label}: {exc}") from None
