"""Targets: the databases to audit, from the URI forms MLflow users already have.

Accepted: ``postgresql://``, ``postgres://``, ``postgresql+psycopg2://``,
``postgresql+psycopg://`` (any ``+driver`` suffix of SQLAlchemy's is dropped), and libpq
``key=value`` strings. libpq's environment (``PGPASSWORD``, ``PGSSLMODE``, ``.pgpass``,
``PGSERVICE``) keeps working because the connection string is handed to libpq as is,
minus the SQLAlchemy driver suffix.

The password never leaves this module except inside :attr:`Target.conninfo`, which is
only ever passed to libpq. Everything printable (:attr:`Target.id`,
:attr:`Target.redacted`, :meth:`Target.scrub`) is free of it.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_SECRET_KEYS = ("password", "sslpassword")
_PLACEHOLDER = "***"
# SQLAlchemy's reading of the user part (MLflow users' URIs go through it): the user
# name stops at ':' or '/', the password runs to the first '@', unencoded '/?#' and all.
_USERINFO = re.compile(r"^(?P<scheme>[^:/]+://)(?P<user>[^:/@]*)(?::(?P<password>[^@]*))?@")


class TargetError(ValueError):
    """A target that cannot be understood; the message is one line and has no password."""


@dataclass(frozen=True)
class Target:
    """One database to audit.

    ``conninfo`` is what libpq receives; ``id`` (``host:port/db``) and ``redacted`` (the
    URI with ``***`` for the password) are what people see.
    """

    conninfo: str = field(repr=False)
    id: str
    redacted: str
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def scrub(self, text: str) -> str:
        """Replace every occurrence of this target's secrets in ``text`` with ``***``."""
        return scrub(text, self.secrets)


def scrub(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, _PLACEHOLDER)
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, _PLACEHOLDER)
    return text


def parse_target(text: str) -> Target:
    """Turn a URI or libpq key=value string into a Target, or raise TargetError."""
    from psycopg import conninfo as pg_conninfo  # heavy import: only when active

    raw = text.strip()
    if not raw:
        raise TargetError("empty database URI")
    secrets = _guess_secrets(raw)
    scheme_match = _SCHEME.match(raw)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        base, _, driver = scheme.partition("+")
        if base not in SCHEMES:
            raise TargetError(
                f"unsupported URI scheme {scheme_match.group(1)!r}: use postgresql://, "
                "postgres://, postgresql+psycopg2://, postgresql+psycopg:// or key=value"
            )
        if driver and driver not in ("psycopg2", "psycopg", "psycopg2cffi", "pg8000", "asyncpg"):
            raise TargetError(f"unsupported SQLAlchemy driver {driver!r} in URI scheme")
        raw = _normalise_userinfo("postgresql://" + raw[scheme_match.end():])
        _check_uri_port(raw, secrets)
    elif "=" not in raw:
        raise TargetError(
            f"{_shown(raw, secrets)!r} is neither a postgresql:// URI nor a key=value string"
        )
    try:
        params = pg_conninfo.conninfo_to_dict(raw)
    except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
        message = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "", secrets)
        raise TargetError(f"malformed database URI {_shown(raw, secrets)!r}: {message}") from None
    for port in str(params.get("port") or "").split(","):
        if port and not port.strip().isdigit():
            raise TargetError(
                f"malformed database URI {_shown(raw, secrets)!r}: port {port!r} is not a number"
            )
    for key in _SECRET_KEYS:
        if params.get(key):
            secrets = secrets + (str(params[key]),)
    return Target(
        conninfo=raw,
        id=_target_id(params),
        redacted=_redact(params),
        secrets=tuple(sorted(set(secrets))),
    )


def _shown(raw: str, secrets: tuple[str, ...]) -> str:
    """``raw`` for an error message: passwords replaced where they stand, not by search
    (a one-letter password would otherwise garble the text), then scrubbed anyway."""
    shown = _USERINFO.sub(
        lambda m: m.group("scheme") + m.group("user")
        + (":" + _PLACEHOLDER if m.group("password") is not None else "") + "@",
        raw, count=1,
    )
    for key in _SECRET_KEYS:
        shown = re.sub(rf"((?:^|[\s?&]){key}\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)",
                       lambda m: m.group(1) + _PLACEHOLDER, shown)
    long_enough = tuple(s for s in secrets if len(s) >= 4)
    return scrub(shown, long_enough)


def _guess_secrets(raw: str) -> tuple[str, ...]:
    """Find passwords before parsing, so that even a parse error cannot echo one."""
    found: list[str] = []
    match = _USERINFO.match(raw)
    if match and match.group("password"):
        found.append(match.group("password"))
        found.append(unquote(found[-1]))
    for key in _SECRET_KEYS:
        for m in re.finditer(rf"(?:^|[\s?&]){key}\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", raw):
            value = m.group(1)
            found.append(value.strip("'"))
            found.append(unquote(value.strip("'")))
    return tuple(s for s in found if s)


def _normalise_userinfo(raw: str) -> str:
    """Percent-encode user and password the way libpq needs, as SQLAlchemy would read them."""
    match = _USERINFO.match(raw)
    if not match:
        return raw
    userinfo = quote(unquote(match.group("user")), safe="")
    if match.group("password") is not None:
        userinfo += ":" + quote(unquote(match.group("password")), safe="")
    return match.group("scheme") + userinfo + "@" + raw[match.end():]


def _check_uri_port(raw: str, secrets: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(raw)
        for hostport in parts.netloc.rsplit("@", 1)[-1].split(","):
            if hostport.startswith("["):
                continue
            _, _, port = hostport.partition(":")
            if port and not port.isdigit():
                raise ValueError(f"port {port!r} is not a number")
    except ValueError as exc:
        raise TargetError(f"malformed database URI {_shown(raw, secrets)!r}: {exc}") from None


def _host_ports(hosts: str, ports: str) -> list[tuple[str, str]]:
    """Pair libpq's comma-separated hosts and ports (one port may serve every host)."""
    host_list = hosts.split(",")
    port_list = ports.split(",") if ports else [""]
    if len(port_list) == 1:
        port_list = port_list * len(host_list)
    port_list += [""] * (len(host_list) - len(port_list))
    return list(zip(host_list, port_list[: len(host_list)], strict=True))


def _target_id(params: dict[str, str]) -> str:
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or _login()
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    if params.get("service") and not params.get("host"):
        return f"service={params['service']}/{dbname}" if params.get("dbname") else (
            f"service={params['service']}"
        )
    pairs = _host_ports(host, port)
    return ",".join(f"{h}:{p or '5432'}" for h, p in pairs) + f"/{dbname}"


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "postgres"


def _redact(params: dict[str, str]) -> str:
    user = params.get("user")
    netloc = ""
    if user:
        netloc = quote(user, safe="")
        if params.get("password"):
            netloc += ":" + _PLACEHOLDER
        netloc += "@"
    host = params.get("host", "")
    if host and "/" not in host:
        netloc += ",".join(
            ("[" + h + "]" if ":" in h else h) + (f":{p}" if p else "")
            for h, p in _host_ports(host, params.get("port", ""))
        )
    elif params.get("port"):
        netloc += f":{params['port']}"
    path = "/" + quote(params["dbname"], safe="") if params.get("dbname") else ""
    query = []
    if host and "/" in host:
        query.append(f"host={quote(host, safe='/')}")
    for key, value in sorted(params.items()):
        if key in ("user", "password", "host", "port", "dbname"):
            continue
        shown = _PLACEHOLDER if key in _SECRET_KEYS else quote(str(value), safe="-_./")
        query.append(f"{key}={shown}")
    return f"postgresql://{netloc}{path}" + ("?" + "&".join(query) if query else "")
