"""The issue's walkthrough, as a new user would try it: a fleet of ten databases with a
warning on two of them, audited on two days. The second day's HTML report reads at a
glance (problems first, the size charts with their forecast), the terminal summary fits
a screen, the Markdown fits GitHub's job summary, and the baseline shows exactly the
finding that appeared on the second day."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess

import pytest
from helpers import report, sql

#: what indexes.recommended asks of every MLflow database (README's setup)
RECOMMENDED = ("CREATE INDEX mlflowdb_runs_experiment_id ON runs (experiment_id)",
               "CREATE INDEX mlflowdb_metrics_key_value ON metrics (key, value)")
REDUNDANT = ("CREATE INDEX team_params_value ON params (value)",
             "CREATE INDEX team_params_value_again ON params (value)")
APPEARED = ("CREATE INDEX team_tags_value ON tags (value)",
            "CREATE INDEX team_tags_value_again ON tags (value)")
SCREEN = 50
CHROMIUM = shutil.which("chromium")


def _shift(history, days: float) -> None:
    """Make the kept report a day older (the walkthrough's first day), and keep a copy
    of it as the day before (what a team has after a few days of audits)."""
    (kept,) = sorted(history.glob("mlflowdb-report-*.json"))
    document = json.loads(kept.read_text())
    kept.unlink()
    from pytest_mlflowdb.size.forecast import save_report

    now = datetime.datetime.now(datetime.timezone.utc)
    for back, scale in ((days + 1, 0.9), (days, 1.0)):
        older = json.loads(json.dumps(document))
        for check in older["checks"]:
            for finding in check["findings"] if check["id"].startswith("size.") else ():
                if isinstance(finding.get("value"), (int, float)):
                    finding["value"] = round(finding["value"] * scale)
        older.pop("saved_at")
        save_report(history, older, now - datetime.timedelta(days=back))


def test_a_fleet_of_ten_on_two_days(pytester, mlflowdb_database_factory, tmp_path):
    uris = [mlflowdb_database_factory() for _ in range(10)]
    for i, uri in enumerate(uris):
        sql(uri, *RECOMMENDED, *(REDUNDANT if i in (2, 7) else ()))
    history = pytester.path / "history"
    args = [f"--mlflowdb-uri={u}" for u in uris] + [f"--mlflowdb-history={history}"]
    day1 = pytester.runpytest(*args, f"--mlflowdb-report={pytester.path / 'day1.json'}")
    assert day1.ret == 0
    first = report(pytester.path / "day1.json")
    warned = [t for t, c in ((c["target"], c) for c in first["checks"])
              if c["outcome"] == "warned"]
    assert sorted(warned) == sorted(first["targets"][i]["id"] for i in (2, 7))
    _shift(history, 1)

    sql(uris[7], *APPEARED)
    html, md = tmp_path / "audit.html", tmp_path / "audit.md"
    day2 = pytester.runpytest(*args, "--mlflowdb-baseline=history",
                              f"--mlflowdb-report={pytester.path / 'day2.json'}",
                              f"--mlflowdb-report={html}", f"--mlflowdb-report={md}")
    assert day2.ret == 0
    document = report(pytester.path / "day2.json")
    block = document["baseline"]
    target7 = document["targets"][7]["id"]
    (worse,) = [c for c in block["changes"] if c["regression"]]
    assert (worse["target"], worse["id"], worse["change"]) == (
        target7, "indexes.redundant", "worse")
    assert [d for d in worse["details"] if d.startswith("new ")] == [
        "new warning: public.team_tags_value_again"]
    # the terminal: within a screen, the new finding named
    lines = day2.stdout.lines
    start = next(i for i, line in enumerate(lines) if "mlflowdb audit" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("mlflowdb: "))
    assert end - start < SCREEN, "\n".join(lines[start:end + 1])
    day2.stdout.fnmatch_lines([f"  WORSE indexes.redundant [[]{target7}] warned -> warned: "
                               "new warning: public.team_tags_value_again*"])
    # the Markdown: GitHub takes it
    assert len(md.read_bytes()) < 2**20
    assert "**worse** `indexes.redundant`" in md.read_text()
    # the HTML: the fleet grid, the problems, the size charts with their forecast
    page = html.read_text()
    assert page.index('<section id="fleet">') < page.index('<section id="baseline">') \
        < page.index('<section class="target">')
    assert page.count('<section class="target">') == 10
    # the two warned targets come first, each opening with its status
    sections = page.split('<section class="target">')[1:]
    shown = [re.search(r"<h2>([^<]+)</h2>", part)[1] for part in sections]
    assert sorted(shown[:2]) == sorted(document["targets"][i]["id"] for i in (2, 7))
    assert all('<span class="badge warned">' in s[:300] for s in sections[:2])
    assert page.count('aria-label="Database size over 3 kept reports"') == 10
    assert 'class="forecast"' in page
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: the page was not looked at in a browser")
    for name, width in (("desktop", 1280), ("narrow", 390)):
        shot = tmp_path / f"walkthrough-{name}.png"
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--hide-scrollbars", f"--screenshot={shot}",
                               f"--window-size={width},3000", html.as_uri()],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]
