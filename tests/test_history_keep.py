"""The history folder within bounds (``mlflowdb_history_keep``: a count or a duration),
and a forecast that says how many reports and days it rests on."""

from __future__ import annotations

import datetime

import pytest
from helpers import audit, dbname_of, report

from pytest_mlflowdb.config.declarations.size import parse_history_keep
from pytest_mlflowdb.size.forecast import prune_reports, save_report

NOW = datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)


def _kept(target: str, database: str, size: float) -> dict:
    return {"version": 1, "targets": [{"id": target}], "summary": {}, "run": {},
            "checks": [{"id": "size.database", "target": target, "outcome": "passed",
                        "findings": [{"object": database, "value": size,
                                      "severity": "ok"}]}]}


def _seed(folder, days_ago, target="h:5432/a", database="a", now=NOW) -> list:
    return [save_report(folder, _kept(target, database, 1e6 + 1e4 * (10 - d)),
                        now - datetime.timedelta(days=d)) for d in days_ago]


def test_prune_by_count_and_by_age_touches_only_kept_reports(tmp_path):
    paths = _seed(tmp_path, [9, 7, 5, 3, 1])
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "mlflowdb-report-old.json").write_text("{}")  # not a name save_report gives
    removed = prune_reports(tmp_path, ("count", 3.0))
    assert removed == paths[:2]
    assert sorted(tmp_path.iterdir()) == sorted([*paths[2:], tmp_path / "notes.txt",
                                                 tmp_path / "mlflowdb-report-old.json"])
    assert prune_reports(tmp_path, ("age", 4 * 86400.0), now=NOW) == [paths[2]]
    # the newest report stays whatever its age: the history is never emptied
    assert prune_reports(tmp_path, ("age", 86400.0), now=NOW + datetime.timedelta(days=30)) \
        == [paths[3]]
    assert paths[4].exists()


@pytest.mark.parametrize(("given", "expected"), [
    ("60", ("count", 60.0)), (" 3 ", ("count", 3.0)), ("90d", ("age", 90 * 86400.0)),
    ("", None)])
def test_keep_is_a_count_or_a_duration(given, expected):
    assert parse_history_keep(given) == expected


@pytest.mark.parametrize(("given", "message"), [
    ("2", "keeps fewer than 3 reports"), ("1h", "shorter than a day"),
    ("soon", "neither a count of reports nor a duration")])
def test_a_keep_that_leaves_no_forecast_is_refused(given, message):
    with pytest.raises(ValueError, match=message):
        parse_history_keep(given)


def test_a_run_prunes_the_history_and_its_forecast_says_what_it_rests_on(pytester,
                                                                          mlflow_uri):
    history = pytester.path / "history"
    audit(pytester, mlflow_uri)  # the target's id, as the report names it
    target = report(pytester.path / "audit.json")["targets"][0]["id"]
    now = datetime.datetime.now(datetime.timezone.utc)
    seeded = _seed(history, [9, 7, 5, 3, 1], target, dbname_of(mlflow_uri), now)
    (history / "README.txt").write_text("kept by the team")
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-history={history}",
                           "--mlflowdb-history-keep=3")
    growth = next(f for f in checks["size.database"]["findings"]
                  if f["object"].endswith(" growth"))
    assert "least squares over 6 points spanning " in growth["message"]
    assert growth["message"].endswith("; rests on 5 kept report(s) and this run, 9.0 days")
    left = sorted(p.name for p in history.iterdir())
    assert "README.txt" in left
    kept = [n for n in left if n.startswith("mlflowdb-report-")]
    assert len(kept) == 3 and kept[:2] == [p.name for p in seeded[3:]]  # with this run's
    refused = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-history-keep=2")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--mlflowdb-history-keep*keeps fewer than 3 reports*"])
