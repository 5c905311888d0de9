"""The HTML report (``--mlflowdb-report=audit.html``): one self-contained file made from
real audits, problems first, the charts, no password; loaded in a real headless browser
(Debian's chromium) where one is installed."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROLE_PASSWORD
from helpers import audit, dbname_of, report, role_uri, sql

from pytest_mlflowdb.outputs.html import to_html
from pytest_mlflowdb.size.forecast import save_report

REDUNDANT = ("CREATE INDEX team_params_value ON params (value)",
             "CREATE INDEX team_params_value_again ON params (value)")


def _html_audit(pytester, uri: str, *args: str) -> tuple[object, dict, str]:
    html_path = pytester.path / "audit.html"
    result, checks = audit(pytester, uri, f"--mlflowdb-report={html_path}", *args)
    return result, checks, html_path.read_text(encoding="utf-8")


def _self_contained(html: str) -> None:
    """Nothing that a browser would fetch: no external script, style, image or font."""
    assert not re.search(r"<(script|img|link|iframe)[^>]*\b(src|href)=", html)
    assert "@import" not in html and "url(" not in html
    assert html.startswith("<!DOCTYPE html>")


def test_problems_first_with_their_remedy_and_every_check_unfolds(pytester, mlflow_uri):
    sql(mlflow_uri, *REDUNDANT)
    result, checks, html = _html_audit(pytester, mlflow_uri)
    assert result.ret == 0
    _self_contained(html)
    assert checks["indexes.redundant"]["outcome"] == "warned"
    problems = html.index("<h3>Problems</h3>")
    every = html.index("<h3>Every check</h3>")
    # the warned check opens the target's section, unfolded, with its remedy
    first_problem = html.index("<code>indexes.redundant</code>", problems)
    assert problems < first_problem < every
    assert 'details class="check warned-row" open' in html[problems:every]
    remedy = next(f["remedy"] for f in checks["indexes.redundant"]["findings"]
                  if f.get("remedy"))
    assert f'<div class="remedy">{remedy}' in html[problems:every].replace("&quot;", '"')
    # every check of the run is one folded line below
    for check_id, check in checks.items():
        assert re.search(rf'<details class="check {check["outcome"]}-row"><summary title='
                         rf'"[^"]*"><span class="badge {check["outcome"]}">[a-z]+</span> '
                         rf"<code>{re.escape(check_id)}</code>", html[every:])
    assert html[every:].count('<details class="check') == len(checks)
    # the status header names the worst outcome of the target
    assert re.search(r'<div class="status"[^>]*><span class="badge warned">', html)
    # the current table sizes as bars when no history is kept
    assert 'aria-label="MLflow tables by size"' in html


def test_no_password_in_the_html_report(pytester, mlflow_uri, pg18, mlflow_role):
    user, password = mlflow_role
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    _, _, html = _html_audit(pytester, uri)
    from urllib.parse import quote

    assert password == ROLE_PASSWORD
    for form in (password, quote(password, safe=""), quote(password)):
        assert form not in html
    assert user in html  # the masked URI is there, without its password


def _kept(target: str, database: str, sizes: dict[str, float], when: datetime.datetime,
          tmp: Path) -> None:
    save_report(tmp, {"version": 1, "targets": [{"id": target}], "summary": {}, "run": {},
                      "checks": [
                          {"id": "size.database", "target": target, "outcome": "passed",
                           "findings": [{"object": database, "value": sizes["db"],
                                         "severity": "ok"}]},
                          {"id": "size.tables", "target": target, "outcome": "passed",
                           "findings": [{"object": "public.metrics",
                                         "value": sizes["metrics"], "severity": "ok"}]}]},
                when)


def test_size_charts_over_the_kept_history_with_forecast_and_limit(pytester, mlflow_uri):
    history = pytester.path / "history"
    first, _, _ = _html_audit(pytester, mlflow_uri)
    target = report(pytester.path / "audit.json")["targets"][0]["id"]
    database = dbname_of(mlflow_uri)
    now = datetime.datetime.now(datetime.timezone.utc)
    for days in (6, 4, 2):  # three earlier reports: a forecast needs two, over a day
        _kept(target, database, {"db": 8e6 - days * 1e5, "metrics": 6e4},
              now - datetime.timedelta(days=days), history)
    result, checks, html = _html_audit(pytester, mlflow_uri, f"--mlflowdb-history={history}",
                                       "--mlflowdb-max-db-size=40MB")
    _self_contained(html)
    document = report(pytester.path / "audit.json")
    block = document["history"]
    assert block["reports"][target] == 4  # three kept, and this run's
    assert len(block["points"][target][database]) == 4
    # the growth findings' bytes per day are no sizes: never charted
    assert not [o for o in block["points"][target] if o.endswith(" growth")]
    assert 'aria-label="Database size over 4 kept reports"' in html
    chart = html[html.index('aria-label="Database size over 4 kept reports"'):]
    chart = chart[:chart.index("</svg>")]
    assert 'class="forecast"' in chart  # the least-squares line, carried 30 days ahead
    assert 'class="limit"' in chart and "limit 40MB" in chart
    assert "dashed: the least-squares forecast to 30d ahead; red: the limit" in html
    # the kept report on disk holds no history block of its own (it would grow each run)
    kept = sorted(history.glob("mlflowdb-report-*.json"))[-1]
    assert "history" not in json.loads(kept.read_text())


def test_fleet_grid_and_a_workload_chart_only_when_a_workload_check_recorded(pytester,
                                                                           mlflowdb_database_factory):
    first, second = mlflowdb_database_factory(), mlflowdb_database_factory()
    sql(second, *REDUNDANT)
    html_path = pytester.path / "fleet.html"
    json_path = pytester.path / "fleet.json"
    pytester.runpytest(f"--mlflowdb-uri={first}", f"--mlflowdb-uri={second}",
                       f"--mlflowdb-report={html_path}", f"--mlflowdb-report={json_path}")
    html = html_path.read_text()
    document = report(json_path)
    assert '<section id="fleet">' in html
    grid = html[html.index('<section id="fleet">'):html.index("</section>")]
    ids = [t["id"] for t in document["targets"]]
    assert all(f">{i}</a>" in grid for i in ids)
    assert grid.count("<tr>") == 3  # the header and one row per target
    assert '<span class="badge warned">warned</span> 1' in grid
    # no pg_stat_statements in these databases: workload.operations skipped, no chart
    assert {c["outcome"] for c in document["checks"]
            if c["id"] == "workload.operations"} == {"skipped"}
    assert "Time per MLflow operation" not in html
    # workload.operations' findings (mean milliseconds per call) get their chart
    operations = next(c for c in document["checks"] if c["id"] == "workload.operations")
    operations["findings"] = [
        {"object": "search_runs", "severity": "ok", "value": 42.0, "threshold": "20ms",
         "message": "search_runs: ..."},
        {"object": "pg_stat_statements", "severity": "info", "value": 120,
         "threshold": None, "message": "120 of the database's statement entries"}]
    with_workload = to_html(document)
    assert 'aria-label="Time per MLflow operation"' in with_workload
    assert "42 ms" in with_workload


# -- a real browser ----------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_TIMEOUT = 120


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_the_page_loads_in_a_headless_browser_without_console_errors(pytester, tmp_path,
                                                                     mlflowdb_database_factory):
    first, second = mlflowdb_database_factory(), mlflowdb_database_factory()
    sql(second, *REDUNDANT)
    html_path = tmp_path / "audit.html"
    pytester.runpytest(f"--mlflowdb-uri={first}", f"--mlflowdb-uri={second}",
                       f"--mlflowdb-report={html_path}")
    url = html_path.as_uri()
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    # every section rendered: the fleet grid, each target's status, problems, charts, checks
    assert '<section id="fleet">' in dom.stdout
    assert dom.stdout.count('<section class="target">') == 2
    assert "<h3>Problems</h3>" in dom.stdout and "<h3>Charts</h3>" in dom.stdout
    assert dom.stdout.count('<svg class="chart"') >= 2
    assert dom.stdout.count("<h3>Every check</h3>") == 2
    for name, width in (("desktop", 1280), ("narrow", 390)):
        shot = tmp_path / f"audit-{name}.png"
        taken = _chromium(f"--screenshot={shot}", f"--window-size={width},2400", url)
        assert taken.returncode == 0, taken.stderr[-2000:]
        assert shot.stat().st_size > 10_000  # a page drawn, not a blank one
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
