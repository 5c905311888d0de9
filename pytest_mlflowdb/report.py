"""Results to the report document (JSON contract of DESIGN.md), Markdown and terminal tables.

Knows nothing of SQL. Every string that leaves through here passes :func:`scrub_all`,
so a password that slipped into a message still never reaches a file or the terminal.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .targets import scrub

OUTCOMES = ("passed", "warned", "failed", "skipped", "error")
REPORT_VERSION = 1


def build_report(targets: Iterable[dict[str, Any]], checks: Iterable[dict[str, Any]],
                 secrets: Iterable[str] = (), fail_on: str = "error") -> dict[str, Any]:
    """Assemble the report document from target records and check records.

    ``run`` says which outcomes fail the run (``fail_on``) and how many checks do: with
    ``--mlflowdb-fail-on=warning`` a warned check keeps its outcome but fails the run.
    """
    checks = list(checks)
    summary = {outcome: 0 for outcome in OUTCOMES}
    for record in checks:
        summary[record["outcome"]] = summary.get(record["outcome"], 0) + 1
    failing = summary["failed"] + summary["error"]
    if fail_on == "warning":
        failing += summary["warned"]
    document = {
        "version": REPORT_VERSION,
        "targets": list(targets),
        "checks": checks,
        "summary": summary,
        "run": {"fail_on": fail_on, "failing": failing},
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
    out += [f"**Summary:** {counts or 'no checks ran'}{_warned_fail(document)}", ""]
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


def _warned_fail(document: dict[str, Any]) -> str:
    warned = document["summary"].get("warned", 0)
    if document.get("run", {}).get("fail_on") != "warning" or not warned:
        return ""
    return f"; {warned} warned checks fail this run (`--mlflowdb-fail-on=warning`)"


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_reports(document: dict[str, Any], paths: Iterable[Path]) -> list[Path]:
    """Write each report to a temporary file beside it, then rename it into place.

    A reader (a CI step, a dashboard) sees the old file or the whole new one, never a
    half-written one, and a report cut short by a full disk leaves no file at the path.
    """
    written = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = to_markdown(document) if path.suffix.lower() == ".md" else to_json(document)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(path)
    return written


def remove_reports(paths: Iterable[Path]) -> list[Path]:
    """Remove report files left by an earlier run; returns those removed.

    Called when a run starts, so a run that writes no report (a usage error,
    ``--collect-only``, nothing selected, a crash) never leaves an older run's report
    at the path for a CI job to read as this run's.
    """
    removed = []
    for path in paths:
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
