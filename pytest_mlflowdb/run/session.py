"""The audit session: the run's state and its hooks, in one plugin object.

Registered at configure time when there is something to audit (as pytest-xdist
registers its ``DSession``), so its hooks never ask whether the plugin is active. It
owns the settings, the targets and their read-only sessions
(:class:`~pytest_mlflowdb.audit.sessions.TargetSessions`), the outputs, and the check and target
records gathered on the controller (also those relayed by xdist workers).
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mlflowdb.config.areas import builtin_checks_dir
from pytest_mlflowdb.config.read import threshold_registry, usage_error
from pytest_mlflowdb.config.validate import Settings, SettingsError
from pytest_mlflowdb.keys import (
    FINDINGS,
    MARKER,
    SETTINGS,
    is_worker,
    nested_run,
    target_param_of,
)
from pytest_mlflowdb.outputs import Outputs
from pytest_mlflowdb.results.records import (
    CheckRecord,
    TargetRecord,
    check_id,
    check_of_nodeid,
    check_record,
    failure_text,
)
from pytest_mlflowdb.text import first_line

if TYPE_CHECKING:  # audit imports psycopg: a dormant plugin must not
    pass

_FAILED_BY_FINDINGS = pytest.StashKey[bool]()


def _is_check(item: pytest.Item) -> bool:
    return (item.get_closest_marker(MARKER) is not None
            or "_mlflowdb_key" in getattr(item, "fixturenames", ()))


class _ConnectOnly(pytest.Module):
    """``checks/connectivity.py`` with only ``connectivity.connect`` in it.

    Collected with ``--mlflowdb-no-builtin``: a run of team checks alone must still fail
    when a target does not answer, in the terminal, the reports, JUnit XML and the exit
    code alike, and that needs a test item that fails.
    """

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return [node for node in super().collect()
                if getattr(node, "originalname", node.name) == "test_connect"]


def _connect_module() -> Path | None:
    checks_dir = builtin_checks_dir()
    return checks_dir / "connectivity.py" if checks_dir is not None else None


class AuditSession:
    """One audit run on this process; on the controller it also writes the outputs."""

    def __init__(self, config: pytest.Config, settings: Settings, outputs: Outputs) -> None:
        self.config = config
        self.settings = settings
        self.outputs = outputs
        from pytest_mlflowdb.audit.sessions import TargetSessions

        self.sessions = TargetSessions(settings)
        self.check_records: list[CheckRecord] = []
        self.target_records: dict[str, TargetRecord] = {}
        self.document: dict[str, Any] | None = None
        self.report_error: str | None = None
        self.threshold_error: str | None = None  # found on an xdist worker after collection
        self._seen: dict[str, tuple[str, str | None]] = {}  # nodeid -> (check id, target)
        #: see _check_folders
        self._on_the_way: tuple[tuple[Path, ...], frozenset[Path],
                                tuple[Path, ...]] | None = None
        #: target id -> the target record this process last sent on a test report
        self._sent_targets: dict[str, dict[str, Any]] = {}
        self._started = time.perf_counter()
        #: the run's private folder for the backup checks' shared findings (xdist)
        self._backup_folder: Path | None = None
        self._holding_sigterm = False  # see pytest_configure_node
        #: the collector's thresholds before collection deferred its full collections
        self._gc_thresholds = _defer_full_collections()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.sessions.secrets

    def scrub(self, text: str) -> str:
        from pytest_mlflowdb.config.targets import scrub

        return scrub(text, self.secrets)

    # -- collection ----------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        """Open the targets' sessions while pytest collects, in a run whose checks run in
        this process (not on an xdist controller, whose workers open their own; not
        with ``--collect-only``)."""
        config = self.config
        if not (is_worker(config) or config.option.collectonly
                or config.pluginmanager.has_plugin("dsession")):
            self.sessions.open_early()

    def pytest_collect_file(self, file_path: Path,
                            parent: pytest.Collector) -> pytest.Collector | None:
        """Collect the built-in check modules whatever ``python_files`` says."""
        from pytest_mlflowdb.config.areas import is_check_module

        if not is_check_module(file_path):
            return None
        if any(file_path.match(p) for p in parent.config.getini("python_files")):
            return None  # pytest's own collector takes it (python_files = *.py, say)
        connect_only = self.pytest_pycollect_makemodule(file_path, parent)
        return connect_only or pytest.Module.from_parent(parent, path=file_path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        """With ``--mlflowdb-no-builtin`` the built-in modules are not collected, but one.

        The built-in checks are installed in a virtualenv. When that virtualenv is below
        the folder pytest collects (``python -m venv .venv`` in a project, then
        ``.venv/bin/pytest --mlflowdb-uri=...`` there), pytest drops the checks' folder as
        an argument inside that folder, then skips the virtualenv as it walks: the audit
        ran no check at all. So the folders on the way to the checks are never ignored,
        and everything else in such a virtualenv always is (no one else's tests)."""
        if (not self.settings.builtin_checks and collection_path.parent == builtin_checks_dir()
                and collection_path != _connect_module()):
            return True
        folders, on_the_way, venvs = self._check_folders()
        if collection_path in on_the_way:
            return False
        if any(folder in collection_path.parents for folder in folders):
            return None  # the check modules: pytest's own rules (__pycache__ stays out)
        if any(venv in collection_path.parents for venv in venvs):
            return True
        return None

    def _check_folders(self) -> tuple[tuple[Path, ...], frozenset[Path], tuple[Path, ...]]:
        """The check folders, they with every folder above them, and the virtualenvs among
        those."""
        if self._on_the_way is None:
            from pytest_mlflowdb.config.areas import check_paths

            folders = tuple(Path(p) for p in check_paths())
            on_the_way = frozenset(p for f in folders for p in (f, *f.parents))
            venvs = tuple(p for p in on_the_way if (p / "pyvenv.cfg").is_file())
            self._on_the_way = (folders, on_the_way, venvs)
        return self._on_the_way

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path,
                                    parent: pytest.Collector) -> pytest.Module | None:
        """Built-in check modules get node ids that do not depend on where the package is
        installed or where pytest runs (``pytest_mlflowdb/checks/schema.py::test_revision``,
        for ``--deselect`` and ``-k``): relative to the folder given to pytest they read
        ``schema.py::...``, a file that is not there."""
        if module_path.parent != builtin_checks_dir():
            return None
        nodeid = f"pytest_mlflowdb/checks/{module_path.name}"
        if module_path == _connect_module() and not self.settings.builtin_checks:
            return _ConnectOnly.from_parent(parent, path=module_path, nodeid=nodeid)
        return pytest.Module.from_parent(parent, path=module_path, nodeid=nodeid)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "_mlflowdb_key" in metafunc.fixturenames:
            keys = self.sessions.keys()
            metafunc.parametrize("_mlflowdb_key", keys, ids=[k.id for k in keys],
                                 indirect=True, scope="session")

    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        """Deselect opt-in checks (``@check(..., enabled_by=...)``) whose options are unset."""
        options = self.settings.area_options
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            marker = item.get_closest_marker(MARKER)
            wanted = marker.kwargs.get("enabled_by", ()) if marker else ()
            (drop if wanted and not any(options.get(o) for o in wanted) else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Resolve the thresholds again now that every collected conftest.py is loaded.

        ``pytest_configure`` runs before collection loads the conftest.py files below the
        rootdir, so their ``pytest_mlflowdb_thresholds`` hooks were not heard yet: their
        thresholds get their defaults now, ``--mlflowdb-set`` values for them are checked
        now, and a name that no hook defines is a usage error (one line, exit code 4).
        """
        from pytest_mlflowdb.config.validate import resolve_thresholds

        self._restore_full_collections()
        try:
            values = resolve_thresholds(self.settings.threshold_assignments,
                                        threshold_registry(self.config))
        except SettingsError as exc:
            if is_worker(self.config):  # xdist cannot take a usage error: fail each test
                self.threshold_error = usage_error(str(exc)).args[0]
                return
            raise usage_error(str(exc)) from None
        self.settings = dataclasses.replace(self.settings, thresholds=values)
        self.sessions.settings = self.config.stash[SETTINGS] = self.settings
        self._plan_collection(session)
        self._freeze_startup_objects(session)

    def _plan_collection(self, session: pytest.Session) -> None:
        """What each target's selected checks declared: read before the first of them
        runs (audit/collect.py). An xdist worker collects each target when first asked: it runs
        only the targets scheduled to it."""
        from pytest_mlflowdb.audit.collect import plans

        self.sessions.plans = plans(session.items)
        self.sessions.collect_all = not is_worker(self.config)

    def _restore_full_collections(self) -> None:
        """The collector's thresholds as they were before collection (unless something
        else has set them since)."""
        deferred, self._gc_thresholds = self._gc_thresholds, None
        if deferred is not None and gc.get_threshold() == _deferring(deferred):
            gc.set_threshold(*deferred)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._restore_full_collections()  # a run that never finished its collection

    @staticmethod
    def _freeze_startup_objects(session: pytest.Session) -> None:
        """Leave what the run has made so far (pytest, psycopg, the catalog, the collected
        checks, alive until the process ends anyway) out of every later garbage
        collection: the collections pytest makes at its end and Python's at exit would
        walk them all again. Only in a run of checks alone that
        is the process's only pytest run: never beside a team's other tests, nor in a run
        inside another (whose objects would then outlive it)."""
        if session.items and all(_is_check(item) for item in session.items) \
                and not nested_run():
            gc.freeze()

    # -- running -------------------------------------------------------------------------
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.threshold_error:
            pytest.fail(self.threshold_error, pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        from psycopg.errors import LockNotAvailable, QueryCanceled

        from pytest_mlflowdb.db.errors import DatabaseError

        reason = skip = None
        try:
            result = yield
        except DatabaseError as exc:
            reason = str(exc)
        except LockNotAvailable as exc:  # the check could not look: a skip, never a pass
            skip = (f"could not look: another session holds a lock it needs "
                    f"({first_line(str(exc))}; lock_timeout "
                    f"{self.settings.lock_timeout:g}s)")
        except QueryCanceled as exc:  # statement_timeout: one line, no traceback
            reason = f"{first_line(str(exc))} (statement_timeout " \
                     f"{self.settings.statement_timeout:g}s)"
        if skip is not None and self.settings.expectation:
            # a deployment gate that could not look must not let the deployment through
            pytest.fail(self.scrub(f"{skip}; {self.settings.expectation} is expected, and "
                                   "a check that could not look cannot confirm it"),
                        pytrace=False)
        if skip is not None:
            pytest.skip(self.scrub(skip))
        if reason is not None:  # one line, no traceback: the target stopped answering, say
            pytest.fail(self.scrub(reason), pytrace=False)
        findings = item.stash.get(FINDINGS, None)
        if findings is not None and findings.severity in self._failing_severities():
            item.stash[_FAILED_BY_FINDINGS] = True
            pytest.fail(self.scrub(failure_text(findings)), pytrace=False)
        return result

    def _failing_severities(self) -> tuple[str, ...]:
        """Findings that fail the test itself, so pytest, JUnit XML and the exit code agree.

        With ``--mlflowdb-fail-on=warning`` a warned check is a failed test in pytest's
        accounting (a JUnit failure); its report record keeps the outcome ``warned``.
        """
        return ("failure", "warning") if self.settings.fail_on == "warning" else ("failure",)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None],
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report: pytest.TestReport = yield
        if not _is_check(item):
            return report
        # One record per outcome pytest counts: the call (or a setup that did not pass), and
        # a teardown error as a record of its own, as pytest counts "1 passed, 1 error".
        teardown_error = call.when == "teardown" and report.failed
        decisive = call.when == "call" or (call.when == "setup" and not report.passed)
        key = target_param_of(item)
        if not (decisive or teardown_error):
            # who the item is, for the record of a crash the controller may have to write
            report.mlflowdb_check = {  # type: ignore[attr-defined]
                "id": check_id(item), "target": key.id if key else None}
            return report
        record = check_record(item, call, report, item.stash.get(FINDINGS, None),
                              item.stash.get(_FAILED_BY_FINDINGS, False),
                              key.id if key else None)
        report.mlflowdb = record.to_json()  # type: ignore[attr-defined]
        if decisive:
            for output in self.outputs:
                output.on_record(item, record)
        if key is not None:  # sent when it says something new (its first check, say)
            target = self.sessions.target_record(key.slot, key.id).to_json()
            if self._sent_targets.get(key.id) != target:
                self._sent_targets[key.id] = target
                report.mlflowdb_target = target  # type: ignore[attr-defined]
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        record = getattr(report, "mlflowdb", None)
        if not record:
            return None
        if record["outcome"] == "warned" and report.failed:  # --mlflowdb-fail-on=warning
            return "failed", "W", ("WARNED", {"red": True})
        if record["outcome"] == "warned":
            return "warned", "W", ("WARNED", {"yellow": True})
        if record["outcome"] == "error" and report.when == "call":
            return "error", "E", ("ERROR", {"red": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Gather records, also those relayed by xdist workers. A worker that dies
        mid-check sends none: xdist reports the item as failed with ``when == "???"``,
        and the record is written from what its setup report said, or its node id."""
        seen = getattr(report, "mlflowdb_check", None)
        if seen:
            self._seen[report.nodeid] = (seen["id"], seen["target"])
        data = getattr(report, "mlflowdb", None)
        crashed = report.when == "???" and report.failed
        if (data or crashed) and not self.check_records and not is_worker(self.config):
            self._remove_stale_reports()
        if data:
            self.check_records.append(CheckRecord.from_json(data))
            for output in self.outputs:
                output.on_report(self.config, report, data)
        elif crashed:
            found = self._seen.get(report.nodeid) or check_of_nodeid(
                report.nodeid, [k.id for k in self.sessions.keys()])
            crash = CheckRecord.of_crash(report, *found)  # never passed the Scrubber
            self.check_records.append(dataclasses.replace(crash,
                                                          message=self.scrub(crash.message)))
        else:
            return
        target_data = getattr(report, "mlflowdb_target", None)
        if target_data:
            target = TargetRecord.from_json(target_data)
            known = self.target_records.get(target.id)
            if known is None or (not known.server_version and target.server_version):
                self.target_records[target.id] = target

    def _remove_stale_reports(self) -> None:
        """The first check's outcome is in: this run writes its reports, so an earlier
        run's must not stay at the paths meanwhile (a crash would leave it for this run's)."""
        from pytest_mlflowdb.outputs.report import remove_reports

        try:
            remove_reports(self.settings.reports, self.outputs)
        except OSError:
            pass  # not ours to remove (permissions): the write at the end reports it

    # -- the end -------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if is_worker(self.config) or self.config.option.collectonly or not self.check_records:
            return  # no check ran: no report (and an earlier one stays as it was)
        from pytest_mlflowdb.config.targets import scrub_all
        from pytest_mlflowdb.outputs.report import build_report, write_reports

        keys = self.sessions.keys()
        order = {k.id: i for i, k in enumerate(keys)}
        targets = sorted(self.target_records.values(), key=lambda t: order.get(t.id, len(order)))
        targets += [self.sessions.target_record(k.slot, k.id) for k in keys
                    if k.id not in self.target_records]
        checks = sorted(self.check_records, key=lambda r: (order.get(r.target or "", len(order)),
                                                    r.id))
        # masked before the hook sees it (it may send the report anywhere), and again after
        document = build_report([t.to_json() for t in targets], [c.to_json() for c in checks],
                                self.secrets, fail_on=self.settings.fail_on,
                                timing=(time.perf_counter() - self._started, time.time()))
        if self.settings.baseline:  # read before the history plugin keeps this run's report
            from pytest_mlflowdb.outputs.baseline import apply_baseline, load_baseline

            apply_baseline(document, self.settings, load_baseline(
                self.settings.baseline, self.settings.area_options.get("history")))
        self.config.hook.pytest_mlflowdb_report(report=document, config=self.config)
        self.document = scrub_all(document, self.secrets)  # masked once, hooks' keys too
        try:
            write_reports(self.document, self.settings.reports, self.outputs)
        except OSError as exc:
            self.report_error = (f"could not write the report: {exc.strerror or exc} "
                                 f"({exc.filename or ''})")
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        warned = self.document["summary"].get("warned", 0)
        if self.settings.fail_on == "warning" and warned and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.settings.fail_on == "regression":
            from pytest_mlflowdb.outputs.baseline import exit_status

            session.exitstatus = exit_status(self.document, session.testsfailed,
                                             int(session.exitstatus))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.document is None or is_worker(self.config):
            return
        terminalreporter.section("mlflowdb audit")
        for output in self.outputs:
            output.on_summary(terminalreporter, self.document)
        if self.report_error:
            terminalreporter.write_line(f"mlflowdb: {self.report_error}", red=True)
        else:
            for path in self.settings.reports:
                terminalreporter.write_line(f"mlflowdb report written to {path}")
        if self.settings.fail_on == "warning" and self.document["summary"].get("warned"):
            terminalreporter.write_line("mlflowdb: warned checks fail this run "
                                        f"({self.settings.describe_source('fail_on')})")

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist's controller: SIGTERM is turned into KeyboardInterrupt (xdist then stops
        the workers in order, and they remove their servers and dumps: a controller killed
        outright left them without a channel to end on); and each worker gets the run's
        private folder in which the first of them to verify a backup leaves its findings
        for the others."""
        if not self._holding_sigterm:
            from pytest_mlflowdb.servers import leftovers

            leftovers.hold()
            self._holding_sigterm = True
        options = self.settings.area_options
        if not (options.get("backup") or options.get("restore_test")):
            return
        from pytest_mlflowdb.backup.shared import WORKER_KEY, make_run_folder

        if self._backup_folder is None:
            self._backup_folder = make_run_folder()
        node.workerinput[WORKER_KEY] = str(self._backup_folder)

    def close(self) -> None:
        self.sessions.close()
        if self._holding_sigterm:
            from pytest_mlflowdb.servers import leftovers

            self._holding_sigterm = False
            leftovers.release()
            # xdist gives an interrupted worker about ten seconds to end and then kills
            # it, maybe between stopping its throwaway server and removing its folder:
            # what a killed worker left, its controller removes now (its workers are
            # gone by this point), not the next run
            leftovers.sweep()
        if self._backup_folder is not None:
            from pytest_mlflowdb.backup.shared import remove_run_folder

            folder, self._backup_folder = self._backup_folder, None
            remove_run_folder(folder)


def _deferring(thresholds: tuple[int, int, int]) -> tuple[int, int, int]:
    return (thresholds[0], thresholds[1], max(thresholds[2], 1_000_000))


def _defer_full_collections() -> tuple[int, int, int] | None:
    """No full garbage collection while the run collects: a full one then walks every
    object pytest, psycopg and the plugin have made (for a run of checks alone, about a
    twentieth of its time), and a run of checks alone freezes them all right after
    collection, which leaves later full collections little to walk. Young collections
    go on as usual. Returns the thresholds to restore; None in a run inside another
    (the collector is the outer run's)."""
    if nested_run():
        return None
    thresholds = gc.get_threshold()
    gc.set_threshold(*_deferring(thresholds))
    return thresholds
