"""Options and ini values validated into frozen Settings (pytest_mlflowdb.config.validate)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_mlflowdb.config.areas import builtin_registry, builtin_thresholds
from pytest_mlflowdb.config.thresholds import Threshold
from pytest_mlflowdb.config.validate import (
    Settings,
    SettingsError,
    build_settings,
    describe,
)
from pytest_mlflowdb.servers import CHOICES

URI = "postgresql://mlflow:topsecret@db.example:5432/mlflow"


@pytest.fixture(autouse=True)
def clean_pg_env(monkeypatch):
    for name in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)


def _error(**kwargs) -> str:
    with pytest.raises(SettingsError) as excinfo:
        build_settings(**kwargs)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# -- defaults and activity -------------------------------------------------------------
def test_defaults_when_nothing_is_given():
    settings = build_settings()
    assert settings.targets == ()
    assert settings.ephemeral is None
    assert settings.reports == ()
    assert settings.fail_on == "error"
    assert settings.connect_timeout == 10.0
    assert settings.statement_timeout == 30.0
    assert settings.lock_timeout == 1.0
    assert settings.pg_bin is None
    assert settings.builtin_checks is True
    assert settings.active is False
    assert settings.secrets == ()
    assert settings.thresholds["latency_warn"] == pytest.approx(0.05)


def test_default_settings_object_matches_build_settings():
    built, default = build_settings(), Settings()
    assert default.active is False
    assert dict(default.thresholds) == dict(built.thresholds)
    assert (default.fail_on, default.connect_timeout) == (built.fail_on, built.connect_timeout)


def test_active_with_a_uri():
    settings = build_settings(uris=[URI])
    assert settings.active is True
    assert [t.id for t in settings.targets] == ["db.example:5432/mlflow"]


def test_active_with_ephemeral():
    settings = build_settings(ephemeral="auto")
    assert settings.active is True
    assert settings.targets == ()


def test_several_uris_keep_their_order():
    settings = build_settings(uris=["postgresql://h1/a", "host=h2 port=5433 dbname=b"])
    assert [t.id for t in settings.targets] == ["h1:5432/a", "h2:5433/b"]


def test_builtin_checks_can_be_turned_off():
    assert build_settings(builtin_checks=False).builtin_checks is False


def test_settings_are_frozen():
    settings = build_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.fail_on = "warning"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.targets = ()


# -- ephemeral -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CHOICES)
def test_ephemeral_kinds(kind):
    assert build_settings(ephemeral=kind).ephemeral == kind


@pytest.mark.parametrize(("given", "expected"), [("", "auto"), ("  ", "auto"),
                                                 (" Container ", "container"), ("WHEEL", "wheel")])
def test_ephemeral_is_normalised(given, expected):
    assert build_settings(ephemeral=given).ephemeral == expected


def test_ephemeral_unknown_kind_names_the_choices():
    message = _error(ephemeral="docker")
    assert "'docker'" in message
    assert "auto, container, wheel, path" in message


def test_server_kind_is_ephemerals_else_the_inis_else_auto():
    assert build_settings().server_kind == "auto"
    assert build_settings(server_kind=" Wheel ").server_kind == "wheel"
    assert build_settings(ephemeral="path", server_kind="wheel").server_kind == "path"
    assert build_settings(ephemeral="", server_kind="wheel").server_kind == "auto"


# -- reports ---------------------------------------------------------------------------
def test_reports_are_paths(tmp_path):
    settings = build_settings(reports=[str(tmp_path / "a.json"), "out/b.md", "C.JSON"])
    assert settings.reports == (tmp_path / "a.json", Path("out/b.md"), Path("C.JSON"))
    assert all(isinstance(p, Path) for p in settings.reports)


@pytest.mark.parametrize("report", ["audit.txt", "audit", "audit.json.bak", "audit.htm"])
def test_report_must_end_in_json_or_md(report):
    message = _error(reports=["ok.json", report])
    assert repr(report) in message
    assert ".json, .md, .prom or .html" in message


# -- fail_on ---------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    (None, "error"), ("", "error"), ("error", "error"), ("warning", "warning"),
    (" Warning ", "warning"),
])
def test_fail_on(given, expected):
    assert build_settings(fail_on=given).fail_on == expected


def test_fail_on_unknown_value():
    message = _error(fail_on="fatal")
    assert "'fatal'" in message
    assert "error, warning" in message


# -- timeouts --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("1.5min", 90.0), ("1500ms", 1.5), ("5", 5.0), ("", None), (None, None),
])
@pytest.mark.parametrize(("option", "default"), [
    ("connect_timeout", 10.0), ("statement_timeout", 30.0), ("lock_timeout", 1.0),
])
def test_timeouts_are_durations_in_seconds(option, default, text, seconds):
    settings = build_settings(**{option: text})
    expected = default if seconds is None else seconds
    assert getattr(settings, option) == pytest.approx(expected)


@pytest.mark.parametrize("option", ["connect_timeout", "statement_timeout", "lock_timeout"])
def test_zero_timeout_is_rejected(option):
    message = _error(**{option: "0s"})
    assert message.startswith("--mlflowdb-" + option.replace("_", "-") + " (command line):")
    assert "'0s' is outside" in message


@pytest.mark.parametrize("option, text", [
    ("statement_timeout", "0.5ms"),  # would round to 0, which means no timeout at all
    ("lock_timeout", "0.9ms"),
    ("statement_timeout", "30d"),  # beyond PostgreSQL's int milliseconds
    ("connect_timeout", "250ms"),
    ("connect_timeout", "2d"),
])
def test_timeouts_outside_what_postgresql_takes_are_rejected(option, text):
    assert "is outside" in _error(**{option: text})


@pytest.mark.parametrize("option", ["connect_timeout", "statement_timeout", "lock_timeout"])
def test_malformed_timeout_is_rejected(option):
    message = _error(**{option: "soon"})
    assert message.startswith("--mlflowdb-" + option.replace("_", "-") + " (command line):")
    assert "'soon'" in message


# -- pg_bin ----------------------------------------------------------------------------
def test_pg_bin_directory(tmp_path):
    assert build_settings(pg_bin=str(tmp_path)).pg_bin == tmp_path


def test_pg_bin_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "pg").mkdir()
    assert build_settings(pg_bin="~/pg").pg_bin == tmp_path / "pg"


def test_pg_bin_missing_directory(tmp_path):
    missing = str(tmp_path / "missing")
    message = _error(pg_bin=missing)
    assert repr(missing) in message
    assert "not a directory" in message


def test_pg_bin_file_is_not_a_directory(tmp_path):
    file = tmp_path / "pg_ctl"
    file.write_text("")
    assert "not a directory" in _error(pg_bin=str(file))


def test_pg_bin_empty_means_none():
    assert build_settings(pg_bin="").pg_bin is None


# -- thresholds ------------------------------------------------------------------------
def test_threshold_assignments_are_applied():
    settings = build_settings(threshold_assignments=["latency_warn=100ms", "# note", "",
                                                     "connections_fail=90%"])
    assert settings.thresholds["latency_warn"] == pytest.approx(0.1)
    assert settings.thresholds["connections_fail"] == 90.0
    assert settings.thresholds["latency_fail"] == 1.0


def test_unknown_threshold_lists_valid_names():
    message = _error(threshold_assignments=["latency_wran=100ms"])
    assert "'latency_wran'" in message
    assert ", ".join(sorted(t.name for t in builtin_thresholds())) in message


def test_bad_threshold_value_names_the_threshold():
    message = _error(threshold_assignments=["latency_warn=soon"])
    assert "latency_warn" in message
    assert "'soon'" in message


def test_threshold_assignment_without_equals():
    assert "NAME=VALUE" in _error(threshold_assignments=["latency_warn"])


def test_custom_registry_is_used():
    registry = builtin_registry()
    registry.add(Threshold("bloat_warn", "1GB", "size", "table bloat"))
    settings = build_settings(threshold_assignments=["bloat_warn=2GB"], registry=registry)
    assert settings.thresholds["bloat_warn"] == 2 * 1024**3
    assert "bloat_warn" not in build_settings().thresholds


# -- targets ---------------------------------------------------------------------------
@pytest.mark.parametrize("uri", [
    "mysql://u:topsecret@h/db", "postgresql://u:topsecret@h:abc/db", "not a uri", "",
    "postgresql://u:topsecret@h/db?foo=bar",
])
def test_malformed_uri_is_a_settings_error_without_the_password(uri):
    message = _error(uris=[URI, uri])
    assert message
    assert "topsecret" not in message


def test_secrets_hold_every_target_password():
    settings = build_settings(uris=[URI, "host=h2 dbname=d user=u password=other%40pw"])
    assert "topsecret" in settings.secrets
    assert "other%40pw" in settings.secrets


def test_describe_has_no_secrets():
    settings = build_settings(uris=[URI], lock_timeout="250ms", fail_on="warning")
    summary = describe(settings)
    assert summary["targets"] == "db.example:5432/mlflow"
    assert summary["ephemeral"] == "-"
    assert summary["fail_on"] == "warning"
    assert summary["connect_timeout"] == "10s"
    assert summary["lock_timeout"] == "0.25s"
    assert "topsecret" not in repr(summary)


def test_describe_with_nothing():
    summary = describe(build_settings(ephemeral="wheel"))
    assert summary["targets"] == "-"
    assert summary["ephemeral"] == "wheel"


# -- where each setting came from --------------------------------------------------------
INI = "/srv/audit/pytest.ini"


def test_errors_name_the_ini_file_a_bad_value_came_from():
    message = _error(fail_on="fatal", sources={"fail_on": INI})
    assert message.startswith(f"mlflowdb_fail_on ({INI}):")
    assert "'fatal'" in message


def test_errors_name_the_command_line_by_default():
    assert _error(lock_timeout="soon").startswith("--mlflowdb-lock-timeout (command line):")


def test_errors_name_an_ini_override_given_with_dash_o():
    message = _error(pg_bin="/nowhere/at/all", sources={"pg_bin": "-o"})
    assert message.startswith("mlflowdb_pg_bin (-o on the command line):")


def test_a_bad_uri_names_its_source():
    message = _error(uris=["mysql://u:pw@h/db"], sources={"uris": INI})
    assert message.startswith(f"mlflowdb_uris ({INI}):")
    assert ":pw@" not in message


def test_threshold_errors_name_the_source_of_the_bad_assignment():
    ini_bad = _error(threshold_assignments=[(INI, ["latency_warn=soon"]),
                                            ("command line", ["latency_fail=2s"])])
    assert ini_bad.startswith(f"mlflowdb_thresholds ({INI}):")
    cli_bad = _error(threshold_assignments=[(INI, ["latency_warn=100ms"]),
                                            ("command line", ["latency_wran=1s"])])
    assert cli_bad.startswith("--mlflowdb-set (command line):")
    assert "'latency_wran'" in cli_bad


def test_a_later_source_may_fix_what_an_earlier_one_left_out_of_order():
    settings = build_settings(threshold_assignments=[(INI, ["latency_warn=2s"]),
                                                     ("command line", ["latency_fail=3s"])])
    assert settings.thresholds["latency_warn"] == 2.0


def test_settings_remember_where_each_value_came_from():
    settings = build_settings(fail_on="warning", sources={"fail_on": INI})
    assert settings.describe_source("fail_on") == f"mlflowdb_fail_on = warning in {INI}"
    cli = build_settings(fail_on="warning")
    assert cli.describe_source("fail_on") == "--mlflowdb-fail-on=warning on the command line"
