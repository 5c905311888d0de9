"""indexes.* checks: each passes on a genuine database and catches its fault by name."""

from __future__ import annotations

from helpers import audit, failing, sql

SEED = (
    "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (1, 'e', 'active')",
    "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) VALUES "
    "('r1', 1, 'active', 'FINISHED'), ('r2', 1, 'active', 'FINISHED')",
    "INSERT INTO params (key, value, run_uuid) VALUES ('lr', '1', 'r1'), ('lr', '2', 'r2')",
)


def findings_of(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def test_dropped_mlflow_index(pytester, mlflow_uri):
    sql(mlflow_uri, "DROP INDEX index_params_run_uuid")
    result, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["indexes.required"])
    assert finding["object"] == "public.index_params_run_uuid"
    assert "CREATE INDEX index_params_run_uuid ON params USING btree (run_uuid)" in \
        finding["message"]
    assert result.ret == 1


def test_renamed_but_equivalent_index_passes_with_a_note(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER INDEX index_params_run_uuid RENAME TO params_by_run")
    result, checks = audit(pytester, mlflow_uri)
    required = checks["indexes.required"]
    assert required["outcome"] == "passed"
    note = findings_of(required, "info")["public.params_by_run"]
    assert "equivalent to MLflow's index_params_run_uuid" in note["message"]
    assert result.ret == 0


def test_invalid_index_left_by_a_failed_concurrent_build(pytester, mlflow_uri):
    sql(mlflow_uri, *SEED)
    import psycopg

    with psycopg.connect(mlflow_uri, autocommit=True) as conn:
        try:
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY params_key_unique ON params (key)")
        except psycopg.errors.UniqueViolation:
            pass  # the build fails, leaving the index behind, INVALID
    result, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["indexes.invalid"])
    assert finding["object"] == "public.params_key_unique"
    assert finding["value"] == "invalid"
    assert checks["indexes.required"]["outcome"] == "passed"
    assert result.ret == 1


def test_redundant_indexes_warn_with_their_size(pytester, mlflow_uri):
    _, healthy = audit(pytester, mlflow_uri)
    assert healthy["indexes.redundant"]["outcome"] == "passed"
    mlflow_own = findings_of(healthy["indexes.redundant"], "info")
    assert "public.index_metrics_run_uuid" in mlflow_own  # MLflow makes both: information
    sql(mlflow_uri, "CREATE INDEX team_tags_key ON tags (key)",
        "CREATE INDEX team_tags_key_value ON tags (key, value)",
        "CREATE INDEX team_params_value ON params (value)",
        "CREATE INDEX team_params_value_again ON params (value)")
    result, checks = audit(pytester, mlflow_uri)
    redundant = checks["indexes.redundant"]
    assert redundant["outcome"] == "warned"
    warned = findings_of(redundant, "warning")
    assert set(warned) == {"public.team_tags_key", "public.team_params_value_again"}
    # (key) leads both MLflow's tag_pk (key, run_uuid) and team_tags_key_value (key, value)
    assert "is a left prefix of " in warned["public.team_tags_key"]["message"]
    assert "a duplicate of team_params_value" in \
        warned["public.team_params_value_again"]["message"]
    assert warned["public.team_tags_key"]["value"].endswith("kB")
    assert result.ret == 0


def test_recommended_indexes(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri)
    warned = findings_of(checks["indexes.recommended"], "warning")
    assert set(warned) == {"public.runs(experiment_id)", "public.metrics(key, value)"}
    assert "public.metrics(run_uuid)" not in warned  # MLflow's index_metrics_run_uuid
    sql(mlflow_uri, "CREATE INDEX team_runs_experiment ON runs (experiment_id, start_time)")
    _, checks = audit(pytester, mlflow_uri)
    ok = findings_of(checks["indexes.recommended"], "ok")
    assert ok["public.runs(experiment_id)"]["value"] == "team_runs_experiment"


def test_recommendations_give_their_true_reason_cost_and_statement(pytester, mlflow_uri):
    sql(mlflow_uri, *SEED)
    _, checks = audit(pytester, mlflow_uri)
    warned = findings_of(checks["indexes.recommended"], "warning")
    runs = warned["public.runs(experiment_id)"]["message"]
    assert "search_runs filters runs on experiment_id" in runs
    assert "CREATE INDEX CONCURRENTLY mlflowdb_runs_experiment_id ON runs (experiment_id)" \
        in runs
    assert "runs is now " in runs and "~2 rows" not in runs  # SEED is not analysed yet
    metrics = warned["public.metrics(key, value)"]["message"]
    assert "MLflow's queries filter on it" not in metrics
    assert "not MLflow's own queries" in metrics and "best runs by a metric" in metrics
    assert "every logged metric" in metrics  # the write cost on MLflow's largest table
    assert "without blocking writes" in metrics
    assert "CREATE INDEX CONCURRENTLY mlflowdb_metrics_key_value ON metrics (key, value)" \
        in metrics


def test_foreign_key_without_index_warns_only_on_a_large_mlflow_table(pytester, mlflow_uri):
    sql(mlflow_uri,
        "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (1, 'e', 'active')",
        "INSERT INTO experiment_tags (key, value, experiment_id) "
        "SELECT 'k' || i, repeat('v', 200), 1 FROM generate_series(1, 500) AS i",
        "CREATE TABLE team_notes (id int PRIMARY KEY, "
        "run_uuid varchar(32) REFERENCES runs (run_uuid))",
        "CREATE SCHEMA team",
        "CREATE TABLE team.notes (id int PRIMARY KEY, "
        "experiment_id int REFERENCES public.experiments (experiment_id))")
    _, checks = audit(pytester, mlflow_uri)
    recommended = checks["indexes.recommended"]
    objects = {f["object"] for f in recommended["findings"]}
    info = findings_of(recommended, "info")
    # a stock database: small tables without a foreign-key index are information
    assert "public.experiment_tags(experiment_id)" in info
    assert "public.logged_model_params(experiment_id)" in info
    assert "experiment_tags_experiment_id_fkey" in \
        info["public.experiment_tags(experiment_id)"]["message"]
    assert not any("team_notes" in o or "notes" in o for o in objects)  # not MLflow's
    assert set(findings_of(recommended, "warning")) == {"public.runs(experiment_id)",
                                                       "public.metrics(key, value)"}
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set=fk_index_min_size=64kB")
    recommended = checks["indexes.recommended"]
    warned = findings_of(recommended, "warning")
    big = warned["public.experiment_tags(experiment_id)"]["message"]
    assert "deleting from experiments scans experiment_tags" in big
    assert "fk_index_min_size 64kB" in big
    assert "CREATE INDEX CONCURRENTLY ON experiment_tags (experiment_id)" in big
    assert "public.logged_model_params(experiment_id)" in findings_of(recommended, "info")
    assert not any("notes" in f["object"] for f in recommended["findings"])


def test_recommended_list_is_configurable(pytester, mlflow_uri):
    pytester.makeini("""
        [pytest]
        mlflowdb_recommended_indexes =
            -runs(experiment_id)
            -metrics(key, value)
            -foreign_keys
            params(value)
    """)
    _, checks = audit(pytester, mlflow_uri)
    recommended = checks["indexes.recommended"]
    assert set(findings_of(recommended, "warning")) == {"public.params(value)"}
    bad = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "-o",
                             "mlflowdb_recommended_indexes=runs experiment_id")
    assert bad.ret == 4


def test_unused_indexes_are_information(pytester, mlflow_uri):
    _, checks = audit(pytester, mlflow_uri)
    unused = checks["indexes.unused"]
    assert unused["outcome"] == "skipped"
    assert "younger than stats_min_age 7d" in unused["message"]
    sql(mlflow_uri, "CREATE INDEX team_never_used ON params (value)")
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-set=stats_min_age=0s",
                           "--mlflowdb-set=unused_index_min_size=0")
    unused = checks["indexes.unused"]
    assert unused["outcome"] == "passed"
    info = findings_of(unused, "info")
    assert "public.team_never_used" in info
    assert "public.param_pk" not in info  # unique indexes enforce something: never "unused"
    assert result.ret == 0


def test_redundancy_respects_opclass_collation_and_catches_primary_key_twins(
        pytester, mlflow_uri):
    sql(mlflow_uri,
        "CREATE INDEX team_name_pattern ON runs (name text_pattern_ops)",
        "CREATE INDEX team_name_status ON runs (name, status)",
        'CREATE INDEX team_stage_c ON runs (lifecycle_stage COLLATE "C")',
        "CREATE INDEX team_stage_status ON runs (lifecycle_stage, status)",
        "CREATE INDEX team_experiment_pk_twin ON experiments (experiment_id)")
    _, checks = audit(pytester, mlflow_uri)
    warned = findings_of(checks["indexes.redundant"], "warning")
    assert set(warned) == {"public.team_experiment_pk_twin"}
    assert "a duplicate of experiment_pk" in warned["public.team_experiment_pk_twin"]["message"]


def test_mlflow_pairs_stay_information_for_a_monitoring_role(pytester, pg18, mlflow_uri):
    from helpers import dbname_of, role_uri

    sql(pg18.uri(), "DO $$ BEGIN CREATE ROLE monitor_only LOGIN PASSWORD 'monitor-pass' "
        "IN ROLE pg_monitor; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    uri = role_uri(pg18, dbname_of(mlflow_uri), "monitor_only", "monitor-pass")
    _, checks = audit(pytester, uri)
    assert checks["schema.revision"]["outcome"] == "skipped"  # alembic_version unreadable
    redundant = checks["indexes.redundant"]
    assert redundant["outcome"] == "passed"
    assert "public.index_metrics_run_uuid" in findings_of(redundant, "info")


def test_recommended_wants_a_btree_in_the_right_order_and_flags_typos(pytester, mlflow_uri):
    sql(mlflow_uri, "CREATE INDEX team_brin ON runs USING brin (experiment_id)",
        "CREATE INDEX team_value_key ON metrics (value, key)")
    pytester.makeini("""
        [pytest]
        mlflowdb_recommended_indexes =
            nosuchtable(x)
            Params(Value)
    """)
    _, checks = audit(pytester, mlflow_uri)
    warned = findings_of(checks["indexes.recommended"], "warning")
    assert "public.runs(experiment_id)" in warned  # a BRIN index does not serve search_runs
    assert "public.metrics(key, value)" in warned  # (value, key) leads with the wrong column
    assert warned["public.nosuchtable(x)"]["value"] == "not found"
    assert "public.params(value)" in warned  # folded to lower case, found, not indexed


def test_redundant_compares_catalog_keys_not_definition_text(pytester, mlflow_uri):
    sql(mlflow_uri,
        # a bracket, a comma and quotes inside string literals and quoted identifiers
        "CREATE INDEX team_split ON runs ((split_part(name, '(', 1)))",
        "CREATE INDEX team_split_comma ON runs ((split_part(name, ',', 1)), status)",
        "CREATE INDEX team_lower ON runs ((lower(name)))",
        "CREATE INDEX team_lower_status ON runs ((lower(name)), status)",
        'CREATE TABLE team_odd ("a,b" text, a text, b text, "c)" text)',
        'CREATE INDEX team_odd_ab ON team_odd ("a,b")',
        'CREATE INDEX team_odd_a_b ON team_odd (a, b, "c)")',
        'CREATE INDEX team_odd_c ON team_odd ("c)")',
        # a unique index is not redundant to a non-unique one it prefixes
        "CREATE UNIQUE INDEX team_odd_a_unique ON team_odd (a)",
        # unique twins that treat NULLs differently enforce different things
        "CREATE UNIQUE INDEX team_odd_b_unique ON team_odd (b)",
        "CREATE UNIQUE INDEX team_odd_b_unique_nulls ON team_odd (b) NULLS NOT DISTINCT",
        # a partial index is neither a duplicate nor a prefix of an unconditional one
        "CREATE INDEX team_active_status ON runs (status) WHERE lifecycle_stage = 'active'",
        "CREATE INDEX team_active_status_again ON runs (status) "
        "WHERE lifecycle_stage = 'active'",
        "CREATE INDEX team_status_user ON runs (status, user_id)",
        "CREATE INDEX team_status ON runs (status)",
        # INCLUDE columns: a twin with the same ones is a duplicate; without them it is not
        "CREATE INDEX team_name_incl ON runs (name) INCLUDE (end_time)",
        "CREATE INDEX team_name_incl_twin ON runs (name) INCLUDE (end_time)",
        "CREATE INDEX team_name_start ON runs (name, start_time)")
    _, checks = audit(pytester, mlflow_uri)
    warned = findings_of(checks["indexes.redundant"], "warning")
    assert set(warned) == {"public.team_lower", "public.team_status",
                           "public.team_active_status_again", "public.team_name_incl_twin"}
    assert "a left prefix of team_lower_status" in warned["public.team_lower"]["message"]
    assert "a left prefix of team_status_user" in warned["public.team_status"]["message"]
    assert "a duplicate of team_active_status " in \
        warned["public.team_active_status_again"]["message"]
    assert "a duplicate of team_name_incl " in warned["public.team_name_incl_twin"]["message"]
