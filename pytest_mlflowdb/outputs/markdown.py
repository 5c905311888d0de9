"""The Markdown report (``.md``): a summary (across targets when there are several), a table
per target and the findings of each check, problems first; shortened to stay under
GitHub's job-summary limit."""

from __future__ import annotations

from typing import Any

from pytest_mlflowdb.outputs import Output, by_target, remedies, summary_rows

#: GitHub's job summary takes at most 1 MiB: the report stays under it, with room for
#: what earlier steps wrote there
BUDGET = 1_000_000
#: characters of a message in the shortened forms of a large report
SHORT = 160
#: the order checks are listed in: problems first
RANK = {"failed": 0, "error": 1, "warned": 2, "skipped": 3, "passed": 4}
PROBLEMS = ("warning", "failure")


def to_markdown(document: dict[str, Any], budget: int = BUDGET) -> str:
    """The report, problems first; a report larger than ``budget`` bytes (a fleet's) is
    shortened step by step: first the findings of passing checks and long messages go,
    then the rows of passing checks, each time with a line saying where they are."""
    # the findings' text alone is about half of their Markdown tables (which pad each
    # column): when it is over twice the budget, the whole report is far from fitting
    # and is not rendered to find out (for a fleet, most of the report's time)
    rough = sum(len(str(c.get("findings") or "")) for c in document["checks"])
    for level in (0, 1, 2) if rough <= 2 * budget else (1, 2):
        text = _render(document, level)
        if len(text.encode("utf-8")) <= budget:
            return text
    cut = text.encode("utf-8")[: budget - 200].decode("utf-8", "ignore")
    return cut[: cut.rfind("\n") + 1] + (
        "\n**The report is cut here** to stay under GitHub's 1 MiB job-summary limit: "
        "the whole of it is in the JSON or HTML report (`--mlflowdb-report=audit.json`, "
        "`--mlflowdb-report=audit.html`).\n")


def _short(text: str, level: int) -> str:
    return text if level == 0 or len(text) <= SHORT else text[: SHORT - 1] + "…"


def _render(document: dict[str, Any], level: int) -> str:
    from tabulate import tabulate

    out = ["# MLflow database audit", ""]
    counts = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
    out += [f"**Summary:** {counts or 'no checks ran'}{_warned_fail(document)}", ""]
    out += _baseline_section(document.get("baseline"))
    if level:
        left = ("the findings of passing checks and the whole of long messages" if level == 1
                else "the rows and findings of passing checks")
        out += [f"_Shortened to stay under GitHub's 1 MiB job-summary limit: {left} are in "
                "the JSON or HTML report (`--mlflowdb-report=audit.json`, "
                "`--mlflowdb-report=audit.html`)._", ""]
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
        ordered = sorted(checks, key=lambda c: RANK.get(c["outcome"], 9))
        listed = [c for c in ordered if level < 2 or c["outcome"] != "passed"]
        rows = [[f"`{c['id']}`", c["outcome"], _md(_short(c.get("message") or "", level))]
                for c in listed]
        if rows:
            out += [tabulate(rows, headers=["check", "outcome", "message"],
                             tablefmt="github"), ""]
        if len(listed) < len(ordered):
            out += [f"_{len(ordered) - len(listed)} passing checks not listed._", ""]
        detailed = [c for c in ordered if c.get("findings")
                    and (level == 0 or c["outcome"] != "passed")]
        for check in detailed:
            findings = [f for f in check["findings"]
                        if level == 0 or f.get("severity") in PROBLEMS]
            if not findings:
                continue
            out += [f"### `{check['id']}` ({check['outcome']})", ""]
            rows = [[_md(f["object"]), f["severity"], _md(_cell(f.get("value"))),
                     _md(_cell(f.get("threshold"))), _md(_short(f["message"], level))]
                    for f in findings]
            out += [tabulate(rows, headers=["object", "severity", "value", "threshold",
                                            "message"], tablefmt="github"), ""]
            fixes = remedies([dict(check, findings=findings)])
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
