"""One backup verification per target and run, also under pytest-xdist.

xdist spreads the backup checks over its workers, and each worker would restore the
backup again. The first worker to ask runs the verification under an exclusive file lock
and leaves its findings (plain JSON, masked like any record: no password is in them) in
a file named after the run's ``testrunuid`` and the target; the others wait on the lock
and read it. Without xdist (or without ``fcntl``), the verification simply runs here.
Files older than a day are removed as new ones are written.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..findings import Finding, Findings
from .pipeline import CHECKS, Result

_FOLDER = "pytest-mlflowdb-backup"
_KEEP = 86400.0


def to_json(result: Result) -> dict:
    return {"findings": {c: [f.to_json() for f in result.findings[c]] for c in CHECKS},
            "skips": dict(result.skips)}


def from_json(data: dict) -> Result:
    result = Result()
    for check, items in data["findings"].items():
        findings = Findings()
        for item in items:
            found = Finding(**item)
            findings.add(found.object, found.severity, found.message, found.value,
                         found.threshold, remedy=found.remedy)
        result.findings[check] = findings
    result.skips = dict(data["skips"])
    return result


def once_per_run(run_uid: str | None, target_id: str, compute: Callable[[], Result]) -> Result:
    """``compute()`` once for this run and target, whichever xdist worker asks first."""
    try:
        import fcntl
    except ImportError:  # no advisory file locks here: every worker verifies on its own
        return compute()
    if not run_uid:
        return compute()
    folder = Path(tempfile.gettempdir()) / _FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    digest = hashlib.sha256(f"{run_uid}\0{target_id}".encode()).hexdigest()[:24]
    path, lock = folder / f"{digest}.json", folder / f"{digest}.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if path.exists():
                return from_json(json.loads(path.read_text()))
            result = compute()
            partial = path.with_suffix(".tmp")
            partial.write_text(json.dumps(to_json(result)))
            partial.replace(path)
            _tidy(folder)
            return result
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tidy(folder: Path) -> None:
    """Remove the files of runs older than a day."""
    cutoff = time.time() - _KEEP
    for old in folder.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:  # another process removed it first
            pass
