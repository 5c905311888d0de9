"""The report document (docs/ARCHITECTURE.md) from the records, and its files on disk.

Knows nothing of SQL, nor of formats: each file is rendered by the output
(:mod:`pytest_mlflowdb.outputs`) its suffix chooses. The finished document is masked
once (:func:`pytest_mlflowdb.config.targets.scrub_all`), so a password that slipped into a
message never reaches a file or the terminal.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_mlflowdb.config.targets import scrub_all
from pytest_mlflowdb.outputs import Outputs, builtin_outputs
from pytest_mlflowdb.results.records import OUTCOMES

REPORT_VERSION = 1


def build_report(targets: Iterable[dict[str, Any]], checks: Iterable[dict[str, Any]],
                 secrets: Iterable[str] = (), fail_on: str = "error",
                 timing: tuple[float, float] | None = None) -> dict[str, Any]:
    """Assemble the report document from target records and check records.

    ``run`` says which outcomes fail the run (``fail_on``) and how many checks do: with
    ``--mlflowdb-fail-on=warning`` a warned check keeps its outcome but fails the run.
    ``timing`` is the run's (duration in seconds, end as Unix time), for monitoring: a
    dashboard tells a stale result from a fresh one by ``run.end_time``, and a baseline
    tells a report of its own version by ``run.plugin_version``.
    """
    checks = list(checks)
    summary = {outcome: 0 for outcome in OUTCOMES}
    for record in checks:
        summary[record["outcome"]] = summary.get(record["outcome"], 0) + 1
    failing = summary["failed"] + summary["error"]
    if fail_on == "warning":
        failing += summary["warned"]
    run: dict[str, Any] = {"fail_on": fail_on, "failing": failing}
    if timing is not None:
        from pytest_mlflowdb import __version__

        run.update(duration_s=round(timing[0], 4), end_time=round(timing[1], 3),
                   plugin_version=__version__)
    document = {
        "version": REPORT_VERSION,
        "targets": list(targets),
        "checks": checks,
        "summary": summary,
        "run": run,
    }
    return scrub_all(document, tuple(secrets))


#: bytes of an existing file read to tell whether this plugin wrote it
HEAD_BYTES = 4096


def write_reports(document: dict[str, Any], paths: Iterable[Path],
                  outputs: Outputs | None = None) -> list[Path]:
    """Write each report, as the output its suffix names renders it, to a temporary file
    beside it, then rename it into place.

    A reader (a CI step, a dashboard) sees the old file or the whole new one, never a
    half-written one, and a report cut short by a full disk leaves no file at the path.
    The one exception is GitHub Actions' step summary (``$GITHUB_STEP_SUMMARY``): the
    Markdown report is appended to it, keeping what earlier steps wrote there.
    """
    from pytest_mlflowdb.config.validate import step_summary

    outputs = outputs or Outputs(builtin_outputs())
    written = []
    for path in paths:
        if step_summary(path):
            _append(path, outputs.for_suffix(".md").render(document))
            written.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        text = outputs.for_suffix(path.suffix).render(document)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(path)
    return written


def _append(path: Path, text: str) -> None:
    """Add ``text`` at the end of ``path``, a blank line after what is there already."""
    with open(path, "a+", encoding="utf-8") as out:
        out.seek(0, os.SEEK_END)
        if out.tell():
            text = "\n" + text
        out.write(text if text.endswith("\n") else text + "\n")


def foreign_report(paths: Iterable[Path], outputs: Outputs) -> str | None:
    """Why a report path may not be written (a file there that no output of this plugin
    wrote, or not a regular file), or None. A run never replaces or removes such a file:
    ``--mlflowdb-report=README.md`` must not cost the README."""
    from pytest_mlflowdb.config.validate import step_summary

    for path in paths:
        if step_summary(path) or not os.path.lexists(path):
            continue
        if path.is_symlink() or not path.is_file():
            return f"{path} exists and is not a regular file; refusing to replace it"
        with open(path, "rb") as existing:
            head = existing.read(HEAD_BYTES).decode("utf-8", "replace")
        if head and not outputs.for_suffix(path.suffix).wrote(head):
            return (f"{path} exists and is not a report pytest-mlflowdb wrote; refusing to "
                    "replace it (remove it, or name another path)")
    return None


def remove_reports(paths: Iterable[Path], outputs: Outputs | None = None) -> list[Path]:
    """Remove the reports an earlier run left at ``paths`` (only files an output of this
    plugin wrote, or empty ones); returns those removed.

    Called once the run has a check's outcome, so it surely writes new reports: one that
    ends before (a usage error, ``--collect-only``, nothing selected) leaves the files as
    they are, and one that crashes later never leaves an older report for this run's.
    """
    from pytest_mlflowdb.config.validate import step_summary

    outputs = outputs or Outputs(builtin_outputs())
    removed = []
    for path in paths:
        # a step summary holds other steps' summaries (appended to, never replaced); a
        # file this plugin did not write is never ours to remove
        if step_summary(path) or not os.path.lexists(path) or foreign_report([path], outputs):
            continue
        path.unlink()
        removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
