"""A run stopped by SIGTERM (``timeout``, systemd, CI cancellation) cleans up as one
stopped by Ctrl-C: no throwaway server keeps running, no copy of the live database stays
on disk; what a SIGKILL leaves, the next run sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from backup_support import seed

from pytest_mlflowdb.servers.leftovers import DUMP_PREFIX, OWNER, SERVER_PREFIX

pytestmark = pytest.mark.slow


def _within(pid: int, root: int) -> bool:
    """Whether process ``pid`` is ``root`` or one of its descendants (an xdist worker)."""
    while pid > 1:
        if pid == root:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def _folders_of(pid: int, prefix: str) -> list[Path]:
    """The temporary folders process ``pid`` (or one of its workers) made with ``prefix``
    (their owner file)."""
    found = []
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            if _within(int((folder / OWNER).read_text().split()[0]), pid):
                found.append(folder)
        except (OSError, ValueError, IndexError):
            continue
    return found


def _postmaster(folder: Path) -> int | None:
    try:
        pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        return pid if pid > 0 else None  # negative: initdb's single-user backend
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def _wait_for(what, seconds: float = 180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.02)
    return None


def _pytest(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stop(run: subprocess.Popen, sig: int) -> int:
    """Send ``sig`` to the run's pytest process alone (as ``timeout`` does); its code."""
    try:
        run.send_signal(sig)
        return run.wait(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_sigterm_stops_the_ephemeral_server(pytester, workers):
    """SIGTERM to the pytest process alone, as ``timeout`` sends it: under xdist the
    server is a worker's, which the controller then stops in order."""
    run = _pytest(pytester.path, "--mlflowdb-ephemeral=path", *workers)
    try:
        def server_up():
            return [(f, p) for f in _folders_of(run.pid, SERVER_PREFIX)
                    if (p := _postmaster(f)) is not None]

        up = _wait_for(server_up)
        assert up, "the run never started its server"
    except BaseException:
        os.killpg(run.pid, signal.SIGKILL)
        raise
    code = _stop(run, signal.SIGTERM)
    ((folder, postmaster),) = up
    assert _gone(postmaster), "the throwaway server kept running"
    assert not folder.exists()
    assert code == pytest.ExitCode.INTERRUPTED


def test_sigterm_during_a_restore_test_removes_the_dump_and_the_server(pytester,
                                                                        mlflow_uri):
    seed(mlflow_uri, runs=4000)
    run = _pytest(pytester.path, f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-restore-test")
    try:
        def dump_and_server():
            dumps = [f / "live.dump" for f in _folders_of(run.pid, DUMP_PREFIX)
                     if (f / "live.dump").exists()]
            servers = [(f, p) for f in _folders_of(run.pid, SERVER_PREFIX)
                       if (p := _postmaster(f)) is not None]
            return (dumps, servers) if dumps and servers else None

        found = _wait_for(dump_and_server)
        assert found, "the run never had both its dump and its scratch server"
    except BaseException:
        os.killpg(run.pid, signal.SIGKILL)
        raise
    (dump,), ((server, postmaster),) = found
    mode = dump.stat().st_mode & 0o777
    code = _stop(run, signal.SIGTERM)
    assert mode == 0o600, oct(mode)  # a copy of the live database: owner-only
    assert _gone(postmaster), "the scratch server kept running"
    assert not dump.parent.exists() and not server.exists()
    assert code == pytest.ExitCode.INTERRUPTED


KILLED_RUN = """
import sys, time
from pytest_mlflowdb.servers.janitor import Janitor
from pytest_mlflowdb.servers.leftovers import DUMP_PREFIX, private_folder
server = Janitor("path").server()
dumps = private_folder(DUMP_PREFIX)
(dumps / "live.dump").write_bytes(b"PGDMP a copy of the live database")
print(server.workdir, dumps, flush=True)
time.sleep(600)
"""


def test_the_next_run_sweeps_the_server_and_dump_a_sigkill_left():
    from pytest_mlflowdb.servers.janitor import Janitor

    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN], stdout=subprocess.PIPE,
                           text=True, start_new_session=True)
    try:
        server_dir, dump_dir = map(Path, run.stdout.readline().split())
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        run.stdout.close()
    postmaster = _postmaster(server_dir)
    assert postmaster and _alive(postmaster)  # SIGKILL: no clean-up at all
    assert (dump_dir / "live.dump").exists()
    janitor = Janitor("path")  # the next run
    try:
        janitor.server()
    finally:
        janitor.close()
    assert _gone(postmaster)
    assert not server_dir.exists() and not dump_dir.exists()


HANDLERS = """
import signal
from pytest_mlflowdb.servers.janitor import Janitor
before = signal.getsignal(signal.SIGTERM)
janitor = Janitor("path")
janitor.server()
during = signal.getsignal(signal.SIGTERM)
janitor.close()
print(during is not before, signal.getsignal(signal.SIGTERM) is before)
"""


def test_sigterm_is_the_plugins_only_while_it_holds_a_server():
    """The previous handler is put back once the server is gone."""
    done = subprocess.run([sys.executable, "-c", HANDLERS], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["True", "True"], done.stderr
