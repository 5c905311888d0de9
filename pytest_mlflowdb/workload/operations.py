"""The shipped catalog of MLflow's operations and the grouping of statements by them.

``data/operations.json`` maps each statement shape MLflow's own stores send
(``tools/capture_operations.py`` captured them from MLflow itself) to the operations that
send it, the first one being the one a statement is counted under. A statement whose
shape the catalog lacks (a filter of ``search_runs`` the capture did not try) is still
counted under an operation when the part of it before its first WHERE belongs to one
operation only; else it is in the group :data:`UNKNOWN`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from pytest_mlflowdb.probes.workload import Statement
from pytest_mlflowdb.workload.shapes import shape

#: the group of statements on MLflow's tables that no operation of the catalog sends
UNKNOWN = "unknown"
_WHERE = re.compile(r"\bwhere\b")


@dataclass(frozen=True)
class OperationsCatalog:
    """The operations, what each is, and the statement shapes each sends."""

    mlflow: str
    descriptions: dict[str, str]
    by_shape: dict[str, tuple[str, ...]]
    missing: dict[str, str] = field(default_factory=dict)
    #: one text of each shape as MLflow sent it, its values as ``$n``
    examples: dict[str, str] = field(default_factory=dict)
    #: the part before the first WHERE of shapes that only one operation sends
    by_head: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        seen: dict[str, set[str]] = {}
        for shaped, operations in self.by_shape.items():
            if _WHERE.search(shaped):
                seen.setdefault(_head(shaped), set()).add(operations[0])
        object.__setattr__(self, "by_head", {head: next(iter(ops))
                                             for head, ops in seen.items() if len(ops) == 1})

    def operation_of(self, query: str) -> str:
        """The operation that sends ``query`` (a ``pg_stat_statements`` text), else
        :data:`UNKNOWN`."""
        found = shape(query)
        operations = self.by_shape.get(found)
        if operations:
            return operations[0]
        return self.by_head.get(_head(found), UNKNOWN)


def _head(shaped: str) -> str:
    return _WHERE.split(shaped, 1)[0]


def from_document(document: dict) -> OperationsCatalog:
    """The catalog of one document of ``tools/capture_operations.py``."""
    return OperationsCatalog(
        str(document["mlflow"]), dict(document["operations"]),
        {k: tuple(v["operations"]) for k, v in document["statements"].items()},
        dict(document.get("missing", {})),
        {k: str(v["example"]) for k, v in document["statements"].items()})


@lru_cache(maxsize=1)
def load_operations() -> OperationsCatalog:
    """The shipped catalog (read once)."""
    text = resources.files("pytest_mlflowdb.workload").joinpath(
        "data/operations.json").read_text()
    return from_document(json.loads(text))


_PARAMETER = re.compile(r"\$\d+(::\s*[A-Za-z_][A-Za-z0-9_]*(?:\s+PRECISION)?)?")


def with_values(statement: str) -> str:
    """``statement`` (a catalog example) with each ``$n`` a constant the planner can
    estimate like an unknown value: ``'100'`` (an id, a page size, a key or a time no row
    has), cast as the placeholder was; ``false`` for a boolean."""
    def value(match: re.Match) -> str:
        cast = match.group(1) or ""
        if cast.replace(" ", "").upper() == "::BOOLEAN":
            return "false"
        return f"'100'{cast}"

    return _PARAMETER.sub(value, statement)


@dataclass
class Group:
    """One operation's statements, summed."""

    operation: str
    calls: int = 0
    total_ms: float = 0.0
    rows: int = 0
    blocks_read: int = 0
    blocks_hit: int = 0
    statements: list[Statement] = field(default_factory=list)

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    def top(self, count: int = 3) -> list[Statement]:
        return sorted(self.statements, key=lambda s: -s.total_ms)[:count]


def group(statements: Iterable[Statement], catalog: OperationsCatalog) -> list[Group]:
    """``statements`` summed by operation, the costliest first."""
    groups: dict[str, Group] = {}
    for statement in statements:
        operation = catalog.operation_of(statement.query)
        found = groups.setdefault(operation, Group(operation))
        found.calls += statement.calls
        found.total_ms += statement.total_ms
        found.rows += statement.rows
        found.blocks_read += statement.blocks_read
        found.blocks_hit += statement.blocks_hit
        found.statements.append(statement)
    return sorted(groups.values(), key=lambda g: (-g.total_ms, g.operation))
