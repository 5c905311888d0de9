"""The Markdown report (``.md``): a summary (across targets when there are several), a table
per target, the findings of each check."""

from __future__ import annotations

from typing import Any

from pytest_mlflowdb.outputs import Output, by_target, remedies, summary_rows


def to_markdown(document: dict[str, Any]) -> str:
    from tabulate import tabulate

    out = ["# MLflow database audit", ""]
    counts = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
    out += [f"**Summary:** {counts or 'no checks ran'}{_warned_fail(document)}", ""]
    out += _baseline_section(document.get("baseline"))
    if len(document["targets"]) > 1:
        headers, rows = summary_rows(document)
        out += [tabulate([[f"`{_md(r[0])}`", *r[1:]] for r in rows], headers=headers,
                         tablefmt="github"), ""]
    for target, checks in by_target(document):
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
            fixes = remedies([check])
            out += [f"- `{_md(obj)}` remedy: `{_md(fix)}`" for _, obj, fix in fixes]
            out += [""] if fixes else []
    return "\n".join(out)


def _baseline_section(block: dict[str, Any] | None) -> list[str]:
    """What changed since the baseline: a line, then each change (regressions first)."""
    if not block:
        return []
    if "message" in block:
        return [f"**Baseline:** {_md(block['message'])}", ""]
    out = [f"**Baseline:** {_md(block['summary'])}", ""]
    for change in block["changes"][:MAX_CHANGES]:
        details = f": {_md('; '.join(change['details'][:4]))}" if change["details"] else ""
        out.append(f"- **{change['change']}** `{change['id']}` ({_md(str(change['target']))})"
                   f" {change['before'] or '-'} → {change['after']}{details}")
    if len(block["changes"]) > MAX_CHANGES:
        out.append(f"- and {len(block['changes']) - MAX_CHANGES} more in the JSON report")
    return out + [""]


#: changes the Markdown report lists (the JSON report holds them all)
MAX_CHANGES = 50


def _warned_fail(document: dict[str, Any]) -> str:
    warned = document["summary"].get("warned", 0)
    if document.get("run", {}).get("fail_on") != "warning" or not warned:
        return ""
    return f"; {warned} warned checks fail this run (`--mlflowdb-fail-on=warning`)"


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class MarkdownReport(Output):
    name = "markdown"
    suffixes = (".md",)

    def render(self, document: dict[str, Any]) -> str:
        return to_markdown(document)

    def wrote(self, head: str) -> bool:
        return head.startswith("# MLflow database audit\n")
