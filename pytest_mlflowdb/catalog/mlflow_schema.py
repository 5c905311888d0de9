"""Give a throwaway database a genuine MLflow schema, made by MLflow's own migrations.

MLflow's first alembic revision assumes the pre-1.0 tables exist, so this does what
MLflow itself does: ``InitialBase.metadata.create_all`` and then ``alembic upgrade``
(to ``heads`` or a chosen revision). It runs in a child Python process so that
MLflow's import-time side effects (logging, warnings, seconds of import time) stay out
of the pytest process, and so that a hang is bounded by a timeout.

Scratch databases are set up as a careful team sets up a real one, so that auditing one
passes every security check: MLflow's tables belong to an unprivileged login role
(:data:`APP_ROLE`: no superuser, a SCRAM password that nobody keeps) and PUBLIC may not
create in their schema. Migrations run as that role (``SET ROLE`` on the superuser's
connection), so it owns what they make exactly as when MLflow migrates its own database.

Never call this on an audited database: it writes. It is only for scratch databases.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys

from pytest_mlflowdb.text import last_line

_ENV_URI = "MLFLOWDB_MIGRATE_URI"
_ENV_ROLE = "MLFLOWDB_MIGRATE_ROLE"
#: the role that owns MLflow's tables on scratch databases
APP_ROLE = "mlflow"
#: where a scratch database's MLflow schema comes from: MLflow's own migrations, or the
#: shipped catalog's DDL (no MLflow install needed); ``auto`` picks the migrations where
#: MLflow is installed
MIGRATIONS, CATALOG, AUTO = "migrations", "catalog", "auto"


class MlflowSchemaError(RuntimeError):
    """MLflow's migrations could not be run; the message is one line."""


def mlflow_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("mlflow", "sqlalchemy", "alembic"))


def prepare_owner(uri: str, owner: str = APP_ROLE) -> None:
    """Make ``owner`` ready to own MLflow's tables in the scratch database at ``uri`` (a
    superuser's URI): created when missing (LOGIN, NOSUPERUSER, a random password stored
    as SCRAM-SHA-256 and kept nowhere), allowed to create in the current schema, from
    which PUBLIC's CREATE is taken (the default before PostgreSQL 15), with the
    idle-in-transaction timeout README's platform guide sets."""
    import psycopg
    from psycopg import sql

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", owner):
        raise ValueError(f"owner {owner!r} must be a plain lower-case identifier")
    role = sql.Identifier(owner)
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone() is None:
            # hashed here: the password is never sent, logged, nor bound to a name
            verifier = conn.pgconn.encrypt_password(
                secrets.token_urlsafe(32).encode(), owner.encode(), b"scram-sha-256")
            try:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                                     "PASSWORD {}").format(role, sql.Literal(verifier.decode())))
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass  # made meanwhile by another process on the same server
        (current,) = conn.execute("SELECT current_schema()").fetchone() or (None,)
        schema = sql.Identifier(current)
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
        # README's platform guide: a client that dies inside a transaction does not hold
        # back vacuum for long (settings.timeouts)
        conn.execute(sql.SQL("ALTER ROLE {} SET idle_in_transaction_session_timeout = "
                             "'5min'").format(role))
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(schema, role))


def check_source(source: str) -> None:
    """Refuse a ``source`` that is neither :data:`MIGRATIONS` nor :data:`CATALOG`."""
    if source not in (MIGRATIONS, CATALOG):
        raise ValueError("source must be 'migrations' or 'catalog'")


def make_mlflow_schema(uri: str, revision: str = "heads",
                       source: str = MIGRATIONS) -> tuple[str, str]:
    """Give the scratch database at ``uri`` MLflow's schema at ``revision`` from ``source``
    (``heads``: the newest this audit knows; with the catalog, the catalog's head): the
    one maker of throwaway MLflow databases. Returns the revision reached and the source
    used."""
    if source == AUTO:
        source = MIGRATIONS if mlflow_available() else CATALOG
    check_source(source)
    if source == CATALOG:
        return apply_catalog_schema(uri, None if revision == "heads" else revision), CATALOG
    return apply_mlflow_schema(uri, revision), MIGRATIONS


def apply_mlflow_schema(uri: str, revision: str = "heads", timeout: float = 600,
                        owner: str | None = APP_ROLE) -> str:
    """Migrate the scratch database at ``uri`` to ``revision``; return the revision reached.

    The migrations run as ``owner`` (see :func:`prepare_owner`), which then owns MLflow's
    tables; ``None`` leaves them to the role of ``uri``."""
    if not mlflow_available():
        raise MlflowSchemaError(
            "MLflow is not installed, so no genuine MLflow schema can be made "
            "(pip install pytest-mlflowdb[mlflow])"
        )
    env = dict(os.environ, **{_ENV_URI: _sqlalchemy_url(uri)})
    env.pop(_ENV_ROLE, None)
    if owner is not None:
        prepare_owner(uri, owner)
        env[_ENV_ROLE] = owner
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_mlflowdb.catalog.mlflow_schema", revision],
            env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise MlflowSchemaError(f"MLflow's migrations took longer than {timeout:g}s") from None
    if done.returncode != 0:
        raise MlflowSchemaError("MLflow's migrations failed: "
                                + last_line(done.stderr, f"exit {done.returncode}"))
    return done.stdout.strip().splitlines()[-1]


def apply_catalog_schema(uri: str, revision: str | None = None,
                         owner: str | None = APP_ROLE) -> str:
    """Create the schema at ``revision`` (default: the catalog's head) from the shipped
    catalog's DDL, in one transaction, as ``owner`` (see :func:`apply_mlflow_schema`); no
    MLflow install needed. Returns the revision."""
    import psycopg
    from psycopg import sql

    from pytest_mlflowdb.catalog import load_catalog
    from pytest_mlflowdb.catalog.ddl import ddl

    catalog = load_catalog()
    revision = revision or catalog.head
    statements = ddl(catalog.schema_at(revision), revision)
    if owner is not None:
        prepare_owner(uri, owner)
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        with conn.transaction():
            if owner is not None:
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
            for statement in statements:
                conn.execute(statement)
    return revision


def apply_guide_indexes(uri: str) -> int:
    """Build the platform guide's recommended indexes (README, "Set up your MLflow
    database") on a scratch database, so that a throwaway database is set up the way the
    guide sets up a real one. Returns how many statements ran."""
    import psycopg

    from pytest_mlflowdb.indexes.recommended import RECOMMENDED_INDEXES

    # CREATE INDEX CONCURRENTLY refuses to run inside a transaction: autocommit
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        for index in RECOMMENDED_INDEXES:
            conn.execute(index.statement)
    return len(RECOMMENDED_INDEXES)


def apply_guide_extensions(uri: str) -> list[str]:
    """Create the extensions the platform guide recommends (README, "Set up your MLflow
    database": ``pg_stat_statements``) in a scratch database whose server loads them;
    returns those made (none where the server does not load the library)."""
    import psycopg

    made = []
    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        (loaded,) = conn.execute(
            "SELECT current_setting('shared_preload_libraries')").fetchone() or ("",)
        if "pg_stat_statements" in [name.strip() for name in str(loaded).split(",")]:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            made.append("pg_stat_statements")
    return made


def _sqlalchemy_url(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise MlflowSchemaError("a scratch database must be given as a postgresql:// URI")
    return "postgresql+psycopg://" + rest


def newest_known(installed_head: str, installed_has, knows, catalog_head: str) -> str:
    """How far "heads" migrates: the installed MLflow's head, unless that MLflow is newer
    than the shipped catalog (its head unknown to the catalog, the catalog's head among its
    revisions): then the catalog's head, so that a throwaway database is one this
    pytest-mlflowdb can audit whole after MLflow's next release."""
    if knows(installed_head) or not installed_has(catalog_head):
        return installed_head
    return catalog_head


def _newest_known(config) -> str:  # pragma: no cover - runs in the child process
    from alembic.script import ScriptDirectory

    from pytest_mlflowdb.catalog import load_catalog

    script = ScriptDirectory.from_config(config)
    catalog = load_catalog()

    def installed_has(revision: str) -> bool:
        try:
            return script.get_revision(revision) is not None
        except Exception:  # alembic's ResolutionError for an unknown id
            return False

    head = script.get_current_head()
    if head is None:  # several heads: alembic's "heads" decides
        return "heads"
    return newest_known(head, installed_has, catalog.knows, catalog.head)


def _main(revision: str) -> None:  # pragma: no cover - runs in the child process
    import logging

    logging.disable(logging.WARNING)
    import sqlalchemy
    from alembic import command
    from mlflow.store.db import utils
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    owner = os.environ.get(_ENV_ROLE)
    # as the owner from the first statement on: what the migrations make is the owner's
    engine = sqlalchemy.create_engine(
        os.environ[_ENV_URI], connect_args={"options": f"-c role={owner}"} if owner else {})
    try:
        InitialBase.metadata.create_all(engine)
        config = utils._get_alembic_config(engine.url.render_as_string(hide_password=False))
        if revision == "heads":
            revision = _newest_known(config)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        with engine.connect() as connection:
            current = connection.execute(
                sqlalchemy.text("SELECT version_num FROM alembic_version")
            ).scalar()
    finally:
        engine.dispose()
    print(current)


if __name__ == "__main__":  # pragma: no cover
    _main(sys.argv[1] if len(sys.argv) > 1 else "heads")
