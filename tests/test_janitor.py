"""The janitor owns throwaway servers and scratch databases: it makes, drops and sweeps."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from pytest_mlflowdb.servers import SCRATCH_PREFIX, ServerError
from pytest_mlflowdb.servers.janitor import Janitor


def _databases(server) -> set[str]:
    with psycopg.connect(server.uri(), connect_timeout=5) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_janitor_makes_drops_sweeps_and_stops():
    janitor = Janitor("path")
    try:
        uri = janitor.create(mlflow=False)
        server = janitor.server()
        made = uri.rsplit("/", 1)[1]
        assert made.startswith(SCRATCH_PREFIX) and made in _databases(server)
        server.create_database(f"{SCRATCH_PREFIX}left_over")  # a killed run's leftover
        server.create_database("not_ours")
        assert sorted(janitor.sweep()) == sorted([made, f"{SCRATCH_PREFIX}left_over"])
        assert not {d for d in _databases(server) if d.startswith(SCRATCH_PREFIX)}
        assert "not_ours" in _databases(server)
    finally:
        janitor.close()
    assert not janitor.started
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.uri(), connect_timeout=2)


@pytest.mark.parametrize("fmt", ["p", "c"])
def test_janitor_restores_a_dump_into_a_scratch_database(tmp_path, fmt):
    janitor = Janitor("path")
    try:
        source = janitor.create(mlflow=False)
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("CREATE TABLE marker (x int); INSERT INTO marker VALUES (42)")
        server = janitor.server()
        dump = tmp_path / "dump"
        subprocess.run([str(server.bin_dir / "pg_dump"), f"-F{fmt}", "-f", str(dump),
                        source], check=True, capture_output=True)
        restored = janitor.restore(dump)
        assert restored != source and restored.rsplit("/", 1)[1].startswith(SCRATCH_PREFIX)
        with psycopg.connect(restored) as conn:
            assert conn.execute("SELECT x FROM marker").fetchone() == (42,)
        (tmp_path / "bad.sql").write_text("SELECT no_such_function();\n")
        with pytest.raises(ServerError, match="no_such_function") as raised:
            janitor.restore(tmp_path / "bad.sql")
        assert server.password not in str(raised.value)
    finally:
        janitor.close()


def test_janitor_rejects_an_unknown_source():
    with pytest.raises(ValueError, match="migrations' or 'catalog'"):
        Janitor("path").create(source="dump")


def test_server_fixture_stops_its_server_at_its_own_teardown(pytester):
    """The server belongs to the fixture: stopped at its teardown, so a session fixture
    set up before it (torn down after it) finds the server gone, not at unconfigure."""
    pytester.makeconftest("""
        import psycopg
        import pytest

        @pytest.fixture(scope="session", autouse=True)
        def watcher(pytestconfig):
            pytestconfig.server_uris = []
            yield
            assert pytestconfig.server_uris
            for uri in pytestconfig.server_uris:
                try:
                    psycopg.connect(uri, connect_timeout=2).close()
                except psycopg.OperationalError:
                    continue
                raise AssertionError("the server still answers after its fixture's teardown")
        """)
    pytester.makepyfile(test_it="""
        def test_uses_server(pytestconfig, mlflowdb_server, mlflowdb_database_factory):
            mlflowdb_database_factory(mlflow=False)
            pytestconfig.server_uris.append(mlflowdb_server.uri())
        """)
    result = pytester.runpytest_subprocess("-o", "mlflowdb_ephemeral=path")
    result.assert_outcomes(passed=1)
