"""Validating: every ``--mlflowdb-*`` option and ini value, checked once into frozen
:class:`Settings`.

``read.py`` reads raw strings from pytest (command line first, ini second) and hands
them to :func:`build_settings` with where each came from; anything malformed raises
:class:`SettingsError` with a one-line message that names the option or ini key and its
source (the command line or the ini file's path), which the plugin turns into a usage
error (exit code 4). A user who never typed ``--mlflowdb-fail-on`` must not be told they
did: the value may come from a ``pytest.ini`` they did not know pytest picked up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_mlflowdb.config.areas import builtin_registry
from pytest_mlflowdb.config.declare import (
    COMMAND_LINE,
    SettingsError,
    describe_value,
    setting_label,
)
from pytest_mlflowdb.config.targets import Target, TargetError, parse_target
from pytest_mlflowdb.config.thresholds import (
    ThresholdError,
    ThresholdRegistry,
    ThresholdValues,
    parse_assignments,
)
from pytest_mlflowdb.config.thresholds import parse_value as _parse

FAIL_ON = ("error", "warning", "regression")
REPORT_SUFFIXES = (".json", ".md", ".prom", ".html")

#: GitHub Actions' step summary: a report at the path this variable holds is appended to
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def step_summary(path: str | Path) -> bool:
    """Whether ``path`` is this job step's GitHub summary file (whatever its suffix): the
    Markdown report is appended to it, as other steps' summaries are there too."""
    given = os.environ.get(STEP_SUMMARY_ENV, "").strip()
    return bool(given) and os.path.abspath(given) == os.path.abspath(path)


#: Threshold assignments grouped by where they came from, in order (later ones win).
Assignments = tuple[tuple[str, tuple[str, ...]], ...]


#: the throwaway servers' providers (:mod:`pytest_mlflowdb.servers`)
KINDS = ("container", "wheel", "path")
#: what ``--mlflowdb-ephemeral`` and the ``mlflowdb_ephemeral`` ini take
CHOICES = ("auto", *KINDS)


def kind_of_server(*given: str | None) -> str:
    """The throwaway servers' kind: the first of ``given`` that names one (the command
    line's, then the ini's), folded to lower case; else ``auto``."""
    for kind in given:
        if kind and kind.strip():
            return kind.strip().lower()
    return "auto"


@dataclass(frozen=True)
class Settings:
    """What the user asked for, validated. Timeouts are in seconds."""

    targets: tuple[Target, ...] = ()
    ephemeral: str | None = None
    #: the kind of every throwaway server of the run (the ``--mlflowdb-ephemeral`` target's,
    #: the server fixtures', the restore's): ephemeral's, else the ini's, else auto
    server_kind: str = "auto"
    reports: tuple[Path, ...] = ()
    fail_on: str = "error"
    connect_timeout: float = 10.0
    statement_timeout: float = 30.0
    lock_timeout: float = 1.0
    #: targets collected at once (threads that mostly wait on the network)
    concurrency: int = 16
    pg_bin: Path | None = None
    builtin_checks: bool = True
    #: the terminal's full table per target (``--mlflowdb-verbose``; ``-v`` too)
    verbose: bool = False
    expect_mlflow: str | None = None
    expect_revision: str | None = None
    #: an earlier report to compare with (a path, a folder, or ``history``)
    baseline: str | None = None
    #: a finding's value that moved by more than this share of it is listed
    baseline_share: float = 0.2
    #: the areas' own options (those of their ``AREA``), by setting, parsed
    area_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    thresholds: ThresholdValues = field(default_factory=lambda: builtin_registry().resolve({}))
    #: where each value that was given came from (setting name -> source); absent: default
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: the threshold assignments as given, kept to resolve again once every conftest.py
    #: has added its thresholds (see :func:`resolve_thresholds`)
    threshold_assignments: Assignments = ()

    def describe_source(self, setting: str) -> str:
        """The value of ``setting`` and where it came from, for messages."""
        value = getattr(self, setting)
        return describe_value(setting, str(value), self.sources.get(setting, COMMAND_LINE))

    @property
    def expectation(self) -> str | None:
        """What the user stated the database must be (a CI gate), as words, if anything."""
        if self.expect_mlflow:
            return f"MLflow {self.expect_mlflow}"
        return f"revision {self.expect_revision}" if self.expect_revision else None

    @property
    def active(self) -> bool:
        """The plugin does anything at all only when there is something to audit."""
        return bool(self.targets) or self.ephemeral is not None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The targets' passwords, and those of the areas' URIs (a scratch server's...)."""
        others = [v for v in self.area_options.values() if isinstance(v, Target)]
        return tuple(s for t in (*self.targets, *others) for s in t.secrets)


def build_settings(
    *,
    uris: Sequence[str] = (),
    uri_file: str | Path | None = None,
    ephemeral: str | None = None,
    server_kind: str | None = None,
    reports: Sequence[str] = (),
    fail_on: str | None = None,
    connect_timeout: str | None = None,
    statement_timeout: str | None = None,
    lock_timeout: str | None = None,
    concurrency: str | None = None,
    pg_bin: str | None = None,
    builtin_checks: bool = True,
    verbose: bool | str | None = False,
    threshold_assignments: Iterable[str | tuple[str, Iterable[str]]] = (),
    registry: ThresholdRegistry | None = None,
    expect_mlflow: str | None = None,
    expect_revision: str | None = None,
    baseline: str | None = None,
    baseline_share: str | None = None,
    area_options: Mapping[str, Any] | None = None,
    sources: Mapping[str, str] | None = None,
    unknown_thresholds_later: bool = False,
    report_suffixes: Sequence[str] = REPORT_SUFFIXES,
) -> Settings:
    """Validate raw option values into Settings, or raise SettingsError.

    ``sources`` maps a setting's name (``fail_on``, ``uris``, ...) to where its value came
    from: :data:`COMMAND_LINE` (the default), :data:`OVERRIDE` or an ini file's path.
    ``uri_file`` is a fleet file (:mod:`pytest_mlflowdb.config.fleet`): its targets follow those of
    ``uris``, in the file's order. ``server_kind`` is the kind of throwaway servers when
    ``ephemeral`` gives none (the ``mlflowdb_ephemeral`` ini's). ``threshold_assignments``
    are ``NAME=VALUE`` strings (typed on the command line) or ``(source, [NAME=VALUE,
    ...])`` pairs, in order. With ``unknown_thresholds_later`` a name the registry does not
    know yet is left for :func:`resolve_thresholds` to judge once every conftest.py has had
    its say.
    ``report_suffixes`` are those an output writes (the built-in ones and any an output
    plugin adds). ``area_options`` are the areas' own options, already resolved and
    validated (``read.py``).
    """
    sources = dict(sources or {})

    def label(setting: str) -> str:
        return setting_label(setting, sources.get(setting, COMMAND_LINE))

    targets: list[Target] = []
    for uri in uris:
        try:
            target = parse_target(uri)
        except TargetError as exc:
            raise SettingsError(f"{label('uris')}: {exc}") from None
        if all(t.conninfo != target.conninfo for t in targets):  # the same URI twice: once
            targets.append(target)
    for target in _fleet_targets(label("uri_file"), uri_file):
        if all(t.conninfo != target.conninfo for t in targets):
            targets.append(target)
    if ephemeral is not None:
        given = ephemeral.strip()
        ephemeral = kind_of_server(given)
        if ephemeral not in CHOICES:
            hint = ""
            if Path(given).exists():
                hint = (f" ({given!r} looks like a path: put paths before "
                        "--mlflowdb-ephemeral, or write --mlflowdb-ephemeral=auto)")
            raise SettingsError(
                f"{label('ephemeral')}: unknown kind {given!r}; "
                f"choose one of {', '.join(CHOICES)}{hint}"
            )
    paths = []
    for report in reports:
        path = Path(report)
        if path.suffix.lower() not in report_suffixes and not step_summary(path):
            raise SettingsError(
                f"{label('reports')}: {report!r} must end in {_either(report_suffixes)}"
            )
        _check_writable(label("reports"), report, path)
        paths.append(path)
    given_fail_on = (fail_on or "error").strip()
    fail_on = given_fail_on.lower()
    if fail_on not in FAIL_ON:
        raise SettingsError(
            f"{label('fail_on')}: unknown value {given_fail_on!r}; choose one of "
            f"{', '.join(FAIL_ON)}"
        )
    if fail_on == "regression" and not (baseline or "").strip():
        raise SettingsError(f"{label('fail_on')}: regression needs a baseline to compare "
                            f"with ({label('baseline')})")
    registry = registry or builtin_registry()
    assignments = _group_assignments(threshold_assignments)
    values = resolve_thresholds(assignments, registry, unknown_later=unknown_thresholds_later)
    bin_path = None
    if pg_bin:
        bin_path = Path(pg_bin).expanduser()
        if not bin_path.is_dir():
            raise SettingsError(f"{label('pg_bin')}: {pg_bin!r} is not a directory")
    if expect_mlflow and expect_revision:
        raise SettingsError(f"give {label('expect_mlflow')} or {label('expect_revision')}, "
                            "not both")
    if expect_mlflow is not None and not re.fullmatch(r"\d+(\.\d+){1,2}\S*",
                                                      expect_mlflow.strip()):
        raise SettingsError(f"{label('expect_mlflow')}: {expect_mlflow!r} is not a version "
                            "(e.g. 3.17.2)")
    if expect_revision is not None and not re.fullmatch(r"[0-9a-f]{6,32}",
                                                        expect_revision.strip()):
        raise SettingsError(f"{label('expect_revision')}: {expect_revision!r} is not an "
                            "alembic revision (hex digits, e.g. dc11669786a5)")
    return Settings(
        expect_mlflow=expect_mlflow.strip() if expect_mlflow else None,
        expect_revision=expect_revision.strip() if expect_revision else None,
        baseline=(baseline or "").strip() or None,
        baseline_share=_share(label("baseline_share"), baseline_share),
        area_options=MappingProxyType(dict(area_options or {})),
        targets=tuple(targets),
        ephemeral=ephemeral,
        server_kind=ephemeral if ephemeral is not None else kind_of_server(server_kind),
        reports=tuple(paths),
        fail_on=fail_on,
        connect_timeout=_duration(label("connect_timeout"), connect_timeout, 10.0,
                                  minimum=1.0, maximum=3600.0),
        statement_timeout=_duration(label("statement_timeout"), statement_timeout, 30.0,
                                    minimum=0.001, maximum=_PG_MAX_MS / 1000),
        lock_timeout=_duration(label("lock_timeout"), lock_timeout, 1.0,
                               minimum=0.001, maximum=_PG_MAX_MS / 1000),
        concurrency=_count(label("concurrency"), concurrency, 16, minimum=1, maximum=256),
        pg_bin=bin_path,
        builtin_checks=builtin_checks,
        verbose=bool(verbose),
        thresholds=values,
        sources=MappingProxyType(sources),
        threshold_assignments=assignments,
    )


def _fleet_targets(label: str, uri_file: str | Path | None) -> list[Target]:
    """The targets of a fleet file; a mistake names ``file:line``, never the line."""
    if not uri_file:
        return []
    from pytest_mlflowdb.config.fleet import FleetError, read_fleet
    from pytest_mlflowdb.config.targets import scrub

    try:
        lines = read_fleet(Path(uri_file).expanduser())
    except FleetError as exc:
        raise SettingsError(f"{label}: {exc}") from None
    targets = []
    for line in lines:
        try:
            target = parse_target(line.text)
        except TargetError as exc:
            raise SettingsError(scrub(f"{label}: {line.where}: {exc}", line.expanded)) from None
        targets.append(target)
    return targets


def _either(suffixes: Sequence[str]) -> str:
    """``.json or .md``; ``.json, .md or .txt``."""
    *first, last = suffixes
    return f"{', '.join(first)} or {last}" if first else last


def _group_assignments(items: Iterable[str | tuple[str, Iterable[str]]]) -> Assignments:
    groups: list[tuple[str, tuple[str, ...]]] = []
    for item in items:
        source, texts = (COMMAND_LINE, (item,)) if isinstance(item, str) else (
            item[0], tuple(item[1]))
        if groups and groups[-1][0] == source:
            groups[-1] = (source, groups[-1][1] + texts)
        else:
            groups.append((source, texts))
    return tuple(groups)


def resolve_thresholds(assignments: Assignments, registry: ThresholdRegistry, *,
                       unknown_later: bool = False) -> ThresholdValues:
    """The thresholds in force: defaults, then each source's assignments in order.

    An error names the source whose assignments first make the values invalid (so a
    command line that repairs an ini's pair is fine). With ``unknown_later`` names the
    registry does not know yet are set aside: a conftest.py below the rootdir, loaded
    during collection, may still define them; the plugin resolves again then.
    """
    parsed: list[tuple[str, dict[str, str]]] = []
    for source, texts in assignments:
        try:
            given = parse_assignments(texts)
        except ThresholdError as exc:
            raise SettingsError(f"{setting_label('thresholds', source)}: {exc}") from None
        if unknown_later:
            given = {n: v for n, v in given.items() if n in registry.names()}
        parsed.append((source, given))
    merged = {name: value for _, given in parsed for name, value in given.items()}
    try:
        return registry.resolve(merged)
    except ThresholdError as exc:
        so_far: dict[str, str] = {}
        culprit, error = parsed[-1][0] if parsed else COMMAND_LINE, exc
        for source, given in parsed:
            so_far.update(given)
            try:
                registry.resolve(so_far)
            except ThresholdError as first:
                culprit, error = source, first
                break
        raise SettingsError(f"{setting_label('thresholds', culprit)}: {error}") from None


def _check_writable(label: str, report: str, path: Path) -> None:
    """Fail before the audit, not after it, when a report could not be written."""
    if path.is_dir():
        raise SettingsError(f"{label}: {report!r} is a directory")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise SettingsError(f"{label}: cannot write {report!r} ({ancestor} is not a "
                            "writable directory)")


_PG_MAX_MS = 2**31 - 1  # statement_timeout and lock_timeout are int milliseconds


def _duration(option: str, text: str | None, default: float, *, minimum: float,
              maximum: float) -> float:
    if text is None or str(text).strip() == "":
        return default
    try:
        value = _parse("duration", text)
    except ThresholdError as exc:
        raise SettingsError(f"{option}: {exc}") from None
    if not minimum <= value <= maximum:
        from pytest_mlflowdb.config.thresholds import format_value

        raise SettingsError(f"{option}: {text!r} is outside {format_value('duration', minimum)}"
                            f" to {format_value('duration', maximum)}")
    return value


def _share(option: str, text: str | None, default: float = 0.2) -> float:
    """A share: ``20%`` or ``0.2``, above 0 and at most 1000%."""
    if text is None or str(text).strip() == "":
        return default
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SettingsError(f"{option}: {text!r} is not a share (20% or 0.2)") from None
    if not 0 < value <= 10:
        raise SettingsError(f"{option}: {text!r} is outside 0% to 1000%")
    return value


def _count(option: str, text: str | None, default: int, *, minimum: int,
           maximum: int) -> int:
    if text is None or str(text).strip() == "":
        return default
    try:
        value = int(str(text).strip())
    except ValueError:
        raise SettingsError(f"{option}: {text!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{option}: {text!r} is outside {minimum} to {maximum}")
    return value


def describe(settings: Settings) -> Mapping[str, str]:
    """A printable summary of the settings (no secrets), for the report header."""
    return {
        "targets": ", ".join(t.id for t in settings.targets) or "-",
        "ephemeral": settings.ephemeral or "-",
        "fail_on": settings.fail_on,
        "connect_timeout": f"{settings.connect_timeout:g}s",
        "statement_timeout": f"{settings.statement_timeout:g}s",
        "lock_timeout": f"{settings.lock_timeout:g}s",
    }
