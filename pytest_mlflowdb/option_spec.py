"""``Option``: how one setting is declared, by the core table and by an area's ``OPTIONS``.

Kept apart from ``options.py`` (which reads them through pytest) so that ``areas.py`` can
evaluate an area's ``OPTIONS`` declaration from its source without importing pytest's
side of things, and so that a check module can import the same name it declares with.
This module imports nothing heavy: the dormant plugin loads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Every flag and ini key starts so (the project's naming rule, for areas too).
FLAG_PREFIX = "--mlflowdb-"
INI_PREFIX = "mlflowdb_"


@dataclass(frozen=True)
class Option:
    """One setting as pytest sees it: a flag (or none), an ini key (or none), one help.

    An area's option may also give ``choices`` (the value, folded to lower case, must be
    one of them), ``parse`` (``"module:function"``, called with the raw value, a string
    or for a ``linelist`` ini key a list; a ValueError is the user's mistake) and a
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
    parse: str | None = None
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
        if self.parse is not None and ":" not in self.parse:
            return f"option {self.setting!r}: parse {self.parse!r} must be 'module:function'"
        return None

    def parser(self) -> Callable[[Any], Any] | None:
        """The function ``parse`` names, imported when a value is read (not when declared)."""
        if self.parse is None:
            return None
        module, _, name = self.parse.partition(":")
        found: Callable[[Any], Any] = getattr(importlib.import_module(module), name)
        return found
