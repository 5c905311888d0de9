"""The one-line quotes of errors and texts (pytest_mlflowdb.text)."""

from __future__ import annotations

from pytest_mlflowdb.text import first_line, last_line


def test_first_line_of_an_error_skips_blank_lines_and_strips():
    assert first_line(ValueError("\n  relation x does not exist  \nLINE 1: ...")) == (
        "relation x does not exist")
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError(" \n"), "libpq cannot parse it") == "libpq cannot parse it"


def test_first_line_of_a_text_and_its_limit():
    assert first_line("") == ""
    assert first_line("abcdef\nsecond", limit=3) == "abc"


def test_last_line_of_a_child_process_output():
    assert last_line("warning\nERROR: it failed\n\n", "exit 1") == "ERROR: it failed"
    assert last_line("  \n", "exit 1") == "exit 1"
