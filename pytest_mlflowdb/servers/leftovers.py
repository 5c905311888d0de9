"""What a run leaves in the temporary folder (throwaway servers, dumps), and its cleanup
when the run is told to stop.

Each such folder is made by :func:`private_folder` (``mkdtemp``: 0700) with an ``owner``
file naming the process that made it. ``timeout``, systemd and CI cancellation stop a
run with SIGTERM, which by default ends Python without any clean-up: :func:`guarded`
turns it into KeyboardInterrupt (as pytest's SIGINT) while the run holds a throwaway
server or a dump, so the same clean-up runs, and puts the previous handler back after.
A SIGKILL leaves everything behind: :func:`sweep` (run before a server or a dump is
made) stops the server and removes the folder of every run whose owner process (of
this user, on this host) is gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: the folders of throwaway servers (binaries.py) and of dumps (backup/pipeline.py)
SERVER_PREFIX, DUMP_PREFIX = "mlflowdb-pg-", "mlflowdb-backup-"
OWNER = "owner"

_lock = threading.Lock()
_holders = 0
_previous: Any = None
_terminated = False


def private_folder(prefix: str) -> Path:
    """A fresh 0700 folder in the temporary folder, marked as this process's."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    fd = os.open(folder / OWNER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()} {socket.gethostname()}\n")
    return folder


def _owner(folder: Path) -> int | None:
    """The pid in ``folder``'s owner file when this user wrote it on this host (another
    container sharing the folder has pids of its own), else None."""
    path = folder / OWNER
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            return None
        pid, host = path.read_text().split()[:2]
        return int(pid) if host == socket.gethostname() else None
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_postmaster(data: Path) -> None:
    """Stop (immediate shutdown) the postmaster whose postmaster.pid is in ``data``, when
    it is indeed that data directory's (its pid file says so, and /proc where there is)."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return
    if len(lines) < 2 or os.path.realpath(lines[1]) != os.path.realpath(data) \
            or not _alive(pid):
        return
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            if str(data).encode() not in cmdline.read_bytes():
                return  # the pid was reused by another process
        except OSError:
            return
    try:
        os.kill(pid, signal.SIGQUIT)
    except OSError:
        return
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def sweep() -> list[Path]:
    """Stop the servers and remove the folders that runs whose process is gone left (a
    SIGKILL's); returns the folders removed."""
    swept = []
    base = Path(tempfile.gettempdir())
    for prefix in (SERVER_PREFIX, DUMP_PREFIX):
        for folder in base.glob(f"{prefix}*"):
            pid = _owner(folder)
            if pid is None or pid == os.getpid() or _alive(pid):
                continue
            if prefix == SERVER_PREFIX:
                _stop_postmaster(folder / "data")
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                swept.append(folder)
    return swept


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    if _terminated:  # the clean-up is under way: let it finish
        return
    _terminated = True
    raise KeyboardInterrupt("SIGTERM")


def hold() -> None:
    """Turn SIGTERM into KeyboardInterrupt until the matching :func:`release` (in the main
    thread only: signal handlers can be set nowhere else)."""
    global _holders, _previous
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if _holders == 0:
            _previous = signal.signal(signal.SIGTERM, _on_sigterm)
        _holders += 1


def release() -> None:
    global _holders, _previous, _terminated
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:
            signal.signal(signal.SIGTERM, _previous if _previous is not None
                          else signal.SIG_DFL)
            _previous = None
            _terminated = False


@contextmanager
def guarded() -> Iterator[None]:
    hold()
    try:
        yield
    finally:
        release()
