"""A throwaway server from a directory of PostgreSQL binaries (a pip wheel's or the system's).

``initdb`` into a fresh temporary directory, ``pg_ctl start`` on 127.0.0.1 and a free
port, password authentication over TCP. PostgreSQL refuses to run as root, so when we
are root the server runs as an unprivileged account (``MLFLOWDB_PG_OS_USER``, default
``nobody``), and the data directory is handed to it. The directory is removed when the
server stops, and also when start-up fails half-way; a run killed outright leaves it to
the next run (see :mod:`.leftovers`).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pytest_mlflowdb.servers import reach
from pytest_mlflowdb.servers.base import Server, ServerError
from pytest_mlflowdb.servers.leftovers import SERVER_PREFIX, private_folder
from pytest_mlflowdb.text import last_line

_STARTUP_TIMEOUT = 60


def version_of(bin_dir: Path) -> str:
    """``'15.18'`` for a bin directory, or raise ServerError."""
    postgres = bin_dir / "postgres"
    if not os.access(postgres, os.X_OK):
        raise ServerError(f"{postgres} is not an executable")
    try:
        out = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerError(f"{postgres} --version failed: {exc}") from None
    found = re.search(r"\)\s*(\d+(?:\.\d+)*)", out) or re.search(r"(\d+(?:\.\d+)+)", out)
    return found.group(1) if found else out.strip()


def _run_as() -> dict:
    """subprocess keyword arguments that drop root for PostgreSQL's sake."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return {}
    import pwd

    name = os.environ.get("MLFLOWDB_PG_OS_USER", "nobody")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ServerError(
            f"running as root and there is no account {name!r} to run PostgreSQL as; "
            "set MLFLOWDB_PG_OS_USER to an unprivileged account"
        ) from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def start_from_bin_dir(bin_dir: Path, kind: str, copy_root: Path | None = None,
                       settings: Mapping[str, str] | None = None) -> Server:
    """Start a server from ``bin_dir`` and return it; raise ServerError with the reason.

    ``copy_root`` is the self-contained tree holding ``bin_dir`` (a wheel's package):
    when we are root and the unprivileged account cannot reach the binaries, a shared
    read-only copy of it is used instead.
    """
    version = version_of(bin_dir)
    run_as = _run_as()
    if not reach.reachable(bin_dir, run_as):
        if copy_root is None:
            raise ServerError(
                f"the binaries in {bin_dir} are not reachable by the account PostgreSQL runs "
                "as (it refuses to run as root); make them readable or set MLFLOWDB_PG_OS_USER"
            )
        bin_dir = reach.shared_copy(bin_dir, copy_root)
    workdir = private_folder(SERVER_PREFIX)  # the next run stops it if this one is killed
    data = workdir / "data"
    log = workdir / "server.log"
    password = secrets.token_urlsafe(16)
    stopped = False

    def run(args: list[str], timeout: float = _STARTUP_TIMEOUT) -> None:
        try:
            subprocess.run(
                args, check=True, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL, cwd=str(workdir), **run_as,
            )
        except subprocess.CalledProcessError as exc:
            detail = last_line(exc.stderr or exc.stdout or "", str(exc))
            raise ServerError(
                f"{Path(args[0]).name} failed: {detail}"
                + (f" (log: {_tail(log)})" if log.exists() else "")
            ) from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerError(f"{Path(args[0]).name} failed: {exc}") from None

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        if (data / "postmaster.pid").exists():
            try:
                run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                     "stop"], timeout=30)
            except ServerError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)

    try:
        if run_as:
            os.chmod(workdir, 0o700)
            os.chown(workdir, run_as["user"], run_as["group"])
        pwfile = workdir / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
             f"--pwfile={pwfile}", "--no-sync"])
        pwfile.unlink()
        last_error: ServerError | None = None
        for _attempt in range(3):
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=60 -c shared_buffers=32MB"
            ) + "".join(f" -c {name}={shlex.quote(str(value))}"
                        for name, value in (settings or {}).items())
            try:
                run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                     "-w", "-t", str(_STARTUP_TIMEOUT), "start"])
                break
            except ServerError as exc:
                last_error = exc
        else:
            assert last_error is not None
            raise last_error
    except BaseException:
        stop()
        raise
    return Server(
        kind=kind,
        host="127.0.0.1",
        port=port,
        user="postgres",
        password=password,
        bin_dir=bin_dir,
        description=f"PostgreSQL {version} from {bin_dir}",
        workdir=workdir,
        _stop=stop,
    )
