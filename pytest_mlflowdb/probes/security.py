"""Security facts: MLflow's roles and their attributes, password storage, encryption of
sessions, what PUBLIC may do in MLflow's schema, extensions and logging settings.

Everything here reads catalogs every role may read (``pg_roles``, ``pg_class``,
``pg_namespace``, ``pg_extension``, ``pg_stat_activity``), except password storage
(``pg_authid``, superuser only, or the auditor recipe's SECURITY DEFINER function of
:mod:`pytest_mlflowdb.probes.grants`, which returns only true/false): what a role could not see
is said in the result, for the check to skip with the privilege it needed. No password or
password hash ever leaves the server: the MD5 test is a boolean computed in SQL.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mlflowdb.db.database import Database

#: Passwords a reviewer rejects on sight (compared folded to lower case), besides an empty
#: one and the user name itself.
WELL_KNOWN_PASSWORDS = frozenset({
    "mlflow", "password", "postgres", "admin", "changeme", "secret", "root", "test",
    "123456", "12345678",
})
#: Predefined roles whose members read or write the server's files or run programs on it.
FILE_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")
#: Extensions that reach outside the database (other servers, the server's files).
WIDENING_EXTENSIONS = {
    "dblink": "opens connections to other databases and servers from SQL",
    "postgres_fdw": "opens connections to other PostgreSQL servers",
    "file_fdw": "reads files on the database server",
    "adminpack": "reads and writes files on the database server",
}


def is_local(host: str, hostaddr: str | None = None) -> bool:
    """A Unix socket, ``localhost`` or a loopback address, by name or by the address libpq
    was given (``hostaddr``): traffic that never leaves the machine, so SSL is not needed
    (``connectivity.ssl`` and ``security.ssl``)."""
    if hostaddr and is_local(hostaddr):
        return True
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_weak_password(password: str, user: str) -> bool:
    """Empty, the user name, or a well-known default (case does not make it stronger)."""
    folded = password.casefold()
    return not password or folded == user.casefold() or folded in WELL_KNOWN_PASSWORDS


# -- MLflow's roles ------------------------------------------------------------------

_OWNERS = """
SELECT r.rolname AS role, array_agg(c.relname::text ORDER BY c.relname) AS tables
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_roles r ON r.oid = c.relowner
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
GROUP BY r.rolname
ORDER BY count(*) DESC, r.rolname
"""

_ROLES = """
SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolcreaterole AS createrole,
       r.rolcreatedb AS createdb, r.rolreplication AS replication,
       r.rolbypassrls AS bypassrls, r.rolcanlogin AS login,
       ARRAY(SELECT b.rolname::text FROM pg_roles b
             WHERE b.rolname = ANY(%(file_roles)s) AND pg_has_role(r.oid, b.oid, 'MEMBER')
             ORDER BY 1) AS file_roles,
       ARRAY(SELECT s.nspname::text FROM pg_namespace s
             WHERE s.nspowner = r.oid AND s.nspname <> %(schema)s
               AND s.nspname !~ '^pg_' AND s.nspname <> 'information_schema'
             ORDER BY 1) AS other_schemas,
       EXISTS (SELECT 1 FROM pg_database d
               WHERE d.datname = current_database() AND d.datdba = r.oid) AS owns_database
FROM pg_roles r WHERE r.rolname = ANY(%(names)s)
ORDER BY r.rolname
"""


@dataclass(frozen=True)
class RoleFacts:
    """One role's attributes as ``pg_roles`` shows them to any role."""

    name: str
    superuser: bool
    createrole: bool
    createdb: bool
    replication: bool
    bypassrls: bool
    login: bool
    #: memberships in the predefined roles that reach the server's files and programs
    file_roles: tuple[str, ...]
    #: schemas of this database it owns, other than MLflow's
    other_schemas: tuple[str, ...]
    owns_database: bool


@dataclass(frozen=True)
class MlflowRoles:
    """Who MLflow is: the owners of its tables, and the role named by --mlflowdb-app-role."""

    #: owner -> the MLflow tables it owns (most tables first)
    owners: dict[str, tuple[str, ...]]
    #: the role given with --mlflowdb-app-role, if any
    app_role: str | None
    #: facts of every role above that exists
    facts: dict[str, RoleFacts]

    @property
    def used(self) -> tuple[str, ...]:
        """The roles MLflow uses: the app role when given, else the owners."""
        return (self.app_role,) if self.app_role else tuple(self.owners)


def mlflow_roles(db: Database, schema: str, tables: frozenset[str],
                 app_role: str | None) -> MlflowRoles:
    def collect(db: Database) -> MlflowRoles:
        owners = {r["role"]: tuple(r["tables"]) for r in db.rows(
            _OWNERS, {"schema": schema, "tables": sorted(tables)})}
        names = sorted({*owners, *([app_role] if app_role else [])})
        facts = {r["name"]: RoleFacts(
            r["name"], r["superuser"], r["createrole"], r["createdb"], r["replication"],
            r["bypassrls"], r["login"], tuple(r["file_roles"]), tuple(r["other_schemas"]),
            r["owns_database"]) for r in db.rows(
                _ROLES, {"names": names, "schema": schema, "file_roles": list(FILE_ROLES)})}
        return MlflowRoles(owners, app_role, facts)

    return db.cached(f"security:roles:{schema}:{app_role}", collect)


# -- password storage ---------------------------------------------------------------

_MD5 = """
SELECT rolname AS name, coalesce(starts_with(rolpassword, 'md5'), false) AS md5,
       rolpassword IS NULL AS no_password
FROM pg_authid WHERE rolname = ANY(%(names)s) ORDER BY rolname
"""


@dataclass(frozen=True)
class PasswordStorage:
    """How the roles' passwords are stored; ``readable`` False when pg_authid is hidden."""

    readable: bool
    md5: tuple[str, ...] = ()
    no_password: tuple[str, ...] = ()


# the auditor recipe's SECURITY DEFINER function (pytest_mlflowdb.probes.grants), trusted only
# when a superuser owns it: it tells MD5 apart without this role seeing pg_authid
_MD5_FUNCTION = """
SELECT format('%%I.%%I', n.nspname, p.proname) AS name
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_roles o ON o.oid = p.proowner
WHERE n.nspname = %(schema)s AND p.proname = %(function)s AND p.prosecdef AND o.rolsuper
  AND p.proargtypes = '1003'::oidvector
  AND has_schema_privilege(n.oid, 'USAGE') AND has_function_privilege(p.oid, 'EXECUTE')
"""


def password_storage(db: Database, names: tuple[str, ...]) -> PasswordStorage:
    """Which of ``names`` have an MD5 password: from pg_authid (superuser), else through
    the auditor recipe's function (:mod:`pytest_mlflowdb.probes.grants`) when this role may call
    it."""
    return db.cached(f"security:md5:{','.join(names)}", lambda d: _password_storage(d, names))


def _password_storage(db: Database, names: tuple[str, ...]) -> PasswordStorage:
    from psycopg import sql

    from pytest_mlflowdb.probes.grants import AUDIT_SCHEMA, PASSWORD_FUNCTION

    if db.value("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')"):
        rows = db.rows(_MD5, {"names": list(names)})
    else:
        function = db.value(_MD5_FUNCTION, {"schema": AUDIT_SCHEMA,
                                            "function": PASSWORD_FUNCTION})
        if function is None:
            return PasswordStorage(readable=False)
        rows = db.rows(sql.SQL("SELECT role_name AS name, md5, no_password FROM {}(%(names)s"
                               "::name[]) ORDER BY 1").format(sql.SQL(function)),
                       {"names": list(names)})
    return PasswordStorage(True, tuple(r["name"] for r in rows if r["md5"]),
                           tuple(r["name"] for r in rows if r["no_password"]))


# -- sessions' encryption -----------------------------------------------------------

_SESSIONS = """
SELECT a.usename::text AS role, host(a.client_addr) AS client, s.ssl,
       a.backend_type IS NULL AS hidden
FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s ON s.pid = a.pid
WHERE a.usename = ANY(%(names)s) AND a.pid <> pg_backend_pid()
  AND a.backend_type IS DISTINCT FROM 'walsender'
ORDER BY a.usename, a.pid
"""


@dataclass(frozen=True)
class SessionSsl:
    """One session of an MLflow role: where from and whether it is encrypted."""

    role: str
    client: str | None
    ssl: bool | None
    #: details hidden from this auditor (no pg_read_all_stats, not a member of the role)
    hidden: bool

    @property
    def local(self) -> bool:
        return self.client is None or is_local(self.client)


def mlflow_sessions(db: Database, names: tuple[str, ...]) -> list[SessionSsl]:
    """The sessions of ``names`` now open, with their encryption where visible."""
    return db.cached(f"security:sessions:{','.join(names)}", lambda d: [
        SessionSsl(r["role"], r["client"], r["ssl"], bool(r["hidden"]))
        for r in d.rows(_SESSIONS, {"names": list(names)})])


# -- PUBLIC -------------------------------------------------------------------------

_PUBLIC_SCHEMA = """
SELECT string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) AS privileges
FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
WHERE n.nspname = %(schema)s AND a.grantee = 0
"""

# MLflow's tables and the sequences they own (serial columns), with what PUBLIC holds
_PUBLIC_RELATIONS = """
WITH mlflow AS (
  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
), relations AS (
  SELECT oid FROM mlflow
  UNION
  SELECT d.objid FROM pg_depend d JOIN mlflow m ON d.refobjid = m.oid
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.deptype IN ('a', 'i')
)
SELECT c.relname AS name, c.relkind::text AS kind,
       string_agg(DISTINCT a.privilege_type, ', ') AS privileges
FROM relations r JOIN pg_class c ON c.oid = r.oid AND c.relkind IN ('r', 'p', 'S')
CROSS JOIN LATERAL aclexplode(c.relacl) a
WHERE a.grantee = 0
GROUP BY c.relname, c.relkind
ORDER BY c.relname
"""

_PUBLIC_DEFAULTS = """
SELECT pg_get_userbyid(d.defaclrole) AS role, d.defaclobjtype::text AS kind,
       string_agg(DISTINCT a.privilege_type, ', ') AS privileges
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a
WHERE a.grantee = 0 AND d.defaclobjtype IN ('r', 'S')
  AND (n.nspname = %(schema)s OR d.defaclnamespace = 0)
GROUP BY d.defaclrole, d.defaclobjtype
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class PublicPrivileges:
    """What the PUBLIC pseudo-role may do in MLflow's schema."""

    #: privileges on the schema itself (``USAGE`` is normal, ``CREATE`` is not)
    schema: tuple[str, ...]
    #: relation name -> (relkind, privileges) for MLflow's tables and their sequences
    relations: dict[str, tuple[str, str]]
    #: (granting role, object kind, privileges) of default privileges for future objects
    defaults: tuple[tuple[str, str, str], ...]


def public_privileges(db: Database, schema: str, tables: frozenset[str]) -> PublicPrivileges:
    """What PUBLIC may do on MLflow's schema, its relations and future objects."""
    return db.cached(f"security:public:{schema}:{','.join(sorted(tables))}",
                     lambda d: _public_privileges(d, schema, tables))


def _public_privileges(db: Database, schema: str, tables: frozenset[str]) -> PublicPrivileges:
    params = {"schema": schema, "tables": sorted(tables)}
    found, relation_rows, default_rows = db.rows_many(
        [(_PUBLIC_SCHEMA, params), (_PUBLIC_RELATIONS, params), (_PUBLIC_DEFAULTS, params)])
    on_schema = found[0]["privileges"] if found else None
    relations = {r["name"]: (r["kind"], r["privileges"]) for r in relation_rows}
    defaults = tuple((r["role"], r["kind"], r["privileges"]) for r in default_rows)
    return PublicPrivileges(tuple(on_schema.split(", ")) if on_schema else (), relations,
                            defaults)


# -- extensions and languages -------------------------------------------------------

_UNTRUSTED_LANGUAGES = """
SELECT l.lanname AS name, pg_get_userbyid(l.lanowner) AS owner
FROM pg_language l WHERE l.lanispl AND NOT l.lanpltrusted ORDER BY l.lanname
"""


def untrusted_languages(db: Database) -> list[str]:
    """Procedural languages installed in this database that only superusers should use
    (functions in them run as the server's OS user: ``plpython3u``, ``plperlu``...)."""
    return db.cached("security:languages",
                     lambda d: [r["name"] for r in d.rows(_UNTRUSTED_LANGUAGES)])


# -- logging settings ---------------------------------------------------------------

LOGGING_SETTINGS = ("log_connections", "log_disconnections", "log_min_duration_statement",
                    "log_statement")


def logging_settings(db: Database) -> dict[str, str | None]:
    """The logging settings a compliance reviewer asks about (None: hidden from this role)."""
    return db.cached("security:logging", lambda d: dict(d.row(
        "SELECT " + ", ".join(f"current_setting('{name}', true) AS {name}"
                              for name in LOGGING_SETTINGS)) or {}))


def password_encryption(db: Database) -> str | None:
    """The server's ``password_encryption``."""
    return db.cached("security:password_encryption",
                     lambda d: d.setting("password_encryption"))
