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


#: Passwords shorter than this are never searched for in free text: replacing every
#: "mlflow" or "5" in a report would garble it and, worse, show which word was starred.
#: Short passwords are masked where they stand (URI userinfo, password=) instead.
SEARCH_MIN = 8


def scrub(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """Mask passwords in ``text``: where they stand in URIs and ``password=`` pairs, and,
    for passwords long enough to be unambiguous, wherever else they occur."""
    text = redact_text(text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret and len(secret) >= SEARCH_MIN:
            text = text.replace(secret, _PLACEHOLDER)
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, _PLACEHOLDER)
    return text


_URI_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]*")
_PAIR = re.compile(r"(?P<key>[^\s=&?'\"]+)(?P<sep>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s&'\"]*)")


def _is_secret_key(key: str) -> bool:
    return unquote(key).strip().lower() in _SECRET_KEYS


def redact_text(text: str) -> str:
    """Mask every password that stands where a password stands: the userinfo of any
    URI in ``text`` and the value of any ``password=``/``sslpassword=`` pair (any case,
    percent-encoded keys too). Used on every message that may echo user input."""
    def uri(match: re.Match) -> str:
        parts = split_userinfo(match.group(0))
        if parts is None or parts[2] is None:
            return match.group(0)
        scheme, user, _password, rest = parts
        return f"{scheme}{user}:{_PLACEHOLDER}@{rest}"

    text = _URI_TOKEN.sub(uri, text)
    return _PAIR.sub(lambda m: m.group("key") + m.group("sep") + _PLACEHOLDER
                     if _is_secret_key(m.group("key")) and m.group("value") else m.group(0),
                     text)


def split_userinfo(raw: str) -> tuple[str, str, str | None, str] | None:
    """``(scheme, user, password, rest)`` of a URI, read as SQLAlchemy users write them.

    The password may hold unencoded ``@ / ? #``: the userinfo ends at the ``@`` after
    which the host part (up to ``/`` or ``?``) has no more ``@``. A candidate with no
    ``:`` that contains ``/`` or ``?`` is not userinfo (an ``@`` in a path or query).
    """
    scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", raw)
    if not scheme:
        return None
    after = raw[scheme.end():]
    for i, char in enumerate(after):
        if char != "@":
            continue
        host = re.split(r"[/?]", after[i + 1:], maxsplit=1)[0]
        if "@" in host:
            continue
        userinfo = after[:i]
        if ":" not in userinfo and ("/" in userinfo or "?" in userinfo):
            return None
        user, sep, password = userinfo.partition(":")
        return scheme.group(0), user, password if sep else None, after[i + 1:]
    return None


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
            f"{scrub(raw, secrets)!r} is neither a postgresql:// URI nor a key=value string"
        )
    try:
        params = pg_conninfo.conninfo_to_dict(raw)
    except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
        message = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "", secrets)
        raise TargetError(f"malformed database URI {scrub(raw, secrets)!r}: {message}") from None
    for port in str(params.get("port") or "").split(","):
        if port and not port.strip().isdigit():
            raise TargetError(
                f"malformed database URI {scrub(raw, secrets)!r}: port {port!r} is not a number"
            )
    for key in _SECRET_KEYS:
        if params.get(key):
            secrets = secrets + (str(params[key]),)
    target = Target(
        conninfo=raw,
        id=_target_id(params),
        redacted=_redact(params),
        secrets=tuple(sorted(set(secrets))),
    )
    # A URI read wrongly shows it in its host or database name ("host=retPW@db"): refuse
    # rather than print a piece of a password. (A password equal to the user or database
    # name, as in many compose files, is fine: it is not searched for.)
    hosts = str(params.get("host") or "") + str(params.get("dbname") or "")
    if "@" in hosts or any(len(s) >= SEARCH_MIN and s in target.id for s in target.secrets):
        raise TargetError(
            f"cannot read {scrub(text.strip(), secrets)!r}: its host or database name would "
            "hold '@' (percent-encode special characters in user name, password and database)"
        )
    return target


def _guess_secrets(raw: str) -> tuple[str, ...]:
    """Find passwords before parsing, so that even a parse error cannot echo one."""
    found: list[str] = []
    parts = split_userinfo(raw)
    if parts is not None and parts[2]:
        found += [parts[2], unquote(parts[2])]
    for m in _PAIR.finditer(raw):
        if _is_secret_key(m.group("key")) and m.group("value"):
            value = m.group("value").strip("'")
            found += [value, unquote(value)]
    return tuple(s for s in found if s)


def _normalise_userinfo(raw: str) -> str:
    """Percent-encode user and password the way libpq needs, as SQLAlchemy would read them."""
    parts = split_userinfo(raw)
    if parts is None:
        return raw
    scheme, user, password, rest = parts
    userinfo = quote(unquote(user), safe="")
    if password is not None:
        userinfo += ":" + quote(unquote(password), safe="")
    return f"{scheme}{userinfo}@{rest}"


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
        raise TargetError(f"malformed database URI {scrub(raw, secrets)!r}: {exc}") from None


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
