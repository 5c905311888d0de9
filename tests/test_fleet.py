"""A fleet file (--mlflowdb-uri-file): many targets, passwords from the environment, and
every report handling several targets (per-target tables, a summary across targets, the
JSON report's targets in input order)."""

from __future__ import annotations

import pytest
from helpers import dbname_of, report

PASSWORD_VAR = "MLFLOWDB_FLEET_PASSWORD"


def _target_id(server, uri: str) -> str:
    return f"{server.host}:{server.port}/{dbname_of(uri)}"


def _templated(server, uri: str, braced: bool = True) -> str:
    """``uri`` with its password replaced by a reference to an environment variable."""
    variable = f"${{{PASSWORD_VAR}}}" if braced else f"${PASSWORD_VAR}"
    return f"postgresql://{server.user}:{variable}@{server.host}:{server.port}/{dbname_of(uri)}"


def _table_rows(markdown: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith("|")]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_fleet_file_targets_follow_the_command_line_in_input_order(
        pytester, monkeypatch, pg18, mlflowdb_database_factory, workers):
    first, second, third = (mlflowdb_database_factory() for _ in range(3))
    monkeypatch.setenv(PASSWORD_VAR, pg18.password)
    fleet = pytester.path / "fleet.txt"
    fleet.write_text(f"# the team databases\n\n{_templated(pg18, third)}\n"
                     f"   # indented comment\n{_templated(pg18, second, braced=False)}\n"
                     f"{first}\n")  # the command line's target again: audited once
    json_path, md_path = pytester.path / "fleet.json", pytester.path / "fleet.md"
    result = pytester.runpytest_subprocess(
        *workers, f"--mlflowdb-uri={first}", f"--mlflowdb-uri-file={fleet}",
        f"--mlflowdb-report={json_path}", f"--mlflowdb-report={md_path}")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, output
    document = report(json_path)
    ids = [_target_id(pg18, uri) for uri in (first, third, second)]
    assert [t["id"] for t in document["targets"]] == ids
    assert all(t["server_version"] for t in document["targets"])
    per_target = {i: [c for c in document["checks"] if c["target"] == i] for i in ids}
    assert len({len(checks) for checks in per_target.values()}) == 1
    assert [c["target"] for c in document["checks"]] == [
        i for i in ids for _ in per_target[i]]
    markdown = md_path.read_text()
    for target_id, checks in per_target.items():
        counts = {o: sum(c["outcome"] == o for c in checks)
                  for o in ("passed", "warned", "failed", "skipped")}
        assert [f"`{target_id}`", *map(str, counts.values())] in _table_rows(markdown)
        assert f"## {target_id}" in markdown
        assert any(line.split()[:5] == [target_id, *map(str, counts.values())]
                   for line in result.stdout.lines), output
    assert "summary across targets" in output
    assert pg18.password not in output + json_path.read_text() + markdown


def test_one_target_has_no_summary_across_targets(pytester, mlflow_uri):
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", "-k", "connect")
    assert result.ret == 0
    assert "summary across targets" not in result.stdout.str()


def test_ini_fleet_file_is_relative_to_the_ini_file(pytester, monkeypatch, pg18, mlflow_uri):
    monkeypatch.setenv(PASSWORD_VAR, pg18.password)
    (pytester.path / "ops").mkdir()
    (pytester.path / "ops" / "fleet.txt").write_text(_templated(pg18, mlflow_uri) + "\n")
    pytester.makeini("[pytest]\nmlflowdb_uri_file = ops/fleet.txt\n")
    json_path = pytester.path / "a.json"
    result = pytester.runpytest(f"--mlflowdb-report={json_path}", "-k", "connect")
    assert result.ret == 0, result.stdout.str()
    assert [t["id"] for t in report(json_path)["targets"]] == [_target_id(pg18, mlflow_uri)]


SECRET = "Fl33t-pw-not-to-show"


@pytest.mark.parametrize(("content", "message"), [
    (f"postgresql://u:{SECRET}@h/db\npostgresql://u:${{NOT_SET_VAR}}@h/db\n",
     "fleet.txt:2: the environment variable NOT_SET_VAR is not set"),
    (f"\n# c\npostgresql://u:{SECRET}@h:99999/db\n",
     "fleet.txt:3: malformed database URI 'postgresql://***@h:99999/db': port*out of range*"),
    ("mysql://u:pw@h/db\n", "fleet.txt:1: unsupported URI scheme 'mysql'*"),
    (f"host=h password={SECRET}$oops dbname=x\n",
     "fleet.txt:1: the password holds a $ that names no environment variable*"),
    ("# only comments\n\n", "fleet.txt: no target in it*"),
], ids=["missing-variable", "bad-port", "bad-scheme", "literal-dollar", "empty"])
def test_a_bad_fleet_file_is_one_usage_line_naming_file_and_line(pytester, content, message):
    (pytester.path / "fleet.txt").write_text(content)
    result = pytester.runpytest_subprocess("--mlflowdb-uri-file=fleet.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    result.stderr.fnmatch_lines([f"*--mlflowdb-uri-file (command line): {message}"])
    assert SECRET not in result.stdout.str() + result.stderr.str()
    assert "oops" not in result.stderr.str()


def test_a_missing_fleet_file_is_a_usage_error(pytester):
    result = pytester.runpytest_subprocess("--mlflowdb-uri-file=nowhere.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mlflowdb-uri-file (command line): cannot read "
                                 "nowhere.txt: No such file*"])


def test_an_expanded_password_never_shows_in_a_refusal(pytester, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, SECRET)
    (pytester.path / "fleet.txt").write_text(f"host=h port=${{{PASSWORD_VAR}}}\n")
    result = pytester.runpytest_subprocess("--mlflowdb-uri-file=fleet.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fleet.txt:1: malformed database URI*port '***' is not a*"])
    assert SECRET not in result.stdout.str() + result.stderr.str()


#: every character with a meaning in a URI or a key=value string, alone in a secret
SPECIAL = ("%41", "#", "?", "@", "/", ":", " ", "&", "=", "'", "\\")
FORMS = {
    "userinfo": "postgresql://{user}:${{{var}}}@{host}:{port}/{db}",
    "query": "postgresql://{user}@{host}:{port}/{db}?connect_timeout=10&password=${{{var}}}",
    "keyvalue": "host={host} port={port} dbname={db} user={user} password=${{{var}}}",
}


@pytest.mark.parametrize("form", FORMS)
def test_an_expanded_secret_is_taken_literally_wherever_it_lands(pytester, monkeypatch,
                                                                 pg18, form):
    """A secret holding %41, #, ?, @... is that password, not another one or a refusal:
    each line's role was created with exactly the secret, and the audit logs in as it."""
    from psycopg import sql

    names = [f"fleet_{form}_{i}" for i in range(len(SPECIAL))]
    secrets = [f"Pw{c}Sec{i}" for i, c in enumerate(SPECIAL)]
    lines = []
    with pg18.admin() as conn:
        for i, (name, secret) in enumerate(zip(names, secrets, strict=True)):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(secret)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)))
            monkeypatch.setenv(f"FLEET_SECRET_{i}", secret)
            lines.append(FORMS[form].format(user=name, var=f"FLEET_SECRET_{i}",
                                            host=pg18.host, port=pg18.port, db=name))
    try:
        (pytester.path / "fleet.txt").write_text("\n".join(lines) + "\n")
        json_path = pytester.path / "fleet.json"
        result = pytester.runpytest("--mlflowdb-uri-file=fleet.txt", "-k", "connect",
                                    f"--mlflowdb-report={json_path}")
        output = result.stdout.str() + result.stderr.str()
        document = report(json_path)
        connected = {c["target"]: c["outcome"] for c in document["checks"]
                     if c["id"] == "connectivity.connect"}
        assert connected == {f"{pg18.host}:{pg18.port}/{n}": "passed" for n in names}, output
        for secret in secrets:
            assert secret not in output + json_path.read_text()
    finally:
        with pg18.admin() as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _fifo(path):
    import os

    os.mkfifo(path)
    return path


@pytest.mark.parametrize("what", ["fifo", "dev-zero", "huge"])
def test_a_fleet_file_that_is_no_regular_file_is_refused_quickly(pytester, what):
    """A FIFO would block the run, /dev/zero read until memory runs out: refused unread."""
    from pytest_mlflowdb.config.fleet import MAX_BYTES

    if what == "fifo":
        path, words = str(_fifo(pytester.path / "fleet.txt")), "is a FIFO (named pipe)"
    elif what == "dev-zero":
        path, words = "/dev/zero", "is a character device"
    else:
        path, words = "fleet.txt", f"is {8 * MAX_BYTES} bytes; more than {MAX_BYTES}"
        with open(pytester.path / path, "wb") as handle:
            handle.truncate(8 * MAX_BYTES)
    result = pytester.runpytest_subprocess(f"--mlflowdb-uri-file={path}", timeout=60)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and words in errors[0], errors
