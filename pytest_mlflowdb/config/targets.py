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

import dataclasses
import getpass
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pytest_mlflowdb.text import first_line

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
    return scrubber(secrets)(text)


def scrubber(secrets: tuple[str, ...] | list[str]) -> Callable[[str], str]:
    """:func:`scrub` for many texts with the same secrets (a whole report): the secrets
    worth searching for, and their percent-encoded forms, are worked out once."""
    searched: list[str] = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret and len(secret) >= SEARCH_MIN:
            searched.append(secret)
            encoded = quote(secret, safe="")
            if encoded != secret:
                searched.append(encoded)

    def masked(text: str) -> str:
        text = redact_text(text)
        for secret in searched:
            if secret in text:
                text = text.replace(secret, _PLACEHOLDER)
        return text

    return masked


def scrub_all(value: Any, secrets: Iterable[str], *, in_place: bool = False) -> Any:
    """``value`` with :func:`scrub` applied to every string in it: strings and the values
    of dicts, lists and tuples (dict keys are structure, never rewritten).

    A document (the report) comes back as a masked copy whose tuples are lists, as JSON
    has them. With ``in_place`` (pytest's report objects) tuples stay tuples and
    dataclasses, pytest's traceback representations, are masked in place, each once.
    """
    mask = scrubber(tuple(secrets))
    seen: set[int] = set()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return mask(item)
        if isinstance(item, dict):
            return {key: walk(v) for key, v in item.items()}
        if isinstance(item, list) or (isinstance(item, tuple) and not in_place):
            return [walk(v) for v in item]
        if isinstance(item, tuple):
            return tuple(walk(v) for v in item)
        if (in_place and dataclasses.is_dataclass(item) and not isinstance(item, type)
                and id(item) not in seen):
            seen.add(id(item))
            for each in dataclasses.fields(item):
                current = getattr(item, each.name, None)
                if current is not None:
                    object.__setattr__(item, each.name, walk(current))
        return item

    return walk(value)


# Both patterns start only where a token starts (the look-behinds): without them a long
# run of letters is re-scanned from every one of its characters, quadratic time.
_URI_TOKEN = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]*")
_PAIR = re.compile(r"(?<![^\s=&?'\"])(?P<key>[^\s=&?'\"]+)(?P<sep>\s*=\s*)"
                   r"(?P<value>'(?:[^'\\]|\\.)*(?:'|$)|[^\s&'\"]*)")


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

    if "://" in text:  # every URI token has one; most report strings have neither
        text = _URI_TOKEN.sub(uri, text)
    if "=" not in text:
        return text
    return _PAIR.sub(lambda m: m.group("key") + m.group("sep") + _PLACEHOLDER
                     if _is_secret_key(m.group("key")) and m.group("value") else m.group(0),
                     text)


def split_userinfo(raw: str) -> tuple[str, str, str | None, str] | None:
    """``(scheme, user, password, rest)`` of a URI, read as SQLAlchemy users write them.

    The password may hold unencoded ``@ / ? #``: the userinfo ends at the ``@`` after
    which the host part (up to ``/`` or ``?``) has no more ``@``. A candidate with no
    ``:`` that contains ``/`` or ``?`` is not userinfo (an ``@`` in a path or query).
    """
    scheme = _SCHEME.match(raw)
    if not scheme:
        return None
    after = raw[scheme.end():]
    # That '@' is the last one before the first '/' or '?' that follows any '@', found in
    # one pass (trying every '@' in turn would be quadratic on a password full of them).
    first = after.find("@")
    if first < 0:
        return None
    ends = [i for i in (after.find("/", first), after.find("?", first)) if i >= 0]
    i = after.rfind("@", first, min(ends) if ends else len(after))
    userinfo = after[:i]
    if ":" not in userinfo and ("/" in userinfo or "?" in userinfo):
        return None
    user, sep, password = userinfo.partition(":")
    return scheme.group(0), user, password if sep else None, after[i + 1:]


#: Longest connection string accepted. libpq has no limit, but no real one comes near it
#: (a URI with every option spelled out is well under 1 kB); anything longer is a mistake
#: (a file pasted into the option) and is refused before any parsing.
MAX_LENGTH = 8192

#: libpq's sslmode values.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def parse_target(text: str) -> Target:
    """Turn a URI or libpq key=value string into a Target, or raise TargetError.

    A refusal echoes only :func:`_shown` of the input: a URI's user info and everything
    after any spelling of ``password`` never appear, however the input is mangled.
    """
    from psycopg import conninfo as pg_conninfo  # heavy import: only when active

    if len(text) > MAX_LENGTH:
        raise TargetError(f"database URI is {len(text)} characters long; more than "
                          f"{MAX_LENGTH} is refused (no connection string is that long)")
    raw = text.strip()
    if not raw:
        raise TargetError("empty database URI")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TargetError(f"database URI holds a byte that is not UTF-8 text (character "
                          f"{exc.start + 1}); percent-encode it (%FF)") from None
    shown = _shown(raw)
    secrets = _guess_secrets(raw)

    def refuse(reason: str) -> TargetError:
        return TargetError(scrub(f"malformed database URI {shown!r}: {reason}", secrets))

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
        _check_uri_port(raw, refuse, shown)
    elif "=" not in raw:
        raise TargetError(
            f"{scrub(shown, secrets)!r} is neither a postgresql:// URI nor a key=value string"
        )
    try:
        # libpq gives strings only (the int/None of the annotation are for keyword args)
        params = {k: str(v) for k, v in pg_conninfo.conninfo_to_dict(raw).items()
                  if v is not None}
    except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
        raise refuse(_only_shown(first_line(exc, "libpq cannot parse it"), shown)) from None
    for port in str(params.get("port") or "").split(","):
        port = port.strip()
        if port and not port.isdigit():
            raise refuse(f"port {_quoted(port, shown)} is not a number")
        if port and not 1 <= int(port) <= 65535:
            raise refuse(f"port {_quoted(port, shown)} is out of range (1-65535)")
    sslmode = params.get("sslmode")
    if sslmode and sslmode not in SSLMODES:
        raise refuse(f"sslmode {_quoted(sslmode, shown)} is not one of {', '.join(SSLMODES)}")
    for key in _SECRET_KEYS:
        if params.get(key):
            secrets = secrets + (str(params[key]),)
    target = Target(
        conninfo=raw,
        id=_target_id(params),
        redacted=_redact(params),
        secrets=tuple(sorted(set(secrets))),
    )
    # A URI read wrongly shows it in its host, database name or a query parameter
    # ("host=retPW@db"): refuse rather than print a piece of a password. (A password equal
    # to the user or database name, as in many compose files, is fine: it is not searched
    # for.)
    misread = any("@" in str(v) for k, v in params.items()
                  if k not in ("user", "options", *_SECRET_KEYS))
    if misread or any(len(s) >= SEARCH_MIN and s in target.id for s in target.secrets):
        raise TargetError(scrub(
            f"cannot read {shown!r}: its host or database name would hold '@' "
            "(percent-encode special characters in user name, password and database)", secrets))
    return target


_PASSWORD_WORD = re.compile(
    r"(?:p|%70)(?:a|%61)(?:s|%73)(?:s|%73)(?:w|%77)(?:o|%6f)(?:r|%72)(?:d|%64)", re.IGNORECASE)


def _shown(raw: str) -> str:
    """What a refusal may echo of ``raw``: a URI's scheme, user name and what follows the
    last '@' (never its password, wherever the password really ends), and of any form
    nothing after the first ``password`` in any case or percent-encoding."""
    scheme = _SCHEME.match(raw)
    shown = raw
    if scheme:
        rest = raw[scheme.end():]
        at = rest.rfind("@")
        if at >= 0:
            user, sep, _ = rest[:at].partition(":")
            shown = scheme.group(0) + user + (f":{_PLACEHOLDER}" if sep else "") + "@" + (
                rest[at + 1:])
    word = _PASSWORD_WORD.search(shown)
    if word:
        shown = shown[:word.end()] + f"={_PLACEHOLDER} ..."
    return shown


def _quoted(value: str, shown: str) -> str:
    """``repr(value)`` when the refusal already shows it, else nothing of it: a value
    parsed out of a mangled URI may be a piece of its password."""
    return repr(value) if value in shown else "(hidden)"


def _only_shown(message: str, shown: str) -> str:
    """libpq's message with each quoted piece of input that ``shown`` hides replaced."""
    return re.sub(r'"([^"]*)"', lambda m: m.group(0) if m.group(1) in shown else '"..."',
                  message)


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


def _check_uri_port(raw: str, refuse: Callable[[str], TargetError], shown: str) -> None:
    """A non-numeric port in the URI's host list, with the message libpq would not give."""
    try:
        netloc = urlsplit(raw).netloc
    except ValueError as exc:
        raise refuse(_only_shown(str(exc), shown)) from None
    for hostport in netloc.rsplit("@", 1)[-1].split(","):
        if hostport.startswith("["):
            continue
        _, _, port = hostport.partition(":")
        if port and not port.isdigit():
            raise refuse(f"port {_quoted(port, shown)} is not a number")


def _host_ports(hosts: str, ports: str) -> list[tuple[str, str]]:
    """Pair libpq's comma-separated hosts and ports (one port may serve every host)."""
    host_list = hosts.split(",")
    port_list = ports.split(",") if ports else [""]
    if len(port_list) == 1:
        port_list = port_list * len(host_list)
    port_list += [""] * (len(host_list) - len(port_list))
    return list(zip(host_list, port_list[: len(host_list)], strict=True))


def _service_file_params(name: str) -> dict[str, str]:
    """The keywords of service ``name``, looked up like libpq does: the user's file
    (``PGSERVICEFILE``, else ``~/.pg_service.conf``) first, then
    ``$PGSYSCONFDIR/pg_service.conf``. (libpq's compiled-in system directory is not
    known here; a service found only there keeps the ``service=name`` id.)"""
    files = [os.environ.get("PGSERVICEFILE") or os.path.expanduser("~/.pg_service.conf")]
    if os.environ.get("PGSYSCONFDIR"):
        files.append(os.path.join(os.environ["PGSYSCONFDIR"], "pg_service.conf"))
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        found: dict[str, str] | None = None
        for line in (line.strip() for line in lines):
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                if found is not None:
                    break
                if line.rstrip("]")[1:].strip() == name:
                    found = {}
            elif found is not None:
                key, sep, value = line.partition("=")
                if sep:
                    found.setdefault(key.strip(), value.strip())
        if found is not None:
            return found
    return {}


def _target_id(params: dict[str, str]) -> str:
    service = params.get("service") or os.environ.get("PGSERVICE")
    if service:  # libpq: the string first, then the service file, then the environment
        params = {**_service_file_params(service), **params}
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
