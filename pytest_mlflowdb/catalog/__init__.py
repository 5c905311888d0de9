"""The expected MLflow schema per alembic revision, and which releases carry which revision.

Shipped data, made by the scripts in ``tools/`` from MLflow's real migrations and real
release archives (never from MLflow's SQLAlchemy models):

- ``data/releases.json``: every MLflow release's head revision, and the revision chain
  in link order (``tools/release_map.py``);
- ``data/schemas.json.xz``: the schema after each revision (``tools/build_catalog.py``),
  each kept as JSON text and parsed only when asked for (an audit needs one or two of
  some seventy), with the union of every revision's tables and indexes made beside them.
  Parsing them all would make tens of thousands of objects for every garbage collection
  of the audit's process to walk.

Order is always by the chain's links, never by date.
"""

from __future__ import annotations

import functools
import json
import lzma
from dataclasses import dataclass
from importlib import resources

from packaging.version import InvalidVersion, Version

from pytest_mlflowdb.catalog.model import Index, Snapshot

# Migrations that move data (their cost grows with the rows they touch), from MLflow's
# migration scripts; index builds and rebuilt keys are found from the schemas themselves.
DATA_MIGRATIONS: dict[str, list[tuple[str, str]]] = {
    "90e64c465722": [("runs", "copies runs.user_id into an mlflow.user tag for every run, "
                              "loading each run through the ORM")],
    "89d4b8295536": [("metrics", "fills latest_metrics from the whole metrics table")],
    "75868b020152": [
        ("trace_info", "backfills trace analytics and costs into every trace_info row"),
        ("spans", "backfills span costs and models into every spans row"),
        ("assessments", "backfills assessment analytics into every assessments row"),
    ],
    "dc11669786a5": [("jobs", "updates existing jobs rows for the new executor columns")],
}


@dataclass(frozen=True)
class Heavy:
    """Why a migration is slow or blocking on a big database, and which table it touches."""

    table: str | None
    note: str


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    description: str
    first_release: str | None


class CatalogError(LookupError):
    """A release or revision the catalog does not know; the message says which."""


class Catalog:
    def __init__(self, schemas: dict, releases: dict) -> None:
        #: revision -> its schema as JSON text (or an already decoded dict)
        self._schemas: dict[str, str | dict] = {
            r["revision"]: r["schema"] for r in schemas.get("revisions", [])}
        self._parsed: dict[str, Snapshot] = {}
        self._all_indexes: set[tuple[str, str]] | None = None
        self._all_tables: frozenset[str] | None = (
            frozenset(schemas["mlflow_tables"]) if "mlflow_tables" in schemas else None)
        self._index_rows: list | None = schemas.get("mlflow_indexes")
        self.base = Snapshot.from_json(schemas["base"]) if schemas.get("base") else None
        self.made_with = schemas.get("mlflow_version")
        chain = releases.get("revisions") or [
            {"revision": r["revision"], "down_revision": r["down_revision"],
             "description": r.get("description", ""), "first_release": None}
            for r in schemas.get("revisions", [])
        ]
        self.chain = [Revision(r["revision"], r["down_revision"], r.get("description", ""),
                               r.get("first_release")) for r in chain]
        self._position = {r.revision: i for i, r in enumerate(self.chain)}
        self.releases: dict[str, str] = dict(releases.get("releases", {}))
        self._releases_for: dict[str, list[str]] = {}

    # -- revisions ------------------------------------------------------------------------
    def knows(self, revision: str) -> bool:
        return revision in self._position

    def position(self, revision: str) -> int:
        try:
            return self._position[revision]
        except KeyError:
            raise CatalogError(f"revision {revision!r} is not in any released MLflow") from None

    @property
    def head(self) -> str:
        return self.chain[-1].revision

    def revision(self, revision: str) -> Revision:
        return self.chain[self.position(revision)]

    def between(self, current: str, target: str) -> list[Revision]:
        """Revisions applied when upgrading from ``current`` to ``target`` (in order)."""
        start, end = self.position(current), self.position(target)
        return self.chain[start + 1:end + 1]

    # -- releases -------------------------------------------------------------------------
    def releases_for(self, revision: str) -> list[str]:
        """Releases whose head is ``revision``, oldest first."""
        if revision not in self._releases_for:
            self._releases_for[revision] = sorted(
                (v for v, r in self.releases.items() if r == revision), key=_version_key)
        return list(self._releases_for[revision])

    def head_for_release(self, version: str) -> str:
        if version in self.releases:
            return self.releases[version]
        wanted = _version_key(version)
        for known, revision in self.releases.items():
            if _version_key(known) == wanted:  # "1.13" is "1.13.0"
                return revision
        ordered = sorted(self.releases, key=_version_key)
        newest = ordered[-1] if ordered else "none"
        raise CatalogError(f"MLflow {version} is not a release the catalog knows "
                           f"(known: {ordered[0] if ordered else 'none'} to {newest})")

    @property
    def newest_release(self) -> str | None:
        return max(self.releases, key=_version_key) if self.releases else None

    # -- schemas --------------------------------------------------------------------------
    def has_schema(self, revision: str) -> bool:
        return revision in self._schemas

    def schema_at(self, revision: str) -> Snapshot:
        if revision not in self._schemas:
            raise CatalogError(
                f"no schema for revision {revision!r} in the catalog (made with MLflow "
                f"{self.made_with}); refresh it with tools/build_catalog.py"
            )
        if revision not in self._parsed:
            self._parsed[revision] = Snapshot.from_json(_decoded(self._schemas[revision]))
        return self._parsed[revision]

    def mlflow_tables(self) -> frozenset[str]:
        """Every table any revision of MLflow makes."""
        if self._all_tables is None:
            self._all_tables = frozenset(
                t for raw in self._schemas.values() for t in _decoded(raw)["tables"])
        return self._all_tables

    def introduced_after(self, revision: str, live: Snapshot) -> dict[str, str]:
        """Tables of ``live`` that MLflow makes only after ``revision``, with all the
        columns MLflow gives them (table -> revision that makes it). Their presence means
        alembic_version was rewound; a hand-made table that merely shares a name (say
        ``skills``) does not count."""
        found: dict[str, str] = {}
        have = set(self.schema_at(revision).tables)
        for later in self.chain[self.position(revision) + 1:]:
            if not self.has_schema(later.revision):
                continue
            snapshot = self.schema_at(later.revision)
            for table in snapshot.tables:
                if table in live.tables and table not in have and table not in found \
                        and set(snapshot.columns(table)) <= set(live.columns(table)):
                    found[table] = later.revision
        return found

    def mlflow_indexes(self) -> set[tuple[str, str]]:
        """(name, signature) of every index any revision of MLflow makes."""
        if self._all_indexes is None:
            rows = self._index_rows if self._index_rows is not None else union_of_indexes(
                _decoded(raw) for raw in self._schemas.values())
            self._all_indexes = {(i.name, i.signature) for i in map(Index.from_row, rows)}
        return self._all_indexes

    def heavy(self, revision: str) -> list[Heavy]:
        """What makes ``revision`` slow or blocking on a big database."""
        notes = [Heavy(table, note) for table, note in DATA_MIGRATIONS.get(revision, [])]
        previous = self.revision(revision).down_revision
        if previous is None or not (self.has_schema(revision) and self.has_schema(previous)):
            return notes
        before, after = self.schema_at(previous), self.schema_at(revision)
        old = {i.signature for i in before.indexes}
        for index in after.indexes:
            if index.signature not in old and index.table in before.tables:
                notes.append(Heavy(index.table, f"builds index {index.name} on {index.table} "
                                   "without CONCURRENTLY (blocks writes until it finishes)"))
        was = {x.signature for x in before.constraints}
        for c in after.constraints:
            if c.type == "f" and c.signature not in was and c.table in before.tables:
                notes.append(Heavy(c.table, f"adds foreign key {c.name} on {c.table} "
                                   "(validates every row)"))
        for table, columns in after.tables.items():
            old_cols = before.columns(table)
            for col in columns:
                prior = old_cols.get(col.name)
                if prior is not None and prior.type != col.type and not _cheap_type_change(
                        prior.type, col.type):
                    notes.append(Heavy(table, f"changes {table}.{col.name} from {prior.type} "
                                       f"to {col.type} (rewrites {table})"))
        return notes


def _cheap_type_change(old: str, new: str) -> bool:
    """Widening varchar or varchar -> text needs no table rewrite in PostgreSQL."""
    def length(t: str) -> int | None:
        if t == "text":
            return 10**9
        if t.startswith("character varying(") and t.endswith(")"):
            return int(t[len("character varying("):-1])
        return None

    old_len, new_len = length(old), length(new)
    return old_len is not None and new_len is not None and new_len >= old_len


def _decoded(schema: str | dict) -> dict:
    return json.loads(schema) if isinstance(schema, str) else schema


def union_of_indexes(schemas) -> list:
    """The distinct index rows (``Snapshot.to_json`` form) of the given schemas, in a
    stable order."""
    distinct = {json.dumps(i) for schema in schemas for i in schema["indexes"]}
    return [json.loads(i) for i in sorted(distinct)]


def packed(document: dict) -> dict:
    """``tools/build_catalog.py``'s document as shipped: each revision's schema as compact
    JSON text, and the union of every revision's tables and indexes beside them."""
    schemas = [_decoded(r["schema"]) for r in document.get("revisions", [])]
    return {
        **document,
        "revisions": [{**r, "schema": json.dumps(schema, sort_keys=True,
                                                 separators=(",", ":"))}
                      for r, schema in zip(document.get("revisions", []), schemas, strict=True)],
        "mlflow_tables": sorted({t for schema in schemas for t in schema["tables"]}),
        "mlflow_indexes": union_of_indexes(schemas),
    }


def _version_key(version: str):
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The shipped catalog (read once per process)."""
    data = resources.files(__name__).joinpath("data")
    schemas_file = data.joinpath("schemas.json.xz")
    schemas = json.loads(lzma.decompress(schemas_file.read_bytes())) if schemas_file.is_file() \
        else {}
    releases_file = data.joinpath("releases.json")
    releases = json.loads(releases_file.read_text()) if releases_file.is_file() else {}
    return Catalog(schemas, releases)


def installed_mlflow() -> str | None:
    """The release of the MLflow installed beside this plugin (``mlflow-skinny`` or
    ``mlflow``), or None: what throwaway databases are migrated with."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("mlflow-skinny", "mlflow"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return None
