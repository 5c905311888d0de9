"""The threshold grammar, the registry and the values in force
(pytest_mlflowdb.config.thresholds)."""

from __future__ import annotations

import pytest

from pytest_mlflowdb.config.areas import builtin_registry, builtin_thresholds
from pytest_mlflowdb.config.thresholds import (
    Threshold,
    ThresholdError,
    ThresholdRegistry,
    ThresholdValues,
    format_value,
    parse_assignments,
    parse_value,
)

KB, MB, GB, TB = 1024, 1024**2, 1024**3, 1024**4
BUILTIN_NAMES = sorted(t.name for t in builtin_thresholds())


def _one_line_error(unit: str, text: str) -> str:
    with pytest.raises(ThresholdError) as excinfo:
        parse_value(unit, text)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.strip()
    return message


# -- parse_value -----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("64MB", 64 * MB),
    ("1.5GB", 1.5 * GB),
    ("512kB", 512 * KB),
    ("512KB", 512 * KB),
    ("10 GB", 10 * GB),
    ("2TB", 2 * TB),
    ("3MiB", 3 * MB),
    ("100", 100),
    ("100B", 100),
    (" 64MB ", 64 * MB),
])
def test_sizes_are_bytes(text, expected):
    assert parse_value("size", text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("250ms", 0.25),
    ("30s", 30.0),
    ("30", 30.0),
    ("15min", 900.0),
    ("2h", 7200.0),
    ("7d", 7 * 86400.0),
    ("1w", 7 * 86400.0),
    ("1us", 1e-6),
    ("1.5min", 90.0),
    ("10 seconds", 10.0),
])
def test_durations_are_seconds(text, expected):
    assert parse_value("duration", text) == pytest.approx(expected)


def test_m_is_a_minute_for_durations_but_a_mebibyte_for_sizes():
    assert parse_value("duration", "5m") == 300.0
    assert parse_value("size", "5m") == 5 * MB


@pytest.mark.parametrize(("text", "expected"), [
    ("80%", 80.0), ("80", 80.0), ("0%", 0.0), ("100%", 100.0), ("12.5%", 12.5),
])
def test_percents_are_zero_to_hundred(text, expected):
    assert parse_value("percent", text) == expected


def test_percent_above_hundred_is_an_error_naming_the_value():
    message = _one_line_error("percent", "150%")
    assert "150%" in message


@pytest.mark.parametrize("text", ["80MB", "80 percent"])
def test_percent_with_a_foreign_suffix_is_an_error(text):
    assert text in _one_line_error("percent", text)


def test_counts_are_whole_numbers():
    assert parse_value("count", "5") == 5
    assert parse_value("count", "0") == 0


@pytest.mark.parametrize("text", ["2.5", "5s", "5%"])
def test_count_that_is_not_a_whole_number_is_an_error(text):
    assert repr(text) in _one_line_error("count", text)


def test_plain_numbers():
    assert parse_value("number", "0.5") == 0.5
    assert parse_value("number", ".5") == 0.5
    assert repr("0.5x") in _one_line_error("number", "0.5x")


@pytest.mark.parametrize("unit", ["size", "duration", "percent", "count", "number"])
@pytest.mark.parametrize("text", ["abc", "", "1.2.3", "-5", "5 parsecs", "5MB\nrm -rf"])
def test_malformed_values_raise_one_line_error_naming_the_value(unit, text):
    message = _one_line_error(unit, text)
    assert repr(text) in message
    assert unit in message


def test_error_message_gives_examples_of_the_grammar():
    assert "15min" in _one_line_error("duration", "5 parsecs")
    assert "64MB" in _one_line_error("size", "5 parsecs")


def test_threshold_error_is_a_value_error():
    assert issubclass(ThresholdError, ValueError)


# -- format_value ----------------------------------------------------------------------
@pytest.mark.parametrize(("unit", "value", "expected"), [
    ("size", 64 * MB, "64MB"),
    ("size", 1.5 * GB, "1.5GB"),
    ("size", 512 * KB, "512kB"),
    ("size", 2 * TB, "2TB"),
    ("size", 100, "100B"),
    ("duration", 0.05, "50ms"),
    ("duration", 900, "15min"),
    ("duration", 30, "30s"),
    ("duration", 7200, "2h"),
    ("duration", 7 * 86400, "7d"),
    ("duration", 0, "0s"),
    ("percent", 80.0, "80%"),
    ("percent", 12.5, "12.5%"),
    ("count", 5.0, "5"),
    ("number", 0.5, "0.5"),
])
def test_format_value(unit, value, expected):
    assert format_value(unit, value) == expected


@pytest.mark.parametrize(("unit", "text"), [
    ("size", "64MB"), ("size", "1.5GB"), ("size", "512kB"), ("size", "100B"),
    ("duration", "250ms"), ("duration", "30s"), ("duration", "15min"), ("duration", "7d"),
    ("duration", "2h"), ("percent", "80%"), ("count", "5"), ("number", "0.5"),
])
def test_format_round_trips_the_grammar(unit, text):
    value = parse_value(unit, text)
    assert format_value(unit, value) == text
    assert parse_value(unit, format_value(unit, value)) == pytest.approx(value)


def test_900_seconds_formats_as_15min():
    assert format_value("duration", parse_value("duration", "900s")) == "15min"


@pytest.mark.parametrize(("unit", "value"), [
    ("size", 1000 * MB),
    ("size", 1_050_000_000),
    ("size", 1023.9 * KB),
    ("duration", 0.9996),
])
def test_formatted_values_always_parse_back(unit, value):
    text = format_value(unit, value)
    assert "e+" not in text
    assert parse_value(unit, text) == pytest.approx(value, rel=0.01)


# -- Threshold -------------------------------------------------------------------------
def test_threshold_definition_is_accepted_and_frozen():
    threshold = Threshold("bloat_warn", "1GB", "size", "table bloat that warns", ("bloat.x",))
    assert threshold.checks == ("bloat.x",)
    with pytest.raises(AttributeError):
        threshold.default = "2GB"


def test_threshold_with_an_unknown_unit_is_rejected():
    with pytest.raises(ThresholdError, match="unit must be one of size, duration"):
        Threshold("bloat_warn", "1GB", "bytes", "d")


@pytest.mark.parametrize("name", ["Latency", "1latency", "latency-warn", "", "latency warn"])
def test_threshold_name_must_be_lower_snake_case(name):
    with pytest.raises(ThresholdError, match="lower_snake_case"):
        Threshold(name, "1s", "duration", "d")


@pytest.mark.parametrize(("default", "unit"), [("abc", "duration"), ("150%", "percent"),
                                                ("2.5", "count"), ("5s", "size")])
def test_threshold_with_a_bad_default_is_rejected(default, unit):
    with pytest.raises(ThresholdError, match="is "):
        Threshold("some_limit", default, unit, "d")


# -- ThresholdRegistry -----------------------------------------------------------------
def test_registry_holds_the_builtins_sorted():
    registry = builtin_registry()
    assert registry.names() == BUILTIN_NAMES
    assert [t.name for t in registry] == BUILTIN_NAMES
    assert registry.definition("latency_warn").unit == "duration"


def test_resolve_without_overrides_gives_defaults():
    values = builtin_registry().resolve({})
    assert values["latency_warn"] == pytest.approx(0.05)
    assert values["latency_fail"] == 1.0
    assert values["latency_samples"] == 5
    assert values["connections_warn"] == 80.0
    assert values["connections_fail"] == 95.0
    assert sorted(values) == BUILTIN_NAMES


def test_resolve_applies_overrides_in_each_unit():
    values = builtin_registry().resolve({"latency_warn": "100ms", "connections_warn": "70%"})
    assert values["latency_warn"] == pytest.approx(0.1)
    assert values["connections_warn"] == 70.0
    assert values["latency_fail"] == 1.0


def test_resolve_unknown_name_lists_valid_names():
    with pytest.raises(ThresholdError) as excinfo:
        builtin_registry().resolve({"latency_wran": "1s"})
    message = str(excinfo.value)
    assert "'latency_wran'" in message
    assert ", ".join(BUILTIN_NAMES) in message
    assert "\n" not in message


def test_resolve_bad_override_value_names_the_threshold():
    with pytest.raises(ThresholdError) as excinfo:
        builtin_registry().resolve({"latency_warn": "soon"})
    message = str(excinfo.value)
    assert message.startswith("threshold latency_warn:")
    assert "'soon'" in message
    assert "\n" not in message


def test_definition_of_unknown_name_lists_valid_names():
    with pytest.raises(ThresholdError, match="valid names: .*connections_fail"):
        builtin_registry().definition("nope")


def test_add_replaces_a_builtin_default():
    registry = builtin_registry()
    registry.add(Threshold("latency_warn", "100ms", "duration", "slower network"))
    assert registry.resolve({})["latency_warn"] == pytest.approx(0.1)
    assert registry.names() == BUILTIN_NAMES
    # the registry of another session is untouched
    assert builtin_registry().resolve({})["latency_warn"] == pytest.approx(0.05)


def test_add_a_new_threshold_with_its_own_unit():
    registry = builtin_registry()
    registry.add(Threshold("bloat_warn", "1GB", "size", "table bloat"))
    values = registry.resolve({"bloat_warn": "512MB"})
    assert values["bloat_warn"] == 512 * MB
    assert values.unit("bloat_warn") == "size"
    assert values.text("bloat_warn") == "512MB"
    assert "bloat_warn" in registry.names()


def test_empty_registry():
    registry = ThresholdRegistry(())
    assert registry.names() == []
    assert len(registry.resolve({})) == 0


# -- parse_assignments -----------------------------------------------------------------
def test_parse_assignments():
    items = ["latency_warn=100ms", "", "   ", "# a comment", " connections_warn = 70% ",
             "options=a=b"]
    assert parse_assignments(items) == {
        "latency_warn": "100ms", "connections_warn": "70%", "options": "a=b",
    }


def test_parse_assignments_later_wins():
    assert parse_assignments(["a=1", "a=2"]) == {"a": "2"}


@pytest.mark.parametrize("item", ["a", "=1", "a=", " = ", "a 1"])
def test_parse_assignments_rejects_what_is_not_name_value(item):
    with pytest.raises(ThresholdError) as excinfo:
        parse_assignments(["ok=1", item])
    message = str(excinfo.value)
    assert repr(item.strip()) in message
    assert "NAME=VALUE" in message
    assert "\n" not in message


# -- ThresholdValues -------------------------------------------------------------------
@pytest.fixture
def values() -> ThresholdValues:
    return builtin_registry().resolve({"latency_warn": "0.1s"})


def test_text_is_the_value_as_written_else_in_the_grammar(values):
    assert values.text("latency_warn") == "0.1s"  # as the user wrote it
    assert values.text("latency_fail") == "1s"  # as its default is written
    assert ThresholdValues({"a": 0.1}, {"a": "duration"}).text("a") == "100ms"
    assert values.text("latency_samples") == "5"
    assert values.text("connections_warn") == "80%"


def test_values_are_a_read_only_mapping(values):
    assert len(values) == len(BUILTIN_NAMES)
    assert "latency_warn" in values
    assert "nope" not in values
    assert values.get("nope") is None
    assert dict(values)["latency_fail"] == 1.0
    with pytest.raises(TypeError):
        values["latency_warn"] = 5.0
    with pytest.raises(TypeError):
        del values["latency_warn"]
    assert values["latency_warn"] == pytest.approx(0.1)


def test_values_are_copied_from_their_source():
    source = {"a": 1.0}
    values = ThresholdValues(source, {"a": "count"})
    source["a"] = 2.0
    source["b"] = 3.0
    assert values["a"] == 1.0
    assert "b" not in values


def test_unknown_name_is_a_key_error_listing_valid_names(values):
    with pytest.raises(KeyError) as excinfo:
        values["latency_wran"]
    message = excinfo.value.args[0]
    assert "'latency_wran'" in message
    assert ", ".join(BUILTIN_NAMES) in message
    with pytest.raises(KeyError):
        values.text("latency_wran")


def test_repr_shows_values_as_written(values):
    assert "'latency_warn': '0.1s'" in repr(values)
