"""MLflow's facts are a probe of their own, read once per session; the schema diff is a
named type. The session (``Database``) knows PostgreSQL, not MLflow."""

from __future__ import annotations

import psycopg
import pytest
from helpers import checks_by_id, report, sql

from pytest_mlflowdb.config.targets import parse_target
from pytest_mlflowdb.db.database import Database


def _db(uri: str, **kwargs) -> Database:
    return Database(parse_target(uri), **kwargs).connect()


def test_the_server_preflight_reads_no_mlflow_table(mlflow_uri):
    """A lock on alembic_version stops MLflow's probe, not the server's facts: the session
    layer reads none of MLflow's tables."""
    from pytest_mlflowdb.db.errors import PreflightError

    db = _db(mlflow_uri, lock_timeout=0.2)
    try:
        with psycopg.connect(mlflow_uri) as locker:
            locker.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
            pre = db.preflight
            assert pre.server_version_num >= 140000 and pre.current_user == "postgres"
            from pytest_mlflowdb.probes.mlflow import mlflow_facts

            with pytest.raises(PreflightError, match=r"lock timeout.* while reading "
                               r"public\.alembic_version"):
                mlflow_facts(db)
    finally:
        db.close()


def test_mlflow_facts_are_read_once_per_session(mlflow_uri):
    """Every check of a session sees the same facts; a new session reads them anew."""
    from pytest_mlflowdb.probes.mlflow import mlflow_facts

    db = _db(mlflow_uri)
    try:
        facts = mlflow_facts(db)
        assert facts.schema == "public" and facts.revision and len(facts.revision) == 12
        assert facts.alembic_versions == (facts.revision,) and facts.alembic_error is None
        sql(mlflow_uri, "UPDATE alembic_version SET version_num = '0584bdc529eb'")
        assert mlflow_facts(db) is facts
    finally:
        db.close()
    fresh = _db(mlflow_uri)
    try:
        assert mlflow_facts(fresh).revision == "0584bdc529eb"
    finally:
        fresh.close()


def test_catalog_diff_is_a_named_comparison_worked_out_once(mlflow_uri):
    from pytest_mlflowdb.catalog import load_catalog
    from pytest_mlflowdb.catalog.compare import CatalogDiff
    from pytest_mlflowdb.probes.mlflow import mlflow_facts
    from pytest_mlflowdb.probes.schema import catalog_diff

    db = _db(mlflow_uri)
    try:
        found = catalog_diff(db)
        assert isinstance(found, CatalogDiff)
        assert (found.schema, found.revision) == ("public", mlflow_facts(db).revision)
        assert found.expected is load_catalog().schema_at(found.revision)
        assert found.diff.empty, found.diff
        assert catalog_diff(db) is found
    finally:
        db.close()


def test_catalog_diff_names_a_missing_index(mlflow_uri):
    from pytest_mlflowdb.catalog import load_catalog
    from pytest_mlflowdb.probes.mlflow import mlflow_facts
    from pytest_mlflowdb.probes.schema import catalog_diff

    db = _db(mlflow_uri)
    try:
        revision = mlflow_facts(db).revision
        assert revision is not None
        index = next(i for i in load_catalog().schema_at(revision).indexes
                     if not i.backs_constraint)
        sql(mlflow_uri, f'DROP INDEX "{index.name}"')
        missing = catalog_diff(db).diff.missing_indexes
    finally:
        db.close()
    assert [i.name for i in missing] == [index.name]


def test_catalog_diff_refuses_a_database_without_mlflow(pg15):
    from pytest_mlflowdb.catalog import CatalogError
    from pytest_mlflowdb.probes.mlflow import mlflow_facts
    from pytest_mlflowdb.probes.schema import catalog_diff

    db = _db(pg15.uri())
    try:
        facts = mlflow_facts(db)
        assert (facts.schema, facts.revision, facts.elsewhere) == (None, None, ())
        with pytest.raises(CatalogError, match="no catalog schema to compare"):
            catalog_diff(db)
    finally:
        db.close()


TEAM_CHECK = """
from pytest_mlflowdb import check
from pytest_mlflowdb.probes.schema import catalog_diff
from pytest_mlflowdb.audit.requirements import require_catalog_revision


@check("team.same_as_mlflow")
def test_same_as_mlflow(mlflowdb, mlflowdb_findings):
    revision = require_catalog_revision(mlflowdb)
    found = catalog_diff(mlflowdb)
    mlflowdb_findings.ok(found.schema, f"{len(found.expected.tables)} tables", revision)
    assert found.diff.empty
"""


@pytest.mark.parametrize("mlflow", [True, False], ids=["mlflow", "empty"])
def test_a_team_check_compares_with_the_catalog(pytester, mlflow, mlflow_uri, pg15):
    """require_catalog_revision skips (with the reason) where there is nothing to compare;
    after it, catalog_diff is there to read."""
    pytester.makepyfile(test_team=TEAM_CHECK)
    json_path = pytester.path / "a.json"
    uri = mlflow_uri if mlflow else pg15.uri()
    result = pytester.runpytest(f"--mlflowdb-uri={uri}", "--mlflowdb-no-builtin",
                                f"--mlflowdb-report={json_path}")
    check = checks_by_id(report(json_path))["team.same_as_mlflow"]
    if mlflow:
        assert check["outcome"] == "passed", check
        assert check["findings"][0]["object"] == "public"
    else:
        assert check["outcome"] == "skipped", check
        assert check["message"].startswith("no MLflow schema"), check
    assert result.ret == 0
