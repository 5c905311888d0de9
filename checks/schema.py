"""Schema: is this MLflow's schema, at which revision, and does it match that revision?"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_catalog_revision, require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.catalog.compare import CONSTRAINT_KINDS
from pytest_mlflowdb.config.thresholds import format_value
from pytest_mlflowdb.probes.indexes import table_sizes
from pytest_mlflowdb.probes.mlflow import mlflow_facts
from pytest_mlflowdb.probes.schema import catalog_diff, live_snapshot, newer_than_catalog
from pytest_mlflowdb.probes.workload import auth_database
from pytest_mlflowdb.results.findings import sql_name


def _releases(catalog, revision: str) -> str:
    releases = catalog.releases_for(revision)
    if not releases:
        first = catalog.revision(revision).first_release
        return f"no release has it as head (between releases; first shipped in {first})"
    if len(releases) > 3:
        return f"MLflow {releases[0]} to {releases[-1]} ({len(releases)} releases)"
    return "MLflow " + ", ".join(releases)


def _revision(db) -> None:
    """What the revision is judged with: the live tables (a rewound or newer revision)."""
    if mlflow_facts(db).schema:
        live_snapshot(db)


def _drift(db) -> None:
    """The comparison with MLflow's schema at the database's revision."""
    require_catalog_revision(db)
    catalog_diff(db)


@check("schema.revision", probes=(_revision, auth_database))
def test_revision(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """alembic_version holds one known revision, the one about to be deployed if given."""
    facts = mlflow_facts(mlflowdb)
    catalog = load_catalog()
    expectation = _expectation(catalog, mlflowdb_settings)
    unreadable = facts.schema_error or facts.alembic_error
    if unreadable:
        if expectation:
            # a deployment gate that cannot look must not let the deployment through
            mlflowdb_findings.fail(f"{facts.schema}.alembic_version" if facts.schema
                                   else "alembic_version",
                                   f"cannot verify {expectation[1]}: {unreadable}", None,
                                   expectation[0])
            return
        pytest.skip(f"no privilege: {unreadable}")
    wrong_schema = facts.off_search_path(mlflowdb.preflight.current_user)
    if wrong_schema:
        mlflowdb_findings.fail(facts.current_schema or "search_path", wrong_schema,
                               facts.search_path, ", ".join(facts.elsewhere))
        return
    if facts.schema is None and auth_database(mlflowdb) is not None:
        pytest.skip("MLflow's basic-auth database (alembic_version_auth), not its tracking "
                    "database: workload.auth_schema checks its schema")
    if facts.schema is None:
        mlflowdb_findings.fail(mlflowdb.preflight.dbname, "no MLflow tables (experiments, runs, "
                               "metrics, params, tags) in any schema this role can see: not an "
                               "MLflow database, or an empty one", None, "MLflow schema")
        return
    table = f"{facts.schema}.alembic_version"
    if facts.alembic_versions is None:
        mlflowdb_findings.fail(table, "alembic_version is missing: MLflow will report "
                               "'found version None' and refuse to start", None, "1 row")
        return
    if len(facts.alembic_versions) != 1:
        shown = ", ".join(facts.alembic_versions) or "none"
        mlflowdb_findings.fail(table, f"holds {len(facts.alembic_versions)} rows ({shown}); "
                               "alembic needs exactly one", len(facts.alembic_versions), "1 row")
        return
    revision = facts.revision
    newer = newer_than_catalog(mlflowdb)
    if newer:
        if expectation:  # newer than the catalog's head, so newer than any release it knows
            mlflowdb_findings.fail(table, f"{newer}; so newer than {expectation[1]}, which "
                                   "would refuse to start ('out-of-date schema')", revision,
                                   expectation[0])
            return
        pytest.skip(newer)
    if revision is None or not catalog.knows(revision):
        mlflowdb_findings.fail(
            table, f"revision {revision} is not in any released MLflow (newest known: "
            f"{catalog.head} of MLflow {catalog.newest_release}): an unreleased or foreign "
            "migration, or a database newer than this catalog", revision, catalog.head)
        return
    if catalog.has_schema(revision):
        later = catalog.introduced_after(revision, live_snapshot(mlflowdb))
        if later:
            ordered = sorted(later.items(), key=lambda item: (catalog.position(item[1]), item[0]))
            shown = ", ".join(f"{t} ({r})" for t, r in ordered[:5])
            mlflowdb_findings.fail(
                table, f"alembic_version says {revision}, but tables of later revisions exist: "
                f"{shown}{' and more' if len(later) > 5 else ''}; alembic_version was rewound "
                "and MLflow would re-run migrations that cannot apply", revision,
                max(later.values(), key=catalog.position))
            return
    if expectation:
        _against_expectation(mlflowdb, mlflowdb_findings, catalog, table, revision,
                             *expectation)
        return
    mlflowdb_findings.ok(table, f"revision {revision}: {_releases(catalog, revision)}",
                         revision, None)


def _expectation(catalog, settings) -> tuple[str, str] | None:
    """(revision, label) the user expects (--mlflowdb-expect-mlflow/-revision), if any."""
    if settings.expect_mlflow:
        return catalog.head_for_release(settings.expect_mlflow), f"MLflow {settings.expect_mlflow}"
    if settings.expect_revision:
        return settings.expect_revision, f"revision {settings.expect_revision}"
    return None


def _against_expectation(db, findings, catalog, table, revision, target, label) -> None:
    here, there = catalog.position(revision), catalog.position(target)
    if here == there:
        findings.ok(table, f"revision {revision} is what {label} expects", revision, target)
        return
    if here > there:
        findings.fail(
            table, f"the database is at {revision} ({_releases(catalog, revision)}), newer than "
            f"{label} (head {target}): that MLflow would refuse to start ('out-of-date "
            "schema') and cannot downgrade it", revision, target)
        return
    pending = catalog.between(revision, target)
    existing = set(live_snapshot(db).tables)
    # Work on a table an earlier pending migration creates is work on an empty table.
    heavy = {r.revision: [h for h in catalog.heavy(r.revision)
                          if h.table is None or h.table in existing] for r in pending}
    touched = {h.table for notes in heavy.values() for h in notes if h.table}
    sizes = table_sizes(db, require_mlflow_schema(db), touched)  # found: schema.revision ran
    findings.fail(table, f"the database is at {revision}, behind {label} (head {target}): "
                  f"{len(pending)} migration(s) pending", revision, target)
    for step, rev in enumerate(pending, 1):
        notes = []
        for h in heavy[rev.revision]:
            size = sizes.get(h.table) if h.table else None
            notes.append(h.note + (f" [{h.table} is {format_value('size', size.bytes)}, "
                                   f"{size.rows_text}]" if size else ""))
        findings.add(f"{step:02d} {rev.revision}", "warning" if notes else "info",
                     rev.description + (f"; HEAVY: {'; '.join(notes)}" if notes else ""),
                     rev.first_release, None)


@check("schema.tables", probes=(_drift,))
def test_tables(mlflowdb, mlflowdb_findings):
    """Every table (and sequence) MLflow makes at this revision exists."""
    require_catalog_revision(mlflowdb)
    drift = catalog_diff(mlflowdb)
    schema, revision, expected, diff = drift.schema, drift.revision, drift.expected, drift.diff
    for table in diff.missing_tables:
        mlflowdb_findings.fail(f"{schema}.{table}", f"table missing (MLflow makes it at "
                               f"{revision})", "missing", "present")
    for sequence in diff.missing_sequences:
        mlflowdb_findings.fail(f"{schema}.{sequence}", "sequence missing", "missing", "present")
    for table, flag in diff.table_flags:
        if flag == "unlogged":
            mlflowdb_findings.fail(f"{schema}.{table}", "table is UNLOGGED: its rows are lost "
                                   "after a crash and never reach a replica", flag, "logged",
                                   remedy=f"ALTER TABLE {sql_name(schema, table)}"
                                          " SET LOGGED;")
        else:
            mlflowdb_findings.warn(f"{schema}.{table}", f"{flag} is enabled: MLflow does not "
                                   "set it up, and a role without a policy sees no rows", flag,
                                   None)
    for table in diff.extra_tables:
        mlflowdb_findings.info(f"{schema}.{table}", "table not made by MLflow", "extra", None)
    if not diff.missing_tables and not diff.missing_sequences and not diff.table_flags:
        mlflowdb_findings.ok(schema, f"all {len(expected.tables)} tables of revision {revision} "
                             "present", len(expected.tables), len(expected.tables))


@check("schema.columns", probes=(_drift,))
def test_columns(mlflowdb, mlflowdb_findings):
    """Every column MLflow makes has its type, nullability and default."""
    require_catalog_revision(mlflowdb)
    drift = catalog_diff(mlflowdb)
    schema, revision, expected, diff = drift.schema, drift.revision, drift.expected, drift.diff
    for table, column in diff.missing_columns:
        mlflowdb_findings.fail(f"{schema}.{table}.{column.name}",
                               f"column missing ({column.type})", "missing", column.type)
    for change in diff.changed_columns:
        mlflowdb_findings.fail(f"{schema}.{change.table}.{change.column}",
                               f"{change.field} is {change.actual!r}, MLflow makes "
                               f"{change.expected!r}", change.actual, change.expected)
    blocking = {(t, c.name) for t, c in diff.blocking_columns}
    for table, column in diff.blocking_columns:
        mlflowdb_findings.fail(f"{schema}.{table}.{column.name}",
                               f"column not made by MLflow is NOT NULL without a default "
                               f"({column.type}): MLflow's inserts into {table} will fail",
                               "NOT NULL, no default", "nullable or a default")
    for table, column in diff.extra_columns:
        if (table, column.name) not in blocking:
            mlflowdb_findings.info(f"{schema}.{table}.{column.name}",
                                   f"column not made by MLflow ({column.type})", "extra", None)
    if not diff.missing_columns and not diff.changed_columns and not blocking:
        count = sum(len(c) for c in expected.tables.values())
        mlflowdb_findings.ok(schema, f"all {count} columns of revision {revision} as MLflow "
                             "makes them", count, count)


_ON_WRITES = ("runs on every write MLflow makes to {table}, and can make MLflow's "
              "migrations fail")


def _hooks(db, findings, schema: str, diff) -> None:
    """Triggers, rules and row-level-security policies on MLflow's tables that MLflow does
    not make: an enabled one warns (it acts on MLflow's writes), a disabled one is noted."""
    for t in diff.extra_triggers:
        table = sql_name(schema, t.table)
        if not t.enabled:
            findings.info(f"{schema}.{t.table}.{t.name}", f"trigger not made by MLflow "
                          f"(disabled): {t.definition}", "disabled", None)
            continue
        findings.warn(f"{schema}.{t.table}.{t.name}", f"trigger not made by MLflow: "
                      f"{t.definition}; it {_ON_WRITES.format(table=t.table)}", "enabled",
                      "none", remedy=f"ALTER TABLE {table} DISABLE TRIGGER {sql_name(t.name)}; "
                      f"(or DROP TRIGGER {sql_name(t.name)} ON {table};)")
    for r in diff.extra_rules:
        table = sql_name(schema, r.table)
        if not r.enabled:
            findings.info(f"{schema}.{r.table}.{r.name}", f"rule not made by MLflow "
                          f"(disabled): {r.definition}", "disabled", None)
            continue
        findings.warn(f"{schema}.{r.table}.{r.name}", f"rule not made by MLflow: "
                      f"{r.definition}; it rewrites, and {_ON_WRITES.format(table=r.table)}",
                      "enabled", "none", remedy=f"DROP RULE {sql_name(r.name)} ON {table}; "
                      f"(or ALTER TABLE {table} DISABLE RULE {sql_name(r.name)};)")
    flags = live_snapshot(db).table_flags
    for p in diff.extra_policies:
        obj = f"{schema}.{p.table}.{p.name}"
        if "row level security" not in flags.get(p.table, []):
            findings.info(obj, f"row-level-security policy not made by MLflow: "
                          f"{p.definition} (no effect while row level security is off on "
                          f"{p.table})", "inactive", None)
            continue
        findings.warn(obj, f"row-level-security policy not made by MLflow: {p.definition}; "
                      f"with row level security on, it decides which rows of {p.table} "
                      "every role but the table's owner (and the owner too, if forced) may "
                      "read and write", "enabled", "none",
                      remedy=f"DROP POLICY {sql_name(p.name)} ON {sql_name(schema, p.table)};")


@check("schema.constraints", probes=(_drift,))
def test_constraints(mlflowdb, mlflowdb_findings):
    """Primary keys, foreign keys (with their rules), UNIQUE and CHECK constraints, triggers;
    and what MLflow never makes that acts on its writes: triggers, rules and policies."""
    require_catalog_revision(mlflowdb)
    drift = catalog_diff(mlflowdb)
    schema, revision, expected, diff = drift.schema, drift.revision, drift.expected, drift.diff
    for c in diff.missing_constraints:
        mlflowdb_findings.fail(f"{schema}.{c.table}.{c.name}",
                               f"{CONSTRAINT_KINDS[c.type]} missing: {c.definition}",
                               "missing", c.definition)
    for want, have in diff.changed_constraints:
        mlflowdb_findings.fail(f"{schema}.{want.table}.{want.name}",
                               f"{CONSTRAINT_KINDS[want.type]} differs: {have.definition}; "
                               f"MLflow makes {want.definition}", have.definition,
                               want.definition)
    for trigger in diff.missing_triggers:
        mlflowdb_findings.fail(f"{schema}.{trigger}", "trigger missing", "missing", "present")
    for want, have, how in diff.changed_triggers:
        mlflowdb_findings.fail(f"{schema}.{want.table}.{want.name}", f"trigger differs: it {how}; "
                               f"MLflow makes {want.definition}", have.name, want.name)
    _hooks(mlflowdb, mlflowdb_findings, schema, diff)
    for want, extra in diff.duplicate_constraints:
        mlflowdb_findings.info(f"{schema}.{extra.table}.{extra.name}",
                               f"duplicates MLflow's {want.name} ({want.definition})",
                               extra.name, want.name)
    for want, have in diff.renamed_constraints:
        mlflowdb_findings.info(f"{schema}.{have.table}.{have.name}",
                               f"equivalent to MLflow's {want.name}", have.name, want.name)
    for c in diff.extra_constraints:
        mlflowdb_findings.info(f"{schema}.{c.table}.{c.name}",
                               f"{CONSTRAINT_KINDS[c.type]} not made by MLflow: {c.definition}",
                               "extra", None)
    if not (diff.missing_constraints or diff.changed_constraints or diff.missing_triggers
            or diff.changed_triggers):
        mlflowdb_findings.ok(schema, f"all {len(expected.constraints)} constraints and "
                             f"{len(expected.triggers)} trigger(s) of revision {revision} present",
                             len(expected.constraints), len(expected.constraints))
