"""The terminal summary is compact by default: problems first with their remedies, one
line per area, an unreachable target in one line, lines within the width; the full
table with ``-v`` or ``--mlflowdb-verbose``."""

from __future__ import annotations

import re
import socket

from helpers import audit, sql

REDUNDANT = ("CREATE INDEX team_params_value ON params (value)",
             "CREATE INDEX team_params_value_again ON params (value)")


def _section(result) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "mlflowdb audit" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("mlflowdb: "))
    return lines[start + 1:end + 1]


def test_problems_first_then_one_line_per_area_within_the_width(pytester, mlflow_uri,
                                                                monkeypatch):
    sql(mlflow_uri, *REDUNDANT)
    monkeypatch.setenv("COLUMNS", "100")
    result, checks = audit(pytester, mlflow_uri)
    section = _section(result)
    assert all(len(line) <= 100 for line in section), [ln for ln in section if len(ln) > 100]
    body = [line for line in section if line.strip()]
    assert body[0].startswith("target ")
    # the problems come right after the header, each with its remedies
    first = next(i for i, line in enumerate(body) if line.startswith("  WARNED "))
    assert all(line.startswith("    ") for line in body[1:first])  # the header, wrapped
    problems = body[first:]
    assert any(line.startswith("  WARNED indexes.redundant: ") for line in problems)
    remedy = next(f for f in checks["indexes.redundant"]["findings"] if f.get("remedy"))
    assert any(line.startswith(f"      {remedy['object']} remedy: ") for line in body)
    # then one line per area, and no row per passing check
    areas = sorted({c.split(".")[0] for c in checks})
    area_lines = [line for line in problems if line.startswith("  ") and not
                  line.startswith(("  WARNED", "      ", "  note:"))]
    assert sorted(line.split()[0] for line in area_lines) == areas
    connectivity = next(line for line in area_lines if line.split()[0] == "connectivity")
    passed = sum(c["outcome"] == "passed" for i, c in checks.items()
                 if i.startswith("connectivity."))
    assert f"{passed} passed" in connectivity
    assert not any("connectivity.latency" in line for line in body)
    assert "check    outcome" not in "\n".join(section)
    assert body[-1].endswith("(every check: -v or --mlflowdb-verbose)")
    assert len(body) < 40  # one screen


def test_verbose_shows_the_full_table(pytester, mlflow_uri):
    for flag in ("-v", "--mlflowdb-verbose"):
        result, checks = audit(pytester, mlflow_uri, flag)
        section = "\n".join(_section(result))
        assert "check" in section and "outcome" in section
        for check_id in checks:
            assert check_id in section, (flag, check_id)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_target_is_one_line(pytester, mlflow_uri):
    port = _closed_port()
    dead = f"postgresql://nobody@127.0.0.1:{port}/mlflow"
    result = pytester.runpytest(f"--mlflowdb-uri={mlflow_uri}", f"--mlflowdb-uri={dead}",
                                "--mlflowdb-connect-timeout=2s")
    section = _section(result)
    (start,) = [i for i, line in enumerate(section)
                if line.startswith(f"target 127.0.0.1:{port}/mlflow: ")]
    assert re.fullmatch(r"target \S+: 1 failed, \d+ skipped", section[start])
    assert section[start + 1].startswith("  unreachable: connection failed: ")
    assert "Connection refused" in " ".join(section[start + 1:start + 3])
    # then the summary across targets: no row per check of the unreachable target
    rest = section[start + 2:section.index("summary across targets")]
    assert all(line.startswith("    ") or not line.strip() for line in rest), rest
    assert len(rest) <= 2
