"""The HTML report (``.html``): one self-contained file a person reads at a glance.

Styles inline, a few lines of script inline, charts as inline SVG drawn by
:mod:`pytest_mlflowdb.outputs.svg`: nothing is fetched when the page is opened. Made
from the masked document like every other report. Per target: a status header, its
problems first with their remedies, the charts (sizes over the kept history with the
forecast and the limit, bloat per relation, time per MLflow operation when the workload
area recorded it), then every check as one line that unfolds into its findings. A fleet
gets a summary grid first; a baseline (``--mlflowdb-baseline``) its changes.
"""

from __future__ import annotations

import datetime
import re
from html import escape
from typing import Any

from pytest_mlflowdb.outputs import Output, by_target, target_counts
from pytest_mlflowdb.outputs.svg import Series, bar_chart, line_chart

#: the order problems are shown in, worst first
RANK = {"failed": 0, "error": 1, "warned": 2, "skipped": 3, "passed": 4}
SEVERITY_CLASS = {"failure": "failed", "warning": "warned", "ok": "passed", "info": "info"}
#: characters of a check's message on its folded line (the whole one is in its findings)
SUMMARY_CHARS = 160
MARKER = '<meta name="generator" content="pytest-mlflowdb">'

CSS = """
:root{--ok:#15803d;--warn:#b45309;--fail:#b91c1c;--skip:#6b7280;--bg:#f8fafc;--fg:#0f172a}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:var(--bg);color:var(--fg)}
main{max-width:1100px;margin:0 auto;padding:16px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.25em;margin:0}h3{font-size:1.05em}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:14px;margin:14px 0}
.status{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;color:#fff;font-weight:600;
font-size:.85em;text-transform:uppercase}
.passed{background:var(--ok)}.warned{background:var(--warn)}.failed,.error{background:var(--fail)}
.skipped,.info{background:var(--skip)}
.counts span{margin-right:10px}
.meta{color:#475569;font-size:.9em;overflow-wrap:anywhere}
.scroll{overflow-x:auto}.scroll>table{min-width:600px}
figure>.scroll>svg.chart{min-width:560px}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #e2e8f0;padding:4px 6px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
td.obj{min-width:11em}td .badge{white-space:nowrap}
th{white-space:nowrap}
details.rest{margin:4px 0 4px 8px;font-size:.95em}
details{border-bottom:1px solid #f1f5f9;padding:3px 0}
summary{cursor:pointer;overflow-wrap:anywhere}
summary code{font-weight:600}
.remedy{background:#f1f5f9;border-left:3px solid var(--ok);padding:4px 8px;margin:4px 0;
white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:.85em}
.problems details{border-left:3px solid var(--warn);padding-left:8px;margin:6px 0}
.problems details.failed-row,.problems details.error-row{border-left-color:var(--fail)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr));gap:12px}
figure{margin:0}figcaption{font-size:.85em;color:#475569}
svg.chart{width:100%;height:auto;font-size:11px;fill:#334155}
svg .grid{stroke:#e2e8f0}svg .limit{stroke:var(--fail);stroke-dasharray:6 4;stroke-width:1.5}
svg .limit-label{fill:var(--fail)}svg .forecast{stroke-dasharray:4 4;stroke-width:1.5}
svg .bar.ok{fill:#93c5fd}svg .bar.warning{fill:#f59e0b}svg .bar.failure{fill:#ef4444}
.grid-cell{font-weight:600;text-align:center}
.zero{color:#cbd5e1;font-weight:400}
.change-worse{color:var(--fail)}.change-better,.change-resolved{color:var(--ok)}
button{font:inherit;margin-right:6px}
@media (max-width:640px){main{padding:6px}section{padding:8px}body{font-size:14px}}
"""

SCRIPT = """
document.querySelectorAll('button[data-open]').forEach(function (b) {
  b.addEventListener('click', function () {
    var open = b.getAttribute('data-open') === '1';
    document.querySelectorAll('details.check').forEach(function (d) { d.open = open; });
  });
});
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _badge(outcome: str) -> str:
    return f'<span class="badge {_e(outcome)}">{_e(outcome)}</span>'


def _worst(checks: list[dict[str, Any]], target: dict[str, Any]) -> str:
    """The target's status: its worst problem; passed when it has none (a skipped check
    is counted beside it, not a status of its own unless nothing else ran)."""
    if target.get("error"):
        return "error"
    outcomes = {c["outcome"] for c in checks}
    for outcome in ("failed", "error", "warned", "passed"):
        if outcome in outcomes:
            return outcome
    return "skipped"


def _rows(findings: list[dict[str, Any]]) -> str:
    rows = []
    for f in findings:
        kind = SEVERITY_CLASS.get(str(f.get("severity")), "info")
        rows.append(f'<tr><td class="obj">{_e(f.get("object"))}</td><td><span class="badge '
                    f'{kind}">{_e(f.get("severity"))}</span></td><td>{_e(f.get("value"))}</td>'
                    f'<td>{_e(f.get("threshold"))}</td><td>{_e(f.get("message"))}</td></tr>')
        if f.get("remedy"):
            rows.append(f'<tr><td colspan="5"><div class="remedy">{_e(f["remedy"])}</div>'
                        "</td></tr>")
    return ('<div class="scroll"><table><thead><tr><th>object</th><th>severity</th>'
            "<th>value</th><th>threshold</th><th>message</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def findings_table(check: dict[str, Any]) -> str:
    """The warnings and failures with their remedies; the other findings folded below."""
    findings = check.get("findings") or []
    if not findings:
        return f'<p class="meta">{_e(check.get("message") or "no findings")}</p>'
    bad = [f for f in findings if f.get("severity") in ("warning", "failure")]
    rest = [f for f in findings if f.get("severity") not in ("warning", "failure")]
    if not bad:
        return _rows(rest)
    folded = (f'<details class="rest"><summary>{len(rest)} other finding(s)</summary>'
              f"{_rows(rest)}</details>") if rest else ""
    return _rows(bad) + folded


def _check_line(check: dict[str, Any], opened: bool = False) -> str:
    message = str(check.get("message") or "")
    short = message if len(message) <= SUMMARY_CHARS else message[:SUMMARY_CHARS - 1] + "…"
    return (f'<details class="check {_e(check["outcome"])}-row"{" open" if opened else ""}>'
            f'<summary title="{_e(message)}">{_badge(check["outcome"])} '
            f'<code>{_e(check["id"])}</code> {_e(short)}</summary>{findings_table(check)}'
            "</details>")


def _status(target: dict[str, Any], checks: list[dict[str, Any]], anchor: str) -> str:
    counts: dict[str, int] = {}
    for c in checks:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
    shown = "".join(f"<span>{n} {_e(k)}</span>" for k, n in sorted(
        counts.items(), key=lambda kv: RANK.get(kv[0], 9)))
    meta = [target.get(k) for k in ("uri", "server_version", "schema_revision")]
    bits = [f"URI {_e(meta[0])}" if meta[0] and meta[0] != target["id"] else "",
            f"PostgreSQL {_e(meta[1])}" if meta[1] else "",
            f"alembic {_e(meta[2])}" if meta[2] else ""]
    notes = "".join(f'<p class="meta">note: {_e(n)}</p>' for n in target.get("notes", ()))
    error = f'<p class="meta">{_e(target["error"])}</p>' if target.get("error") else ""
    return (f'<div class="status" id="{anchor}">{_badge(_worst(checks, target))}'
            f'<h2>{_e(target["id"])}</h2><span class="counts">{shown}</span></div>'
            f'<p class="meta">{" · ".join(b for b in bits if b)}</p>{notes}{error}')


def _size_charts(document: dict[str, Any], target: str,
                 checks: list[dict[str, Any]]) -> list[str]:
    """The database and its largest tables over the kept history, with each one's
    least-squares line carried to the forecast horizon and the limit; without a
    history, the tables' current sizes as bars."""
    from pytest_mlflowdb.config.thresholds import format_value

    by_id = {c["id"]: c for c in checks}
    database = by_id.get("size.database", {}).get("findings") or []
    tables = by_id.get("size.tables", {}).get("findings") or []
    sized = [f for f in tables if _number(f.get("value")) is not None]

    def fmt(v: float) -> str:
        return str(format_value("size", v))

    history = (document.get("history") or {})
    points = (history.get("points") or {}).get(target) or {}
    charts = []
    if points:
        horizon = float(history.get("horizon_s") or 30 * 86400)
        kept = (history.get("reports") or {}).get(target, 0)
        db_names = [str(f.get("object")) for f in database if _number(f.get("value"))
                    and not str(f.get("object")).endswith(" growth")]
        for title, names, found in (
                ("Database size", [n for n in points if n in db_names], database),
                ("MLflow's largest tables", [n for n in points if n not in db_names
                                             and not n.endswith(" growth")], sized)):
            series = [Series(n, [(t, v) for t, v in points[n]], _fit_line(points[n], horizon))
                      for n in names[:8]]
            limit = _largest_limit(found)
            chart = line_chart(f"{title} over {kept} kept reports", series, fmt, limit)
            if chart:
                charts.append(f'<figure><div class="scroll">{chart}</div><figcaption>'
                              f"{_e(title)} over {kept} kept reports; dashed: the "
                              "least-squares forecast to "
                              f"{_e(format_value('duration', horizon))} ahead"
                              f"{'; red: the limit' if limit else ''}</figcaption></figure>")
    if not charts and sized:
        bars = [(str(f["object"]), float(_number(f["value"]) or 0), _kind(f))
                for f in sized][:12]
        limit = _largest_limit(sized)
        chart = bar_chart("MLflow tables by size", bars, fmt, limit)
        charts.append(f'<figure><div class="scroll">{chart}</div><figcaption>'
                      "MLflow's tables by total size (this run; "
                      "--mlflowdb-history keeps reports for a chart over time)</figcaption>"
                      "</figure>")
    return charts


def _fit_line(points: list[list[float]], horizon: float
              ) -> tuple[tuple[float, float], tuple[float, float]] | None:
    from pytest_mlflowdb.size.forecast import Growth, fit

    growth = fit((t, v) for t, v in points)
    if not isinstance(growth, Growth):
        return None
    last_t, last_v = max((t, v) for t, v in points)
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    slope = growth.per_day / 86400.0

    def at(t: float) -> float:
        return mean_v + slope * (t - mean_t)

    start = min(t for t, _ in points)
    end = last_t + horizon
    return (start, at(start)), (end, max(at(end), 0.0))


_PCT = re.compile(r"\(([\d.]+)%\)")


def _bloat_chart(checks: list[dict[str, Any]]) -> list[str]:
    bars = []
    for check in checks:
        if check["id"] not in ("bloat.tables", "bloat.indexes"):
            continue
        for f in check.get("findings") or ():
            found = _PCT.search(str(f.get("value") or ""))
            if found:
                bars.append((str(f["object"]), float(found.group(1)), _kind(f)))
    bars.sort(key=lambda b: -b[1])
    if not any(value > 0 or kind != "ok" for _, value, kind in bars):
        return []  # nothing bloated: no chart of zeros
    chart = bar_chart("Bloat per relation", bars[:15], lambda v: f"{v:g}%")
    return [f'<figure><div class="scroll">{chart}</div><figcaption>Estimated bloat per '
            "relation (share of its size)</figcaption></figure>"]


def _workload_chart(checks: list[dict[str, Any]]) -> list[str]:
    """Mean time per call of each MLflow operation, from ``workload.operations``' findings
    (their values are milliseconds); nothing when that check found none."""
    bars = []
    for check in checks:
        if check["id"] != "workload.operations":
            continue
        for f in check.get("findings") or ():
            value = _number(f.get("value"))
            if value is not None and f.get("object") != "pg_stat_statements":
                bars.append((f"{f.get('object')}", value / 1000.0, _kind(f)))
    if not bars:
        return []
    bars.sort(key=lambda bar: -bar[1])
    chart = bar_chart("Time per MLflow operation", bars[:20], _seconds)
    return [f'<figure><div class="scroll">{chart}</div><figcaption>Mean time per call of '
            "each MLflow operation (workload.operations, pg_stat_statements)"
            "</figcaption></figure>"]


def _seconds(v: float) -> str:
    return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _limit(finding: dict[str, Any]) -> float | None:
    from pytest_mlflowdb.config.thresholds import ThresholdError, parse_value

    try:
        return parse_value("size", str(finding.get("threshold"))) or None
    except (ThresholdError, ValueError):
        return None


def _largest_limit(findings: list[dict[str, Any]]) -> float | None:
    limits = [v for v in (_limit(f) for f in findings) if v]
    return max(limits) if limits else None


def _kind(finding: dict[str, Any]) -> str:
    severity = str(finding.get("severity"))
    return severity if severity in ("warning", "failure") else "ok"


def _grid(document: dict[str, Any], anchors: dict[str, str]) -> str:
    columns = ("passed", "warned", "failed", "skipped", "error")
    rows = []
    for target, counts in target_counts(document):
        cells = "".join(
            f'<td class="grid-cell{"" if counts.get(c) else " zero"}">'
            f'{(_badge(c) + " ") if counts.get(c) and c != "passed" else ""}'
            f"{counts.get(c, 0)}</td>" for c in columns)
        rows.append(f'<tr><td><a href="#{anchors.get(target, "")}">{_e(target)}</a></td>'
                    f"{cells}</tr>")
    head = "".join(f"<th>{c}</th>" for c in columns)
    return ('<section id="fleet"><h2>Fleet</h2><div class="scroll"><table><thead><tr>'
            f"<th>target</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</div></section>")


def _baseline(document: dict[str, Any]) -> str:
    block = document.get("baseline")
    if not block:
        return ""
    if block.get("message"):
        return (f'<section id="baseline"><h2>Since the baseline</h2><p>'
                f'{_e(block["message"])}</p></section>')
    rows = []
    for change in block.get("changes", ()):
        detail = "; ".join(change.get("details") or ())
        rows.append(f'<tr class="change-{_e(change["change"])}"><td>{_e(change["change"])}'
                    f'</td><td>{_e(change["target"])}</td><td><code>{_e(change["id"])}</code>'
                    f'</td><td>{_e(change.get("before"))} → {_e(change.get("after"))}</td>'
                    f"<td>{_e(detail)}</td></tr>")
    body = ("<p>No check changed.</p>" if not rows else
            '<div class="scroll"><table><thead><tr><th>change</th><th>target</th><th>check'
            "</th><th>outcome</th><th>what moved</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")
    return (f'<section id="baseline"><h2>Since the baseline</h2><p class="meta">'
            f'{_e(block.get("summary"))}</p>{body}</section>')


def to_html(document: dict[str, Any]) -> str:
    grouped = by_target(document)
    anchors = {t["id"]: f"target-{i}" for i, (t, _) in enumerate(grouped)}
    summary = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
    end = document.get("run", {}).get("end_time")
    when = (datetime.datetime.fromtimestamp(end, datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC") if isinstance(end, (int, float)) else "")
    parts = [f'<header><h1>MLflow database audit</h1><p class="meta">{_e(when)} · '
             f"{len(document['targets'])} target(s) · {_e(summary or 'no checks ran')}</p>"
             '<p><button type="button" data-open="1">unfold every check</button>'
             '<button type="button" data-open="0">fold every check</button></p></header>']
    if len(document["targets"]) > 1:
        parts.append(_grid(document, anchors))
    parts.append(_baseline(document))
    # the targets with problems first (the grid above keeps the input order)
    by_status = sorted(grouped, key=lambda tc: RANK.get(_worst(tc[1], tc[0]), 9))
    for target, checks in by_status:
        problems = sorted((c for c in checks if c["outcome"] in ("failed", "error", "warned")),
                          key=lambda c: (RANK.get(c["outcome"], 9), c["id"]))
        section = [f'<section class="target">{_status(target, checks, anchors[target["id"]])}']
        if problems:
            section.append('<div class="problems"><h3>Problems</h3>'
                           + "".join(_check_line(c, opened=True) for c in problems) + "</div>")
        charts = (_size_charts(document, target["id"], checks) + _bloat_chart(checks)
                  + _workload_chart(checks))
        if charts:
            section.append('<h3>Charts</h3><div class="charts">' + "".join(charts) + "</div>")
        ordered = sorted(checks, key=lambda c: (RANK.get(c["outcome"], 9), c["id"]))
        section.append('<h3>Every check</h3><div class="all">'
                       + "".join(_check_line(c) for c in ordered) + "</div></section>")
        parts.append("".join(section))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" + MARKER
            + '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>MLflow database audit</title><style>" + CSS + "</style></head><body><main>"
            + "".join(parts) + "</main><script>" + SCRIPT + "</script></body></html>\n")


class HtmlReport(Output):
    name = "html"
    suffixes = (".html",)

    def render(self, document: dict[str, Any]) -> str:
        return to_html(document)

    def wrote(self, head: str) -> bool:
        return head.startswith("<!DOCTYPE html>\n") and MARKER in head
