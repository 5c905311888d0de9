"""Parsing the backup area's option values (``Option(parse=...)`` in checks/backup.py).

Imported whenever settings are read, also by the dormant plugin: it imports nothing heavy.
A ValueError here is a one-line usage error naming where the value came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def parse_switch(raw: Any) -> bool | None:
    """A flag (``True``) or its ini twin (``true``/``false``...): True, or None when off
    (None, not False: an opt-in check is enabled by any value that is set)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return True
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return None
    raise ValueError(f"{str(raw).strip()!r} is not a switch; use true or false")


def parse_backup_path(raw: Any) -> str | None:
    """The backup's absolute path. Whether it exists is backup.readable's business (a
    missing nightly dump is a failed check in the report, not a typo); something that is
    neither a regular file nor a folder (a FIFO would block, ``/dev/zero`` never end) is
    refused here."""
    import os
    import stat

    if raw is None or not str(raw).strip():
        return None
    path = Path(str(raw).strip()).expanduser().absolute()
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return str(path)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        from ..fleet import describe_mode

        raise ValueError(f"{path} is {describe_mode(mode)}: give a pg_dump file or a "
                         "pg_dump directory archive")
    return str(path)


def parse_uri(raw: Any) -> Any:
    """A :class:`~pytest_mlflowdb.targets.Target` (its repr never shows the password; its
    secrets are masked in every output like the targets'), or None: the scratch server's,
    pg_dump's direct connection."""
    if raw is None or not str(raw).strip():
        return None
    from ..targets import TargetError, parse_target

    try:
        return parse_target(str(raw))
    except TargetError as exc:
        raise ValueError(str(exc)) from None
