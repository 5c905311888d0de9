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


def test_a_bare_flag_with_an_optional_value_counts_as_given(pytester):
    """``--mlflowdb-ephemeral`` alone (its value "" is the const) wakes the plugin: the
    built-in checks are collected (collecting starts no server)."""
    from pytest_mlflowdb.config.read import anything_given

    assert anything_given(pytester.parseconfig("--mlflowdb-ephemeral"))
    assert anything_given(pytester.parseconfig("--mlflowdb-print-grants"))
    assert not anything_given(pytester.parseconfig())
    result = pytester.runpytest_subprocess("--mlflowdb-ephemeral", "--collect-only", "-q",
                                           "-p", "no:cacheprovider")
    assert "connectivity.py::test_connect[ephemeral]" in result.stdout.str()
