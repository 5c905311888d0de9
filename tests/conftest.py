"""Real PostgreSQL servers for the project's own tests.

``pg18`` is the server wheel's (through the plugin's own ``mlflowdb_server`` fixture),
``pg15`` the binaries on this machine's PATH or in /usr/lib/postgresql. Databases with
a genuine MLflow schema come from MLflow's own migrations via
``mlflowdb_database_factory`` (migrated once, then copied per test).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_mlflowdb.servers import start_server

pytest_plugins = ["pytester"]

ROLE_PASSWORD = "S3cret!pw@x%y"


@pytest.fixture(scope="session")
def pg18(mlflowdb_server):
    return mlflowdb_server


#: the path server's binaries: PostgreSQL 15 on this machine unless a tox environment of
#: the compatibility matrix (tox.ini, pg14 ... pg17) points it at another major
PATH_BIN = os.environ.get("MLFLOWDB_TEST_PG_BIN")


@pytest.fixture(scope="session")
def pg15():
    """The server from binaries on PATH or in /usr/lib/postgresql (or MLFLOWDB_TEST_PG_BIN)."""
    server = start_server("path", pg_bin=Path(PATH_BIN) if PATH_BIN else None)
    yield server
    server.stop()


#: settings only a restart changes, for faults the default test servers cannot hold
TUNED_SETTINGS = {"max_prepared_transactions": "4", "wal_level": "logical",
                  "max_replication_slots": "4", "max_wal_senders": "4"}


@pytest.fixture(scope="session")
def tuned_janitor():
    """A Janitor whose server (binaries on PATH) allows prepared transactions and logical
    replication slots; ``tuned_janitor.create()`` gives a migrated MLflow database."""
    from pytest_mlflowdb.servers.janitor import Janitor

    janitor = Janitor("path", settings=TUNED_SETTINGS)
    yield janitor
    janitor.close()


@pytest.fixture
def mlflow_uri(mlflowdb_database_factory) -> str:
    """A fresh database on pg18 with MLflow's schema at head (superuser URI)."""
    return mlflowdb_database_factory()


@pytest.fixture(scope="session")
def mlflow_role(pg18) -> tuple[str, str]:
    """A login role with a password full of URI-special characters."""
    from psycopg import sql

    with pg18.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE mlflow_auditor LOGIN PASSWORD {}").format(
            sql.Literal(ROLE_PASSWORD)))
    return "mlflow_auditor", ROLE_PASSWORD
