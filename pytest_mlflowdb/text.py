"""Small text helpers shared by every layer (nothing here imports the rest of the plugin)."""

from __future__ import annotations


def first_line(value: BaseException | str, default: str | None = None,
               limit: int | None = None) -> str:
    """The first non-blank line of an error's message or of a text, stripped, at most
    ``limit`` characters: what a one-line message quotes of a multi-line one (psycopg's
    errors add ``LINE 1:`` and ``HINT:`` lines).

    With nothing to quote: ``default``, else an error's type name, else ``""``.
    """
    for line in str(value).splitlines():
        if line.strip():
            return line.strip()[:limit]
    if default is not None:
        return default
    return type(value).__name__ if isinstance(value, BaseException) else ""


def last_line(text: str, default: str) -> str:
    """The last non-blank line of ``text``, stripped (where a child process's stderr says
    why it failed), else ``default``."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return default
