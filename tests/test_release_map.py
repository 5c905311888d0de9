"""Tests for tools/release_map.py and the releases.json it produced.

The tool is not part of the installed package, so it is loaded from its file path. The unit
tests use small synthetic inputs (no network); the catalog tests check the committed output,
so a regenerated releases.json that lost releases or broke the chain is caught in CI.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "release_map.py"
CATALOG = ROOT / "pytest_mlflowdb" / "catalog" / "data" / "releases.json"


def _load_tool():
    """Import tools/release_map.py by path; registered in sys.modules for its dataclasses."""
    spec = importlib.util.spec_from_file_location("release_map", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rm = _load_tool()


def _migration_file(rev: str, down: str | None, *, quote: str = '"', doc: bool = True) -> str:
    down_src = "None" if down is None else f"{quote}{down}{quote}"
    header = (
        f'"""add {rev} things\n\nRevision ID: {rev}\nRevises: {down or ""}\n'
        f'Create Date: 2020-01-02 03:04:05.000001\n\n"""\n'
        if doc
        else ""
    )
    return (
        f"{header}from alembic import op\n\n"
        f"# revision identifiers, used by Alembic.\n"
        f"revision = {quote}{rev}{quote}\n"
        f"down_revision = {down_src}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade():\n"
        "    revision = 'not-this-one'  # function-local, must be ignored\n"
        "    op.execute('select 1')\n"
    )


# ---------------------------------------------------------------------------- parsing


def test_parse_reads_revision_links_and_docstring():
    m = rm.parse_migration_source(_migration_file("bbb", "aaa"))
    assert m == rm.Migration("bbb", "aaa", "add bbb things", "2020-01-02 03:04:05.000001")


def test_parse_base_revision_single_quotes():
    m = rm.parse_migration_source(_migration_file("aaa", None, quote="'"))
    assert (m.revision, m.down_revision) == ("aaa", None)


def test_parse_annotated_assignments_and_one_tuple():
    src = (
        '"""x"""\nfrom typing import Union\n'
        'revision: str = "ccc"\n'
        'down_revision: Union[str, None] = ("bbb",)\n'
    )
    m = rm.parse_migration_source(src)
    assert (m.revision, m.down_revision, m.description, m.create_date) == ("ccc", "bbb", "x", None)


def test_parse_without_docstring():
    m = rm.parse_migration_source(_migration_file("aaa", None, doc=False))
    assert m.description is None and m.create_date is None


def test_parse_ignores_revision_ids_in_comments():
    src = '# revision = "fake"\nrevision = "real"\ndown_revision = None\n'
    assert rm.parse_migration_source(src).revision == "real"


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("down_revision = None\n", "no module-level `revision"),
        ('revision = "a"\n', "no module-level `down_revision"),
        ('revision = "a"\ndown_revision = ("b", "c")\n', "merge revision"),
        ('revision = "a"\ndown_revision = make()\n', "not a literal"),
        ("revision = (\n", "cannot parse"),
    ],
)
def test_parse_errors_are_explicit(source, match):
    with pytest.raises(rm.MigrationParseError, match=match):
        rm.parse_migration_source(source, "f.py")


# ---------------------------------------------------------------------------- chains


def test_order_chain_follows_links_not_input_order():
    pairs = [("c", "b"), ("a", None), ("d", "c"), ("b", "a")]
    assert rm.order_chain(pairs) == ["a", "b", "c", "d"]
    assert rm.find_heads(pairs) == ["d"]


def test_order_chain_empty_and_single():
    assert rm.order_chain([]) == []
    assert rm.order_chain([("a", None)]) == ["a"]


def test_order_chain_tolerates_identical_duplicates():
    assert rm.order_chain([("a", None), ("b", "a"), ("b", "a")]) == ["a", "b"]


def test_order_chain_fork_names_both_heads():
    pairs = [("a", None), ("b", "a"), ("c", "a")]
    assert rm.find_heads(pairs) == ["b", "c"]
    with pytest.raises(rm.ChainError, match=r"fork \(multiple heads b, c\): a <- b, c"):
        rm.order_chain(pairs)


def test_order_chain_two_bases_is_multiple_heads():
    with pytest.raises(rm.ChainError, match="multiple heads a2, b1"):
        rm.order_chain([("a1", None), ("a2", "a1"), ("b1", None)])


def test_order_chain_cycle_without_base():
    with pytest.raises(rm.ChainError, match="cycle"):
        rm.order_chain([("a", "c"), ("b", "a"), ("c", "b")])


def test_order_chain_cycle_detached_from_base():
    with pytest.raises(rm.ChainError, match="cycle: revisions x, y"):
        rm.order_chain([("a", None), ("b", "a"), ("x", "y"), ("y", "x")])


def test_order_chain_dangling_down_revision():
    with pytest.raises(rm.ChainError, match="zzz .*named by b"):
        rm.order_chain([("a", None), ("b", "zzz")])


def test_order_chain_conflicting_duplicate():
    with pytest.raises(rm.ChainError, match="appears twice"):
        rm.order_chain([("a", None), ("b", "a"), ("b", None)])


# ---------------------------------------------------------------------------- releases


def test_heads_per_release_and_first_releases():
    releases = {
        "1.10.0": [("a", None), ("b", "a"), ("c", "b")],
        "1.2.0": [("a", None)],
        "1.9.1": [("a", None), ("b", "a")],
    }
    assert rm.heads_per_release(releases) == {"1.2.0": "a", "1.9.1": "b", "1.10.0": "c"}
    revs = {v: [r for r, _ in pairs] for v, pairs in releases.items()}
    assert rm.first_releases(revs) == {"a": "1.2.0", "b": "1.9.1", "c": "1.10.0"}


def test_heads_per_release_names_broken_release():
    with pytest.raises(rm.ChainError, match="release 2.0.0: fork"):
        rm.heads_per_release({"1.0.0": [("a", None)], "2.0.0": [("a", None), ("b", "a"),
                                                                ("c", "a")]})
    with pytest.raises(rm.ChainError, match="release 3.0.0: no tracking migrations"):
        rm.heads_per_release({"3.0.0": []})


def test_parse_available_versions_skips_warnings():
    out = (
        "WARNING: Location 'file:///opt/pypi-more/simple/x/' is ignored: it is neither\n"
        "mlflow (2.0.1)\n"
        "Available versions: 2.0.1, 1.13, 1.0.0\n"
        "  INSTALLED: 2.0.1\n"
        "  LATEST:    2.0.1\n"
    )
    assert rm.parse_available_versions(out) == ["2.0.1", "1.13", "1.0.0"]
    with pytest.raises(ValueError):
        rm.parse_available_versions("ERROR: No matching distribution found")


def test_is_stable():
    assert rm.is_stable("1.0.0") and rm.is_stable("1.13") and rm.is_stable("2.0.0.post1")
    assert not any(map(rm.is_stable, ["2.0.0rc0", "1.0.0.dev1", "3.0.0b1", "nonsense!"]))


def test_plan_sources_prefers_skinny_and_covers_either_package():
    available = {
        "mlflow-skinny": ["3.1.0", "2.0.0", "1.14.0", "3.2.0rc1"],
        "mlflow": ["3.2.0", "3.1.0", "2.0.1", "1.14.0", "1.13", "0.9.1"],
    }
    plan = rm.plan_sources(available, "1.0.0")
    assert plan == {
        "1.13": ["mlflow"],
        "1.14.0": ["mlflow-skinny", "mlflow"],
        "2.0.0": ["mlflow-skinny"],
        "2.0.1": ["mlflow"],
        "3.1.0": ["mlflow-skinny", "mlflow"],
        "3.2.0": ["mlflow"],
    }
    assert list(plan) == sorted(plan, key=Version)
    assert list(rm.plan_sources(available, "3.0.0")) == ["3.1.0", "3.2.0"]


def test_tracking_sources_excludes_other_chains():
    names = [
        "mlflow/store/db_migrations/versions/__init__.py",
        "mlflow/store/db_migrations/versions/aaa_x.py",
        "mlflow/store/db_migrations/versions/sub/bbb_y.py",
        "mlflow/store/db_migrations/env.py",
        "mlflow/server/auth/db/migrations/versions/8606fa83a998_initial.py",
        "mlflow/temporary_db_migrations_for_pre_1_users/versions/ff01_x.py",
        "mlflow/alembic/versions/old_z.py",
    ]
    assert rm.tracking_sources(dict.fromkeys(names)) == [
        "mlflow/store/db_migrations/versions/aaa_x.py"
    ]
    assert rm.tracking_sources(dict.fromkeys(names[-2:])) == ["mlflow/alembic/versions/old_z.py"]


def test_read_archive_sources_wheel_and_sdist(tmp_path):
    files = {
        "mlflow/store/db_migrations/versions/aaa_x.py": _migration_file("aaa", None),
        "mlflow/store/db_migrations/versions/bbb_y.py": _migration_file("bbb", "aaa"),
        "mlflow/server/auth/db/migrations/versions/zzz.py": _migration_file("zzz", None),
    }
    wheel = tmp_path / "mlflow_skinny-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, src in files.items():
            zf.writestr(name, src)
    sdist = tmp_path / "mlflow-9.9.9.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        for name, src in files.items():
            data = src.encode()
            info = tarfile.TarInfo(f"mlflow-9.9.9/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    for archive in (wheel, sdist):
        sources = rm.read_archive_sources(archive)
        assert sorted(sources) == sorted(list(files)[:2])
        migs = [rm.parse_migration_source(s) for s in sources.values()]
        assert rm.order_chain((m.revision, m.down_revision) for m in migs) == ["aaa", "bbb"]


def _scan(version, chain):
    migs = [rm.Migration(r, d, f"desc {r}", None) for r, d in chain]
    return rm.ReleaseScan(version, "mlflow-skinny", f"x-{version}.whl", migs)


def test_build_catalog_shape_and_notes():
    a, b, c = ("a", None), ("b", "a"), ("c", "b")
    data, notes = rm.build_catalog(
        [_scan("1.1.0", [a, b]), _scan("1.0.0", [a]), _scan("1.1.1", [a, b, c])]
    )
    assert data["generated_by"] == "tools/release_map.py"
    assert data["releases"] == {"1.0.0": "a", "1.1.0": "b", "1.1.1": "c"}
    assert [r["revision"] for r in data["revisions"]] == ["a", "b", "c"]
    assert data["revisions"][2] == {
        "revision": "c", "down_revision": "b", "description": "desc c",
        "create_date": None, "first_release": "1.1.1",
    }
    assert notes == ["revision c first appeared in patch release 1.1.1"]


def test_build_catalog_reports_removed_revision():
    _, notes = rm.build_catalog(
        [_scan("1.0.0", [("a", None), ("b", "a")]), _scan("1.1.0", [("a", None)])]
    )
    assert any("missing from later releases 1.1.0" in n for n in notes)
    assert any("head goes backwards" in n for n in notes)


# ---------------------------------------------------------------------------- the real catalog


@pytest.fixture(scope="module")
def catalog() -> dict:
    return json.loads(CATALOG.read_text(encoding="utf-8"))


def test_catalog_covers_releases(catalog):
    releases = catalog["releases"]
    assert catalog["generated_by"] == "tools/release_map.py"
    assert len(releases) > 100
    assert "1.0.0" in releases and "3.17.2" in releases
    assert releases["3.17.2"] == "dc11669786a5"


def test_catalog_chain_is_linear_from_base(catalog):
    revisions = catalog["revisions"]
    assert revisions[0]["revision"] == "451aebb31d03"
    assert revisions[0]["down_revision"] is None
    for prev, cur in zip(revisions, revisions[1:], strict=False):
        assert cur["down_revision"] == prev["revision"], cur
    assert len({r["revision"] for r in revisions}) == len(revisions)


def test_catalog_first_release_is_consistent(catalog):
    releases = catalog["releases"]
    index = {r["revision"]: i for i, r in enumerate(catalog["revisions"])}
    for rev in catalog["revisions"]:
        assert rev["first_release"] in releases
        # the release that introduced a revision is at or past it in the chain
        assert index[releases[rev["first_release"]]] >= index[rev["revision"]]


def test_catalog_heads_are_in_chain_and_monotonic_per_series(catalog):
    index = {r["revision"]: i for i, r in enumerate(catalog["revisions"])}
    series: dict[tuple[int, int], list[str]] = defaultdict(list)
    for version, head in catalog["releases"].items():
        assert head in index, (version, head)
        v = Version(version)
        series[(v.major, v.minor)].append(version)
    for versions in series.values():
        ordered = sorted(versions, key=Version)
        positions = [index[catalog["releases"][v]] for v in ordered]
        assert positions == sorted(positions), ordered
