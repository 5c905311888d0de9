"""The terminal summary: one plain-text table per target at the end of pytest's output."""

from __future__ import annotations

import os
from typing import Any

from pytest_mlflowdb.outputs import Output, by_target, remedies, summary_rows
from pytest_mlflowdb.outputs.baseline import baseline_lines


def _row(check: dict[str, Any], width: int | None) -> list[str]:
    message = check.get("message") or ""
    if check["outcome"] == "skipped" and message.startswith("target unreachable:"):
        message = "target unreachable"  # the reason is on connectivity.connect's row
    if width is not None and len(message) > 4 * width:
        message = message[: 4 * width - 1] + "…"
    return [check["id"], check["outcome"].upper(), message]


def terminal_tables(document: dict[str, Any], width: int | None = 80) -> list[str]:
    """One plain-text table per target, then a line per remedy, then (with several
    targets) the summary across targets, then the counts.

    ``width`` is the terminal's; ``None`` (no terminal, as in a CI log) prints every
    message whole on its row: a reader of a log scrolls sideways, but cannot get back
    the words cut off where they were needed.
    """
    from tabulate import tabulate

    message_width = None if width is None else max(40, width - 42)
    blocks = []
    for target, checks in by_target(document):
        header = _target_header(target)
        table = tabulate([_row(c, message_width) for c in checks],
                         headers=["check", "outcome", "message"], tablefmt="simple",
                         maxcolwidths=[None, None, message_width])
        fixes = [f"{check} {obj}\n  remedy: {remedy}" for check, obj, remedy in remedies(checks)]
        blocks.append("\n".join([header, table, *fixes]))
    if len(document["targets"]) > 1:
        headers, rows = summary_rows(document)
        blocks.append("summary across targets\n" + tabulate(rows, headers=headers,
                                                             tablefmt="simple"))
    changes = baseline_lines(document.get("baseline"))
    if changes:
        blocks.append("\n".join(changes))
    counts = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
    blocks.append(f"mlflowdb: {counts or 'no checks ran'}")
    return blocks


def _target_header(target: dict[str, Any]) -> str:
    bits = [f"target {target['id']}"]
    if target.get("uri") and target["uri"] != target["id"]:
        bits.append(target["uri"])
    if target.get("server_version"):
        bits.append(f"PostgreSQL {target['server_version']}")
    if target.get("schema_revision"):
        bits.append(f"alembic {target['schema_revision']}")
    lines = [" | ".join(bits)]
    for note in target.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _table_width(terminalreporter: Any) -> int | None:
    """The terminal's width; None (no limit) in a log without a terminal, unless the
    user set ``COLUMNS`` (pytest's own width then honours it)."""
    writer = terminalreporter._tw
    stream = getattr(writer, "_file", None)
    if "COLUMNS" in os.environ or (stream is not None and getattr(stream, "isatty", bool)()):
        return int(writer.fullwidth)
    return None


class TerminalTables(Output):
    name = "terminal"

    def on_summary(self, terminalreporter: Any, document: dict[str, Any]) -> None:
        for block in terminal_tables(document, _table_width(terminalreporter)):
            terminalreporter.write_line(block)
            terminalreporter.write_line("")
