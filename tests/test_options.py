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


#: rows of the core table that are commands, not settings of a run
COMMANDS = {"nagios", "list_checks", "print_grants"}


def test_every_core_setting_is_validated_where_read_settings_sends_it():
    """A core setting is a row of ``config.declare.OPTIONS`` and a parameter of
    ``build_settings``; ``read_settings`` passes every such row on by name."""
    import inspect

    from pytest_mlflowdb.config.declare import OPTIONS
    from pytest_mlflowdb.config.validate import build_settings

    taken = set(inspect.signature(build_settings).parameters)
    for option in OPTIONS:
        if option.setting in COMMANDS:
            continue
        name = "threshold_assignments" if option.setting == "thresholds" else option.setting
        assert name in taken, f"{option.setting}: a row of OPTIONS build_settings ignores"


def test_an_ini_value_of_a_plain_core_setting_reaches_the_settings(pytester):
    pytester.makeini("[pytest]\nmlflowdb_concurrency = 3\nmlflowdb_lock_timeout = 250ms\n")
    pytester.makepyfile(test_it="""
        from pytest_mlflowdb.config.read import read_settings

        def test_read(pytestconfig):
            settings = read_settings(pytestconfig)
            assert settings.concurrency == 3 and settings.lock_timeout == 0.25
            assert settings.sources["concurrency"].endswith("tox.ini")
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
