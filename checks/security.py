"""Security and compliance: the database set up as a security reviewer requires, one line
of their checklist per check, each with a verdict.

MLflow's role is the owner of its tables, or the role ``--mlflowdb-app-role`` names (when
migrations run as one role and MLflow connects as another). The auditing role's own
privileges are only reported: an audit may well connect as a superuser. Every check reads
catalogs any role may read, except where it says which privilege it needed (MD5 detection
reads ``pg_authid``: superuser, or the auditor recipe's function of
:mod:`pytest_mlflowdb.probes.grants`; other roles' sessions: ``pg_read_all_stats``); without it
the check is skipped, never passed. No password or hash is ever shown.
"""

from __future__ import annotations

import pytest

from pytest_mlflowdb import check
from pytest_mlflowdb.audit.requirements import require_mlflow_schema
from pytest_mlflowdb.catalog import load_catalog
from pytest_mlflowdb.probes import security
from pytest_mlflowdb.probes.grants import AUDIT_SCHEMA, PASSWORD_FUNCTION, PRINT_GRANTS, advice
from pytest_mlflowdb.probes.security import MlflowRoles, is_local
from pytest_mlflowdb.results.findings import Findings, sql_name

#: sessions or clients named in one finding; the total is always given
SHOWN = 5
_ATTRIBUTES = (("createrole", "CREATEROLE"), ("replication", "REPLICATION"),
               ("bypassrls", "BYPASSRLS"))


def _roles(db, settings) -> tuple[str, MlflowRoles]:
    schema = require_mlflow_schema(db)
    return schema, security.mlflow_roles(db, schema, load_catalog().mlflow_tables(),
                                         settings.area_options.get("app_role"))


def _role_names(db, settings) -> tuple[str, ...]:
    _, roles = _roles(db, settings)
    return tuple(n for n in roles.used if n in roles.facts)


def _passwords(db, settings) -> None:
    """The setting and how MLflow's roles' passwords are stored."""
    security.password_encryption(db)
    security.password_storage(db, _role_names(db, settings))


def _sessions(db, settings) -> None:
    """MLflow's roles' sessions and their encryption."""
    security.mlflow_sessions(db, _role_names(db, settings))


def _public(db) -> None:
    security.public_privileges(db, require_mlflow_schema(db), load_catalog().mlflow_tables())


def _listed(items, shown: int = SHOWN) -> str:
    items = list(items)
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _owner_remedy(schema: str, tables: tuple[str, ...]) -> str:
    first = f"ALTER TABLE {sql_name(schema, tables[0])} OWNER TO mlflow;"
    rest = f" -- and likewise its other {len(tables) - 1} table(s)" if len(tables) > 1 else ""
    return ("CREATE ROLE mlflow LOGIN NOSUPERUSER PASSWORD '<new password>'; " + first + rest)


def _judge_role(findings: Findings, schema: str, roles: MlflowRoles, name: str) -> None:
    """One role MLflow uses: a failure if superuser, warnings for attributes and schemas
    it does not need, else ok."""
    tables = roles.owners.get(name, ())
    owning = f" (owns {len(tables)} of MLflow's tables)" if tables else ""
    facts = roles.facts.get(name)
    if facts is None:
        findings.fail(name, f"role {name} (--mlflowdb-app-role) does not exist on this "
                      "server", None, "an existing role")
        return
    if facts.superuser:
        remedy = (_owner_remedy(schema, tables) if tables
                  else f"ALTER ROLE {sql_name(name)} NOSUPERUSER;")
        findings.fail(name, f"MLflow's role {name}{owning} is a superuser: a flaw in MLflow "
                      "or a leaked URI gives away the whole server", "superuser",
                      "not superuser", remedy=remedy)
        return
    extra = [label for attr, label in _ATTRIBUTES if getattr(facts, attr)]
    if extra:
        findings.warn(name, f"MLflow's role {name} has {', '.join(extra)}, which MLflow "
                      "never needs", ", ".join(extra), "none",
                      remedy=f"ALTER ROLE {sql_name(name)} "
                             + " ".join(f"NO{label}" for label in extra) + ";")
    if facts.file_roles:
        findings.warn(name, f"MLflow's role {name} is a member of "
                      f"{', '.join(facts.file_roles)}: it may read, write or run files on "
                      "the database server", ", ".join(facts.file_roles), "none",
                      remedy=f"REVOKE {', '.join(facts.file_roles)} FROM {sql_name(name)};")
    if facts.other_schemas:
        findings.warn(name, f"MLflow's role {name} owns schema(s) "
                      f"{_listed(facts.other_schemas)} besides MLflow's {schema}: it needs "
                      "none of them", len(facts.other_schemas), 0,
                      remedy=f"ALTER SCHEMA {sql_name(facts.other_schemas[0])} OWNER TO "
                             "<the role of the team that uses it>;")
    if not (extra or facts.file_roles or facts.other_schemas):
        createdb = "; it may create databases (CREATEDB)" if facts.createdb else ""
        findings.ok(name, f"MLflow's role {name}{owning} is not a superuser, has no "
                    f"attribute or schema it does not need{createdb}", "not superuser",
                    "not superuser")
    if facts.owns_database:
        findings.info(name, f"{name} owns the database too (it may grant and revoke on "
                      "the public schema)")


@check("security.superuser", probes=(_roles,))
def test_superuser(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """MLflow's role is not a superuser and owns no schema it does not need; the auditing
    role's own privileges are reported."""
    schema, roles = _roles(mlflowdb, mlflowdb_settings)
    if not roles.used:
        pytest.skip(f"no MLflow table in schema {schema} is visible to say whose they are")
    for name in roles.used:
        _judge_role(mlflowdb_findings, schema, roles, name)
    if roles.app_role:
        for owner, tables in roles.owners.items():
            facts = roles.facts.get(owner)
            kind = "a superuser" if facts and facts.superuser else "not a superuser"
            mlflowdb_findings.info(owner, f"owns {len(tables)} of MLflow's tables "
                                   f"({_listed(tables)}); {kind}")
    elif len(roles.owners) > 1:
        mlflowdb_findings.info(schema, f"MLflow's tables have {len(roles.owners)} owners: "
                               f"{', '.join(roles.owners)}", len(roles.owners), 1)
    pre = mlflowdb.preflight
    if pre.is_superuser:
        mlflowdb_findings.info(pre.current_user, f"the audit connects as {pre.current_user}, "
                               "a superuser (an audit needs only pg_monitor)", "superuser")
    else:
        mlflowdb_findings.info(pre.current_user, f"the audit connects as {pre.current_user}, "
                               f"not a superuser; monitoring roles: "
                               f"{', '.join(pre.roles) or 'none'}", ", ".join(pre.roles))


@check("security.default_password")
def test_default_password(mlflowdb, mlflowdb_findings):
    """The password this audit connected with is not a well-known default (mlflow,
    password, postgres, ...), nor empty, nor the user name. It is never shown."""
    info = mlflowdb.connection.info
    user = info.user
    if not mlflowdb.connection.pgconn.used_password:
        pytest.skip(f"the server asked role {user} for no password (certificate, peer or "
                    "trust authentication): there is no password to judge")
    if security.is_weak_password(info.password or "", user):
        mlflowdb_findings.fail(user, f"the password of role {user} in the audited URI is a "
                               "well-known default (a common default word, an empty "
                               "password or the user name)", "well-known", "not well-known",
                               remedy=f"\\password {sql_name(user)} (in psql, then put the "
                                      "new password in MLflow's backend store URI)")
    else:
        mlflowdb_findings.ok(user, f"the password of role {user} is not a well-known "
                             "default, nor empty, nor the user name", "not well-known",
                             "not well-known")


@check("security.password_encryption", probes=(_passwords,))
def test_password_encryption(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """password_encryption is scram-sha-256 and no role MLflow uses has an MD5 password
    (reading pg_authid needs superuser)."""
    setting = security.password_encryption(mlflowdb)
    if setting is None:
        mlflowdb_findings.info("password_encryption", "setting hidden from this role")
    elif setting != "scram-sha-256":
        mlflowdb_findings.warn("password_encryption", f"password_encryption is {setting}: "
                               "new passwords are stored as MD5 (deprecated since "
                               "PostgreSQL 18)", setting, "scram-sha-256",
                               remedy="ALTER SYSTEM SET password_encryption = "
                                      "'scram-sha-256'; SELECT pg_reload_conf();")
    else:
        mlflowdb_findings.ok("password_encryption", "new passwords are stored as "
                             "SCRAM-SHA-256", setting, "scram-sha-256")
    names = _role_names(mlflowdb, mlflowdb_settings)
    storage = security.password_storage(mlflowdb, names)
    if not storage.readable:
        if setting is not None and setting != "scram-sha-256":
            return  # the warning stands; the skip would hide it
        pytest.skip(f"no privilege: needs superuser to read pg_authid.rolpassword and tell "
                    f"whether {_listed(names) or 'MLflow’s role'} has an MD5 password, or "
                    f"the function {AUDIT_SCHEMA}.{PASSWORD_FUNCTION} of the auditor "
                    f"recipe ({PRINT_GRANTS})")
    for name in names:
        if name in storage.md5:
            mlflowdb_findings.fail(name, f"role {name}, used by MLflow, has an MD5 password: "
                                   "its hash is enough to log in", "md5", "scram-sha-256",
                                   remedy=f"SET password_encryption = 'scram-sha-256'; "
                                          f"\\password {sql_name(name)} (in psql)")
        elif name in storage.no_password:
            mlflowdb_findings.info(name, f"role {name} has no password (it logs in by other "
                                   "means, or not at all)", "none")
        else:
            mlflowdb_findings.ok(name, f"role {name}'s password is stored as SCRAM-SHA-256",
                                 "scram-sha-256", "scram-sha-256")


def _this_connection(db, findings: Findings) -> bool:
    """This audit's own session; False when it failed."""
    pre = db.preflight
    if pre.ssl_in_use:
        findings.ok(pre.host, "this audit's session is encrypted (SSL)", "ssl", "ssl")
    elif is_local(pre.host, pre.hostaddr):
        findings.ok(pre.host, "this audit's session is not encrypted, but the server is "
                    "local", "no ssl", "ssl if remote")
    else:
        findings.fail(pre.host, "this audit's session to a remote server is not encrypted",
                      "no ssl", "ssl", remedy="add sslmode=verify-full (or require) to the "
                      "URI; on the server: ssl = on and hostssl lines in pg_hba.conf")
        return False
    return True


@check("security.ssl", probes=(_sessions,))
def test_ssl(mlflowdb, mlflowdb_findings, mlflowdb_settings):
    """This connection is encrypted when the server is not local, and so are MLflow's own
    sessions from other hosts (seeing them needs pg_read_all_stats)."""
    connection_ok = _this_connection(mlflowdb, mlflowdb_findings)
    try:
        _, roles = _roles(mlflowdb, mlflowdb_settings)
    except pytest.skip.Exception:
        if connection_ok:
            raise
        return  # the failure stands
    names = tuple(n for n in roles.used if n in roles.facts)
    sessions = security.mlflow_sessions(mlflowdb, names)
    hidden = [s for s in sessions if s.hidden]
    plain = [s for s in sessions if not s.hidden and not s.ssl and not s.local]
    who = _listed(names) or "MLflow's role"
    for role in sorted({s.role for s in plain}):
        clients = [s.client or "?" for s in plain if s.role == role]
        mlflowdb_findings.fail(role, f"{len(clients)} session(s) of {role} from other hosts "
                               f"are not encrypted (from {_listed(sorted(set(clients)))})",
                               len(clients), 0, remedy=f"hostssl lines for {role} in "
                               "pg_hba.conf (and no host line that matches it); "
                               "sslmode=require in MLflow's backend store URI")
    if hidden:
        message = (f"no privilege: needs pg_read_all_stats (or pg_monitor) to see whether "
                   f"{len(hidden)} session(s) of {who} are encrypted "
                   f"({advice(mlflowdb, 'GRANT pg_monitor')})")
        if plain or not connection_ok:
            mlflowdb_findings.info(who, message, len(hidden))
            return
        pytest.skip(message)
    if not plain:
        seen = len(sessions)
        mlflowdb_findings.ok(who, f"{seen} session(s) of {who} open now, none unencrypted "
                             "from another host" if seen else f"no session of {who} open "
                             "now", seen, None)


@check("security.public_privileges", probes=(_public,))
def test_public_privileges(mlflowdb, mlflowdb_findings):
    """PUBLIC cannot create in MLflow's schema and holds no privilege on MLflow's tables,
    their sequences, or (by default privileges) tables made later."""
    schema = require_mlflow_schema(mlflowdb)
    public = security.public_privileges(mlflowdb, schema, load_catalog().mlflow_tables())
    on_schema = ", ".join(public.schema) or "none"
    if "CREATE" in public.schema:
        mlflowdb_findings.fail(schema, f"PUBLIC may create objects in schema {schema}: any "
                               "role can plant tables or functions MLflow's queries may "
                               "resolve to (CVE-2018-1058)", on_schema, "USAGE at most",
                               remedy=f"REVOKE CREATE ON SCHEMA {sql_name(schema)} FROM "
                                      "PUBLIC;")
    else:
        mlflowdb_findings.ok(schema, f"PUBLIC holds {on_schema} on schema {schema} (no "
                             "CREATE)", on_schema, "USAGE at most")
    for name, (kind, privileges) in public.relations.items():
        what = "SEQUENCE" if kind == "S" else "TABLE"
        mlflowdb_findings.fail(f"{schema}.{name}", f"PUBLIC holds {privileges} on "
                               f"{what.lower()} {schema}.{name}: every role may use it",
                               privileges, "none", remedy=f"REVOKE ALL ON {what} "
                               f"{sql_name(schema, name)} FROM PUBLIC;")
    for role, kind, privileges in public.defaults:
        what = "SEQUENCES" if kind == "S" else "TABLES"
        mlflowdb_findings.warn(role, f"default privileges of {role} grant PUBLIC "
                               f"{privileges} on {what.lower()} it makes later", privileges,
                               "none", remedy=f"ALTER DEFAULT PRIVILEGES FOR ROLE "
                               f"{sql_name(role)} REVOKE ALL ON {what} FROM PUBLIC;")
    if not public.relations:
        mlflowdb_findings.ok(f"{schema} tables", "PUBLIC holds no privilege on MLflow's "
                             "tables or their sequences", 0, 0)


@check("security.extensions", probes=(security.untrusted_languages,))
def test_extensions(mlflowdb, mlflowdb_findings):
    """Extensions and languages that reach outside the database (dblink, postgres_fdw,
    file_fdw, adminpack, untrusted languages) are reported."""
    installed = mlflowdb.preflight.extensions
    languages = security.untrusted_languages(mlflowdb)
    for name, what in sorted(security.WIDENING_EXTENSIONS.items()):
        if name in installed:
            mlflowdb_findings.warn(name, f"extension {name} is installed in MLflow's "
                                   f"database: it {what}", installed[name], "not installed",
                                   remedy=f"DROP EXTENSION {sql_name(name)}; -- if unused")
    for name in languages:
        drop = "EXTENSION" if name in installed else "LANGUAGE"
        mlflowdb_findings.warn(name, f"untrusted language {name} is installed in MLflow's "
                               "database: its functions run as the server's operating "
                               "system user", "untrusted", "not installed",
                               remedy=f"DROP {drop} {sql_name(name)}; -- if unused")
    if not languages and not set(installed) & set(security.WIDENING_EXTENSIONS):
        listed = ", ".join(sorted(installed)) or "none"
        mlflowdb_findings.ok("extensions", f"installed: {listed}; none reaches outside the "
                             "database, no untrusted language", listed, None)


def _logging_line(name: str, value: str) -> tuple[str, str]:
    """(what the setting means, what a reviewer asks for)."""
    if name == "log_min_duration_statement":
        meaning = ("statements are not logged by duration" if value == "-1" else
                   "every statement is logged with its duration" if value in ("0", "0ms")
                   else f"statements slower than {value} are logged")
        return meaning, "0 or more (not -1)"
    if name == "log_statement":
        return f"{value} statements are logged", "ddl or more"
    on = value not in ("", "off", "false", "0")
    verb = name.removeprefix("log_")
    return f"{verb} are {'' if on else 'not '}logged", "on"


@check("security.logging", probes=(security.logging_settings,))
def test_logging(mlflowdb, mlflowdb_findings):
    """Information: log_connections, log_disconnections, log_min_duration_statement and
    log_statement, as a compliance reviewer asks for them."""
    settings = security.logging_settings(mlflowdb)
    if all(v is None for v in settings.values()):
        pytest.skip("no privilege: the logging settings are hidden from this role (needs "
                    f"pg_read_all_settings; {advice(mlflowdb, 'GRANT pg_monitor')})")
    for name, value in settings.items():
        if value is None:
            mlflowdb_findings.info(name, "hidden from this role")
            continue
        meaning, asked = _logging_line(name, value)
        shown = value or "''"
        mlflowdb_findings.info(name, f"{name} = {shown}: {meaning}", value, asked)
