"""The plugin's flags and ini keys as pytest sees them, and whether a run gives any.

One table (:data:`OPTIONS`) declares each core setting once: its command-line flag, its
ini key (also the flag's dest) and one help text shared by both; the built-in areas
declare theirs in their ``AREA`` (:mod:`pytest_mlflowdb.areas`). This module is all
the plugin imports while it is dormant: reading the settings
(:mod:`pytest_mlflowdb.options`) waits until a run gives one of them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .areas import added_areas, area_declarations, declared_options
from .option_spec import Option

_LIST: tuple[tuple[str, Any], ...] = (("action", "append"), ("default", []))
OPTIONS: tuple[Option, ...] = (
    Option("uris", "--mlflowdb-uri", "mlflowdb_uris",
           "database to audit (repeatable; in the ini one per line); postgresql://, "
           "postgres://, postgresql+psycopg2://, postgresql+psycopg:// or libpq key=value",
           "URI", _LIST, "linelist"),
    Option("uri_file", "--mlflowdb-uri-file", "mlflowdb_uri_file",
           "audit every database listed in FILE (one URI or key=value string a line, # "
           "comments, ${VAR} from the environment; after any --mlflowdb-uri targets)",
           "FILE"),
    Option("ephemeral", "--mlflowdb-ephemeral", "mlflowdb_ephemeral",
           "audit a throwaway PostgreSQL with a genuine MLflow schema; KIND is auto (default), "
           "container, wheel or path (the ini's kind also serves the mlflowdb_server fixture)",
           "KIND", (("nargs", "?"), ("const", ""), ("default", None))),
    Option("reports", "--mlflowdb-report", "mlflowdb_reports",
           "write the audit report to PATH (.json, .md, .prom for Prometheus' textfile "
           "collector, or a suffix an output plugin adds; repeatable)", "PATH", _LIST, "linelist"),
    Option("fail_on", "--mlflowdb-fail-on", "mlflowdb_fail_on",
           "error (default): only failed checks fail the run; warning: warned checks fail "
           "it too", "LEVEL"),
    Option("connect_timeout", "--mlflowdb-connect-timeout", "mlflowdb_connect_timeout",
           "connect timeout per target (default 10s)", "DURATION"),
    Option("statement_timeout", "--mlflowdb-statement-timeout", "mlflowdb_statement_timeout",
           "statement_timeout of the audit session (default 30s)", "DURATION"),
    Option("lock_timeout", "--mlflowdb-lock-timeout", "mlflowdb_lock_timeout",
           "lock_timeout of the audit session (default 1s)", "DURATION"),
    Option("concurrency", "--mlflowdb-concurrency", "mlflowdb_concurrency",
           "targets collected at once, each waiting on its own network (default 16)", "N"),
    Option("thresholds", "--mlflowdb-set", "mlflowdb_thresholds",
           "override a threshold (repeatable; in the ini one per line), e.g. "
           "latency_warn=100ms", "NAME=VALUE", _LIST, "linelist"),
    Option("pg_bin", "--mlflowdb-pg-bin", "mlflowdb_pg_bin",
           "directory of PostgreSQL server binaries for throwaway servers", "DIR"),
    Option("expect_mlflow", "--mlflowdb-expect-mlflow", "mlflowdb_expect_mlflow",
           "the MLflow release about to be deployed: schema.revision fails when the database "
           "is behind it (listing the pending migrations) or ahead", "VERSION"),
    Option("expect_revision", "--mlflowdb-expect-revision", "mlflowdb_expect_revision",
           "like --mlflowdb-expect-mlflow, with an alembic revision", "REVISION"),
    Option("builtin_checks", "--mlflowdb-no-builtin", None,
           "run only your own checks, not the built-in suite (connectivity.connect still "
           "runs, so an unreachable target fails the run)", None,
           (("action", "store_true"), ("default", False))),
    Option("nagios", "--mlflowdb-nagios", None,
           "Nagios/Icinga plugin mode: print one status line with performance data and "
           "nothing else on stdout; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", None,
           (("action", "store_true"), ("default", False))),
    Option("list_checks", "--mlflowdb-list-checks", None,
           "list the built-in checks with their thresholds and exit", None,
           (("action", "store_true"), ("default", False))),
    Option("print_grants", "--mlflowdb-print-grants", None,
           "print the SQL that makes a dedicated read-only auditor role ROLE (default "
           "mlflowdb_auditor) with which every default check runs, MLflow's schema and the "
           "owner of its tables read from the target when one is given, and exit", "ROLE",
           (("nargs", "?"), ("const", ""), ("default", None))),
)


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
