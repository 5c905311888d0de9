"""A fleet file (``--mlflowdb-uri-file``): the targets of many MLflow databases, one a line.

Each line holds one URI or libpq ``key=value`` string; ``#`` starts a comment line and
blank lines are skipped. ``${VAR}`` and ``$VAR`` are replaced by the environment's value
(``$$`` is a literal ``$``), so a password can come from a CI secret instead of sitting
in the file or on a command line. The value is taken literally: percent-encoded where it
lands in a URI's user info, database name or a query value (a secret holding ``%41``,
``#``, ``?`` or ``@`` stays itself), backslash-escaped in a ``key=value`` string. A
mistake is a :class:`FleetError` naming the file and line; its message never shows the
line itself (it may hold a password). The file must be a regular file of at most
:data:`MAX_BYTES` (a FIFO or ``/dev/zero`` is refused, not read).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_]"
                       r"[A-Za-z0-9_]*)|(?P<dollar>\$)|(?P<bad>\{[^}]*\}?))")


#: a fleet file larger than this is refused (a fleet of thousands of lines is far less)
MAX_BYTES = 1 << 20
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


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
    from pytest_mlflowdb.config.targets import _guess_secrets

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
        value = environ[name]
        placed = _place(line, match.start(), value)
        values.extend((value, placed))
        return placed

    return _VARIABLE.sub(replace, line), tuple(dict.fromkeys(v for v in values if v))


def _place(line: str, at: int, value: str) -> str:
    """``value`` as it must be written at offset ``at`` of ``line`` to mean itself."""
    from urllib.parse import quote

    scheme = _SCHEME.match(line)
    if scheme is None:  # key=value: libpq takes a backslash before any character
        return re.sub(r"([\\'\s])", r"\\\1", value)
    rest = line[scheme.end():at]
    if "?" in rest:  # the query: a value (after '=') is encoded, a whole parameter is not
        parameter = re.split(r"[&;]", rest.split("?", 1)[1])[-1]
        return quote(value, safe="") if "=" in parameter else value
    if "/" in rest:  # the database name
        return quote(value, safe="")
    after = line[at:]
    authority_end = re.search(r"[/?]", after)
    if "@" in rest or "@" not in after[:authority_end.start() if authority_end else None]:
        return value  # host and port: taken as written
    return quote(value, safe="")  # user info


def read_fleet(path: Path, environ: Mapping[str, str] | None = None) -> list[FleetLine]:
    """The target lines of the fleet file at ``path``, in order, variables expanded."""
    environ = os.environ if environ is None else environ
    try:
        text = read_bounded(path, MAX_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise FleetError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise FleetError(str(exc)) from None
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


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``; ValueError (one line) for anything else
    (a FIFO would block, a device never end) or a file over ``limit`` bytes. Opened
    without blocking, so a FIFO with no writer is refused, not waited on."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is {describe_mode(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path} is {info.st_size} bytes; more than {limit} is refused")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{path} is more than {limit} bytes; refused")
    return data


def describe_mode(mode: int) -> str:
    """'a FIFO', 'a character device'... for a file that is not a regular one."""
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR,
                       "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"
