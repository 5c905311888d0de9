"""Declaring: what a setting is (``Option``), what an area declares (``Area``), the core
settings' table (:data:`OPTIONS`) and how a message names a setting and its source.

Configuration has three jobs, one module each: declaring (here), reading with its source
(``read.py``, through pytest) and validating (``validate.py``). This module imports
nothing heavy: the dormant plugin loads it, and every area's declaration with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_mlflowdb.config.thresholds import Threshold

#: Every flag and ini key starts so (the project's naming rule, for areas too).
FLAG_PREFIX = "--mlflowdb-"
INI_PREFIX = "mlflowdb_"


@dataclass(frozen=True)
class Option:
    """One setting as pytest sees it: a flag (or none), an ini key (or none), one help.

    An area's option may also give ``choices`` (the value, folded to lower case, must be
    one of them), ``parse`` (a function called with the raw value, a string or for a
    ``linelist`` ini key a list; a ValueError is the user's mistake) and a
    ``default`` (the raw value when nothing is given).
    """

    setting: str
    flag: str | None
    ini: str | None
    help: str
    metavar: str | None = None
    #: argparse keywords of the flag (``action``, ``nargs``, ``const``, ``default``)
    flag_kwargs: tuple[tuple[str, Any], ...] = ()
    #: pytest's ini type (``linelist``) or None for a plain string
    ini_type: str | None = None
    choices: tuple[str, ...] = ()
    parse: Callable[[Any], Any] | None = None
    default: Any = None

    @property
    def dest(self) -> str | None:
        """The option's name in ``config.getoption``: its ini key where it has one, so a
        setting has one name in code (``mlflowdb_uris`` for ``--mlflowdb-uri``)."""
        if self.flag is None:
            return None
        return self.ini or self.flag[2:].replace("-", "_")

    def naming_error(self) -> str | None:
        """Why this declaration breaks the naming rules, or None when it keeps them."""
        if self.flag is None and self.ini is None:
            return f"option {self.setting!r} has neither a flag nor an ini key"
        if self.flag is not None and not self.flag.startswith(FLAG_PREFIX):
            return f"option {self.setting!r}: its flag {self.flag!r} must start {FLAG_PREFIX}"
        if self.ini is not None and not self.ini.startswith(INI_PREFIX):
            return f"option {self.setting!r}: its ini key {self.ini!r} must start {INI_PREFIX}"
        if self.parse is not None and not callable(self.parse):
            return f"option {self.setting!r}: parse {self.parse!r} is not a function"
        return None


@dataclass(frozen=True)
class Area:
    """An area's declaration: its name (the first part of its checks' ids), the thresholds
    its checks read and the options it adds (a flag and its ini twin each, resolved into
    ``Settings.area_options``). A built-in area's is ``AREA`` in
    ``pytest_mlflowdb.config.declarations.<name>``; another package's is ``AREA`` in the module
    its entry point names.
    """

    name: str
    thresholds: tuple[Threshold, ...] = ()
    options: tuple[Option, ...] = ()

    def __post_init__(self) -> None:  # a list given for a tuple: still frozen and hashable
        object.__setattr__(self, "thresholds", tuple(self.thresholds))
        object.__setattr__(self, "options", tuple(self.options))

    def error(self) -> str | None:
        """Why this declaration cannot be used, or None when it can."""
        from pytest_mlflowdb.config.thresholds import Threshold

        if not isinstance(self.name, str) or not self.name.isidentifier():
            return f"the area's name {self.name!r} is not a Python identifier"
        if not all(isinstance(t, Threshold) for t in self.thresholds):
            return f"area {self.name!r}: thresholds must hold only Threshold(...) declarations"
        if not all(isinstance(o, Option) for o in self.options):
            return f"area {self.name!r}: options must hold only Option(...) declarations"
        for option in self.options:
            problem = option.naming_error()
            if problem:
                return f"area {self.name!r}: {problem}"
        return None


#: The core settings, each declared once: flag, ini key (also the flag's dest), one help
#: text for both; the areas declare theirs in their ``AREA`` (``config.areas``).
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
           "collector, .html, or a suffix an output plugin adds; repeatable)", "PATH", _LIST,
           "linelist"),
    Option("fail_on", "--mlflowdb-fail-on", "mlflowdb_fail_on",
           "error (default): only failed checks fail the run; warning: warned checks fail "
           "it too; regression: only what got worse since --mlflowdb-baseline", "LEVEL"),
    Option("baseline", "--mlflowdb-baseline", "mlflowdb_baseline",
           "compare with an earlier JSON report: PATH, a folder (its newest kept report) "
           "or 'history' (the newest in --mlflowdb-history)", "PATH"),
    Option("baseline_share", "--mlflowdb-baseline-share", "mlflowdb_baseline_share",
           "with a baseline, list each finding whose value moved by more than this share "
           "(0.2 by default, or a percentage)", "SHARE"),
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
    Option("verbose", "--mlflowdb-verbose", None,
           "the terminal shows every check of every target in a table (as with -v); "
           "by default, the problems and one line per area", None,
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


#: The source of a value typed as an option, and of one given with ``-o name=value``;
#: any other source is the path of the ini file it was read from.
COMMAND_LINE = "command line"
OVERRIDE = "-o"
#: Options that pytest added to the command line: from the ini's ``addopts`` (the
#: source is then ``"addopts in PATH"``) or from the environment.
ADDOPTS_IN = "addopts in "
ENV_ADDOPTS = "PYTEST_ADDOPTS"

def _names(setting: str) -> tuple[str, str]:
    """A core setting's flag and ini key, as :data:`OPTIONS` declares them."""
    for option in OPTIONS:
        if option.setting == setting:
            return (option.flag or FLAG_PREFIX + setting.replace("_", "-"),
                    option.ini or INI_PREFIX + setting)
    return FLAG_PREFIX + setting.replace("_", "-"), INI_PREFIX + setting


def setting_label(setting: str, source: str = COMMAND_LINE,
                  names: tuple[str | None, str | None] | None = None) -> str:
    """How a message names a setting: ``--mlflowdb-fail-on (command line)`` or
    ``mlflowdb_fail_on (/path/to/pytest.ini)``. ``names`` (flag, ini key) are those an
    area's option declares; without them the core table's give them."""
    option, ini = _names(setting)
    if names is not None:
        option, ini = names[0] or option, names[1] or ini
    if source == COMMAND_LINE:
        return f"{option} (command line)"
    if source == ENV_ADDOPTS or source.startswith(ADDOPTS_IN):
        return f"{option} ({source})"
    if source == OVERRIDE:
        return f"{ini} (-o on the command line)"
    return f"{ini} ({source})"


def describe_value(setting: str, value: str, source: str = COMMAND_LINE) -> str:
    """A value with its origin, for messages: ``mlflowdb_fail_on = warning in /p/pytest.ini``."""
    option, ini = _names(setting)
    if source == COMMAND_LINE:
        return f"{option}={value} on the command line"
    if source == ENV_ADDOPTS or source.startswith(ADDOPTS_IN):
        return f"{option}={value} ({source})"
    if source == OVERRIDE:
        return f"-o {ini}={value} on the command line"
    return f"{ini} = {value} in {source}"


class SettingsError(ValueError):
    """A setting that cannot be used; the message is one line for the user."""
