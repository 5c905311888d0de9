"""sequences.* checks: quiet on genuine databases; a sequence near its column type's
maximum and a sequence behind its column caught by name with their figures; unreadable
sequences and unindexed columns are skips that say why, never passes."""

from __future__ import annotations

import time

import psycopg
import pytest
from helpers import audit, dbname_of, failing, role_uri, sql

from pytest_mlflowdb.probes.sequences import TYPE_BOUNDS, ColumnSequence

SEQ = "public.experiments_experiment_id_seq"
INT4_MAX = 2**31 - 1
ROLLUPS = ("sql_trace_metric_daily_rollups", "sql_span_cost_daily_rollups",
           "sql_assessment_daily_rollups")
REMEDY = ("SELECT setval('\"public\".\"experiments_experiment_id_seq\"', "
          "(SELECT max(\"experiment_id\") FROM \"public\".\"experiments\"));")


def by_severity(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def test_fresh_database_passes_with_each_sequence_and_its_figures(pytester, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    capacity, behind = checks["sequences.capacity"], checks["sequences.behind"]
    assert capacity["outcome"] == "passed", capacity
    assert behind["outcome"] == "passed", behind
    ok = by_severity(capacity, "ok")
    assert ok[SEQ]["value"] == "0%" and ok[SEQ]["threshold"] == "75%"
    assert "experiments.experiment_id integer" in ok[SEQ]["message"]
    assert f"limit {INT4_MAX} (the column's type)" in ok[SEQ]["message"]
    for table in ROLLUPS:  # MLflow's identity columns are found too
        assert f"public.{table}_id_seq" in ok, sorted(ok)
    assert "empty" in by_severity(behind, "ok")[SEQ]["message"]
    assert result.ret == 0


def test_sequence_values_in_use_pass_with_the_column_maximum(pytester, mlflow_uri):
    sql(mlflow_uri, "INSERT INTO experiments (name, lifecycle_stage) "
                    "SELECT 'e' || g, 'active' FROM generate_series(1, 3) g")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = [f for f in checks["sequences.behind"]["findings"] if f["object"] == SEQ]
    assert finding["severity"] == "ok", finding
    assert "max(experiment_id) 3, next value 4" in finding["message"]
    assert finding["value"] == 3 and finding["threshold"] == 4


def test_sequence_near_its_column_type_maximum_fails_by_name(pytester, mlflow_uri):
    # the sequence itself could count to 2^63-1: only the column's integer type limits it
    sql(mlflow_uri, f"ALTER SEQUENCE {SEQ} AS bigint",
        f"SELECT setval('{SEQ}', 2000000000)")
    result, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["sequences.capacity"])
    assert finding["object"] == SEQ
    assert finding["value"] == "93.1%" and finding["threshold"] == "90%"
    assert "next value 2000000001" in finding["message"]
    assert f"limit {INT4_MAX} (the column's type)" in finding["message"]
    assert finding["remedy"].startswith(
        'ALTER SEQUENCE "public"."experiments_experiment_id_seq" AS bigint; ALTER TABLE '
        '"public"."experiments" ALTER COLUMN "experiment_id" TYPE bigint;')
    assert result.ret == 1
    sql(mlflow_uri, *finding["remedy"].split("; (")[0].split("; "))
    _, checks = audit(pytester, mlflow_uri)
    assert checks["sequences.capacity"]["outcome"] == "passed"
    fixed = by_severity(checks["sequences.capacity"], "ok")[SEQ]
    assert "experiments.experiment_id bigint" in fixed["message"] and fixed["value"] == "0%"


def test_warn_and_fail_percents_come_from_the_thresholds(pytester, mlflow_uri):
    sql(mlflow_uri, f"SELECT setval('{SEQ}', 1700000000)")  # 79.2% of int4
    _, checks = audit(pytester, mlflow_uri)
    assert checks["sequences.capacity"]["outcome"] == "warned"
    (finding,) = by_severity(checks["sequences.capacity"], "warning").values()
    assert finding["object"] == SEQ and finding["value"] == "79.2%"
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "sequence_warn=50%",
                      "--mlflowdb-set", "sequence_fail=70%")
    assert failing(checks["sequences.capacity"])[0]["threshold"] == "70%"
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "sequence_warn=80%")
    assert checks["sequences.capacity"]["outcome"] == "passed"


def test_a_sequence_own_maximum_below_the_type_limits_it(pytester, mlflow_uri):
    sql(mlflow_uri, f"ALTER SEQUENCE {SEQ} MAXVALUE 1000", f"SELECT setval('{SEQ}', 950)")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["sequences.capacity"])
    assert finding["object"] == SEQ and "limit 1000 (the sequence's MAXVALUE)" in \
        finding["message"]
    assert finding["remedy"] == ('ALTER SEQUENCE "public"."experiments_experiment_id_seq" '
                                 f"AS integer MAXVALUE {INT4_MAX};")
    sql(mlflow_uri, finding["remedy"])
    _, checks = audit(pytester, mlflow_uri)
    assert checks["sequences.capacity"]["outcome"] == "passed"


def test_sequence_behind_its_column_fails_and_the_remedy_fixes_it(pytester, mlflow_uri):
    # a restore that copied the rows but not the sequence's value
    sql(mlflow_uri, "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
                    "VALUES (0, 'Default', 'active'), (10, 'restored', 'active')")
    result, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["sequences.behind"])
    assert finding["object"] == SEQ
    assert finding["value"] == 10 and finding["threshold"] == 1
    assert "max(experiment_id) 10 >= next value 1" in finding["message"]
    assert finding["remedy"] == REMEDY
    assert result.ret == 1
    sql(mlflow_uri, REMEDY)
    _, checks = audit(pytester, mlflow_uri)
    assert checks["sequences.behind"]["outcome"] == "passed"
    assert "next value 11" in by_severity(checks["sequences.behind"], "ok")[SEQ]["message"]


def test_a_column_no_index_leads_with_is_not_scanned_but_skipped(pytester, mlflow_uri):
    sql(mlflow_uri, "ALTER TABLE experiments DROP CONSTRAINT experiment_pk CASCADE",
        "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
        "VALUES (10, 'restored', 'active')")
    _, checks = audit(pytester, mlflow_uri)
    behind = checks["sequences.behind"]
    assert behind["outcome"] == "skipped", behind
    assert SEQ in behind["message"]
    assert "no valid btree index leads with experiments.experiment_id" in behind["message"]


def test_unreadable_sequences_skip_naming_the_grant_never_zero(pytester, mlflow_uri, pg18,
                                                               mlflow_role):
    user, password = mlflow_role
    sql(mlflow_uri, f"SELECT setval('{SEQ}', 2000000000)",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}")
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    _, checks = audit(pytester, uri)
    for name in ("sequences.capacity", "sequences.behind"):
        assert checks[name]["outcome"] == "skipped", checks[name]
        assert ('GRANT SELECT ON SEQUENCE "public"."experiments_experiment_id_seq" TO '
                f'"{user}"') in checks[name]["message"]
    sql(mlflow_uri, f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {user}",
        f"REVOKE SELECT ON experiments FROM {user}")
    _, checks = audit(pytester, uri)
    assert checks["sequences.capacity"]["outcome"] == "failed"
    behind = checks["sequences.behind"]
    assert behind["outcome"] == "skipped", behind
    assert f'GRANT SELECT ("experiment_id") ON "public"."experiments" TO "{user}"' in \
        behind["message"]


@pytest.mark.parametrize("value", ["sequence_warn=150%", "sequence_fail=lots",
                                   "sequence_warn=95%"])
def test_bad_threshold_is_a_usage_error(pytester, mlflow_uri, value):
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "--mlflowdb-set", value)
    assert result.ret == 4
    assert value.split("=")[0] in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def _seq(next_value: int, increment: int = 1, minimum: int = 1, maximum: int = INT4_MAX,
         bounds: tuple[int, int] | None = TYPE_BOUNDS["int4"]) -> ColumnSequence:
    return ColumnSequence("public", "s", "t", "c", "integer", "owned", "bigint", 1, minimum,
                          maximum, increment, False, True, True, True, next_value=next_value,
                          type_bounds=bounds)


def test_used_share_counts_from_the_first_value_to_the_nearer_limit():
    assert _seq(1).used_pct() == 0
    assert _seq(INT4_MAX + 1).used_pct() == 100  # exhausted
    assert _seq(2**30 + 1, maximum=2**62).used_pct() == pytest.approx(50, abs=1e-6)
    assert _seq(2**30 + 1, maximum=2**62).limited_by_type
    assert not _seq(51, maximum=100).limited_by_type and _seq(51, maximum=100).used_pct() == 50
    assert _seq(51, maximum=100, bounds=None).used_pct() == 50  # numeric column: no type bound
    # descending from -1 towards the int4 minimum
    down = _seq(-(2**30) - 1, increment=-1, minimum=-(2**62), maximum=-1)
    assert down.limit == -(2**31) and down.used_pct() == pytest.approx(50, abs=1e-6)


def test_a_sequence_only_named_in_a_default_is_found_too(pytester, mlflow_uri):
    sql(mlflow_uri, f"ALTER SEQUENCE {SEQ} OWNED BY NONE", f"SELECT setval('{SEQ}', 2000000000)")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["sequences.capacity"])
    assert finding["object"] == SEQ
    assert "experiments.experiment_id integer (default)" in finding["message"]


def test_locks_held_by_other_sessions_are_skips_with_the_reason_not_waits(pytester,
                                                                          mlflow_uri):
    sql(mlflow_uri, "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
                    "VALUES (10, 'restored', 'active')")
    with psycopg.connect(mlflow_uri.replace("+psycopg2", "")) as holder:
        holder.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        _, checks = audit(pytester, mlflow_uri)
        assert time.monotonic() - started < 120  # bounded: no hang behind the lock
        holder.rollback()
        holder.execute(f"ALTER SEQUENCE {SEQ} OWNER TO mlflow")  # its owner: ACCESS EXCLUSIVE
        _, locked_sequence = audit(pytester, mlflow_uri)
        holder.rollback()
    behind = checks["sequences.behind"]
    assert behind["outcome"] == "skipped", behind
    assert f"{SEQ}: experiments.experiment_id: another session holds a lock on the table" in \
        behind["message"]
    assert checks["sequences.capacity"]["outcome"] == "passed"
    capacity = locked_sequence["sequences.capacity"]
    assert capacity["outcome"] == "skipped", capacity
    assert f"{SEQ}: another session holds a lock on it (lock timeout)" in capacity["message"]


def test_a_sequence_set_back_with_is_called_false_counts_its_next_value(pytester, mlflow_uri):
    # pg_sequences shows last_value NULL here, as for a sequence never used: 0% would be wrong
    sql(mlflow_uri, f"SELECT setval('{SEQ}', 2000000000, false)")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = failing(checks["sequences.capacity"])
    assert finding["object"] == SEQ and "next value 2000000000," in finding["message"]


def test_rows_hidden_by_row_level_security_are_a_skip_not_a_pass(pytester, mlflow_uri, pg18,
                                                                 mlflow_role):
    user, password = mlflow_role
    sql(mlflow_uri, "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
                    "VALUES (10, 'restored', 'active')",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}",
        f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {user}",
        "ALTER TABLE experiments ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY only_active ON experiments TO {user} USING (experiment_id < 5)")
    _, checks = audit(pytester, role_uri(pg18, dbname_of(mlflow_uri), user, password))
    behind = checks["sequences.behind"]
    assert behind["outcome"] == "skipped", behind
    assert f"{SEQ}: row-level security hides rows of experiments from role {user}" in \
        behind["message"]
