"""The terminal summary at the end of pytest's output.

Compact by default (:func:`compact_summary`): per target its problems with their
remedies, then one line per area; an unreachable target is one line. The full table per
target (:func:`terminal_tables`) with ``-v`` or ``--mlflowdb-verbose``.
"""

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
    blocks += _baseline_block(document)
    counts = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
    blocks.append(f"mlflowdb: {counts or 'no checks ran'}")
    return blocks


def _baseline_block(document: dict[str, Any]) -> list[str]:
    """The changes since the baseline, one line each and whole (a path, a check's id)."""
    gate = document.get("run", {}).get("fail_on") == "regression"
    changes = baseline_lines(document.get("baseline"), gate=gate)
    return ["\n".join(changes)] if changes else []


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


#: the width lines wrap at where there is no terminal (a CI log): readable in a browser
LOG_WIDTH = 120
#: lines of a problem's message, and of a remedy, in the compact summary (the whole of
#: each is in the JSON, Markdown and HTML reports)
MESSAGE_LINES = 3
REMEDY_LINES = 3
#: the outcomes told one check at a time in the compact summary, worst first
PROBLEMS = ("failed", "error", "warned")


def compact_summary(document: dict[str, Any], width: int = LOG_WIDTH) -> list[str]:
    """Per target: a header, each problem (failed, error, warned) with its message and
    remedies wrapped at ``width``, then one line per area with its counts (a skipped
    check named with its reason); an unreachable target is its header and one line.

    A fleet (several targets) stays within a screen: each target is one line with its
    counts and then its problems alone, all in one block, followed by the summary across
    targets. Then the baseline's changes and the counts."""
    fleet = len(document["targets"]) > 1
    blocks, fleet_lines = [], []
    for target, checks in by_target(document):
        if fleet:
            lines = [_cut(f"target {target['id']}: {_counts(checks)}", width)]
        else:
            lines = [_wrap(line, width, "    ") for line in _target_header(target).splitlines()]
        if target.get("error"):
            lines.append(_wrap(f"  unreachable: {target['error']}", width, "    ", 2))
        else:
            lines += _problem_lines(checks, width)
            lines += [] if fleet else _area_lines(checks, width)
        if fleet:
            fleet_lines += lines
        else:
            blocks.append("\n".join(lines))
    if fleet:
        from tabulate import tabulate

        headers, rows = summary_rows(document)
        blocks.append("\n".join(fleet_lines))
        blocks.append("summary across targets\n" + tabulate(rows, headers=headers,
                                                             tablefmt="simple"))
    blocks += _baseline_block(document)
    counts = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
    blocks.append(f"mlflowdb: {counts or 'no checks ran'} (every check: -v or "
                  "--mlflowdb-verbose)")
    return blocks


def _problem_lines(checks: list[dict[str, Any]], width: int) -> list[str]:
    order = {o: i for i, o in enumerate(PROBLEMS)}
    lines = []
    for check in sorted((c for c in checks if c["outcome"] in PROBLEMS),
                        key=lambda c: (order[c["outcome"]], c["id"])):
        lines.append(_wrap(f"  {check['outcome'].upper()} {check['id']}: "
                           f"{check.get('message') or ''}", width, "      ", MESSAGE_LINES))
        lines += [_wrap(f"      {obj} remedy: {fix}", width, "        ", REMEDY_LINES)
                  for _, obj, fix in remedies([check])]
    return lines


def _counts(checks: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for check in checks:
        counts[check["outcome"]] = counts.get(check["outcome"], 0) + 1
    order = ("passed", "warned", "failed", "skipped", "error")
    return ", ".join(f"{counts[o]} {o}" for o in sorted(
        counts, key=lambda o: order.index(o) if o in order else len(order))) or "no checks"


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _area_lines(checks: list[dict[str, Any]], width: int) -> list[str]:
    areas: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        areas.setdefault(check["id"].split(".")[0], []).append(check)
    name_width = max((len(a) for a in areas), default=0)
    lines = []
    for area, members in areas.items():
        text = _counts(members)
        skipped = [f"{c['id']} ({c.get('message') or 'skipped'})" for c in members
                   if c["outcome"] == "skipped"]
        if skipped:
            text += ": skipped " + "; ".join(skipped)
        lines.append(_cut(f"  {area.ljust(name_width)}  {text}", width))
    return lines


def _wrap(text: str, width: int, indent: str, most: int | None = None) -> str:
    """``text`` wrapped at ``width``, at most ``most`` lines (the last one ending in …)."""
    import textwrap

    lines = textwrap.wrap(text, width=max(width, 40), subsequent_indent=indent,
                          break_long_words=False, break_on_hyphens=False) or [text]
    if most is not None and len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][: max(width, 40) - 1] + "…"
    return "\n".join(lines)


def _verbose(terminalreporter: Any) -> bool:
    from pytest_mlflowdb.keys import SETTINGS

    config = terminalreporter.config
    settings = config.stash.get(SETTINGS, None)
    return config.option.verbose > 0 or bool(getattr(settings, "verbose", False))


class TerminalTables(Output):
    name = "terminal"

    def on_summary(self, terminalreporter: Any, document: dict[str, Any]) -> None:
        if _verbose(terminalreporter):
            blocks = terminal_tables(document, _table_width(terminalreporter))
        else:
            blocks = compact_summary(document, _table_width(terminalreporter) or LOG_WIDTH)
        for block in blocks:
            terminalreporter.write_line(block)
            terminalreporter.write_line("")
