"""Results to the report document (JSON contract of DESIGN.md), Markdown and terminal tables.

Knows nothing of SQL. Every string that leaves through here passes :func:`scrub_all`,
so a password that slipped into a message still never reaches a file or the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .targets import scrub

OUTCOMES = ("passed", "warned", "failed", "skipped", "error")
REPORT_VERSION = 1


def build_report(targets: Iterable[dict[str, Any]], checks: Iterable[dict[str, Any]],
                 secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Assemble the report document from target records and check records."""
    checks = list(checks)
    summary = {outcome: 0 for outcome in OUTCOMES}
    for record in checks:
        summary[record["outcome"]] = summary.get(record["outcome"], 0) + 1
    document = {
        "version": REPORT_VERSION,
        "targets": list(targets),
        "checks": checks,
        "summary": summary,
    }
    return scrub_all(document, tuple(secrets))


def scrub_all(value: Any, secrets: tuple[str, ...]) -> Any:
    """A deep copy of ``value`` with every secret replaced by ``***`` in every string."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):  # keys are ours (the report's structure): never rewritten
        return {k: scrub_all(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_all(v, secrets) for v in value]
    return value


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str) + "\n"


def _by_target(document: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    grouped = []
    known = {t["id"] for t in document["targets"]}
    for target in document["targets"]:
        grouped.append((target, [c for c in document["checks"] if c["target"] == target["id"]]))
    others = [c for c in document["checks"] if c["target"] not in known]
    if others:
        grouped.append(({"id": "(no target)", "uri": None}, others))
    return grouped


def _row(check: dict[str, Any], width: int | None) -> list[str]:
    message = check.get("message") or ""
    if check["outcome"] == "skipped" and message.startswith("target unreachable:"):
        message = "target unreachable"  # the reason is on connectivity.connect's row
    if width is not None and len(message) > 4 * width:
        message = message[: 4 * width - 1] + "…"
    return [check["id"], check["outcome"].upper(), message]


def terminal_tables(document: dict[str, Any], width: int | None = 80) -> list[str]:
    """One plain-text table per target, for the end of pytest's terminal output.

    ``width`` is the terminal's; ``None`` (no terminal, as in a CI log) prints every
    message whole on its row: a reader of a log scrolls sideways, but cannot get back
    the words cut off where they were needed.
    """
    from tabulate import tabulate

    message_width = None if width is None else max(40, width - 42)
    blocks = []
    for target, checks in _by_target(document):
        header = _target_header(target)
        table = tabulate([_row(c, message_width) for c in checks],
                         headers=["check", "outcome", "message"], tablefmt="simple",
                         maxcolwidths=[None, None, message_width])
        blocks.append(header + "\n" + table)
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


def to_markdown(document: dict[str, Any]) -> str:
    from tabulate import tabulate

    out = ["# MLflow database audit", ""]
    counts = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
    out += [f"**Summary:** {counts or 'no checks ran'}", ""]
    for target, checks in _by_target(document):
        out += [f"## {target['id']}", ""]
        for key in ("uri", "server_version", "schema_revision"):
            if target.get(key):
                out.append(f"- {key.replace('_', ' ')}: `{target[key]}`")
        for note in target.get("notes", []):
            out.append(f"- note: {note}")
        out.append("")
        rows = [[f"`{c['id']}`", c["outcome"], _md(c.get("message") or "")] for c in checks]
        out += [tabulate(rows, headers=["check", "outcome", "message"], tablefmt="github"), ""]
        detailed = [c for c in checks if c.get("findings")]
        for check in detailed:
            out += [f"### `{check['id']}` ({check['outcome']})", ""]
            rows = [[_md(f["object"]), f["severity"], _md(_cell(f.get("value"))),
                     _md(_cell(f.get("threshold"))), _md(f["message"])]
                    for f in check["findings"]]
            out += [tabulate(rows, headers=["object", "severity", "value", "threshold",
                                            "message"], tablefmt="github"), ""]
    return "\n".join(out)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_reports(document: dict[str, Any], paths: Iterable[Path]) -> list[Path]:
    written = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".md":
            path.write_text(to_markdown(document), encoding="utf-8")
        else:
            path.write_text(to_json(document), encoding="utf-8")
        written.append(path)
    return written
