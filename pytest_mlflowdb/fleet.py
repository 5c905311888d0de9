"""A fleet file (``--mlflowdb-uri-file``): the targets of many MLflow databases, one a line.

Each line holds one URI or libpq ``key=value`` string; ``#`` starts a comment line and
blank lines are skipped. ``${VAR}`` and ``$VAR`` are replaced by the environment's value
(``$$`` is a literal ``$``), so a password can come from a CI secret instead of sitting
in the file or on a command line. A mistake is a :class:`FleetError` naming the file and
line; its message never shows the line itself (it may hold a password).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_]"
                       r"[A-Za-z0-9_]*)|(?P<dollar>\$)|(?P<bad>\{[^}]*\}?))")


class FleetError(ValueError):
    """A fleet file that cannot be used; one line, naming ``file:line``, no password."""


@dataclass(frozen=True)
class FleetLine:
    """One target line of a fleet file, its variables expanded."""

    where: str  # "fleet.txt:3", for messages
    text: str = field(repr=False)
    #: the values the line took from the environment (masked in any message about it)
    expanded: tuple[str, ...] = field(default=(), repr=False)


def expand(line: str, where: str, environ: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """``line`` with ``${VAR}``/``$VAR`` replaced from ``environ`` and ``$$`` made ``$``.

    A variable that is not set is an error naming it, unless it is a bare ``$NAME``
    inside what looks like the line's password (a literal ``$`` the user forgot to
    double): naming it would print part of the password.
    """
    from .targets import _guess_secrets

    values: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        if match.group("bad") is not None:
            raise FleetError(f"{where}: a '${{' without a variable name and '}}' "
                             "(write $$ for a literal $)")
        name = match.group("braced") or match.group("bare")
        if name not in environ:
            if match.group("bare") and any(name in s for s in _guess_secrets(line)):
                raise FleetError(f"{where}: the password holds a $ that names no "
                                 "environment variable (write $$ for a literal $)")
            raise FleetError(f"{where}: the environment variable {name} is not set")
        values.append(environ[name])
        return environ[name]

    return _VARIABLE.sub(replace, line), tuple(v for v in values if v)


def read_fleet(path: Path, environ: Mapping[str, str] | None = None) -> list[FleetLine]:
    """The target lines of the fleet file at ``path``, in order, variables expanded."""
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FleetError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc.strerror or exc}") from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{number}"
        expanded, values = expand(stripped, where, environ)
        found.append(FleetLine(where, expanded, values))
    if not found:
        raise FleetError(f"{path}: no target in it (one URI or key=value string a line)")
    return found
