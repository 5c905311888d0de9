"""Statement shapes: one key for every text of the same statement, whoever wrote it.

``pg_stat_statements`` shows a statement with its constants replaced by ``$n`` (and,
from PostgreSQL 18, an IN list squashed to ``($1 /*, ... */)``); MLflow's SQLAlchemy
store sends it with driver placeholders (``%(name)s``) or, through psycopg2, with the
values inline; SQLAlchemy renders an IN list or a multi-row INSERT with as many
placeholders as values. A shape reduces each of these to the same text: lower case,
every constant and placeholder ``?``, casts dropped, a list of ``?`` or of tuples of
``?`` one item, comments and spacing gone. Two texts of the same statement have the same
shape; different statements keep different ones (the tables, columns, joins, and
clauses all stay). The items of a select list are sorted: SQLAlchemy lists the columns
of an eagerly loaded relation in an order that differs from one process to the next.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
_STRING = re.compile(r"(?:\b[eE])?'(?:[^']|'')*'")
_PLACEHOLDER = re.compile(r"%\([^)]*\)s|%s|\$\d+")
_CAST = re.compile(r"::\s*(?:double precision|character varying|bit varying"
                   r"|time(?:stamp)?(?: with(?:out)? time zone)?|\"?[a-z_][a-z0-9_.]*\"?)"
                   r"(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])*")
_NUMBER = re.compile(r"(?<![a-z0-9_$.\"])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![a-z0-9_])")
_WORDS = re.compile(r"\b(?:true|false|null)\b")
_SPACE = re.compile(r"\s+")
_AROUND = re.compile(r"\s*([(),=<>+*/;])\s*")
_LIST = re.compile(r"\?(?:,\?)+")
_TUPLES = re.compile(r"(\((?:\?,)*\?\))(?:,\1)+")
_IDENTIFIER = re.compile(r"\"([a-z_][a-z0-9_]*)\"|\b([a-z_][a-z0-9_]*)\b")


def shape(sql: str) -> str:
    """The shape of one statement's text (see the module's docstring)."""
    text = _COMMENT.sub(" ", sql)
    text = _STRING.sub("?", text)
    text = text.lower()
    text = _PLACEHOLDER.sub("?", text)
    text = _CAST.sub("", text)
    text = _WORDS.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _SPACE.sub(" ", text)
    text = _AROUND.sub(r"\1", text).strip().rstrip(";")
    previous = None
    while previous != text:  # a list of tuples of lists: innermost first
        previous = text
        text = _TUPLES.sub(r"\1", _LIST.sub("?", text))
    return _sorted_selects(text)


def _groups(text: str) -> list[tuple[int, str]]:
    """``text`` split into its parts at depth 0 (depth 0) and its parenthesized groups
    (depth 1, their content without the parentheses)."""
    parts: list[tuple[int, str]] = []
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "(":
            if depth == 0:
                parts.append((0, text[start:i]))
                start = i + 1
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                parts.append((1, text[start:i]))
                start = i + 1
    parts.append((0, text[start:]) if depth == 0 else (0, text[start - 1:]))
    return parts


_SELECT_LIST = re.compile(r"\bselect (distinct )?(.*?)\bfrom\b", re.S)


def _sorted_selects(text: str) -> str:
    """``text`` with the items of each select list sorted (innermost first)."""
    parts = _groups(text)
    if len(parts) == 1:
        return _sort_lists(text)
    holders, rebuilt = [], []
    for depth, part in parts:
        if depth:
            holders.append(f"({_sorted_selects(part)})")
            rebuilt.append(f"\x00{len(holders) - 1}\x00")
        else:
            rebuilt.append(part)
    flat = _sort_lists("".join(rebuilt))
    return re.sub(r"\x00(\d+)\x00", lambda m: holders[int(m.group(1))], flat)


def _sort_lists(flat: str) -> str:
    def sort(match: re.Match) -> str:
        items = sorted(item.strip() for item in match.group(2).split(","))
        return f"select {match.group(1) or ''}{','.join(items)} from"

    return _SELECT_LIST.sub(sort, flat)


def tables_in(sql: str, tables: Iterable[str]) -> tuple[str, ...]:
    """The names among ``tables`` that ``sql`` mentions as identifiers, sorted."""
    names = set(tables)
    found = {a or b for a, b in _IDENTIFIER.findall(_STRING.sub("?", sql.lower()))}
    return tuple(sorted(found & names))
