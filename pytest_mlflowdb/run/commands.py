"""What the plugin does instead of a run: ``--mlflowdb-list-checks``,
``--mlflowdb-print-grants``; and the check of a stated expectation before one."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from pytest_mlflowdb.config.areas import import_builtin_checks
from pytest_mlflowdb.config.declare import COMMAND_LINE, setting_label
from pytest_mlflowdb.config.read import read_settings, threshold_registry, usage_error
from pytest_mlflowdb.config.registry import REGISTRY
from pytest_mlflowdb.config.validate import Settings, SettingsError
from pytest_mlflowdb.text import first_line

if TYPE_CHECKING:
    from pytest_mlflowdb.config.targets import Target
    from pytest_mlflowdb.probes.grants import Placement


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
    from pytest_mlflowdb.config.declarations.security import parse_app_role
    from pytest_mlflowdb.probes.grants import AUDITOR, Placement, recipe

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
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.probes.mlflow import placement

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
    from pytest_mlflowdb.catalog import CatalogError, load_catalog

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
