"""Outputs are plugin objects: a test plugin adds one, and every output shows remedies."""

from __future__ import annotations

import pytest
from helpers import report

from pytest_mlflowdb.outputs.json_file import to_json
from pytest_mlflowdb.outputs.markdown import to_markdown
from pytest_mlflowdb.outputs.report import build_report
from pytest_mlflowdb.outputs.terminal import terminal_tables

TXT_OUTPUT = """
    from pytest_mlflowdb.outputs import Output

    class TextSummary(Output):
        name = "text-summary"
        suffixes = (".txt",)

        def render(self, document):
            counts = ", ".join(f"{n} {k}" for k, n in document["summary"].items() if n)
            return f"checks: {len(document['checks'])}; {counts}\\n"

        def on_summary(self, terminalreporter, document):
            terminalreporter.write_line("text-summary saw the run")

    def pytest_mlflowdb_outputs(config):
        return [TextSummary()]
"""


def test_a_plugin_adds_an_output_written_for_its_suffix(pytester, mlflow_uri):
    pytester.makeconftest(TXT_OUTPUT)
    txt_path, json_path = pytester.path / "summary.txt", pytester.path / "audit.json"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-report={txt_path}",
                                f"--mlflowdb-report={json_path}", "-k", "connect")
    assert result.ret == 0, result.stdout.str()
    checks = report(json_path)["checks"]
    assert txt_path.read_text() == f"checks: {len(checks)}; {len(checks)} passed\n"
    assert "text-summary saw the run" in result.stdout.str()
    assert f"mlflowdb report written to {txt_path}" in result.stdout.str()


def test_an_unknown_suffix_is_still_a_usage_error_naming_the_suffixes(pytester):
    pytester.makeconftest(TXT_OUTPUT)
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@h/db",
                                           "--mlflowdb-report=a.csv")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'a.csv' must end in .json, .md, .prom, .html or .txt*"])


def _remedy_document() -> dict:
    finding = {"object": "runs(experiment_id)", "severity": "warning",
               "message": "no index", "value": None, "threshold": None,
               "remedy": "CREATE INDEX CONCURRENTLY ON runs (experiment_id)"}
    plain = {"object": "server", "severity": "ok", "message": "fine", "value": None,
             "threshold": None, "remedy": None}
    check = {"id": "indexes.recommended", "nodeid": "checks/indexes.py::x", "target": "t",
             "outcome": "warned", "severity": "warning", "message": "1 missing",
             "findings": [finding, plain], "duration_s": 0.0}
    return build_report([{"id": "t", "uri": None}], [check])


def test_every_output_shows_a_remedy_and_only_where_there_is_one():
    document = _remedy_document()
    fix = "CREATE INDEX CONCURRENTLY ON runs (experiment_id)"
    assert f'"remedy": "{fix}"' in to_json(document)
    markdown = to_markdown(document)
    assert f"remedy: `{fix}`" in markdown and markdown.count("remedy:") == 1
    text = "\n".join(terminal_tables(document, None))
    assert f"remedy: {fix}" in text and text.count("remedy:") == 1
