"""Nagios / Icinga mode (``--mlflowdb-nagios``): one status line, performance data, the
plugin exit code.

Per the Nagios plugin guidelines: stdout holds exactly one line, ``MLFLOWDB STATE - text
| 'label'=value[UOM];warn;crit;min;max ...``, and the exit code is the state: 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN. A failed check (an unreachable target fails
``connectivity.connect``) is CRITICAL, a warned one WARNING; a usage error, an
interrupted run or no check at all is UNKNOWN.

This module is a pytest plugin (``plugin.py`` lists it in ``pytest_plugins``): its
``pytest_cmdline_main`` wrapper runs around the whole pytest run, so it sends pytest's
own terminal output to ``os.devnull``, catches a usage error raised anywhere in the run
(pytest would print it on stderr with exit code 4) and prints the line at the very end.
Errors in the command line itself (an unknown option) are pytest's, before any plugin
runs: those stay exit code 4.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from typing import Any

import pytest

STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
OK, WARNING, CRITICAL, UNKNOWN = range(4)
SHOWN = 5  # checks named in the status text; more are counted
WHY_CHARS = 160  # of a failed check's message, beside its name


def _text(text: str) -> str:
    """One line without the ``|`` that starts performance data."""
    return " ".join(str(text).split()).replace("|", "/")


def _label(text: str) -> str:
    return text.replace("'", "_").replace("=", "_")


def _ms(value: Any) -> str | None:
    from pytest_mlflowdb.outputs.prometheus import (
        base_value,  # here: this module is loaded by a dormant plugin
    )

    measured = base_value(value)
    if measured is None or measured[0] != "_seconds":
        return None
    return f"{measured[1] * 1000:.3f}".rstrip("0").rstrip(".") + "ms"


def perfdata(document: dict[str, Any]) -> list[str]:
    """Counts of checks by outcome, the run's duration, and each target's connect time
    and latency (labels carry the target's id when there are several)."""
    summary, total = document["summary"], len(document["checks"])
    failed = summary.get("failed", 0) + summary.get("error", 0)
    data = [f"'checks_{name}'={count};;;0;{total}" for name, count in (
        ("passed", summary.get("passed", 0)), ("warned", summary.get("warned", 0)),
        ("failed", failed), ("skipped", summary.get("skipped", 0)))]
    duration = document.get("run", {}).get("duration_s")
    if duration is not None:
        data.append(f"'duration'={duration:.3f}s;;;0;")
    several = len(document["targets"]) > 1
    for check in document["checks"]:
        name = {"connectivity.connect": "connect_time",
                "connectivity.latency": "latency"}.get(check["id"])
        findings = check.get("findings") or ()
        value = _ms(findings[0].get("value")) if name and findings else None
        if value is not None:
            label = _label(f"{check['target']} {name}" if several else str(name))
            data.append(f"'{label}'={value};;;0;")
    return data


def _why(message: str, target: str) -> str:
    """A failed check's message, short enough to stand beside its name (the target's
    name, already there, taken off its start)."""
    text = _text(message).removeprefix(f"{target}: ")
    return text if len(text) <= WHY_CHARS else text[:WHY_CHARS - 3].rstrip() + "..."


def _not_ok(document: dict[str, Any]) -> list[str]:
    several = len(document["targets"]) > 1
    ranked = sorted((c for c in document["checks"] if c["outcome"] in
                     ("failed", "error", "warned")), key=lambda c: c["outcome"] == "warned")
    names = [(f"{c['id']} on {c['target']}" if several else c["id"])
             + (f" ({_why(c['message'], c['target'])})" if c["outcome"] != "warned" else "")
             for c in ranked]
    if len(names) > SHOWN:
        names = names[:SHOWN] + [f"and {len(names) - SHOWN} more"]
    return names


def nagios_status(document: dict[str, Any] | None, exitstatus: int,
                  report_error: str | None = None) -> tuple[int, str]:
    """The state and the one status line of a finished run."""
    if document is None or not document["checks"]:
        why = {int(pytest.ExitCode.INTERRUPTED): "the run was interrupted (a collection error?)",
               int(pytest.ExitCode.INTERNAL_ERROR): "pytest had an internal error"}.get(
            int(exitstatus), "no check ran (no target given, or none selected)")
        return UNKNOWN, f"MLFLOWDB UNKNOWN - {why}"
    summary = document["summary"]
    failed = summary.get("failed", 0) + summary.get("error", 0)
    warned = summary.get("warned", 0)
    state = CRITICAL if failed else WARNING if warned else OK
    text = f"{warned} warned, {failed} failed of {len(document['checks'])} checks"
    if len(document["targets"]) > 1:
        text += f" on {len(document['targets'])} targets"
    names = _not_ok(document)
    if names:
        text += ": " + ", ".join(names)
    if exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
        state, text = UNKNOWN, f"the run did not finish; {text}"
    elif report_error and state != CRITICAL:
        state, text = UNKNOWN, f"{report_error}; {text}"
    elif exitstatus == pytest.ExitCode.TESTS_FAILED and state == OK:
        state, text = CRITICAL, f"tests outside the audit failed; {text}"
    line = f"MLFLOWDB {STATES[state]} - {_text(text)} | {' '.join(perfdata(document))}"
    return state, line


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> Generator[None, Any, Any]:
    """A command line pytest itself refuses (an unknown option, a bad value for one of
    its own) ends the run before any hook that could answer for it, with pytest's exit
    status 4: in Nagios mode it is one UNKNOWN line and status 3 instead. Checked once
    the initial conftest files have added their options."""
    result = yield
    if "--mlflowdb-nagios" in args and not hasattr(early_config, "workerinput"):
        try:
            _, unknown = parser.parse_known_and_unknown_args(args)
            problem = f"unrecognized arguments: {' '.join(unknown)}" if unknown else None
        except pytest.UsageError as exc:
            problem = str(exc)
        if problem:
            from pytest_mlflowdb.config.targets import redact_text

            sys.stdout.write(f"MLFLOWDB UNKNOWN - {_text(redact_text(problem))}\n")
            sys.stdout.flush()
            raise SystemExit(UNKNOWN)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, Any]:
    if not config.getoption("mlflowdb_nagios", False) or hasattr(config, "workerinput"):
        return (yield)
    from pytest_mlflowdb.keys import SESSION

    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - pytest's terminal writes here to the end
    try:
        exitstatus = yield
    except pytest.UsageError as exc:
        from pytest_mlflowdb.config.targets import redact_text

        state, line = UNKNOWN, f"MLFLOWDB UNKNOWN - {_text(redact_text(str(exc)))}"
    else:
        session = config.stash.get(SESSION, None)
        state, line = nagios_status(session.document if session else None, int(exitstatus),
                                    session.report_error if session else None)
    finally:
        sys.stdout = stdout
    stdout.write(line + "\n")
    stdout.flush()
    return state
