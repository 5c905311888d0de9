"""The shipped catalog: made by MLflow's migrations, in step with the installed MLflow."""

from __future__ import annotations

import importlib.metadata
import warnings

import psycopg
import pytest
from psycopg.rows import dict_row

from pytest_mlflowdb.catalog import CatalogError, load_catalog
from pytest_mlflowdb.catalog.compare import compare
from pytest_mlflowdb.catalog.ddl import ddl
from pytest_mlflowdb.catalog.mlflow_schema import apply_catalog_schema
from pytest_mlflowdb.probes.schema import capture


def snapshot_of(uri: str):
    with psycopg.connect(uri, row_factory=dict_row) as conn:
        return capture(lambda q, p: conn.execute(q, p).fetchall(), "public")


def installed_head(uri: str) -> str:
    with psycopg.connect(uri) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_head_of_the_installed_mlflow_matches_the_shipped_snapshot(mlflow_uri):
    """The drift test: regenerate with the installed MLflow and compare, exactly. An MLflow
    released after the catalog was built is compared up to the catalog's head (as far as
    genuine test databases go) and named in a warning: refreshing the catalog is a
    maintainer's step, and a user's CI must not fail on MLflow's release day."""
    catalog = load_catalog()
    revision = installed_head(mlflow_uri)
    version = importlib.metadata.version("mlflow-skinny")
    assert catalog.knows(revision), f"MLflow {version}'s head {revision} is not in the catalog"
    if version in catalog.releases:
        assert catalog.head_for_release(version) == revision, (
            f"the release map says MLflow {version}'s head is not {revision}: run "
            "tools/release_map.py")
    else:
        assert revision == catalog.head
        warnings.warn(pytest.PytestWarning(
            f"MLflow {version} is newer than the shipped catalog (MLflow "
            f"{catalog.newest_release}): compared up to {revision}; run tools/release_map.py "
            "and tools/build_catalog.py"), stacklevel=1)
    fresh = snapshot_of(mlflow_uri)
    assert fresh.to_json() == catalog.schema_at(revision).to_json(), (
        "the catalog drifted from MLflow's migrations: run tools/build_catalog.py")


@pytest.mark.parametrize("revision", ["451aebb31d03", "89d4b8295536", "97727af70f4d",
                                      "0584bdc529eb", "1b5f0d9ad7c1", "dc11669786a5",
                                      "f4a9b2c7d1e6"])
def test_ddl_recreates_each_revision(pg15, revision):
    name = f"ddl_{revision}"
    pg15.create_database(name)
    try:
        assert apply_catalog_schema(pg15.uri(name), revision) == revision
        diff = compare(load_catalog().schema_at(revision), snapshot_of(pg15.uri(name)))
        assert installed_head(pg15.uri(name)) == revision
    finally:
        pg15.drop_database(name)
    assert diff.empty, diff


def test_chain_and_release_map():
    catalog = load_catalog()
    chain = catalog.chain
    assert chain[0].revision == "451aebb31d03" and chain[0].down_revision is None
    assert all(b.down_revision == a.revision for a, b in zip(chain, chain[1:], strict=False))
    assert all(catalog.has_schema(r.revision) for r in chain)
    assert catalog.head_for_release("3.17.2") == "dc11669786a5"
    assert catalog.head_for_release("1.13.0") == catalog.head_for_release("1.13")
    assert catalog.releases_for("0584bdc529eb")[0] == "2.18.0"
    with pytest.raises(CatalogError, match="not a release the catalog knows"):
        catalog.head_for_release("0.9.0")
    assert [r.revision for r in catalog.between("cc1f77228345", "3500859a5d39")] == [
        "97727af70f4d", "3500859a5d39"]


def test_heavy_migrations_are_found_from_the_schemas():
    catalog = load_catalog()
    notes = [h.note for h in catalog.heavy("a5b4c3d2e1f0")]
    assert notes == ["builds index index_metrics_run_uuid_key_step on metrics without "
                     "CONCURRENTLY (blocks writes until it finishes)"]
    assert catalog.heavy("89d4b8295536")[0].table == "metrics"
    assert catalog.heavy("7ac759974ad8") == []  # widening varchar needs no rewrite
    assert catalog.heavy("df50e92ffc5e") == []  # a new table costs nothing


def test_ddl_statements_are_ordered_for_execution():
    statements = ddl(load_catalog().schema_at("dc11669786a5"), "dc11669786a5")
    first_fk = next(i for i, s in enumerate(statements) if "FOREIGN KEY" in s)
    last_table = max(i for i, s in enumerate(statements) if s.startswith("CREATE TABLE"))
    assert last_table < first_fk
    assert statements[-1] == "INSERT INTO alembic_version (version_num) VALUES ('dc11669786a5')"


def test_ephemeral_without_mlflow_uses_the_catalog(pytester, monkeypatch):
    monkeypatch.setattr("pytest_mlflowdb.catalog.mlflow_schema.mlflow_available", lambda: False)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest("--mlflowdb-ephemeral=path", f"--mlflowdb-report={json_path}")
    assert result.ret == 0
    out = result.stdout.str()
    assert "MLflow schema from the shipped catalog" in out
    assert f"alembic {load_catalog().head}" in out


def test_schema_probe_cost_does_not_grow_with_tables(pg15):
    name = "many_tables"
    pg15.create_database(name)
    try:
        apply_catalog_schema(pg15.uri(name))
        with psycopg.connect(pg15.uri(name), row_factory=dict_row) as conn:
            calls = []

            def rows(query, params):
                calls.append(query)
                return conn.execute(query, params).fetchall()

            capture(rows, "public")
            before = len(calls)
            with conn.transaction():
                for i in range(200):
                    conn.execute(f"CREATE TABLE extra_{i} (id int PRIMARY KEY, v text)")
                    conn.execute(f"CREATE INDEX extra_{i}_v ON extra_{i} (v)")
            calls.clear()
            snap = capture(rows, "public")
    finally:
        pg15.drop_database(name)
    assert before == len(calls) == 7  # + triggers, rules, policies
    assert len(snap.tables) == len(load_catalog().schema_at(load_catalog().head).tables) + 200


def test_throwaway_databases_migrate_no_further_than_the_catalog_knows():
    """After MLflow's next release the installed MLflow's head is unknown to the catalog:
    "heads" then stops at the catalog's head, so a throwaway database stays auditable."""
    from pytest_mlflowdb.catalog.mlflow_schema import newest_known

    catalog = load_catalog()
    shipped = {r.revision for r in catalog.chain}
    # an MLflow newer than the catalog: one more revision on top of the catalog's head
    assert newest_known("0a1b2c3d4e5f", (shipped | {"0a1b2c3d4e5f"}).__contains__,
                        catalog.knows, catalog.head) == catalog.head
    # the installed MLflow the catalog knows (today's, or an older one): its own head
    older = catalog.head_for_release("2.22.5")
    assert newest_known(older, {r.revision for r in catalog.chain[:catalog.position(older) + 1]}
                        .__contains__, catalog.knows, catalog.head) == older
    assert newest_known(catalog.head, shipped.__contains__, catalog.knows,
                        catalog.head) == catalog.head
    # a foreign chain that does not hold the catalog's head: left alone
    assert newest_known("feedfeedfeed", {"feedfeedfeed"}.__contains__, catalog.knows,
                        catalog.head) == "feedfeedfeed"
