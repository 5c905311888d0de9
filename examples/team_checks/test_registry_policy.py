"""Model registry policies a platform team enforces: team checks, as ordinary test files.

    pytest examples/team_checks --mlflowdb-uri="$MLFLOW_BACKEND_STORE_URI"

Both read small tables (one row per registered model or alias), so they are cheap on any
store. Edit the policies to your own; the checks' ids are what your CI reads.
"""

import re

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema

#: registered model names: lower case, digits, "_" and "-", dotted namespaces
#: ("fraud.scorer-v2"), as the team's deployment tooling expects
MODEL_NAME = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*")
#: aliases that deployments resolve: each must point at a version that is READY
SERVING_ALIASES = ("champion", "production")
#: names listed in one finding, at most (the total is always given)
LISTED = 10


@check("team.model_names")
def test_model_names_follow_the_policy(mlflowdb, mlflowdb_findings):
    """Registered model names follow the team's naming policy."""
    schema = require_mlflow_schema(mlflowdb)
    names = [row["name"] for row in mlflowdb.rows(
        f'SELECT name FROM "{schema}".registered_models ORDER BY name')]
    bad = [name for name in names if not MODEL_NAME.fullmatch(name)]
    if bad:
        shown = ", ".join(repr(n) for n in bad[:LISTED]) + (" …" if len(bad) > LISTED else "")
        mlflowdb_findings.warn(f"{schema}.registered_models",
                               f"{len(bad)} of {len(names)} model name(s) break the policy "
                               f"{MODEL_NAME.pattern}: {shown}", len(bad), 0)
    else:
        mlflowdb_findings.ok(f"{schema}.registered_models",
                             f"all {len(names)} model name(s) follow the policy", 0, 0)


@check("team.serving_aliases")
def test_serving_aliases_point_at_ready_versions(mlflowdb, mlflowdb_findings):
    """The aliases deployments load ("champion", "production") point at READY versions."""
    schema = require_mlflow_schema(mlflowdb)
    aliases = f'"{schema}".registered_model_aliases'
    if mlflowdb.value("SELECT to_regclass(%s)", (aliases,)) is None:
        mlflowdb_findings.info(f"{schema}.registered_model_aliases",
                               "this MLflow release has no aliases (MLflow 2.3 added them)")
        return
    rows = mlflowdb.rows(
        f'SELECT a.name, a.alias, a.version, v.status, v.current_stage '
        f'FROM "{schema}".registered_model_aliases a '
        f'LEFT JOIN "{schema}".model_versions v ON v.name = a.name AND v.version = a.version '
        f'WHERE a.alias = ANY(%s) ORDER BY a.name, a.alias', (list(SERVING_ALIASES),))
    for row in rows:
        target = f"{row['name']}@{row['alias']}"
        if row["status"] is None:
            mlflowdb_findings.fail(target, f"points at version {row['version']}, which does "
                                   "not exist: loading the model fails", row["version"])
        elif row["status"] != "READY" or row["current_stage"] == "Archived":
            mlflowdb_findings.fail(target, f"points at version {row['version']}, which is "
                                   f"{row['status']} ({row['current_stage']})", row["status"],
                                   "READY")
        else:
            mlflowdb_findings.ok(target, f"version {row['version']} is READY", row["version"])
    if not rows:
        mlflowdb_findings.ok(f"{schema}.registered_model_aliases",
                             f"no {' or '.join(SERVING_ALIASES)} aliases yet")
