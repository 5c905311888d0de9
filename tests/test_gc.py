"""A run of checks alone leaves its long-lived objects out of garbage collection and
collects young objects less often; a run beside a team's other tests changes nothing of
the process's collector."""

from __future__ import annotations

import gc
import json

import pytest

RECORDER = """
import gc, json

def pytest_unconfigure(config):
    with open("gc.json", "w") as out:
        json.dump({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}, out)
"""


def _run(pytester, uri: str) -> dict:
    pytester.makepyfile(gcrecorder=RECORDER)
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={uri}", "-p", "gcrecorder",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    return json.loads((pytester.path / "gc.json").read_text())


def test_a_run_of_checks_alone_collects_young_objects_less_often(pytester, mlflow_uri):
    seen = _run(pytester, mlflow_uri)
    assert seen["threshold"][0] == 20_000
    assert seen["frozen"] > 0


def test_a_run_beside_other_tests_leaves_the_collector_alone(pytester, mlflow_uri):
    pytester.makepyfile(test_team="def test_ours():\n    assert True\n")
    seen = _run(pytester, mlflow_uri)
    assert seen["threshold"][0] == gc.get_threshold()[0]  # this interpreter's default
    assert seen["frozen"] == 0
