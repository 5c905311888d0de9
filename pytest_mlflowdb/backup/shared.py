"""One backup verification per target and run, also under pytest-xdist.

xdist spreads the backup checks over its workers, and each worker would restore the
backup again. The first worker to ask runs the verification under an exclusive file lock
and leaves its findings (plain JSON, masked like any record: no password is in them) in
the run's own folder; the others wait on the lock and read it. The folder is made by the
xdist controller with ``mkdtemp`` (0700, a fresh random name: no other user can have
planted it or links in it), handed to the workers in ``workerinput`` (:data:`WORKER_KEY`)
and removed when the run ends; a worker checks it is a folder of its own user that
nobody else can enter (``lstat``: never a link) and opens nothing in it through a link.
Without xdist, without such a folder, or without ``fcntl``, the verification simply runs
here. Folders killed runs left are removed by the next run after a day.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_mlflowdb.backup.pipeline import CHECKS, Result
from pytest_mlflowdb.results.findings import Finding, Findings

PREFIX = "pytest-mlflowdb-backup-"
#: the key of the run's folder in xdist's ``workerinput``
WORKER_KEY = "mlflowdb_backup_folder"
_KEEP = 86400.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


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


def make_run_folder() -> Path:
    """A fresh private folder (0700) for this run's shared findings; older ones of this
    user that killed runs left are removed first."""
    sweep_folders()
    return Path(tempfile.mkdtemp(prefix=PREFIX))


def remove_run_folder(folder: Path) -> None:
    if private(folder):
        shutil.rmtree(folder, ignore_errors=True)


def private(folder: Path) -> bool:
    """Whether ``folder`` is a folder (not a link) of this user that no one else enters."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & 0o077)


def sweep_folders(cutoff: float | None = None) -> list[Path]:
    """Remove this user's run folders older than a day (a killed run's); their paths."""
    cutoff = time.time() - _KEEP if cutoff is None else cutoff
    swept = []
    for old in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            if private(old) and os.lstat(old).st_mtime < cutoff:
                shutil.rmtree(old)
                swept.append(old)
        except OSError:  # another run removed it first
            pass
    return swept


def once_per_run(folder: str | None, target_id: str, compute: Callable[[], Result]) -> Result:
    """``compute()`` once for this run and target, whichever xdist worker asks first;
    ``folder`` is the run's folder (:func:`make_run_folder`, from ``workerinput``)."""
    try:
        import fcntl
    except ImportError:  # no advisory file locks here: every worker verifies on its own
        return compute()
    if not folder or not private(Path(folder)):
        return compute()
    digest = hashlib.sha256(target_id.encode()).hexdigest()[:24]
    path, lock = Path(folder) / f"{digest}.json", Path(folder) / f"{digest}.lock"
    handle = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            found = _read(path)
            if found is not None:
                return from_json(json.loads(found))
            result = compute()
            partial = path.with_suffix(".tmp")
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW,
                                   0o600), "w") as out:
                out.write(json.dumps(to_json(result)))
            partial.replace(path)
            return result
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _read(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd) as handle:
        return handle.read()
