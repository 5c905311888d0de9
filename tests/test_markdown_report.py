"""The Markdown report puts problems first and stays under GitHub's 1 MiB job-summary
limit for a fleet of fifty targets, saying where the rest is."""

from __future__ import annotations

from helpers import report, sql

from pytest_mlflowdb.outputs.markdown import to_markdown

REDUNDANT = ("CREATE INDEX team_params_value ON params (value)",
             "CREATE INDEX team_params_value_again ON params (value)")
GITHUB_LIMIT = 2**20


def _table_outcomes(markdown: str, target: str) -> list[str]:
    section = markdown.split(f"## {target}\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            rows.append(line.split("|")[2].strip())
        elif rows and not line.startswith("|"):
            break
    return rows


def test_problems_first_and_a_fleet_of_fifty_under_the_limit(pytester, mlflow_uri):
    sql(mlflow_uri, *REDUNDANT)
    md, json_path = pytester.path / "audit.md", pytester.path / "audit.json"
    pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={md}",
                       f"--mlflowdb-report={json_path}")
    document = report(json_path)
    target = document["targets"][0]["id"]
    text = md.read_text()
    outcomes = _table_outcomes(text, target)
    assert outcomes[0] == "warned" and "passed" in outcomes
    assert outcomes == sorted(outcomes, key=["failed", "error", "warned", "skipped",
                                             "passed"].index)
    details = [line for line in text.splitlines() if line.startswith("### ")]
    assert details[0].endswith("(warned)")
    assert "Shortened" not in text  # one target: the whole report
    # the same audit's records for fifty targets: the report is shortened, not cut
    fleet = dict(document, targets=[], checks=[])
    for i in range(50):
        fleet["targets"].append(dict(document["targets"][0], id=f"db{i}:5432/mlflow"))
        fleet["checks"] += [dict(c, target=f"db{i}:5432/mlflow") for c in document["checks"]]
    big = to_markdown(fleet)
    assert len(big.encode("utf-8")) < GITHUB_LIMIT
    assert "_Shortened to stay under GitHub's 1 MiB job-summary limit: " in big
    assert "are in the JSON or HTML report" in big
    assert "cut here" not in big
    for i in (0, 49):  # every target's problems are there, with their remedies
        assert _table_outcomes(big, f"db{i}:5432/mlflow")[0] == "warned"
    assert big.count("public.team_params_value_again` remedy: `DROP INDEX") == 50
