"""GitHub Actions: --mlflowdb-report=$GITHUB_STEP_SUMMARY appends the Markdown report."""

from __future__ import annotations

import re

import pytest

PREVIOUS = "## Build\n\nprevious step's summary\n"


def test_the_step_summary_is_appended_to_never_replaced(pytester, monkeypatch, mlflow_uri):
    # GitHub names the file with no suffix (…/_runner_file_commands/step_summary_<uuid>)
    summary = pytester.path / "runner" / "step_summary_0a1b2c"
    summary.parent.mkdir()
    summary.write_text(PREVIOUS)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    for _ in range(2):
        result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "-k", "connectivity",
                                    f"--mlflowdb-report={summary}")
        assert result.ret == 0, result.stdout.str()
    text = summary.read_text()
    assert text.startswith(PREVIOUS)
    assert text.count("# MLflow database audit") == 2
    assert len(re.findall(r"^\| `connectivity\.connect` +\| passed", text, re.M)) == 2
    assert sorted(p.name for p in summary.parent.iterdir()) == [summary.name]


def test_a_relative_path_to_the_step_summary_counts_too(pytester, monkeypatch, mlflow_uri):
    summary = pytester.path / "step_summary_rel"
    summary.write_text(PREVIOUS)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "-k", "connect",
                                "--mlflowdb-report=step_summary_rel")
    assert result.ret == 0, result.stdout.str()
    assert summary.read_text().startswith(PREVIOUS + "\n# MLflow database audit")


def test_a_path_without_a_suffix_is_still_refused_when_it_is_not_the_summary(
        pytester, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "step_summary_x"))
    result = pytester.runpytest_subprocess("--mlflowdb-uri=postgresql://u@h/db",
                                           "--mlflowdb-report=other_file")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'other_file' must end in .json, .md, .prom or .html*"])
