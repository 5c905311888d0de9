"""Reading with its source: the plugin's flags and ini keys added to pytest, whether a run
gives any, and their values read once per run, each with where it came from (the command
line, ``addopts``, ``PYTEST_ADDOPTS``, ``-o`` or the ini file), so an error can say which
one holds the bad value. What each setting is: ``declare.py``; checking values:
``validate.py``. Only :func:`add_options` and :func:`anything_given` run while the plugin
is dormant.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlflowdb.config.areas import (
    added_areas,
    area_declarations,
    builtin_thresholds,
    declared_options,
)
from pytest_mlflowdb.config.declare import (
    ADDOPTS_IN,
    COMMAND_LINE,
    ENV_ADDOPTS,
    OPTIONS,
    OVERRIDE,
    Option,
    SettingsError,
    setting_label,
)
from pytest_mlflowdb.config.thresholds import ThresholdRegistry

if TYPE_CHECKING:
    from pytest_mlflowdb.config.validate import Settings


def _by_setting() -> dict[str, Option]:
    """Every option by setting: the core table's, then those the areas declare."""
    return {option.setting: option for option in OPTIONS + declared_options()}


def settings_of(config: pytest.Config) -> Settings:
    """The run's settings: those read at configure time, else (a dormant run whose test
    asks for a fixture such as ``mlflowdb_server``) read now, once."""
    from pytest_mlflowdb.keys import SETTINGS

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
    from pytest_mlflowdb.config.targets import redact_text

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
    from pytest_mlflowdb.config.validate import CHOICES

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
    from pytest_mlflowdb.config.validate import kind_of_server

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


#: the core settings read in a way of their own (below); every other row of ``OPTIONS``
#: that ``build_settings`` takes is read as it is given (command line, else ini)
_READ_APART = frozenset({"uris", "uri_file", "ephemeral", "reports", "builtin_checks",
                         "thresholds", "expect_mlflow", "expect_revision"})


def read_settings(config: pytest.Config, *, unknown_thresholds_later: bool = False,
                  report_suffixes: tuple[str, ...] | None = None) -> Settings:
    """Settings from the command line and the ini, each value with where it came from."""
    import inspect

    from pytest_mlflowdb.config.validate import REPORT_SUFFIXES, build_settings

    sources = {o.setting: source_of(config, o.setting) for o in OPTIONS
               if o.ini and o.setting != "thresholds"}
    taken = inspect.signature(build_settings).parameters
    plain = {o.setting: _pick(config, o.setting) for o in OPTIONS
             if o.setting in taken and o.setting not in _READ_APART}
    area_options = _area_options(config, sources)
    ini_kind = _ini_kind(config)
    return build_settings(
        uris=_pick(config, "uris") or [],
        uri_file=_uri_file(config, sources["uri_file"]),
        ephemeral=_ephemeral_kind(config, ini_kind),
        server_kind=ini_kind,
        reports=_pick(config, "reports") or [],
        builtin_checks=not config.getoption("mlflowdb_no_builtin"),
        threshold_assignments=[
            (_ini_source(config, "thresholds"), list(config.getini("mlflowdb_thresholds"))),
            (source_of(config, "thresholds"), list(config.getoption("mlflowdb_thresholds")))],
        registry=threshold_registry(config),
        **_expectation(config),
        **plain,
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


def add_options(parser: pytest.Parser) -> None:
    """Declare every flag and ini key of :data:`OPTIONS` and of every area's options
    (also when dormant)."""
    group = parser.getgroup("mlflowdb", "MLflow database audit (pytest-mlflowdb)")
    try:
        declared = area_declarations()
    except ValueError as exc:  # a malformed declaration: one line, not a traceback
        raise pytest.UsageError(str(exc)) from None
    added = {area.name for area in added_areas()}
    taken = {name for option in OPTIONS for name in (option.setting, option.flag, option.ini)}
    for area in declared:
        whose = f"the area {area.name!r}" if area.name in added else "a built-in area"
        for option in area.options:
            names = {option.setting, option.flag, option.ini} - {None}
            if names & taken:
                clash = ", ".join(sorted(str(n) for n in names & taken))
                raise pytest.UsageError(f"the option {option.setting!r} of {whose} "
                                        f"takes a name already taken: {clash}")
            taken |= names
    for option in OPTIONS + declared_options():
        if option.flag:
            kwargs: dict[str, Any] = dict(option.flag_kwargs) or {"default": None}
            kwargs["dest"] = option.dest
            if option.metavar:
                kwargs["metavar"] = option.metavar
            group.addoption(option.flag, help=option.help, **kwargs)
        if option.ini:
            ini_kwargs: dict[str, Any] = ({"type": option.ini_type} if option.ini_type
                                          else {"default": ""})
            parser.addini(option.ini, option.help, **ini_kwargs)


_UNSET: tuple[Any, ...] = (None, False, "", [], ())


def anything_given(config: pytest.Config) -> bool:
    """Whether the run gives any of the plugin's flags or ini keys. When it gives none the
    plugin stays dormant without reading its settings: an unrelated suite pays nothing
    for the areas' declarations (their settings are read if a fixture asks for them).
    No ini key of the plugin has a default of its own: unset, each reads as its type's
    empty value."""
    for option in OPTIONS + declared_options():
        if option.dest:
            value = config.getoption(option.dest, None)
            declared = dict(option.flag_kwargs)
            if value != declared.get("default") and (
                    value not in _UNSET or ("const" in declared and value == declared["const"])):
                return True  # a bare optional-value flag (``--mlflowdb-ephemeral``) gives its const
        if option.ini and config.getini(option.ini) not in _UNSET:
            return True
    return False
