"""What changed since an earlier audit (``--mlflowdb-baseline``): real audits of one
database on two "days", the fault injected in between; baselines that cannot be
compared are one line, never a crash or a false "all new"."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import audit, report, sql

from pytest_mlflowdb.config.declare import SettingsError
from pytest_mlflowdb.config.validate import build_settings

REDUNDANT = ("CREATE INDEX team_params_value ON params (value)",
             "CREATE INDEX team_params_value_again ON params (value)")


def _first_day(pytester, uri: str) -> object:
    """Audit ``uri`` and keep its JSON report as ``base.json``."""
    audit(pytester, uri)
    base = pytester.path / "base.json"
    shutil.copy(pytester.path / "audit.json", base)
    return base


def test_the_finding_that_appeared_is_shown_everywhere_and_gates_regression(pytester,
                                                                            mlflow_uri):
    base = _first_day(pytester, mlflow_uri)
    sql(mlflow_uri, *REDUNDANT)
    md, html = pytester.path / "audit.md", pytester.path / "audit.html"
    result, checks = audit(pytester, mlflow_uri, f"--mlflowdb-baseline={base}",
                           f"--mlflowdb-report={md}", f"--mlflowdb-report={html}")
    assert result.ret == 0  # fail-on error: a warning does not fail the run
    block = report(pytester.path / "audit.json")["baseline"]
    assert block["path"] == str(base) and "message" not in block
    worse = [c for c in block["changes"] if c["change"] == "worse"]
    assert [(c["id"], c["before"], c["after"]) for c in worse] == [
        ("indexes.redundant", "passed", "warned")]
    assert worse[0]["details"][0] == "new warning: public.team_params_value_again"
    assert block["regressions"] == 1 and block["changes"][0] is worse[0]  # regressions first
    result.stdout.fnmatch_lines([
        "mlflowdb baseline: since *base.json: *1 worse*",
        "  WORSE indexes.redundant [[]*] passed -> warned: new warning: "
        "public.team_params_value_again*"])
    assert ("- **worse** `indexes.redundant`" in md.read_text()
            and "new warning: public.team_params_value_again" in md.read_text())
    assert '<section id="baseline">' in html.read_text()
    assert 'class="change-worse"' in html.read_text()
    # the same audit gated on regressions fails, on that one check
    gated, _ = audit(pytester, mlflow_uri, f"--mlflowdb-baseline={base}",
                     "--mlflowdb-fail-on=regression")
    assert gated.ret == 1
    assert report(pytester.path / "audit.json")["run"]["failing"] == 1
    gated.stdout.fnmatch_lines(["mlflowdb: 1 regression(s) since the baseline fail this run "
                                "(--mlflowdb-fail-on=regression; *"])


def test_a_failure_already_in_the_baseline_is_no_regression_until_it_is_resolved(
        pytester, mlflow_uri):
    sql(mlflow_uri, "DROP INDEX index_params_run_uuid")
    base = _first_day(pytester, mlflow_uri)
    assert report(base)["summary"]["failed"] == 1
    still, checks = audit(pytester, mlflow_uri, f"--mlflowdb-baseline={base}",
                          "--mlflowdb-fail-on=regression", "--mlflowdb-verbose")
    assert checks["indexes.required"]["outcome"] == "failed"
    assert still.ret == 0  # the one failure is old: the team works it off
    still.stdout.fnmatch_lines([  # the full table says so too
        "mlflowdb baseline: since *base.json: *",
        "mlflowdb: 0 regression(s) since the baseline fail this run *"])
    document = report(pytester.path / "audit.json")
    assert document["baseline"]["regressions"] == 0 and document["run"]["failing"] == 0
    assert not [c for c in document["baseline"]["changes"] if c["id"] == "indexes.required"]
    plain, _ = audit(pytester, mlflow_uri, f"--mlflowdb-baseline={base}")
    assert plain.ret == 1  # without regression, a failed check fails the run as before
    sql(mlflow_uri, "CREATE INDEX index_params_run_uuid ON params (run_uuid)")
    fixed, _ = audit(pytester, mlflow_uri, f"--mlflowdb-baseline={base}")
    changes = report(pytester.path / "audit.json")["baseline"]["changes"]
    resolved = [c for c in changes if c["id"] == "indexes.required"]
    assert resolved and resolved[0]["change"] == "resolved"
    assert resolved[0]["details"][0] == "no longer a failure: public.index_params_run_uuid"
    fixed.stdout.fnmatch_lines(["  RESOLVED indexes.required * failed -> passed*"])


def _rewritten(pytester, base, change) -> object:
    document = json.loads(base.read_text())
    change(document)
    path = pytester.path / "changed.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p, base: p.path / "missing.json", "*baseline *missing.json is unreadable (*)"
                                               ": not compared*"),
    (lambda p, base: _text(p, "{not json"), "*baseline *broken.json is not JSON: not compared*"),
    (lambda p, base: _text(p, '{"version": 1}'), "*is not a pytest-mlflowdb JSON report*"),
    (lambda p, base: _rewritten(p, base, _other_target),
     "*baseline *changed.json holds elsewhere:5432/mlflow, this run audits *: not compared*"),
    (lambda p, base: _rewritten(p, base, _other_version),
     "*written by pytest-mlflowdb 0.0.1, this is *: not compared (check ids*"),
])
def test_a_baseline_that_cannot_be_compared_is_one_line(pytester, mlflow_uri, make, expected):
    base = _first_day(pytester, mlflow_uri)
    sql(mlflow_uri, "DROP INDEX index_params_run_uuid")
    given = make(pytester, base)
    result, _ = audit(pytester, mlflow_uri, f"--mlflowdb-baseline={given}",
                      "--mlflowdb-fail-on=regression")
    result.stdout.fnmatch_lines([expected.replace("[", "[[]")])
    block = report(pytester.path / "audit.json")["baseline"]
    assert set(block) <= {"message", "path", "share"}  # no changes: never "all new"
    assert "fails on every failed check" in block["message"]
    assert result.ret == 1  # not compared: the failed check fails the run as error would
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def _text(pytester, text: str):
    path = pytester.path / "broken.json"
    path.write_text(text)
    return path


def _other_target(document: dict) -> None:
    for item in document["targets"]:
        item["id"] = "elsewhere:5432/mlflow"
    for check in document["checks"]:
        check["target"] = "elsewhere:5432/mlflow"


def _other_version(document: dict) -> None:
    document["run"]["plugin_version"] = "0.0.1"


def test_the_newest_kept_report_and_a_value_that_moved_past_the_share(pytester, mlflow_uri):
    history = pytester.path / "history"
    audit(pytester, mlflow_uri, f"--mlflowdb-history={history}")
    sql(mlflow_uri,
        "INSERT INTO experiments (name, lifecycle_stage) VALUES ('e', 'active')",
        "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) SELECT "
        "'r1', experiment_id, 'active', 'FINISHED' FROM experiments WHERE name = 'e'",
        "INSERT INTO params (key, value, run_uuid) SELECT 'p' || i, repeat('x', 200), 'r1' "
        "FROM generate_series(1, 5000) i")
    result, _ = audit(pytester, mlflow_uri, f"--mlflowdb-history={history}",
                      "--mlflowdb-baseline=history", "--mlflowdb-baseline-share=50%")
    block = report(pytester.path / "audit.json")["baseline"]
    kept = sorted(history.glob("mlflowdb-report-*.json"))
    assert len(kept) == 2 and block["path"] == str(kept[0])  # the one kept before this run
    assert block["share"] == 0.5
    (tables,) = [c for c in block["changes"] if c["id"] == "size.tables"]
    assert tables["change"] == "moved" and not tables["regression"]
    assert any(d.startswith("public.params: ") and d.endswith("%)") for d in tables["details"])
    assert "baseline" not in json.loads(kept[-1].read_text())  # not kept with the history
    assert result.ret == 0


def test_baseline_settings_are_checked_once():
    with pytest.raises(SettingsError, match="regression needs a baseline"):
        build_settings(fail_on="regression")
    with pytest.raises(SettingsError, match="is not a share"):
        build_settings(baseline="b.json", baseline_share="lots")
    with pytest.raises(SettingsError, match="outside 0% to 1000%"):
        build_settings(baseline="b.json", baseline_share="0")
    settings = build_settings(baseline=" b.json ", baseline_share="5%", fail_on="Regression")
    assert (settings.baseline, settings.baseline_share, settings.fail_on) == (
        "b.json", 0.05, "regression")
    assert build_settings(baseline="b.json").baseline_share == 0.2


def test_a_folder_names_its_newest_kept_report(tmp_path):
    import datetime

    from pytest_mlflowdb.outputs.baseline import baseline_path, load_baseline
    from pytest_mlflowdb.size.forecast import save_report

    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    older = save_report(tmp_path, {"version": 1, "targets": [], "checks": []}, when)
    newer = save_report(tmp_path, {"version": 1, "targets": [], "checks": []},
                        when + datetime.timedelta(days=1))
    (tmp_path / "zzz-notes.json").write_text("{}")
    assert older.exists() and baseline_path(str(tmp_path), None) == (newer, None)
    assert baseline_path("history", str(tmp_path)) == (newer, None)
    assert baseline_path("history", None) == (
        None, "--mlflowdb-baseline=history needs --mlflowdb-history")
    assert load_baseline(str(tmp_path / "empty"), None)[0] is None
    (tmp_path / "empty").mkdir()
    assert load_baseline(str(tmp_path / "empty"), None) == (
        None, f"no baseline: no kept report in {tmp_path / 'empty'}")
