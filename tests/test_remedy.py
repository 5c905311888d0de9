"""A finding may carry a remedy: a statement or command that fixes it, never run by the tool."""

from __future__ import annotations

import pytest

from pytest_mlflowdb import Finding, Findings


def test_a_finding_without_a_remedy_still_has_the_key_in_its_json():
    assert Finding("server", "ok", "fine").to_json()["remedy"] is None


@pytest.mark.parametrize("method", ["ok", "info", "warn", "fail"])
def test_every_recording_method_takes_a_remedy(method):
    findings = Findings()
    finding = getattr(findings, method)("public.t", "something", remedy="VACUUM public.t;")
    assert finding.remedy == "VACUUM public.t;"
    assert finding.to_json()["remedy"] == "VACUUM public.t;"


@pytest.mark.parametrize("value, severity", [(2.0, "failure"), (1.5, "warning"), (0.5, "ok")])
def test_limit_takes_a_remedy_whatever_the_outcome(value, severity):
    finding = Findings().limit("server", "load", value, unit="number", warn=1, fail=2,
                               remedy="SELECT 1;")
    assert (finding.severity, finding.remedy) == (severity, "SELECT 1;")


def test_add_takes_a_remedy():
    finding = Findings().add("x", "warning", "m", remedy="REINDEX INDEX CONCURRENTLY x;")
    assert finding.remedy == "REINDEX INDEX CONCURRENTLY x;"


# -- the checks fill it where a fix exists, and the fix works --------------------------
def _remedies(checks: dict, check_id: str) -> dict[str, str]:
    return {f["object"]: f["remedy"] for f in checks[check_id]["findings"] if f["remedy"]}


def test_index_and_schema_remedies_fix_what_they_report(pytester, mlflow_uri):
    import psycopg
    from helpers import audit, sql

    sql(mlflow_uri,
        "DROP INDEX index_params_run_uuid",
        "CREATE INDEX team_twin ON params (value)",
        'CREATE INDEX "team_twin Again" ON params (value)',
        "ALTER TABLE params SET UNLOGGED",
        "CREATE TABLE team_dupes (k int)",
        "INSERT INTO team_dupes VALUES (1), (1)")
    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        try:
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY team_unique ON team_dupes (k)")
        except psycopg.errors.UniqueViolation:
            pass  # the build fails, leaving the index behind, INVALID
    _, checks = audit(pytester, mlflow_uri)
    assert _remedies(checks, "indexes.required") == {
        "public.index_params_run_uuid":
            "CREATE INDEX CONCURRENTLY index_params_run_uuid ON params USING btree (run_uuid);"}
    assert _remedies(checks, "indexes.invalid") == {
        "public.team_unique": 'DROP INDEX CONCURRENTLY "public"."team_unique";'}
    assert _remedies(checks, "indexes.redundant") == {
        "public.team_twin Again": 'DROP INDEX CONCURRENTLY "public"."team_twin Again";'}
    assert _remedies(checks, "schema.tables") == {
        "public.params": 'ALTER TABLE "public"."params" SET LOGGED;'}
    recommended = _remedies(checks, "indexes.recommended")
    assert recommended and all(r.startswith("CREATE INDEX CONCURRENTLY ")
                               for r in recommended.values())
    fixes = [r for check_id in ("indexes.required", "indexes.invalid", "indexes.redundant",
                                "schema.tables", "indexes.recommended")
             for r in _remedies(checks, check_id).values()]
    sql(mlflow_uri, *fixes)  # a person runs them (the tool never does)
    _, after = audit(pytester, mlflow_uri)
    for check_id in ("indexes.required", "indexes.invalid", "indexes.redundant",
                     "schema.tables", "indexes.recommended"):
        assert after[check_id]["outcome"] == "passed", after[check_id]["findings"]


def test_a_role_without_pg_monitor_is_told_the_grant(pytester, pg18, mlflow_uri):
    from helpers import audit, dbname_of, role_uri, sql

    sql(pg18.uri(), "DO $$ BEGIN CREATE ROLE remedy_auditor LOGIN PASSWORD 'remedy-pass'; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    uri = role_uri(pg18, dbname_of(mlflow_uri), "remedy_auditor", "remedy-pass")
    _, checks = audit(pytester, uri)
    assert _remedies(checks, "connectivity.privileges") == {
        "remedy_auditor": 'GRANT pg_monitor TO "remedy_auditor";'}
    _, as_superuser = audit(pytester, mlflow_uri)
    assert _remedies(as_superuser, "connectivity.privileges") == {}
