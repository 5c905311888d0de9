"""Under xdist each target's checks run on one worker over one session (group by target).

Measured for real: team checks record the backend pid of the session they ran on, so
the report shows how many sessions each target was audited over.
"""

from __future__ import annotations

import pytest
from helpers import report

BACKEND_CHECKS = """
    import os

    from pytest_mlflowdb import check

    def _make(n):
        @check(f"team.backend{n}")
        def test(mlflowdb, mlflowdb_findings):
            pid = mlflowdb.value("SELECT pg_backend_pid()")
            mlflowdb_findings.info("session", "backend pid", pid)
            mlflowdb_findings.info("worker", "xdist worker", os.environ["PYTEST_XDIST_WORKER"])
        test.__name__ = f"test_backend{n}"
        return test

    for n in range(16):
        globals()[f"test_backend{n}"] = _make(n)
"""


def _by_target(document: dict, index: int) -> dict[str, set]:
    """The values of the team checks' ``index``th finding (0: backend pid, 1: worker)."""
    found: dict[str, set] = {}
    for check in document["checks"]:
        if check["id"].startswith("team.backend"):
            found.setdefault(check["target"], set()).add(check["findings"][index]["value"])
    return found


@pytest.mark.parametrize("dist", [[], ["--dist", "loadgroup"]], ids=["default", "loadgroup"])
def test_each_target_is_audited_over_one_session_with_two_workers(
        pytester, mlflowdb_database_factory, dist):
    first, second = mlflowdb_database_factory(), mlflowdb_database_factory()
    pytester.makepyfile(test_team=BACKEND_CHECKS)
    json_path = pytester.path / "a.json"
    result = pytester.runpytest_subprocess(
        "-n", "2", *dist, f"--mlflowdb-uri={first}", f"--mlflowdb-uri={second}",
        f"--mlflowdb-report={json_path}", "-p", "no:randomly")
    assert result.ret == 0, result.stdout.str()
    document = report(json_path)
    pids = _by_target(document, 0)
    assert sorted(pids) == sorted(t["id"] for t in document["targets"])
    assert all(len(found) == 1 for found in pids.values()), pids
    assert len(set.union(*pids.values())) == 2  # two sessions, one per target
    # both workers worked: the targets were split between them, not run one after another
    workers = _by_target(document, 1)
    assert all(len(found) == 1 for found in workers.values()), workers
    assert len(set.union(*workers.values())) == 2, workers
    if not dist:  # the default grouping leaves node ids (JUnit names, --lf) as they were
        assert not any("@" in c["nodeid"] for c in document["checks"])
