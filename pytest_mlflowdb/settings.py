"""Settings: every ``--mlflowdb-*`` option and ini value, validated once and frozen.

The plugin reads raw strings from pytest (command line first, ini second) and hands
them to :func:`build_settings`; anything malformed raises :class:`SettingsError` with a
one-line message, which the plugin turns into a usage error (exit code 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .targets import Target, TargetError, parse_target
from .thresholds import ThresholdError, ThresholdRegistry, ThresholdValues, parse_assignments
from .thresholds import parse_value as _parse

EPHEMERAL_KINDS = ("auto", "container", "wheel", "path")
FAIL_ON = ("error", "warning")
REPORT_SUFFIXES = (".json", ".md")


class SettingsError(ValueError):
    """A setting that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Settings:
    """What the user asked for, validated. Timeouts are in seconds."""

    targets: tuple[Target, ...] = ()
    ephemeral: str | None = None
    reports: tuple[Path, ...] = ()
    fail_on: str = "error"
    connect_timeout: float = 10.0
    statement_timeout: float = 30.0
    lock_timeout: float = 1.0
    pg_bin: Path | None = None
    builtin_checks: bool = True
    thresholds: ThresholdValues = field(default_factory=lambda: ThresholdRegistry().resolve({}))

    @property
    def active(self) -> bool:
        """The plugin does anything at all only when there is something to audit."""
        return bool(self.targets) or self.ephemeral is not None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for t in self.targets for s in t.secrets)


def build_settings(
    *,
    uris: Sequence[str] = (),
    ephemeral: str | None = None,
    reports: Sequence[str] = (),
    fail_on: str | None = None,
    connect_timeout: str | None = None,
    statement_timeout: str | None = None,
    lock_timeout: str | None = None,
    pg_bin: str | None = None,
    builtin_checks: bool = True,
    threshold_assignments: Iterable[str] = (),
    registry: ThresholdRegistry | None = None,
) -> Settings:
    """Validate raw option values into Settings, or raise SettingsError."""
    targets = []
    for uri in uris:
        try:
            targets.append(parse_target(uri))
        except TargetError as exc:
            raise SettingsError(str(exc)) from None
    if ephemeral is not None:
        ephemeral = ephemeral.strip().lower() or "auto"
        if ephemeral not in EPHEMERAL_KINDS:
            raise SettingsError(
                f"--mlflowdb-ephemeral: unknown kind {ephemeral!r}; "
                f"choose one of {', '.join(EPHEMERAL_KINDS)}"
            )
    paths = []
    for report in reports:
        path = Path(report)
        if path.suffix.lower() not in REPORT_SUFFIXES:
            raise SettingsError(
                f"--mlflowdb-report: {report!r} must end in .json or .md"
            )
        paths.append(path)
    fail_on = (fail_on or "error").strip().lower()
    if fail_on not in FAIL_ON:
        raise SettingsError(
            f"--mlflowdb-fail-on: unknown value {fail_on!r}; choose one of {', '.join(FAIL_ON)}"
        )
    registry = registry or ThresholdRegistry()
    try:
        values = registry.resolve(parse_assignments(threshold_assignments))
    except ThresholdError as exc:
        raise SettingsError(str(exc)) from None
    bin_path = None
    if pg_bin:
        bin_path = Path(pg_bin).expanduser()
        if not bin_path.is_dir():
            raise SettingsError(f"--mlflowdb-pg-bin: {pg_bin!r} is not a directory")
    return Settings(
        targets=tuple(targets),
        ephemeral=ephemeral,
        reports=tuple(paths),
        fail_on=fail_on,
        connect_timeout=_duration("--mlflowdb-connect-timeout", connect_timeout, 10.0),
        statement_timeout=_duration("--mlflowdb-statement-timeout", statement_timeout, 30.0),
        lock_timeout=_duration("--mlflowdb-lock-timeout", lock_timeout, 1.0),
        pg_bin=bin_path,
        builtin_checks=builtin_checks,
        thresholds=values,
    )


def _duration(option: str, text: str | None, default: float) -> float:
    if text is None or str(text).strip() == "":
        return default
    try:
        value = _parse("duration", text)
    except ThresholdError as exc:
        raise SettingsError(f"{option}: {exc}") from None
    if value <= 0:
        raise SettingsError(f"{option}: must be more than 0")
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
