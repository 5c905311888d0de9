"""How a setting and an area are declared: ``Option`` (the core table's and the areas')
and ``Area`` (an area's name, thresholds and options).

Kept apart from ``options.py`` (which reads them through pytest) so that an area's
declaration imports nothing of pytest's side of things. This module imports nothing
heavy: the dormant plugin loads it, and every area's declaration with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .thresholds import Threshold

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
    ``pytest_mlflowdb.declarations.<name>``; another package's is ``AREA`` in the module
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
        from .thresholds import Threshold

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
