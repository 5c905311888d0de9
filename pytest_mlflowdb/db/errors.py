"""What can go wrong with the read-only session, each as one line with no secrets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mlflowdb.config.targets import Target


class DatabaseError(RuntimeError):
    """The target could not be reached or used; the message is one line with no secrets."""


class TargetStoppedAnswering(DatabaseError):
    """A transaction got no reply within its deadline; the session is gone for good."""


class PreflightError(DatabaseError):
    """The session is open but one of its first reads (the preflight's, a probe's through
    :meth:`Database.read`) failed; the message says which and why."""


def one_line(exc: BaseException, target: Target) -> str:
    """The first meaningful line of a psycopg error, with the target's secrets scrubbed."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = "; ".join(lines[:2]) if lines else type(exc).__name__
    return target.scrub(message)
