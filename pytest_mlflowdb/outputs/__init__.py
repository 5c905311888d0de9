"""Outputs: where a finished audit goes. Each is an object behind :class:`Output`.

An output may write report files (``suffixes`` and :meth:`Output.render`: the report
path's suffix chooses the output), add to each check's test report as it is made
(:meth:`Output.on_record`, as JUnit properties do) and add to pytest's terminal summary
(:meth:`Output.on_summary`). The built-in ones are listed in :func:`builtin_outputs`; a
plugin or conftest.py adds its own through the ``pytest_mlflowdb_outputs`` hook, so a
Prometheus text file or a Nagios line is one new module and touches no core module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from pytest_mlflowdb.results.records import CheckRecord


class Output:
    """The interface of an output; every method does nothing unless overridden."""

    #: a name for messages and for replacing a built-in output (a plugin's output with
    #: the name ``"json"`` replaces the built-in JSON report)
    name: str = ""
    #: report file suffixes this output writes (lower case, with the dot)
    suffixes: tuple[str, ...] = ()

    def render(self, document: dict[str, Any]) -> str:
        """The text of a report file for ``document`` (masked already)."""
        raise NotImplementedError(f"output {self.name!r} writes no report files")

    def wrote(self, head: str) -> bool:
        """Whether a file beginning with ``head`` is a report this output wrote: the only
        files a run removes or replaces (an output plugin's are trusted unless it says)."""
        return True

    def on_record(self, item: pytest.Item, record: CheckRecord) -> None:
        """Called on the process that ran a check with its record (the call's, or a
        setup's that did not pass; not a teardown error's)."""

    def on_report(self, config: pytest.Config, report: pytest.TestReport,
                  record: dict[str, Any]) -> None:
        """Called on the controller with each check's test report and its (masked) record
        as it arrives, from this process or relayed by an xdist worker."""

    def on_summary(self, terminalreporter: Any, document: dict[str, Any]) -> None:
        """Called on the controller at the end of a run that ran checks."""


class Outputs:
    """The outputs of this run, by name; later ones replace earlier of the same name."""

    def __init__(self, outputs: Iterable[Output]) -> None:
        self._by_name: dict[str, Output] = {}
        for output in outputs:
            self._by_name[output.name or f"output{len(self._by_name)}"] = output

    def __iter__(self) -> Iterator[Output]:
        return iter(self._by_name.values())

    @property
    def suffixes(self) -> tuple[str, ...]:
        return tuple(s for output in self for s in output.suffixes)

    def for_suffix(self, suffix: str) -> Output:
        """The output that writes files ending in ``suffix`` (the last one declaring it)."""
        found = [o for o in self if suffix.lower() in o.suffixes]
        if not found:
            raise KeyError(suffix)
        return found[-1]


def builtin_outputs() -> list[Output]:
    from pytest_mlflowdb.outputs.html import HtmlReport
    from pytest_mlflowdb.outputs.json_file import JsonReport
    from pytest_mlflowdb.outputs.junit import JunitProperties
    from pytest_mlflowdb.outputs.markdown import MarkdownReport
    from pytest_mlflowdb.outputs.prometheus import PrometheusTextFile
    from pytest_mlflowdb.outputs.terminal import TerminalTables

    return [JsonReport(), MarkdownReport(), PrometheusTextFile(), TerminalTables(),
            JunitProperties(), HtmlReport()]


def collect_outputs(config: pytest.Config) -> Outputs:
    """The built-in outputs, then those every ``pytest_mlflowdb_outputs`` hook returns."""
    found: list[Output] = builtin_outputs()
    for added in config.hook.pytest_mlflowdb_outputs(config=config):
        found.extend(added or ())
    return Outputs(found)


def by_target(document: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The document's check records grouped by target, in the targets' order; records of
    no known target last, under ``(no target)``."""
    grouped = []
    known = {t["id"] for t in document["targets"]}
    for target in document["targets"]:
        grouped.append((target, [c for c in document["checks"] if c["target"] == target["id"]]))
    others = [c for c in document["checks"] if c["target"] not in known]
    if others:
        grouped.append(({"id": "(no target)", "uri": None}, others))
    return grouped


#: the columns of the summary across targets (``error`` is added when a check errored)
SUMMARY_OUTCOMES = ("passed", "warned", "failed", "skipped")


def target_counts(document: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """Each target's outcome counts, in the targets' order: the summary across targets."""
    rows = []
    for target, checks in by_target(document):
        counts = {outcome: 0 for outcome in (*SUMMARY_OUTCOMES, "error")}
        for check in checks:
            counts[check["outcome"]] = counts.get(check["outcome"], 0) + 1
        rows.append((target["id"], counts))
    return rows


def summary_rows(document: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the summary across targets (target, passed, warned, failed,
    skipped, and error when any check errored)."""
    counted = target_counts(document)
    columns = list(SUMMARY_OUTCOMES)
    if any(counts["error"] for _, counts in counted):
        columns.append("error")
    return ["target", *columns], [[target, *(counts[c] for c in columns)]
                                  for target, counts in counted]


def remedies(checks: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(check id, object, remedy) of every finding that carries a remedy."""
    return [(c["id"], str(f.get("object", "")), str(f["remedy"]))
            for c in checks for f in c.get("findings") or () if f.get("remedy")]
