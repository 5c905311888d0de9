"""schema.* checks: genuine schemas at several releases pass; each fault is caught by name."""

from __future__ import annotations

import psycopg
import pytest
from helpers import audit, dbname_of, failing, genuine_head, role_uri, sql

from pytest_mlflowdb.catalog.mlflow_schema import apply_mlflow_schema

SCHEMA_CHECKS = ("schema.revision", "schema.tables", "schema.columns", "schema.constraints",
                 "indexes.required", "indexes.invalid")


# -- genuine schemas ------------------------------------------------------------------
@pytest.mark.parametrize("revision, release", [
    ("97727af70f4d", "1.29"),   # MLflow 1.x
    ("0584bdc529eb", "2.18"),   # MLflow 2.x
    ("6953534de441", "3.0"),    # MLflow 3.0
    ("heads", None),            # the installed MLflow's head
])
def test_genuine_schemas_pass(pytester, mlflowdb_database_factory, revision, release):
    uri = mlflowdb_database_factory(revision=revision)
    result, checks = audit(pytester, uri)
    for check_id in SCHEMA_CHECKS:
        assert checks[check_id]["outcome"] == "passed", checks[check_id]
    assert not [c for c in checks.values() if c["outcome"] in ("failed", "error")]
    assert result.ret == 0
    message = checks["schema.revision"]["message"]
    if release:
        assert f"MLflow {release}" in message, message


def test_catalog_ddl_database_passes_every_schema_and_index_check(pytester,
                                                                  mlflowdb_database_factory):
    uri = mlflowdb_database_factory(source="catalog")
    result, checks = audit(pytester, uri)
    for check_id in SCHEMA_CHECKS:
        assert checks[check_id]["outcome"] == "passed", checks[check_id]
    assert result.ret == 0


def test_mlflow_in_another_schema_passes(pytester, pg15):
    name = "other_schema_mlflow"
    pg15.create_database(name)
    try:
        sql(pg15.uri(name), "CREATE SCHEMA tracking",
            f"ALTER DATABASE {name} SET search_path = tracking")
        apply_mlflow_schema(pg15.uri(name))
        _, checks = audit(pytester, pg15.uri(name))
    finally:
        pg15.drop_database(name)
    for check_id in SCHEMA_CHECKS:
        assert checks[check_id]["outcome"] == "passed", checks[check_id]
    assert checks["schema.tables"]["findings"][0]["object"] == "tracking"


def _moved_to_tracking(uri: str) -> str:
    """MLflow's tables moved out of the search_path: public renamed, a new empty public."""
    sql(uri, "ALTER SCHEMA public RENAME TO tracking", "CREATE SCHEMA public")
    return uri


def test_mlflow_off_the_search_path_fails_naming_the_schema_and_the_fix(pytester, mlflow_uri):
    result, checks = audit(pytester, _moved_to_tracking(mlflow_uri))
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed", revision
    message = revision["message"]
    assert "MLflow's tables are in schema tracking" in message, message
    assert "?options=-csearch_path%3Dtracking" in message, message
    assert "ALTER ROLE postgres SET search_path = tracking" in message, message
    for check_id in SCHEMA_CHECKS[1:]:
        assert checks[check_id]["outcome"] == "failed", checks[check_id]
        assert "tracking" in checks[check_id]["message"], checks[check_id]
    assert result.ret == 1


def test_mlflow_off_the_search_path_passes_when_the_uri_points_at_it(pytester, mlflow_uri):
    uri = _moved_to_tracking(mlflow_uri) + "?options=-csearch_path%3Dtracking"
    result, checks = audit(pytester, uri)
    for check_id in SCHEMA_CHECKS:
        assert checks[check_id]["outcome"] == "passed", checks[check_id]
    assert checks["schema.tables"]["findings"][0]["object"] == "tracking"
    assert checks["schema.revision"]["findings"][0]["object"] == "tracking.alembic_version"
    assert result.ret == 0


def test_the_first_schema_on_the_search_path_is_the_one_audited(pytester, mlflow_uri):
    """An empty schema named after the role comes first ("$user"): MLflow would use it."""
    sql(mlflow_uri, "CREATE SCHEMA postgres")
    result, checks = audit(pytester, mlflow_uri)
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed", revision
    assert "MLflow's tables are in schema public" in revision["message"]
    assert "current schema: postgres" in revision["message"]
    assert result.ret == 1


def test_a_schema_the_role_may_not_use_is_not_called_off_the_search_path(
        pytester, pg18, mlflow_uri, mlflow_role):
    """Without USAGE the schema drops out of the effective search_path: that is a missing
    privilege (skip, or fail with an expectation), not a wrong URI."""
    _moved_to_tracking(mlflow_uri)
    sql(mlflow_uri, "REVOKE ALL ON SCHEMA tracking FROM PUBLIC")
    user, password = mlflow_role
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password) + \
        "?options=-csearch_path%3Dtracking"
    result, checks = audit(pytester, uri)
    revision = checks["schema.revision"]
    assert revision["outcome"] == "skipped", revision
    assert "no USAGE privilege on schema tracking" in revision["message"], revision
    assert f"GRANT USAGE ON SCHEMA tracking TO {user}" in revision["message"], revision
    assert checks["schema.tables"]["outcome"] == "skipped"
    assert result.ret == 0
    _, gated = audit(pytester, uri, "--mlflowdb-expect-revision=dc11669786a5")
    assert gated["schema.revision"]["outcome"] == "failed", gated["schema.revision"]
    assert "cannot verify revision dc11669786a5" in gated["schema.revision"]["message"]


def test_rows_hidden_by_row_level_security_are_not_a_missing_revision(
        pytester, pg18, mlflow_uri, mlflow_role):
    user, password = mlflow_role
    sql(mlflow_uri, "ALTER TABLE alembic_version ENABLE ROW LEVEL SECURITY",
        f"GRANT SELECT ON alembic_version TO {user}")
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    result, checks = audit(pytester, uri)
    revision = checks["schema.revision"]
    assert revision["outcome"] == "skipped", revision
    assert "row level security on public.alembic_version hides its rows" in \
        revision["message"], revision
    assert result.ret == 0
    _, gated = audit(pytester, uri, "--mlflowdb-expect-revision=dc11669786a5")
    assert gated["schema.revision"]["outcome"] == "failed", gated["schema.revision"]


# -- faults --------------------------------------------------------------------------
def test_dropped_table(pytester, mlflow_uri):
    sql(mlflow_uri, "DROP TABLE registered_model_aliases")
    result, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.tables"])
    assert finding["object"] == "public.registered_model_aliases"
    assert result.ret == 1


def test_dropped_column(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE runs DROP COLUMN deleted_time")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.columns"])
    assert finding["object"] == "public.runs.deleted_time"
    assert "missing" in finding["message"]


def test_changed_column_type(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE params ALTER COLUMN value TYPE varchar(500)")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.columns"])
    assert finding["object"] == "public.params.value"
    assert finding["value"] == "character varying(500)"
    assert finding["threshold"] == "character varying(8000)"


def test_changed_nullability(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE experiments ALTER COLUMN artifact_location SET NOT NULL")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.columns"])
    assert finding["object"] == "public.experiments.artifact_location"
    assert "nullable" in finding["message"]


def test_dropped_foreign_key(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE tags DROP CONSTRAINT tags_run_uuid_fkey")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.constraints"])
    assert finding["object"] == "public.tags.tags_run_uuid_fkey"
    assert "FOREIGN KEY missing" in finding["message"]


def test_changed_foreign_key_rule(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE tags DROP CONSTRAINT tags_run_uuid_fkey",
        "ALTER TABLE tags ADD CONSTRAINT tags_run_uuid_fkey FOREIGN KEY (run_uuid) "
        "REFERENCES runs(run_uuid) ON DELETE CASCADE")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.constraints"])
    assert finding["object"] == "public.tags.tags_run_uuid_fkey"
    assert "ON DELETE CASCADE" in finding["value"]
    assert finding["threshold"] == "FOREIGN KEY (run_uuid) REFERENCES runs(run_uuid)"


def test_hand_added_objects_are_information(pytester, mlflow_uri):
    sql(mlflow_uri, "CREATE TABLE team_notes (id int PRIMARY KEY)",
        "ALTER TABLE runs ADD COLUMN team varchar(20)")
    result, checks = audit(pytester, mlflow_uri)
    assert checks["schema.tables"]["outcome"] == "passed"
    assert any(f["object"] == "public.team_notes" and f["severity"] == "info"
               for f in checks["schema.tables"]["findings"])
    assert any(f["object"] == "public.runs.team" and f["severity"] == "info"
               for f in checks["schema.columns"]["findings"])
    assert result.ret == 0


# -- alembic_version -----------------------------------------------------------------
def test_rewound_revision(pytester, mlflow_uri):
    sql(mlflow_uri, "UPDATE alembic_version SET version_num = '0584bdc529eb'")
    _, checks = audit(pytester, mlflow_uri)
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed"
    assert "rewound" in revision["message"] and "logged_models" in revision["message"]


def test_unknown_revision(pytester, mlflowdb_database_factory):
    """A revision no release has, on a schema that lacks tables of the catalog's head: a
    foreign or broken migration, not a newer MLflow."""
    uri = mlflowdb_database_factory(revision="0584bdc529eb")
    sql(uri, "UPDATE alembic_version SET version_num = '0123456789ab'")
    _, checks = audit(pytester, uri)
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed"
    assert "0123456789ab is not in any released MLflow" in revision["message"]
    for check_id in ("schema.tables", "schema.columns", "indexes.required"):
        assert checks[check_id]["outcome"] == "skipped"
        assert "not in any released MLflow" in checks[check_id]["message"]


def test_revision_newer_than_the_catalog_is_one_line_not_a_failure(pytester, mlflow_uri):
    """The day after MLflow's next release: a database it migrated has every table of the
    catalog's head, a new one, and a revision the catalog does not know."""
    release, _ = genuine_head()
    sql(mlflow_uri, "CREATE TABLE next_release_feature (id integer PRIMARY KEY)",
        "UPDATE alembic_version SET version_num = 'feedc0ffee00'")
    result, checks = audit(pytester, mlflow_uri)
    assert result.ret == 0
    assert not [c["id"] for c in checks.values() if c["outcome"] in ("failed", "error")]
    revision = checks["schema.revision"]
    assert revision["outcome"] == "skipped", revision
    assert "feedc0ffee00 is newer than this pytest-mlflowdb knows" in revision["message"]
    assert "upgrade pytest-mlflowdb" in revision["message"]
    for check_id in ("schema.tables", "schema.columns", "schema.constraints",
                     "indexes.required"):
        assert checks[check_id]["outcome"] == "skipped", checks[check_id]
        assert "upgrade pytest-mlflowdb" in checks[check_id]["message"]
    # a gate expecting a release the catalog knows: that MLflow would refuse this database
    result, gated = audit(pytester, mlflow_uri, f"--mlflowdb-expect-mlflow={release}")
    assert gated["schema.revision"]["outcome"] == "failed"
    assert f"newer than MLflow {release}" in gated["schema.revision"]["message"]


def test_doubled_revision(pytester, mlflow_uri):
    sql(mlflow_uri, "INSERT INTO alembic_version VALUES ('0584bdc529eb')")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.revision"])
    assert finding["object"] == "public.alembic_version"
    assert "holds 2 rows" in finding["message"] and finding["value"] == 2


def test_missing_alembic_version(pytester, mlflow_uri):
    sql(mlflow_uri, "DROP TABLE alembic_version")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.revision"])
    assert finding["object"] == "public.alembic_version"
    assert "alembic_version is missing" in finding["message"]


@pytest.mark.parametrize("setup", [(), ("CREATE TABLE invoices (id int PRIMARY KEY)",)],
                         ids=["empty", "not-mlflow"])
def test_database_that_is_not_mlflows(pytester, pg15, setup):
    name = "not_mlflow"
    pg15.create_database(name)
    try:
        sql(pg15.uri(name), *setup)
        result, checks = audit(pytester, pg15.uri(name))
    finally:
        pg15.drop_database(name)
    revision = checks["schema.revision"]
    assert revision["outcome"] == "failed"
    assert "not an MLflow database" in revision["message"]
    assert checks["schema.tables"]["outcome"] == "skipped"
    assert checks["schema.tables"]["message"].startswith("no MLflow schema")
    assert "Traceback" not in result.stdout.str()


def test_a_hand_made_table_sharing_a_later_mlflow_name_is_not_a_rewind(
        pytester, mlflowdb_database_factory):
    uri = mlflowdb_database_factory(revision="0584bdc529eb")
    sql(uri, "CREATE TABLE jobs (id int PRIMARY KEY, name text)")
    _, checks = audit(pytester, uri)
    assert checks["schema.revision"]["outcome"] == "passed"
    assert any(f["object"] == "public.jobs" and f["severity"] == "info"
               for f in checks["schema.tables"]["findings"])


# -- faults that are easy to miss ------------------------------------------------------
def test_identity_column_dropped(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE sql_assessment_daily_rollups ALTER COLUMN id DROP IDENTITY")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.columns"])
    assert finding["object"] == "public.sql_assessment_daily_rollups.id"
    assert "identity" in finding["message"] and finding["threshold"] == "by default"


def test_catalog_ddl_keeps_identity_columns_working(mlflowdb_database_factory):
    uri = mlflowdb_database_factory(source="catalog", revision="dc11669786a5")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
                     "VALUES (7, 'e', 'active')")
        conn.execute("INSERT INTO sql_assessment_daily_rollups (experiment_id, rollup_day, "
                     "metric_name, grouping_set, sample_count) VALUES (7, current_date, 'm', "
                     "'g', 1)")
        new = conn.execute("INSERT INTO experiments (name, lifecycle_stage) VALUES ('f', "
                           "'active') RETURNING experiment_id").fetchone()[0]
    assert new == 1  # the serial sequence is there and owned by experiments.experiment_id


def test_unlogged_table_and_row_level_security(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE latest_metrics SET UNLOGGED",
        "ALTER TABLE runs ENABLE ROW LEVEL SECURITY")
    _, checks = audit(pytester, mlflow_uri)
    tables = checks["schema.tables"]
    assert tables["outcome"] == "failed"
    by_object = {f["object"]: f for f in tables["findings"]}
    assert by_object["public.latest_metrics"]["severity"] == "failure"
    assert "UNLOGGED" in by_object["public.latest_metrics"]["message"]
    assert by_object["public.runs"]["severity"] == "warning"


def test_hand_added_not_null_column_without_default_fails(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE runs ADD COLUMN team text NOT NULL DEFAULT 'x'",
        "ALTER TABLE runs ALTER COLUMN team DROP DEFAULT")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.columns"])
    assert finding["object"] == "public.runs.team"
    assert "inserts into runs will fail" in finding["message"]


@pytest.mark.parametrize("fault, expected", [
    ("ALTER TABLE secrets DISABLE TRIGGER prevent_secrets_aad_mutation", "is DISABLED"),
    ("CREATE OR REPLACE FUNCTION prevent_secrets_aad_mutation() RETURNS trigger "
     "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$", "whose body differs"),
    ("DROP TRIGGER prevent_secrets_aad_mutation ON secrets; CREATE TRIGGER "
     "prevent_secrets_aad_mutation BEFORE INSERT ON secrets FOR EACH ROW EXECUTE FUNCTION "
     "prevent_secrets_aad_mutation()", "BEFORE INSERT"),
], ids=["disabled", "gutted", "redefined"])
def test_changed_trigger(pytester, mlflow_uri, fault, expected):
    sql(mlflow_uri, fault)
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["schema.constraints"])
    assert finding["object"] == "public.secrets.prevent_secrets_aad_mutation"
    assert "trigger differs" in finding["message"] and expected in finding["message"]


def test_duplicate_constraint_and_a_disabled_extra_trigger_are_information(pytester,
                                                                          mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE runs ADD CONSTRAINT zz_dup_fk FOREIGN KEY (experiment_id) "
        "REFERENCES experiments(experiment_id)",
        "CREATE FUNCTION team_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RETURN NEW; END $$",
        "CREATE TRIGGER team_audit AFTER INSERT ON runs FOR EACH ROW EXECUTE FUNCTION "
        "team_audit()", "ALTER TABLE runs DISABLE TRIGGER team_audit",
        "CREATE RULE team_copy AS ON INSERT TO tags DO ALSO NOTHING",
        "ALTER TABLE tags DISABLE RULE team_copy",
        "CREATE POLICY team_only ON experiments USING (true)")  # row level security off
    result, checks = audit(pytester, mlflow_uri)
    constraints = checks["schema.constraints"]
    assert constraints["outcome"] == "passed"
    info = {f["object"]: f["message"] for f in constraints["findings"] if f["severity"] == "info"}
    assert "duplicates MLflow's runs_experiment_id_fkey" in info["public.runs.zz_dup_fk"]
    assert "trigger not made by MLflow (disabled)" in info["public.runs.team_audit"]
    assert "rule not made by MLflow (disabled)" in info["public.tags.team_copy"]
    assert "no effect while row level security is off" in info["public.experiments.team_only"]
    assert result.ret == 0


def test_triggers_rules_and_policies_not_made_by_mlflow_warn_by_name(pytester, mlflow_uri):
    """What MLflow never makes but acts on every write it makes: an enabled trigger, a rule,
    a policy where row level security is on."""
    sql(mlflow_uri, "CREATE FUNCTION team_stamp() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.name := lower(NEW.name); RETURN NEW; END $$",
        "CREATE TRIGGER team_stamp BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION "
        "team_stamp()",
        "CREATE TABLE team_tag_log (key varchar(250))",
        "CREATE RULE team_log AS ON INSERT TO tags DO ALSO "
        "INSERT INTO team_tag_log VALUES (NEW.key)",
        "ALTER TABLE experiments ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY team_only ON experiments FOR ALL TO PUBLIC "
        "USING (lifecycle_stage = 'active')")
    _, checks = audit(pytester, mlflow_uri)
    constraints = checks["schema.constraints"]
    assert constraints["outcome"] == "warned"
    warned = {f["object"]: f for f in constraints["findings"] if f["severity"] == "warning"}
    assert set(warned) == {"public.runs.team_stamp", "public.tags.team_log",
                           "public.experiments.team_only"}
    trigger = warned["public.runs.team_stamp"]
    assert "CREATE TRIGGER team_stamp BEFORE INSERT ON runs" in trigger["message"]
    assert "runs on every write MLflow makes to runs" in trigger["message"]
    assert "can make MLflow's migrations fail" in trigger["message"]
    assert trigger["remedy"].startswith('ALTER TABLE "public"."runs" DISABLE TRIGGER '
                                        '"team_stamp";')
    assert 'DROP TRIGGER "team_stamp" ON "public"."runs";' in trigger["remedy"]
    rule = warned["public.tags.team_log"]
    assert "CREATE RULE team_log AS" in rule["message"] and "ON INSERT TO tags" in \
        rule["message"]
    assert rule["remedy"].startswith('DROP RULE "team_log" ON "public"."tags";')
    policy = warned["public.experiments.team_only"]
    assert "CREATE POLICY team_only ON experiments AS PERMISSIVE FOR ALL TO PUBLIC USING " \
        in policy["message"]
    assert policy["remedy"] == 'DROP POLICY "team_only" ON "public"."experiments";'
    # row level security itself is schema.tables' finding, not this one
    assert "public.experiments" in {f["object"] for f in checks["schema.tables"]["findings"]
                                    if f["severity"] == "warning"}


def test_a_genuine_schema_has_no_trigger_rule_or_policy_of_its_own_making(mlflow_uri):
    """MLflow makes no rule and no policy (the catalog never had to hold one), so each on
    its tables is someone else's."""
    from pytest_mlflowdb.probes.schema import capture

    with psycopg.connect(mlflow_uri) as conn:
        def rows(query, params):
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            return cur.execute(query, params).fetchall()
        snapshot = capture(rows, "public")
    assert snapshot.tables and not snapshot.rules and not snapshot.policies


def test_index_redefined_under_mlflows_name(pytester, mlflow_uri):
    sql(mlflow_uri, "DROP INDEX index_params_run_uuid",
        "CREATE INDEX index_params_run_uuid ON params (key)")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["indexes.required"])
    assert finding["object"] == "public.index_params_run_uuid"
    assert finding["message"].startswith("index differs: CREATE INDEX index_params_run_uuid ON "
                                         "params USING btree (key)")
