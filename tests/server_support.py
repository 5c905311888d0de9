"""A streaming standby of a throwaway server, made by ``pg_basebackup -R`` on this
machine, and small waits with deadlines for the server tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

from pytest_mlflowdb.servers.base import Server
from pytest_mlflowdb.servers.binaries import _free_port, _run_as
from pytest_mlflowdb.servers.leftovers import SERVER_PREFIX, private_folder


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


def value(uri: str, query: str):
    import psycopg

    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(query).fetchone()
    return row[0] if row else None


def start_standby(primary: Server) -> Server:
    """A hot standby streaming from ``primary`` (same binaries), stopped by ``stop()``."""
    assert primary.bin_dir is not None
    run_as = _run_as()
    workdir = private_folder(SERVER_PREFIX)
    data, log = workdir / "data", workdir / "server.log"
    if run_as:
        os.chmod(workdir, 0o700)
        os.chown(workdir, run_as["user"], run_as["group"])
    env = {**os.environ, "PGPASSWORD": primary.password}
    bin_dir = primary.bin_dir

    def run(*args: str, timeout: float = 120) -> None:
        subprocess.run([str(bin_dir / args[0]), *args[1:]], check=True, capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=str(workdir),
                       stdin=subprocess.DEVNULL, **run_as)

    def stop() -> None:
        if (data / "postmaster.pid").exists():
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=30, **run_as)
        shutil.rmtree(workdir, ignore_errors=True)

    try:
        run("pg_basebackup", "-h", primary.host, "-p", str(primary.port), "-U",
            primary.user, "-D", str(data), "-R", "-X", "stream", "-c", "fast", "--no-sync")
        port = _free_port()
        run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
            "-c hot_standby=on", "start", timeout=90)
    except BaseException:
        stop()
        raise
    return Server(kind="path", host="127.0.0.1", port=port, user=primary.user,
                  password=primary.password, bin_dir=bin_dir,
                  description=f"standby of {primary.description}", workdir=workdir,
                  _stop=stop)
