"""Keep passwords out of what pytest itself prints: tracebacks, locals, captured output.

The audit scrubs its own records and reports; but a team check that fails shows its
traceback, with ``--showlocals`` every local (a database URI, the throwaway server), and
the output it captured, in the terminal and in JUnit XML. Every test and collection
report is scrubbed here, on the process that made it (an xdist worker included), before
any reporter sees it. Secrets are the audited targets' passwords and those of every
throwaway server this process started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


class Scrubber:
    """A plugin object: masks secrets in every report as it is made."""

    def __init__(self, secrets: Callable[[], tuple[str, ...]]) -> None:
        self._secrets = secrets

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after every other wrapper
    def pytest_runtest_makereport(self) -> Iterator[None]:
        report = yield
        scrub_report(report, self._secrets())
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_make_collect_report(self) -> Iterator[None]:
        report = yield
        scrub_report(report, self._secrets())
        return report


def scrub_report(report: Any, secrets: tuple[str, ...]) -> None:
    """Mask ``secrets`` in place in a test or collection report (nothing to do without
    secrets: a dormant plugin leaves other suites' reports as they are)."""
    if not secrets:
        return
    from pytest_mlflowdb.config.targets import scrub_all

    for name in ("longrepr", "sections", "user_properties", "mlflowdb", "mlflowdb_target"):
        value = getattr(report, name, None)
        if value is not None:
            setattr(report, name, scrub_all(value, secrets, in_place=True))


def mask_debug_log(config: pytest.Config, secrets: Callable[[], tuple[str, ...]]) -> None:
    """``pytest --debug`` logs the command line and every hook call's arguments to its
    file: mask what it wrote before this plugin's turn, and every line it writes after."""
    from pytest_mlflowdb.config.targets import scrub

    writer = getattr(config.trace.root, "_writer", None)  # pluggy's TagTracer
    debugfile = getattr(writer, "__self__", None)  # helpconfig writes with file.write
    if not config.getoption("debug", None) or debugfile is None:
        return
    debugfile.flush()
    with open(debugfile.name, encoding="utf-8") as written:
        text = written.read()
    debugfile.seek(0)
    debugfile.truncate()
    debugfile.write(scrub(text, secrets()))

    def write(line: str) -> None:
        try:
            known = secrets()
        except ImportError:  # traced while a module of the plugin is half imported
            known = ()  # URIs' user info and password= are masked all the same
        debugfile.write(scrub(line, known))

    config.trace.root.setwriter(write)
