"""security.* checks: a database set up as a careful team would passes every one; each
fault is caught by name (a superuser owner, a default password, PUBLIC's privileges, an
extension that reaches outside, an MD5 password, an unencrypted remote session); what a
role cannot see is a skip naming the privilege; no password ever shows."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from urllib.parse import quote

import psycopg
import pytest
from helpers import audit, dbname_of, failing, role_uri, sql
from psycopg import sql as pgsql

from pytest_mlflowdb.catalog.mlflow_schema import APP_ROLE

SECURITY = ("security.superuser", "security.default_password",
            "security.password_encryption", "security.ssl", "security.public_privileges",
            "security.extensions", "security.logging")


def by_severity(check: dict, severity: str) -> dict[str, dict]:
    return {f["object"]: f for f in check["findings"] if f["severity"] == severity}


def quiet(checks: dict, *ids: str) -> None:
    for name in ids or SECURITY:
        assert checks[name]["outcome"] == "passed", checks[name]
        assert not [f for f in checks[name]["findings"]
                    if f["severity"] in ("warning", "failure")], checks[name]


@contextlib.contextmanager
def login_role(server, name: str, password: str, extra: str = ""):
    """A login role of the test's own on ``server``, dropped afterwards (it must own
    nothing by then)."""
    ident = pgsql.Identifier(name)
    with server.admin() as conn:
        conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(ident))
        conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + extra).format(
            ident, pgsql.Literal(password)))
    try:
        yield name
    finally:
        with server.admin() as conn:
            conn.execute(pgsql.SQL("DROP ROLE {}").format(ident))


# -- the healthy database -----------------------------------------------------------
@pytest.mark.parametrize("source", ["migrations", "catalog"])
def test_scratch_databases_are_owned_by_an_unprivileged_scram_role(
        mlflowdb_database_factory, source):
    uri = mlflowdb_database_factory(source=source)
    with psycopg.connect(uri) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'i')").fetchall()
        role = conn.execute("SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, "
                            "starts_with(rolpassword, 'SCRAM-SHA-256$') FROM pg_authid "
                            "WHERE rolname = %s", (APP_ROLE,)).fetchone()
        public_create = conn.execute(
            "SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone()[0]
    assert owners == [(APP_ROLE,)]
    assert role == (False, True, False, False, True)
    assert public_create is False


def test_a_healthy_database_passes_every_security_check(pytester, pg18, mlflow_uri):
    result, checks = audit(pytester, mlflow_uri)
    quiet(checks)
    (owner,) = by_severity(checks["security.superuser"], "ok").values()
    assert owner["object"] == APP_ROLE and "is not a superuser" in owner["message"]
    auditor = by_severity(checks["security.superuser"], "info")[pg18.user]
    assert "a superuser (an audit needs only pg_monitor)" in auditor["message"]
    assert by_severity(checks["security.default_password"], "ok")[pg18.user]
    encryption = by_severity(checks["security.password_encryption"], "ok")
    assert encryption["password_encryption"]["value"] == "scram-sha-256"
    assert "stored as SCRAM-SHA-256" in encryption[APP_ROLE]["message"]
    assert "PUBLIC holds USAGE on schema public (no CREATE)" in \
        by_severity(checks["security.public_privileges"], "ok")["public"]["message"]
    assert "installed: plpgsql;" in checks["security.extensions"]["findings"][0]["message"]
    logging = by_severity(checks["security.logging"], "info")
    assert set(logging) == {"log_connections", "log_disconnections",
                            "log_min_duration_statement", "log_statement"}
    assert logging["log_min_duration_statement"]["message"] == (
        "log_min_duration_statement = -1: statements are not logged by duration")
    ssl = by_severity(checks["security.ssl"], "ok")
    assert "the server is local" in ssl["127.0.0.1"]["message"]
    assert f"no session of {APP_ROLE} open now" in ssl[APP_ROLE]["message"]
    assert result.ret == 0


def test_an_ephemeral_database_passes_every_security_check(pytester):
    json_path = pytester.path / "audit.json"
    result = pytester.runpytest_subprocess("--mlflowdb-ephemeral=wheel",
                                           f"--mlflowdb-report={json_path}")
    from helpers import checks_by_id, report

    checks = checks_by_id(report(json_path))
    quiet(checks)
    assert by_severity(checks["security.superuser"], "ok")[APP_ROLE]
    assert result.ret == 0


# -- faults, by name ----------------------------------------------------------------
def test_a_superuser_owner_fails_by_name(pytester, pg18, mlflow_uri):
    sql(mlflow_uri, f'ALTER TABLE runs OWNER TO "{pg18.user}"',
        f'ALTER TABLE metrics OWNER TO "{pg18.user}"')
    result, checks = audit(pytester, mlflow_uri)
    check = checks["security.superuser"]
    assert check["outcome"] == "failed"
    (finding,) = failing(check)
    assert finding["object"] == pg18.user and finding["value"] == "superuser"
    assert f"MLflow's role {pg18.user} (owns 2 of MLflow's tables) is a superuser" in \
        finding["message"]
    assert 'ALTER TABLE "public"."metrics" OWNER TO mlflow;' in finding["remedy"]
    assert by_severity(check, "ok")[APP_ROLE]  # the other owner is judged too
    assert by_severity(check, "info")["public"]["message"].startswith(
        "MLflow's tables have 2 owners")
    assert result.ret == 1


def test_the_password_mlflow_in_the_uri_fails_without_being_shown(pytester, pg18,
                                                                   mlflow_uri):
    db = dbname_of(mlflow_uri)
    with login_role(pg18, "weak_app", "mlflow"), login_role(pg18, "app1", "App1"):
        result, checks = audit(pytester, role_uri(pg18, db, "weak_app", "mlflow"))
        (finding,) = failing(checks["security.default_password"])
        assert finding["object"] == "weak_app"
        assert "is a well-known default" in finding["message"]
        assert "mlflow" not in finding["message"] + finding["remedy"]
        assert finding["remedy"].startswith('\\password "weak_app"')
        assert ":mlflow@" not in result.stdout.str() + (pytester.path / "audit.json").read_text()
        assert result.ret == 1
        _, checks = audit(pytester, role_uri(pg18, db, "app1", "App1"))  # the user name
        (finding,) = failing(checks["security.default_password"])
        assert finding["object"] == "app1"


def test_public_create_on_the_schema_and_public_grants_fail_by_name(pytester, mlflow_uri):
    sql(mlflow_uri, "GRANT CREATE ON SCHEMA public TO PUBLIC",
        "GRANT SELECT, UPDATE ON runs TO PUBLIC",
        "GRANT USAGE ON SEQUENCE experiments_experiment_id_seq TO PUBLIC",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {APP_ROLE} IN SCHEMA public "
        "GRANT SELECT ON TABLES TO PUBLIC")
    result, checks = audit(pytester, mlflow_uri)
    check = checks["security.public_privileges"]
    assert check["outcome"] == "failed"
    failures = {f["object"]: f for f in failing(check)}
    assert set(failures) == {"public", "public.runs", "public.experiments_experiment_id_seq"}
    assert "PUBLIC may create objects in schema public" in failures["public"]["message"]
    assert failures["public"]["remedy"] == 'REVOKE CREATE ON SCHEMA "public" FROM PUBLIC;'
    assert failures["public.runs"]["value"] == "SELECT, UPDATE"
    assert failures["public.runs"]["remedy"] == 'REVOKE ALL ON TABLE "public"."runs" FROM PUBLIC;'
    assert failures["public.experiments_experiment_id_seq"]["remedy"].startswith(
        "REVOKE ALL ON SEQUENCE")
    default = by_severity(check, "warning")[APP_ROLE]
    assert default["value"] == "SELECT" and "tables it makes later" in default["message"]
    assert result.ret == 1


def test_dblink_and_an_untrusted_language_are_reported_by_name(pytester, mlflow_uri):
    # no untrusted language ships with these servers: one declared on plpgsql's handler,
    # without TRUSTED, is what pg_language holds after CREATE EXTENSION plperlu
    sql(mlflow_uri, "CREATE EXTENSION dblink",
        "CREATE LANGUAGE plshu HANDLER plpgsql_call_handler")
    _, checks = audit(pytester, mlflow_uri)
    check = checks["security.extensions"]
    assert check["outcome"] == "warned"
    warnings = by_severity(check, "warning")
    assert set(warnings) == {"dblink", "plshu"}
    assert "opens connections" in warnings["dblink"]["message"]
    assert warnings["dblink"]["remedy"] == 'DROP EXTENSION "dblink"; -- if unused'
    assert "untrusted language plshu" in warnings["plshu"]["message"]
    assert warnings["plshu"]["remedy"] == 'DROP LANGUAGE "plshu"; -- if unused'


def test_an_md5_password_of_the_app_role_fails_by_name(pytester, pg18, mlflow_uri):
    """--mlflowdb-app-role names the role MLflow connects as; its MD5 password fails, and
    password_encryption = md5 (for this database only) warns."""
    db = dbname_of(mlflow_uri)
    with pg18.admin() as conn:
        conn.execute("SET password_encryption = 'md5'")
        conn.execute("DROP ROLE IF EXISTS md5_app")
        conn.execute("CREATE ROLE md5_app LOGIN PASSWORD 'Md5-app-password'")
    try:
        sql(mlflow_uri, f"ALTER DATABASE {db} SET password_encryption = 'md5'")
        result, checks = audit(pytester, mlflow_uri, "--mlflowdb-app-role=md5_app")
    finally:
        with pg18.admin() as conn:
            conn.execute("DROP ROLE md5_app")
    check = checks["security.password_encryption"]
    assert check["outcome"] == "failed"
    (finding,) = failing(check)
    assert finding["object"] == "md5_app" and finding["value"] == "md5"
    warning = by_severity(check, "warning")["password_encryption"]
    assert warning["value"] == "md5" and warning["threshold"] == "scram-sha-256"
    superuser = checks["security.superuser"]
    assert by_severity(superuser, "ok")["md5_app"]  # the app role, not the owner, is judged
    assert "owns" in by_severity(superuser, "info")[APP_ROLE]["message"]
    assert result.ret == 1


def test_the_app_role_is_judged_missing_superuser_or_overprivileged(pytester, pg18,
                                                                    mlflow_uri):
    _, checks = audit(pytester, mlflow_uri, "--mlflowdb-app-role=no_such_role")
    (finding,) = failing(checks["security.superuser"])
    assert finding["object"] == "no_such_role" and "does not exist" in finding["message"]
    _, checks = audit(pytester, mlflow_uri, f"--mlflowdb-app-role={pg18.user}")
    (finding,) = failing(checks["security.superuser"])
    assert finding["object"] == pg18.user and finding["remedy"].endswith("NOSUPERUSER;")
    with login_role(pg18, "busy_app", "Busy-app-password",
                    "CREATEROLE IN ROLE pg_read_server_files"):
        sql(mlflow_uri, "CREATE SCHEMA reports AUTHORIZATION busy_app")
        _, checks = audit(pytester, mlflow_uri, "--mlflowdb-app-role=busy_app")
        sql(mlflow_uri, "DROP SCHEMA reports")
    warnings = [f for f in checks["security.superuser"]["findings"]
                if f["severity"] == "warning"]
    assert [w["object"] for w in warnings] == ["busy_app"] * 3
    assert [w["value"] for w in warnings] == ["CREATEROLE", "pg_read_server_files", 1]
    assert "owns schema(s) reports besides MLflow's public" in warnings[2]["message"]


def test_a_role_without_privileges_skips_naming_them(pytester, pg18, mlflow_uri,
                                                     mlflow_role):
    """The auditor cannot read pg_authid (MD5 detection) nor an app session's details;
    the checks say which privilege they needed and skip, never pass."""
    user, password = mlflow_role
    db = dbname_of(mlflow_uri)
    with login_role(pg18, "seen_app", "Seen-app-password"):
        app = psycopg.connect(role_uri(pg18, db, "seen_app", "Seen-app-password").replace(
            "+psycopg2", ""))
        try:
            result, checks = audit(pytester, role_uri(pg18, db, user, password),
                                   "--mlflowdb-app-role=seen_app")
            _, as_admin = audit(pytester, mlflow_uri, "--mlflowdb-app-role=seen_app")
        finally:
            app.close()
    encryption = checks["security.password_encryption"]
    assert encryption["outcome"] == "skipped"
    assert "no privilege: needs superuser to read pg_authid.rolpassword" in \
        encryption["message"]
    ssl = checks["security.ssl"]
    assert ssl["outcome"] == "skipped"
    assert ("no privilege: needs pg_read_all_stats (or pg_monitor) to see whether 1 "
            "session(s) of seen_app are encrypted") in ssl["message"]
    assert "1 session(s) of seen_app open now" in \
        by_severity(as_admin["security.ssl"], "ok")["seen_app"]["message"]
    quiet(checks, "security.superuser", "security.default_password",
          "security.public_privileges", "security.extensions", "security.logging")
    assert password not in result.stdout.str()


def test_a_bad_app_role_is_a_one_line_usage_error(pytester, mlflow_uri):
    for value, words in (("  ", "empty role name"), ("x" * 64, "at most 63 bytes")):
        result = pytester.runpytest_subprocess(f"--mlflowdb-uri={mlflow_uri}",
                                               f"--mlflowdb-app-role={value}")
        assert result.ret == 4, value
        errors = [line for line in result.errlines if line.strip()]
        assert len(errors) == 1 and words in errors[0], errors
        assert "Traceback" not in result.stdout.str() + result.stderr.str()


# -- a remote server, with and without SSL ------------------------------------------
def _outward_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only a route is chosen
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def remote():
    """A server of its own reachable on a non-loopback address, with SSL on (a
    self-signed certificate), and a migrated MLflow database on it."""
    import os

    from pytest_mlflowdb.servers.janitor import Janitor

    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to reach a server on")
    janitor = Janitor("path", settings={"listen_addresses": "*"})
    try:
        server = janitor.server()
        data = server.workdir / "data"
        subprocess.run(["openssl", "req", "-new", "-x509", "-days", "1", "-nodes", "-subj",
                        "/CN=localhost", "-keyout", str(data / "server.key"), "-out",
                        str(data / "server.crt")], check=True, capture_output=True,
                       timeout=60)
        owner = data.stat()
        for name in ("server.key", "server.crt"):
            os.chown(data / name, owner.st_uid, owner.st_gid)
            (data / name).chmod(0o600)
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {address}/32 scram-sha-256\n")
        with server.admin() as conn:
            conn.execute("ALTER SYSTEM SET ssl = on")
            conn.execute("SELECT pg_reload_conf()")
        yield janitor, address
    finally:
        janitor.close()


def test_unencrypted_sessions_from_other_hosts_fail_by_name(pytester, remote):
    janitor, address = remote
    server = janitor.server()
    db = dbname_of(janitor.create())
    password = "Remote-app-password"
    auth = f"{quote(server.user)}:{quote(server.password, safe='')}"
    through = f"postgresql://{auth}@{address}:{server.port}/{db}"
    with login_role(server, "remote_app", password):
        app = f"postgresql://remote_app:{password}@{address}:{server.port}/{db}"
        with psycopg.connect(app + "?sslmode=disable"):
            result, checks = audit(pytester, through + "?sslmode=disable",
                                   "--mlflowdb-app-role=remote_app")
        check = checks["security.ssl"]
        assert check["outcome"] == "failed"
        failures = {f["object"]: f for f in failing(check)}
        assert "this audit's session to a remote server is not encrypted" in \
            failures[address]["message"]
        assert failures["remote_app"]["message"] == (
            f"1 session(s) of remote_app from other hosts are not encrypted (from {address})")
        assert server.password not in result.stdout.str()
        with psycopg.connect(app + "?sslmode=require"):
            _, checks = audit(pytester, through + "?sslmode=require",
                              "--mlflowdb-app-role=remote_app")
    quiet(checks, "security.ssl")
    ok = by_severity(checks["security.ssl"], "ok")
    assert ok[address]["message"] == "this audit's session is encrypted (SSL)"
    assert "1 session(s) of remote_app open now, none unencrypted" in \
        ok["remote_app"]["message"]
