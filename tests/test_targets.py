"""URI forms, target ids and password redaction (pytest_mlflowdb.config.targets)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from pytest_mlflowdb.config.targets import Target, TargetError, parse_target, scrub

PG_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@pytest.fixture(autouse=True)
def clean_pg_env(monkeypatch):
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)


def _error(text: str) -> str:
    with pytest.raises(TargetError) as excinfo:
        parse_target(text)
    message = str(excinfo.value)
    assert message.strip()
    assert "\n" not in message
    return message


def _printable(target: Target) -> str:
    return target.id + "\n" + target.redacted + "\n" + repr(target)


# -- URI forms -------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", [
    "postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg", "POSTGRESQL",
])
def test_uri_forms_give_host_port_db_id(scheme):
    target = parse_target(f"{scheme}://mlflow:topsecret@db.example:5432/mlflow")
    assert target.id == "db.example:5432/mlflow"
    assert target.conninfo == "postgresql://mlflow:topsecret@db.example:5432/mlflow"
    assert target.redacted == "postgresql://mlflow:***@db.example:5432/mlflow"
    assert target.secrets == ("topsecret",)


def test_driver_suffix_is_dropped_from_conninfo():
    target = parse_target("postgresql+psycopg2://u:pw@h:5433/db?sslmode=require")
    assert target.conninfo == "postgresql://u:pw@h:5433/db?sslmode=require"
    assert "psycopg2" not in target.redacted
    assert conninfo_to_dict(target.conninfo)["sslmode"] == "require"


def test_default_port_is_5432_in_the_id():
    target = parse_target("postgres://mlflow:topsecret@db.example/mlflow")
    assert target.id == "db.example:5432/mlflow"
    assert target.redacted == "postgresql://mlflow:***@db.example/mlflow"


def test_surrounding_whitespace_is_ignored():
    target = parse_target("  postgresql://u:pw@h:5433/db \n")
    assert target.conninfo == "postgresql://u:pw@h:5433/db"
    assert target.id == "h:5433/db"


def test_uri_without_password():
    target = parse_target("postgresql://mlflow@db.example:5432/mlflow")
    assert target.redacted == "postgresql://mlflow@db.example:5432/mlflow"
    assert target.secrets == ()


def test_libpq_key_value_string():
    target = parse_target("host=h port=5433 dbname=m user=u password=topsecret")
    assert target.id == "h:5433/m"
    assert target.conninfo == "host=h port=5433 dbname=m user=u password=topsecret"
    assert target.redacted == "postgresql://u:***@h:5433/m"
    assert "topsecret" in target.secrets
    assert "topsecret" not in _printable(target)


def test_key_value_with_quoted_password():
    target = parse_target("host=h dbname=d user=u password='top secret'")
    assert "top secret" in target.secrets
    assert "top secret" not in _printable(target)
    assert target.scrub("auth failed for 'top secret'") == "auth failed for '***'"


def test_query_parameters_are_kept_in_the_redacted_form():
    target = parse_target("postgresql://mlflow:topsecret@db.example:5432/mlflow"
                          "?sslmode=require&options=-csearch_path%3Dmlflow")
    assert target.id == "db.example:5432/mlflow"
    assert target.redacted.startswith("postgresql://mlflow:***@db.example:5432/mlflow?")
    query = target.redacted.split("?", 1)[1].split("&")
    assert "sslmode=require" in query
    assert any(p.startswith("options=-csearch_path") and p.endswith("mlflow") for p in query)
    assert "topsecret" not in target.redacted


@pytest.mark.parametrize("uri", [
    "postgresql://mlflow:pw@db.example:5432/mlflow?sslmode=require",
    "postgresql://u:pw@[::1]:5432/db",
    "postgresql:///db?host=/var/run/postgresql",
    "host=h port=5433 dbname=m user=u password=pw",
    "postgresql://us%40er:pw@h/d%20b?application_name=my%20app",
    "postgresql://mlflow:pw@db.example:5432/mlflow?options=-csearch_path%3Dmlflow",
    "postgresql://u:pw@h1:5432,h2:5433/db",
])
def test_redacted_form_is_the_same_uri_without_the_password(uri):
    target = parse_target(uri)
    original = conninfo_to_dict(target.conninfo)
    shown = conninfo_to_dict(target.redacted)
    original.pop("password", None)
    shown.pop("password", None)
    assert shown == original


def test_unix_socket_host_goes_to_the_query():
    target = parse_target("postgresql:///mlflow?host=/var/run/postgresql")
    assert target.id == "/var/run/postgresql:5432/mlflow"
    assert target.redacted == "postgresql:///mlflow?host=/var/run/postgresql"


# -- passwords -------------------------------------------------------------------------
def test_percent_encoded_password_never_shows_in_either_form():
    target = parse_target("postgresql://mlflow:s%40cret@db.example:5432/mlflow")
    assert target.redacted == "postgresql://mlflow:***@db.example:5432/mlflow"
    assert target.id == "db.example:5432/mlflow"
    for form in ("s@cret", "s%40cret"):
        assert form not in _printable(target)
        assert form in target.secrets
    # short passwords are masked where they stand, not searched for in free text
    assert target.scrub("postgresql://mlflow:s%40cret@db/x") == "postgresql://mlflow:***@db/x"
    assert target.scrub("password=s@cret") == "password=***"


def test_password_full_of_uri_characters():
    password = "S3cret!pw@x%y"
    target = parse_target(f"postgresql://mlflow:{quote(password, safe='')}@h/db")
    assert target.id == "h:5432/db"
    assert conninfo_to_dict(target.conninfo)["password"] == password
    for form in (password, quote(password, safe=""), quote(password)):
        assert form not in _printable(target)
        assert target.scrub(f"<{form}>") == "<***>"


def test_password_in_query_parameter_is_redacted():
    target = parse_target("postgresql://mlflow@db.example/mlflow?password=topsecret&sslmode=require")
    assert "topsecret" in target.secrets
    assert target.redacted == "postgresql://mlflow:***@db.example/mlflow?sslmode=require"
    assert "topsecret" not in _printable(target)


def test_sslpassword_is_redacted():
    target = parse_target("postgresql://u:pw@h/db?sslpassword=keypass")
    assert "keypass" in target.secrets
    assert "sslpassword=***" in target.redacted
    assert "keypass" not in target.redacted


def test_scrub_replaces_longest_secret_first_and_leaves_other_text():
    assert scrub("abcdefgh and abcdefghij", ("abcdefgh", "abcdefghij")) == "*** and ***"
    assert scrub("nothing here", ("topsecret",)) == "nothing here"
    assert scrub("keep me", ("",)) == "keep me"
    assert scrub("a%2Fb-long and a/b-long", ["a/b-long"]) == "*** and ***"
    assert scrub("abc stays", ("abc",)) == "abc stays"  # too short to search for


@pytest.mark.parametrize("uri, user, shown_password", [
    ("postgresql://us/er:S3cretPW@127.0.0.1:46807/m", "us%2Fer", None),
    ("postgresql://odd:S3c@retPW@127.0.0.1:46807/m", "odd", None),
])
def test_unencoded_at_or_slash_in_userinfo_is_read_like_sqlalchemy(uri, user, shown_password):
    target = parse_target(uri)
    assert target.id == "127.0.0.1:46807/m"
    assert target.redacted == f"postgresql://{user}:***@127.0.0.1:46807/m"
    assert "retPW" not in _printable(target)


@pytest.mark.parametrize("uri", [
    "host=127.0.0.1 port=46807 Password=S3cretPW",
    "postgresql://u@h/db?Password=S3cretPW",
    "postgresql://u@h/db?pass%77ord=S3cretPW&bogus=1",
])
def test_password_keys_in_any_case_or_encoding_are_masked_in_errors(uri):
    with pytest.raises(TargetError) as info:
        parse_target(uri)
    assert "S3cretPW" not in str(info.value)


def test_user_equal_to_password_and_database_is_fine():
    target = parse_target("postgresql://mlflow:mlflow@h/mlflow")
    assert target.id == "h:5432/mlflow"
    assert target.redacted == "postgresql://mlflow:***@h/mlflow"


def test_at_sign_left_in_the_database_name_is_refused():
    with pytest.raises(TargetError, match="would hold '@'"):
        parse_target("postgresql://u:pw@h/a@b")


def test_repr_has_no_conninfo_or_secrets():
    target = parse_target("postgresql://u:topsecret@h/db")
    assert "topsecret" not in repr(target)
    assert "h:5432/db" in repr(target)


def test_target_is_frozen():
    target = parse_target("postgresql://u:pw@h/db")
    with pytest.raises(AttributeError):
        target.id = "other"


# -- libpq environment -----------------------------------------------------------------
def test_environment_fills_what_the_uri_omits(monkeypatch):
    monkeypatch.setenv("PGHOST", "envhost")
    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.setenv("PGDATABASE", "envdb")
    assert parse_target("postgresql://").id == "envhost:6543/envdb"
    assert parse_target("postgresql:///mlflow").id == "envhost:6543/mlflow"
    assert parse_target("user=u password=pw").id == "envhost:6543/envdb"


def test_uri_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("PGHOST", "envhost")
    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.setenv("PGDATABASE", "envdb")
    assert parse_target("postgresql://h:5433/db").id == "h:5433/db"


def test_without_environment_host_is_localhost_and_db_is_the_user(monkeypatch):
    monkeypatch.setenv("PGUSER", "alice")
    assert parse_target("postgresql://").id == "localhost:5432/alice"
    assert parse_target("postgresql://bob@h").id == "h:5432/bob"


def test_service_without_host():
    assert parse_target("service=prod").id == "service=prod"
    assert parse_target("service=prod dbname=mlflow").id == "service=prod/mlflow"


# -- errors ----------------------------------------------------------------------------
def test_unknown_scheme():
    message = _error("mysql://u:topsecret@h/db")
    assert "'mysql'" in message
    assert "postgresql://" in message
    assert "topsecret" not in message


def test_unknown_sqlalchemy_driver():
    message = _error("postgresql+foo://u:topsecret@h/db")
    assert "'foo'" in message
    assert "topsecret" not in message


def test_other_sqlalchemy_drivers_are_accepted():
    assert parse_target("postgresql+asyncpg://u:pw@h/db").id == "h:5432/db"


@pytest.mark.parametrize("uri", [
    "postgresql://u:topsecret@h:abc/db",
    "postgresql+psycopg2://u:top%40secret@h:abc/db",
    "host=h port=abc password=topsecret",
])
def test_non_numeric_port(uri):
    message = _error(uri)
    assert "'abc'" in message
    assert "not a number" in message
    assert "topsecret" not in message
    assert "top%40secret" not in message
    assert "top@secret" not in message


@pytest.mark.parametrize("text", ["not a uri", "localhost"])
def test_garbage(text):
    message = _error(text)
    assert "neither a postgresql:// URI nor a key=value string" in message


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty(text):
    assert _error(text) == "empty database URI"


@pytest.mark.parametrize("uri", [
    "postgresql://u:topsecret@h/db?foo=bar",
    "postgresql://u:top%40secret@h/db?foo=bar",
    "host=h user=u foo=bar password=topsecret",
    "postgresql://u@h/db?foo=bar&password=topsecret",
])
def test_unknown_parameter_error_has_no_password(uri):
    message = _error(uri)
    assert "foo" in message
    for form in ("topsecret", "top%40secret", "top@secret"):
        assert form not in message


@pytest.mark.parametrize("uri", [
    "host=h user=u password=topsecret foo=bar",
    "postgresql://u@h/db?password=topsecret&foo=bar",
])
def test_nothing_after_password_is_echoed_even_a_parameter_name(uri):
    message = _error(uri)
    assert "password=*** ..." in message
    assert "foo" not in message


def test_bad_percent_encoding_in_password_is_taken_literally_and_hidden():
    # SQLAlchemy (hence MLflow) keeps an invalid %-escape as it is; so do we.
    target = parse_target("postgresql://u:top%zzsecret@h/db")
    assert "top%zzsecret" in target.secrets
    assert "zzsecret" not in target.id + target.redacted
    assert target.scrub("password was top%zzsecret") == "password was ***"


@pytest.mark.parametrize("password", ["top/secret", "top?secret", "top#secret"])
def test_unencoded_special_characters_in_password_never_leak(password):
    uri = f"postgresql+psycopg2://mlflow:{password}@db.example/mlflow"
    try:
        target = parse_target(uri)
    except TargetError as exc:
        assert password not in str(exc)
    else:
        assert password not in _printable(target)


def test_a_one_letter_password_does_not_garble_the_error():
    with pytest.raises(TargetError) as info:
        parse_target("postgresql://u:p@h:x/db")
    assert str(info.value) == (
        "malformed database URI 'postgresql://u:***@h:x/db': port 'x' is not a number"
    )


# -- hostile input: long, awkward, not UTF-8, out of range -----------------------------
def _quick(fn, *args):
    """Run ``fn``; the bound is generous: it proves "does not hang", not speed."""
    import time

    started = time.monotonic()
    try:
        result = fn(*args)
    except TargetError as exc:
        result = exc
    assert time.monotonic() - started < 5, f"{fn.__name__} took too long"
    return result


AWKWARD = [
    "a" * 100_000,
    "=" * 100_000,
    "@" * 100_000,
    "a@" * 50_000,
    "a/" * 50_000,
    "a:" * 50_000,
    "password" * 12_500,
    " password" * 11_000,
    "'" * 100_000,
    "a'" * 50_000,
    "postgresql://" + "a" * 100_000,
    "postgresql://u:" + "a@" * 50_000,
    "postgresql://u:" + "@/" * 50_000,
    "postgresql://u:p@h/db?" + "a=" * 50_000,
    "x" + "a+" * 50_000,
    "host=h password='" + "\\'" * 50_000,
]


@pytest.mark.parametrize("text", AWKWARD, ids=lambda t: f"{t[:12]}x{len(t)}")
def test_masking_long_awkward_text_is_linear(text):
    from pytest_mlflowdb.config.targets import redact_text

    _quick(redact_text, text)
    _quick(scrub, text, ("topsecretpassword",))


@pytest.mark.parametrize("text", AWKWARD, ids=lambda t: f"{t[:12]}x{len(t)}")
def test_an_absurdly_long_uri_is_a_usage_error_at_once(text):
    error = _quick(parse_target, text)
    assert isinstance(error, TargetError)
    assert "long" in str(error)
    assert "\n" not in str(error) and len(str(error)) < 300


def test_a_long_but_sane_uri_is_still_accepted():
    target = parse_target("postgresql://u:" + "p" * 1000 + "@h/db?application_name=" + "a" * 3000)
    assert target.id == "h:5432/db"


@pytest.mark.parametrize("uri", [
    "postgresql://u:p\udcffw@h/db",
    "postgresql://\udcffu:pw@h/db",
    "host=h user=u password=p\udcffw",
])
def test_bytes_that_are_not_utf8_are_a_usage_error(uri):
    message = _error(uri)
    assert "UTF-8" in message
    assert "\udcff" not in message


@pytest.mark.parametrize("uri, shown", [
    ("postgresql://u:topsecret@h/db?sslmode=sometimes", "'sometimes'"),
    ("host=h sslmode=sometimes password=topsecret", "'sometimes'"),
    ("host=h password=topsecret sslmode=sometimes", "sslmode (hidden)"),
    ("postgresql://u:topsecret@h:99999/db", "99999"),
    ("postgresql://u:topsecret@h:0/db", "'0'"),
    ("host=h port=99999 password=topsecret", "99999"),
    ("host=h,g port=5432,70000 password=topsecret", "70000"),
])
def test_sslmode_and_port_out_of_range_are_usage_errors(uri, shown):
    message = _error(uri)
    assert shown in message
    assert "topsecret" not in message


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer", "require", "verify-ca",
                                     "verify-full"])
def test_every_libpq_sslmode_is_accepted(sslmode):
    assert parse_target(f"postgresql://h/db?sslmode={sslmode}").id == "h:5432/db"
    assert parse_target(f"host=h port=65535 sslmode={sslmode}").id.startswith("h:65535/")


def test_a_service_from_the_environment_names_its_host_and_database(monkeypatch, tmp_path):
    services = tmp_path / "pg_service.conf"
    services.write_text("# ours\n[audit]\nhost=db.example\nport=6543\ndbname=mlflow\n"
                        "user=auditor\n\n[other]\nhost=elsewhere\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGSERVICE", "audit")
    assert parse_target("postgresql://").id == "db.example:6543/mlflow"
    assert parse_target("user=u").id == "db.example:6543/mlflow"
    assert parse_target("postgresql://h2/db2").id == "h2:6543/db2"
    monkeypatch.delenv("PGSERVICE")
    monkeypatch.setenv("PGUSER", "me")
    assert parse_target("service=other").id == "elsewhere:5432/me"
    assert parse_target("service=audit").id == "db.example:6543/mlflow"


# -- a generated set of awkward passwords: refusals never show a piece of one ---------
SPECIALS = ["@", "/", "%", "#", "?", " ", ":", "'", "=", "&", "\\", "%zz", "%40", "@/", " @",
            "?@", "#/@"]


def _awkward_passwords() -> list[str]:
    import itertools

    # three distinct, unmistakable pieces with special characters between and around them
    found = []
    for before, between, after in itertools.product(["", "@", " ", "/"], SPECIALS,
                                                    ["", "@", "?", "'", " x"]):
        found.append(f"{before}Qx7{between}Kv9{between}Wj2{after}")
    return found


URI_FORMS = [
    "postgresql://mlflow:{pw}@db.example/mlflow?bogus=1",
    "postgresql+psycopg2://mlflow:{pw}@db.example:x/mlflow",
    "postgresql://mlflow:{pw}@db.example/mlflow?sslmode=sometimes",
    "postgres://mlflow:{pw}@db.example:99999/mlflow",
    "postgresql://mlflow:{pw}@db.example/mlflow",
    "postgresql://mlflow@db.example/mlflow?password={pw}&bogus=1",
]
KV_FORMS = [
    "host=db.example user=mlflow password={pw} bogus=1",
    "host=db.example password='{pw} dbname=x",
    "password={pw} port=x",
    "host=db.example PassWord = {pw}",
    "host=db.example sslpassword={pw} sslmode=sometimes",
]


def _pieces(password: str) -> list[str]:
    return [password[i:i + 4] for i in range(len(password) - 3)
            if password[i:i + 4].strip() and any(c.isalnum() for c in password[i:i + 4])]


@pytest.mark.parametrize("form", URI_FORMS + KV_FORMS)
def test_no_piece_of_an_awkward_password_is_ever_shown(form):
    leaks = []
    for password in _awkward_passwords():
        text = form.format(pw=password)
        try:
            target = parse_target(text)
        except TargetError as exc:
            shown = str(exc)
            assert "\n" not in shown
        else:
            shown = _printable(target)
        leaked = [p for p in _pieces(password) if p in shown]
        if leaked:
            leaks.append(f"{text!r} -> {shown!r}")
    assert not leaks, f"{len(leaks)} leaks, e.g.\n" + "\n".join(leaks[:5])


@pytest.mark.parametrize("uri", [
    "postgresql://mlflow:Qx7 Kv9@Wj2@db.example:x/mlflow",
    "postgresql://mlflow:Qx7%Kv9#Wj2?@db.example/mlflow?sslmode=sometimes",
    "host=db.example password='Qx7 Kv9 Wj2 dbname=mlflow",
    "host=db.example password=Qx7 Kv9 Wj2",
    "postgresql://u:p\udcffQx7Kv9@h/db",
    "host=db.example port=99999 password=Qx7Kv9Wj2",
])
def test_refused_uris_show_no_password_on_the_command_line(pytester, uri):
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri={uri}")
    assert result.ret == 4
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    for piece in ("Qx7", "Kv9", "Wj2"):
        assert piece not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize("text", [
    "password='Qx7Kv9 dbname=x",
    "host=h PASSWORD = 'Qx7Kv9\\' dbname=x",
    "postgresql://u:Qx7Kv9@h/db and password='Qx7Kv9",
])
def test_an_unclosed_quote_hides_everything_after_it_in_free_text(text):
    from pytest_mlflowdb.config.targets import redact_text

    assert "Qx7Kv9" not in redact_text(text)
