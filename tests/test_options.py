"""Options and ini keys: one table, one name for a setting's option dest and ini key."""

from __future__ import annotations


def test_an_options_dest_is_its_ini_key(pytester):
    config = pytester.parseconfig("--mlflowdb-uri=postgresql://u@h/db",
                                  "--mlflowdb-set=latency_warn=100ms",
                                  "--mlflowdb-report=r.json", "--mlflowdb-fail-on=warning")
    assert config.getoption("mlflowdb_uris") == ["postgresql://u@h/db"]
    assert config.getoption("mlflowdb_thresholds") == ["latency_warn=100ms"]
    assert config.getoption("mlflowdb_reports") == ["r.json"]
    assert config.getoption("mlflowdb_fail_on") == "warning"


def test_an_option_and_its_ini_key_share_one_help_text(pytester):
    result = pytester.runpytest("--help")
    out = " ".join(result.stdout.str().split())
    help_text = "override a threshold (repeatable; in the ini one per line)"
    assert out.count(help_text) == 2  # --mlflowdb-set and mlflowdb_thresholds
