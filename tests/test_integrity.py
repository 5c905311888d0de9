"""integrity.* checks on genuine MLflow databases whose rows MLflow's own stores made
(tests/mlflow_data.py, in a child process): a lived-in database passes with its figures;
each fault, injected with SQL or made by ``mlflow gc`` itself, is caught by name with the
rows' ids and totals; the remedies the findings give fix what they report."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from helpers import audit, dbname_of, failing, role_uri, sql

from pytest_mlflowdb.config.areas import builtin_check_ids
from pytest_mlflowdb.config.registry import REGISTRY

# the built-in opt-in checks (integrity.latest_metrics, backup.*), read at import as
# tests/test_cli.py does: importing the check modules after an in-process pytester run
# would give this process a second psycopg (pytester drops what a run imported)
OPT_IN = [i for i in builtin_check_ids() if REGISTRY[i].enabled_by]
DATA = Path(__file__).with_name("mlflow_data.py")
CHECKS = ("integrity.stuck_runs", "integrity.gc_backlog", "integrity.orphans",
          "integrity.invariants")
FULL = "--mlflowdb-integrity-full"
DAY_MS = 86_400_000


def store_uri(uri: str) -> str:
    """The URI MLflow's SQL store takes (psycopg 3 is this environment's driver)."""
    return "postgresql+psycopg://" + uri.partition("://")[2]


def mlflow(tmp_path: Path, uri: str, *args: str) -> subprocess.CompletedProcess:
    """Run MLflow in a child process (never imported here), artifacts under tmp_path."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri(uri)}
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def lived_in(uri: str, tmp_path: Path) -> dict:
    """Fill the database through MLflow's stores; the ids of what was made, by role."""
    import json

    done = mlflow(tmp_path, uri, sys.executable, str(DATA), store_uri(uri),
                  str(tmp_path / "artifacts"))
    return json.loads(done.stdout)


def run_remedy(tmp_path: Path, uri: str, remedy: str) -> None:
    """Run an ``mlflow ...`` remedy as a finding gives it (its note in brackets left out)."""
    command = remedy.split(" (")[0].replace("<URI>", store_uri(uri)).split()
    assert command[0] == "mlflow"
    mlflow(tmp_path, uri, str(Path(sys.executable).with_name("mlflow")), *command[1:])


def by(check: dict, severity: str) -> list[dict]:
    return [f for f in check["findings"] if f["severity"] == severity]


def quiet(checks: dict, *names: str) -> None:
    for name in names or CHECKS:
        assert checks[name]["outcome"] == "passed", checks[name]
        assert not by(checks[name], "warning") and not by(checks[name], "failure")


def ago(days: float) -> str:
    return f"(extract(epoch FROM now()) * 1000)::bigint - {int(days * DAY_MS)}"


def test_fresh_and_lived_in_databases_pass_with_their_figures(pytester, mlflow_uri,
                                                              tmp_path):
    result, checks = audit(pytester, mlflow_uri)
    quiet(checks)
    (zero,) = [f for f in by(checks["integrity.invariants"], "info")
               if "experiment 0" in f["message"]]
    assert "no experiment at all" in zero["message"]  # normal before a server's first start
    assert "integrity.latest_metrics" not in checks  # opt-in: deselected, no skip line
    assert "integrity.latest_metrics" in OPT_IN
    assert result.parseoutcomes().get("deselected") == len(OPT_IN)
    made = lived_in(mlflow_uri, tmp_path)
    result, checks = audit(pytester, mlflow_uri, FULL)
    quiet(checks, *CHECKS, "integrity.latest_metrics")
    stuck = checks["integrity.stuck_runs"]["findings"]
    assert [f["message"] for f in stuck] == ["no run RUNNING for more than 7d (1 running now)"]
    gc = {f["object"]: f for f in checks["integrity.gc_backlog"]["findings"]}
    assert gc["public.runs"]["value"] == 2 and gc["public.experiments"]["value"] == 1
    orphans = {f["object"]: f["message"] for f in checks["integrity.orphans"]["findings"]}
    assert orphans["public.metrics"] == ("foreign key metrics_run_uuid_fkey prevents rows "
                                         "of missing runs")
    assert "every alias points at a live model version" in orphans[
        "public.registered_model_aliases"]
    invariants = {f["message"] for f in checks["integrity.invariants"]["findings"]}
    assert "experiment 0 (Default) exists" in invariants
    assert "next experiment id 3, above the largest (2)" in invariants
    (agree,) = checks["integrity.latest_metrics"]["findings"]
    assert agree["value"] == 7 and made["running"]
    assert result.ret == 0


def test_stuck_runs_are_named_with_the_total_and_the_cap(pytester, mlflow_uri, tmp_path):
    made = lived_in(mlflow_uri, tmp_path)
    sql(mlflow_uri, f"UPDATE runs SET start_time = {ago(10)} WHERE run_uuid = "
        f"'{made['running']}'",
        f"UPDATE runs SET status = 'RUNNING', end_time = NULL, start_time = {ago(20)} "
        f"WHERE run_uuid = '{made['failed']}'")
    result, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "integrity_max_ids=1")
    check = checks["integrity.stuck_runs"]
    assert check["outcome"] == "warned"
    (finding,) = by(check, "warning")
    assert finding["object"] == "public.runs" and finding["value"] == 2
    assert finding["threshold"] == "7d"
    assert finding["message"].endswith(f": {made['failed']} (first 1 of 2)")  # oldest first
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-set", "stuck_run_age=15d")
    (finding,) = by(checks["integrity.stuck_runs"], "warning")
    assert finding["value"] == 1 and finding["threshold"] == "15d"
    assert result.ret == 0  # warnings do not fail the default run
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = by(checks["integrity.stuck_runs"], "warning")
    python, flag, code = shlex.split(finding["remedy"].replace("<URI>", store_uri(mlflow_uri)))
    assert (python, flag) == ("python", "-c")
    mlflow(tmp_path, mlflow_uri, sys.executable, "-c", code)  # MLflow's client ends them
    _, checks = audit(pytester, mlflow_uri)
    quiet(checks, "integrity.stuck_runs")


def test_gc_backlog_and_its_remedies_then_the_orphans_gc_leaves(pytester, mlflow_uri,
                                                                tmp_path):
    made = lived_in(mlflow_uri, tmp_path)
    sql(mlflow_uri,
        f"UPDATE runs SET deleted_time = NULL WHERE run_uuid = '{made['deleted']}'",
        f"UPDATE runs SET deleted_time = {ago(40)} WHERE run_uuid = '{made['doomed_run']}'",
        f"UPDATE experiments SET last_update_time = {ago(45)} WHERE experiment_id = "
        f"{made['doomed']}")
    _, checks = audit(pytester, mlflow_uri)
    check = checks["integrity.gc_backlog"]
    assert check["outcome"] == "warned"
    found = {(f["object"], f["message"].split(" ")[1]): f for f in by(check, "warning")}
    due = found[("public.runs", "run(s)")]
    assert due["message"].endswith(f"wait for mlflow gc: {made['doomed_run']}")
    assert due["value"] == 1 and due["threshold"] == "30d"
    undated = found[("public.runs", "soft-deleted")]
    assert "no deleted_time: mlflow gc --older-than never collects them" in undated["message"]
    assert undated["message"].endswith(made["deleted"])
    assert f"--run-ids {made['deleted']}" in undated["remedy"]
    old_experiment = found[("public.experiments", "experiment(s)")]
    assert old_experiment["message"].endswith(f": {made['doomed']}")

    run_remedy(tmp_path, mlflow_uri, due["remedy"])  # --older-than 30d
    _, checks = audit(pytester, mlflow_uri)
    (left,) = by(checks["integrity.gc_backlog"], "warning")
    assert left["message"] == undated["message"]  # gc --older-than cannot see it
    run_remedy(tmp_path, mlflow_uri, undated["remedy"])  # --run-ids
    result, checks = audit(pytester, mlflow_uri)
    quiet(checks, "integrity.gc_backlog")

    # the hard-deleted run leaves its inputs and a model version registered from it
    orphans = checks["integrity.orphans"]
    assert orphans["outcome"] == "failed" and result.ret == 1
    (version,) = failing(orphans)
    assert version["object"] == "public.model_versions"
    assert f"ranker v1 (run {made['deleted']})" in version["message"]
    assert "loading them fails" in version["message"] and version["value"] == 1
    (inputs,) = by(orphans, "warning")
    assert inputs["object"] == "public.inputs" and inputs["value"] == 1
    assert inputs["message"].endswith(made["deleted"])
    sql(mlflow_uri, inputs["remedy"])
    _, checks = audit(pytester, mlflow_uri)
    assert not by(checks["integrity.orphans"], "warning")


def test_deleted_experiments_without_last_update_time_are_named(pytester, mlflow_uri,
                                                               tmp_path):
    made = lived_in(mlflow_uri, tmp_path)
    sql(mlflow_uri, "UPDATE experiments SET last_update_time = NULL WHERE experiment_id = "
        f"{made['doomed']}")
    _, checks = audit(pytester, mlflow_uri)
    (finding,) = by(checks["integrity.gc_backlog"], "warning")
    assert finding["object"] == "public.experiments"
    assert finding["message"] == ("1 soft-deleted experiment(s) have no last_update_time: "
                                  "mlflow gc --older-than never collects them: "
                                  f"{made['doomed']}")
    assert f"--experiment-ids {made['doomed']} " in finding["remedy"]


def test_registry_and_child_table_orphans_are_named(pytester, mlflow_uri, tmp_path):
    made = lived_in(mlflow_uri, tmp_path)
    ghost = "f" * 32
    sql(mlflow_uri,
        # what delete_model_version writes, but the alias left in place
        "UPDATE model_versions SET current_stage = 'Deleted_Internal', run_id = "
        "'REDACTED-RUN-ID' WHERE name = 'churn' AND version = 3",
        "INSERT INTO registered_model_aliases (alias, version, name) VALUES ('ghost', 9, "
        "'churn')",
        f"UPDATE model_versions SET source = 's3://models/churn/2', run_id = '{ghost}' "
        "WHERE name = 'churn' AND version = 2",
        "ALTER TABLE tags DROP CONSTRAINT tags_run_uuid_fkey",
        f"INSERT INTO tags (key, value, run_uuid) VALUES ('k', 'v', '{ghost}')",
        # a restore with triggers off: the foreign key is there but checked nothing
        "ALTER TABLE params DISABLE TRIGGER ALL",
        f"INSERT INTO params (key, value, run_uuid) VALUES ('k', 'v', '{ghost}')",
        f"DELETE FROM metrics WHERE run_uuid = '{made['finished'][0]}'")
    result, checks = audit(pytester, mlflow_uri)
    check = checks["integrity.orphans"]
    (aliases,) = failing(check)
    assert aliases["object"] == "public.registered_model_aliases" and aliases["value"] == 2
    assert aliases["message"].endswith(": churn@challenger -> v3 (deleted), "
                                       "churn@ghost -> v9 (missing)")
    warned = {f["object"]: f for f in by(check, "warning")}
    assert set(warned) == {"public.model_versions", "public.tags", "public.params",
                           "public.latest_metrics"}
    assert warned["public.params"]["message"].endswith(ghost)
    assert warned["public.model_versions"]["message"].endswith(f"churn v2 (run {ghost})")
    assert "no foreign key to runs" in warned["public.tags"]["message"]
    assert warned["public.tags"]["message"].endswith(ghost)
    assert warned["public.latest_metrics"]["message"].endswith(made["finished"][0])
    assert result.ret == 1


def test_invariants_sequence_behind_experiment_zero_and_unknown_values(pytester, mlflow_uri,
                                                                       tmp_path):
    made = lived_in(mlflow_uri, tmp_path)
    sql(mlflow_uri, "SELECT setval('experiments_experiment_id_seq', 1)",
        "ALTER TABLE runs DROP CONSTRAINT runs_status_check",
        f"UPDATE runs SET status = 'ZOMBIE' WHERE run_uuid = '{made['failed']}'",
        "UPDATE model_versions SET current_stage = 'Legacy' WHERE name = 'ranker'")
    result, checks = audit(pytester, mlflow_uri)
    check = checks["integrity.invariants"]
    failed = {f["object"]: f for f in failing(check)}
    sequence = failed["public.experiments_experiment_id_seq"]
    assert (sequence["value"], sequence["threshold"]) == (2, 2)
    assert "duplicate key" in sequence["message"]
    status = failed["public.runs.status"]
    assert status["message"].startswith("1 row(s) hold 'ZOMBIE'")
    assert status["message"].endswith(made["failed"])
    (stage,) = by(check, "warning")
    assert stage["object"] == "public.model_versions.current_stage"
    assert stage["message"].endswith("ranker v1")
    sql(mlflow_uri, sequence["remedy"], "DELETE FROM experiments WHERE experiment_id = 0")
    _, checks = audit(pytester, mlflow_uri)
    check = checks["integrity.invariants"]
    assert not [f for f in failing(check) if "sequence" in f["object"]]
    zero = [f for f in by(check, "warning") if "experiment 0" in f["message"]]
    assert zero and "re-creates it only on its next start" in zero[0]["message"]
    assert result.ret == 1


def test_latest_metrics_disagreements_only_when_asked(pytester, mlflow_uri, tmp_path):
    made = lived_in(mlflow_uri, tmp_path)
    first, second = made["finished"][:2]
    sql(mlflow_uri, f"UPDATE latest_metrics SET value = 42 WHERE run_uuid = '{first}'",
        f"DELETE FROM latest_metrics WHERE run_uuid = '{second}'")
    _, checks = audit(pytester, mlflow_uri)
    assert "integrity.latest_metrics" not in checks
    _, checks = audit(pytester, mlflow_uri, FULL)
    check = checks["integrity.latest_metrics"]
    assert check["outcome"] == "warned"
    found = {f["message"].split(" ")[1]: f for f in by(check, "warning")}
    assert found["latest_metrics"]["message"].startswith("1 latest_metrics rows that are not")
    assert f"{first}/loss" in found["latest_metrics"]["message"]
    assert found["metrics"]["value"] == 1 and f"{second}/loss" in found["metrics"]["message"]


@pytest.mark.parametrize("setting", ["stuck_run_age=soon", "gc_age=-1d",
                                     "integrity_max_ids=0"])
def test_bad_threshold_values_are_one_line_usage_errors(pytester, setting):
    result = pytester.runpytest("--mlflowdb-uri=postgresql://u@h/db", "--mlflowdb-set",
                                setting)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.errlines if line.strip()]
    assert line.startswith("ERROR: --mlflowdb-set") and setting.split("=")[0] in line


def test_a_role_without_select_skips_naming_the_privilege(pytester, mlflow_uri, pg18,
                                                          mlflow_role, tmp_path):
    lived_in(mlflow_uri, tmp_path)
    user, password = mlflow_role
    uri = role_uri(pg18, dbname_of(mlflow_uri), user, password)
    _, checks = audit(pytester, uri)
    for name in CHECKS:
        assert checks[name]["outcome"] == "skipped", checks[name]
        assert "no SELECT privilege on public." in checks[name]["message"]
        assert f'TO "{user}"; all an auditor needs: pytest --mlflowdb-print-grants' in \
            checks[name]["message"]
    sql(mlflow_uri, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}")
    _, checks = audit(pytester, uri)
    quiet(checks, "integrity.stuck_runs", "integrity.gc_backlog", "integrity.orphans")
    invariants = checks["integrity.invariants"]  # the sequence is not a table
    assert invariants["outcome"] == "skipped"
    assert "no SELECT privilege on sequence" in invariants["message"]


def test_a_revision_older_than_the_columns_says_which_release_adds_them(
        pytester, mlflowdb_database_factory):
    uri = mlflowdb_database_factory(revision="bd07f7e963c5")  # MLflow 1.25-1.27
    sql(uri, "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES "
        "(0, 'Default', 'active')")
    result, checks = audit(pytester, uri)
    quiet(checks)
    gc = {f["object"]: f["message"] for f in checks["integrity.gc_backlog"]["findings"]}
    assert gc["public.runs"] == ("not checked: public.runs.deleted_time does not exist at "
                                 "revision bd07f7e963c5: MLflow 1.28.0 adds it (0c779009ac13)")
    assert "public.experiments.last_update_time does not exist" in gc["public.experiments"]
    orphans = {f["object"]: f["message"] for f in checks["integrity.orphans"]["findings"]}
    assert "MLflow 2.4.0 adds it" in orphans["public.inputs"]
    assert result.ret == 0


BIG = {"metrics", "params", "tags", "latest_metrics", "inputs"}


def test_every_default_query_has_an_index_path_on_the_big_tables(mlflow_uri, tmp_path):
    """With sequential scans priced out, no default integrity query reads metrics, params,
    tags, latest_metrics or inputs from end to end: each has a path through MLflow's
    indexes (1M metric rows: see the report). The walks of run children run here even
    though foreign keys make the check skip them."""
    from psycopg import sql as pgsql

    from pytest_mlflowdb.config.targets import parse_target
    from pytest_mlflowdb.db.database import Database
    from pytest_mlflowdb.probes import integrity as probe

    class Explaining(Database):
        """A real session that EXPLAINs each probe statement before running it."""

        plans: list[tuple[str, dict]] = []

        def rows(self, query, params=None, **kwargs):
            if isinstance(query, pgsql.Composable):
                (plan,) = super().rows(pgsql.SQL("EXPLAIN (FORMAT JSON) ") + query, params,
                                       **kwargs)
                self.plans.append((query.as_string(self.connection), plan["QUERY PLAN"][0]))
            return super().rows(query, params, **kwargs)

    def scans(plan: dict):
        if "Relation Name" in plan:
            yield plan["Node Type"], plan["Relation Name"]
        for child in plan.get("Plans", []):
            yield from scans(child)

    lived_in(mlflow_uri, tmp_path)
    sql(mlflow_uri, "ANALYZE", f'ALTER DATABASE "{dbname_of(mlflow_uri)}" SET enable_seqscan '
        "= off")
    db = Explaining(parse_target(mlflow_uri)).connect()
    try:
        lay = probe.layout(db, "public")
        probe.stuck_runs(db, lay, 7 * 86400, 10)
        probe.gc_backlog(db, lay, "runs", 30 * 86400, 10)
        probe.orphan_versions(db, lay, 10, runs_source=True)
        probe.stale_aliases(db, lay, 10)
        assert probe.orphan_inputs(db, lay, 10).total == 0
        for table in probe.RUN_CHILDREN:
            assert probe.orphan_children(db, lay, table, 10).total == 0
        assert probe.latest_without_metrics(db, lay, 10).total == 0
        probe.experiment_sequence(db, lay)
        probe.unknown_values(db, lay, "runs", "status", probe.RUN_STATUSES, "run_uuid", 10)
    finally:
        db.close()
    read = {relation for _, plan in db.plans for _, relation in scans(plan["Plan"])}
    assert BIG <= read  # every big table is read by some query...
    seq = [(text, relation) for text, plan in db.plans
           for node, relation in scans(plan["Plan"]) if node == "Seq Scan" and relation in BIG]
    assert seq == []  # ...and none from end to end


def test_orphans_read_no_big_table_from_end_to_end_whatever_the_planner_thinks(
        pytester, mlflow_uri):
    """A metrics table with no recent vacuum (an empty visibility map) and a planner that
    prices its index dearly: the per-run probes still walk the run_uuid indexes (left to
    itself, the planner would scan metrics once per run)."""
    db = dbname_of(mlflow_uri)
    sql(mlflow_uri,
        "INSERT INTO experiments (name, lifecycle_stage) VALUES ('orphans-plan', 'active')",
        "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status) SELECT "
        "'run' || i, (SELECT max(experiment_id) FROM experiments), 'active', 'FINISHED' "
        "FROM generate_series(1, 40) i",
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) SELECT 'loss', "
        "i, i, 'run' || (i % 39 + 1), i, false FROM generate_series(1, 60000) i",
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) SELECT "
        "'loss', 1, 1, 1, false, 'run' || i FROM generate_series(1, 40) i",
        "ANALYZE metrics", "ANALYZE latest_metrics", "ANALYZE runs",
        f'ALTER DATABASE "{db}" SET random_page_cost = 4000',
        f'ALTER DATABASE "{db}" SET seq_page_cost = 0.001')
    try:
        def seq_scans() -> int:
            with psycopg.connect(mlflow_uri, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_force_next_flush()")
                return conn.execute("SELECT seq_scan FROM pg_stat_user_tables "
                                    "WHERE relname = 'metrics'").fetchone()[0]

        before = seq_scans()
        _, checks = audit(pytester, mlflow_uri, "-k", "orphans")
        time.sleep(1.5)  # the audit's backend reports its counters as it exits
        after = seq_scans()
    finally:
        sql(mlflow_uri, f'ALTER DATABASE "{db}" RESET random_page_cost',
            f'ALTER DATABASE "{db}" RESET seq_page_cost')
    warned = {f["object"]: f for f in checks["integrity.orphans"]["findings"]}
    assert "run40" in warned["public.latest_metrics"]["message"]  # the probe did look
    assert after == before


def test_a_table_another_session_locks_is_a_skip_with_the_reason(pytester, mlflow_uri):
    import psycopg

    with psycopg.connect(mlflow_uri) as holder:
        holder.execute("LOCK TABLE model_versions IN ACCESS EXCLUSIVE MODE")
        _, checks = audit(pytester, mlflow_uri, "--mlflowdb-lock-timeout=200ms")
        holder.rollback()
    orphans = checks["integrity.orphans"]
    assert orphans["outcome"] == "skipped", orphans["findings"]
    assert "another session holds a lock" in orphans["message"]
    assert "Traceback" not in orphans["message"]
    quiet(checks, "integrity.stuck_runs", "integrity.gc_backlog")


def test_a_registry_apart_from_its_runs_is_not_called_orphaned(pytester, mlflow_uri):
    """MLflow's registry may live in its own database (--registry-store-uri): there the
    versions' runs are elsewhere, and runs is empty."""
    sql(mlflow_uri, "INSERT INTO registered_models (name) VALUES ('solo')",
        "INSERT INTO model_versions (name, version, source, run_id, current_stage, status) "
        f"VALUES ('solo', 1, 'runs:/{'a' * 32}/model', '{'a' * 32}', 'None', 'READY')")
    _, checks = audit(pytester, mlflow_uri)
    quiet(checks, "integrity.orphans")
    (info,) = by(checks["integrity.orphans"], "info")
    assert info["object"] == "public.model_versions"
    assert "runs is empty" in info["message"]
