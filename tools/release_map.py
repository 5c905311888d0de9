#!/usr/bin/env python3
"""Map every released MLflow version to the head alembic revision of its tracking store.

Why this exists: pytest-mlflowdb audits a live MLflow database, and the only reliable way to
tell which MLflow release created (or last migrated) a schema is the ``alembic_version`` row.
Turning that revision into "MLflow 2.9.x" needs a table built from the *published* release
archives, not from memory or a git checkout (tags, cherry-picks and patch releases make those
disagree). So this script asks PyPI (through pip) for every stable release, downloads each
archive once into a cache, reads the migration files straight out of the zip/tar without
installing anything, parses them with ``ast`` and writes
``pytest_mlflowdb/catalog/data/releases.json``.

Usage::

    python tools/release_map.py [--cache DIR] [--out PATH] [--min-version 1.0.0]

The pure pieces (parsing one migration file, ordering a chain, heads per release, first
release per revision, choosing a package per version) take plain values so the unit tests
can exercise them on small synthetic inputs without the network.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

# Where the tracking-store chain lives inside the package, newest layout first. MLflow 1.0.0
# shipped it under mlflow/alembic/; later releases under mlflow/store/db_migrations/. Other
# alembic chains (the auth server's, the "temporary pre-1.0" one) live elsewhere and must not
# be mixed in, so only files *directly* inside these folders count.
TRACKING_DIRS = ("mlflow/store/db_migrations/versions", "mlflow/alembic/versions")

SKINNY = "mlflow-skinny"
FULL = "mlflow"
# mlflow-skinny is a fraction of the size of mlflow and carries the same migrations, so it is
# preferred wherever it was published (1.14.0 onward).
PACKAGES = (SKINNY, FULL)

ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "pytest_mlflowdb" / "catalog" / "data" / "releases.json"
DEFAULT_CACHE = Path("~/.cache/pytest-mlflowdb/wheels")
GENERATED_BY = "tools/release_map.py"
MAX_WORKERS = 4


class MigrationParseError(ValueError):
    """A versions file that does not look like an alembic revision: fail loudly, never guess."""


class ChainError(ValueError):
    """The revisions do not form one linear chain (fork, several heads, cycle, dangling link)."""


@dataclass(frozen=True)
class Migration:
    """What the catalog needs from one alembic versions file."""

    revision: str
    down_revision: str | None
    description: str | None
    create_date: str | None


@dataclass
class ReleaseScan:
    """The outcome of examining one release: which archive was read and what it contained."""

    version: str
    project: str
    archive: str
    migrations: list[Migration]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Pure logic (unit-tested without network)
# --------------------------------------------------------------------------------------------


def _literal_revision(node: ast.expr, name: str, filename: str) -> str | None:
    """Evaluate a revision literal; alembic allows a 1-tuple, but a merge (2+) is not linear."""
    try:
        value = ast.literal_eval(node)
    except ValueError as exc:
        raise MigrationParseError(f"{filename}: {name} is not a literal") from exc
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            value = value[0]
        elif len(value) == 0:
            value = None
        else:
            raise MigrationParseError(
                f"{filename}: {name} = {value!r} is a merge revision; the tracking chain "
                "is expected to be linear"
            )
    if value is not None and not isinstance(value, str):
        raise MigrationParseError(f"{filename}: {name} = {value!r} is not a string or None")
    return value


def parse_migration_source(source: str, filename: str = "<string>") -> Migration:
    """Read ``revision``/``down_revision`` and the docstring facts from one versions file.

    ``ast`` rather than a regex, because the files use both quote styles, sometimes type
    annotations (``revision: str = ...``) and sometimes mention other revision ids in comments.
    Only module-level assignments count, and the module is never executed (importing it would
    need alembic and sqlalchemy of that era).
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise MigrationParseError(f"{filename}: cannot parse: {exc}") from exc

    found: dict[str, str | None] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                found[target.id] = _literal_revision(value, target.id, filename)

    revision = found.get("revision")
    if not revision:
        raise MigrationParseError(f"{filename}: no module-level `revision = '...'`")
    if "down_revision" not in found:
        raise MigrationParseError(f"{filename}: no module-level `down_revision = ...`")

    description = create_date = None
    doc = ast.get_docstring(tree, clean=True)
    if doc:
        lines = [line.strip() for line in doc.splitlines()]
        description = next((line for line in lines if line), None)
        for line in lines:
            key, sep, rest = line.partition(":")
            if sep and key.strip().lower() == "create date" and rest.strip():
                create_date = rest.strip()
                break
    return Migration(revision, found["down_revision"], description, create_date)


def _parent_map(pairs: Iterable[tuple[str, str | None]]) -> dict[str, str | None]:
    """Collapse (revision, down_revision) pairs, refusing one revision with two parents."""
    parent: dict[str, str | None] = {}
    for rev, down in pairs:
        if rev in parent and parent[rev] != down:
            raise ChainError(
                f"revision {rev} appears twice with different down_revisions: "
                f"{parent[rev]!r} and {down!r}"
            )
        parent[rev] = down
    return parent


def find_heads(pairs: Iterable[tuple[str, str | None]]) -> list[str]:
    """Revisions that no *other* revision names as its down_revision (sorted, for stability)."""
    parent = _parent_map(pairs)
    named = {down for rev, down in parent.items() if down is not None and down != rev}
    return sorted(rev for rev in parent if rev not in named)


def order_chain(pairs: Iterable[tuple[str, str | None]]) -> list[str]:
    """Order revisions from base to head by following down_revision links, never by date.

    Create dates are author-local timestamps and do not reflect merge order, so only the links
    are trusted. Anything that is not exactly one linear chain raises :class:`ChainError`
    naming the offending revisions, because a silently "best guess" order would map audited
    databases to the wrong MLflow release.
    """
    parent = _parent_map(pairs)
    if not parent:
        return []

    children: dict[str | None, list[str]] = defaultdict(list)
    for rev, down in parent.items():
        children[down].append(rev)

    dangling = sorted(d for d in children if d is not None and d not in parent)
    if dangling:
        culprits = sorted(r for d in dangling for r in children[d])
        raise ChainError(
            f"down_revision(s) {', '.join(dangling)} (named by {', '.join(culprits)}) "
            "are not among the revisions"
        )

    forks = {d: sorted(kids) for d, kids in children.items() if len(kids) > 1}
    if forks:
        heads = find_heads(parent.items())
        detail = "; ".join(
            f"{'<base>' if d is None else d} <- {', '.join(kids)}"
            for d, kids in sorted(forks.items(), key=lambda item: str(item[0]))
        )
        if None in forks and len(forks) == 1:
            raise ChainError(
                f"multiple heads {', '.join(heads)}: several base revisions "
                f"(down_revision None): {', '.join(forks[None])}"
            )
        raise ChainError(f"fork (multiple heads {', '.join(heads)}): {detail}")

    bases = children.get(None, [])
    if not bases:
        raise ChainError(
            "cycle: no revision has down_revision None, "
            f"revisions involved: {', '.join(sorted(parent))}"
        )

    chain = [bases[0]]
    seen = {bases[0]}
    while True:
        nxt = children.get(chain[-1], [])
        if not nxt:
            break
        rev = nxt[0]
        if rev in seen:  # pragma: no cover - a revisit implies a fork, caught above
            raise ChainError(f"cycle through {rev}")
        chain.append(rev)
        seen.add(rev)

    if len(chain) != len(parent):
        stray = sorted(set(parent) - seen)
        raise ChainError(f"cycle: revisions {', '.join(stray)} are not reachable from the base")
    return chain


def version_key(version: str) -> Version:
    """Sort key for release strings (``1.13`` == ``1.13.0``, ``1.10.0`` > ``1.9.1``)."""
    return Version(version)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Release strings in PEP 440 order."""
    return sorted(versions, key=version_key)


def heads_per_release(
    release_pairs: Mapping[str, Iterable[tuple[str, str | None]]],
) -> dict[str, str]:
    """The single head of each release's chain; a broken chain names the release in the error."""
    heads: dict[str, str] = {}
    for version in sort_versions(release_pairs):
        try:
            chain = order_chain(release_pairs[version])
        except ChainError as exc:
            raise ChainError(f"release {version}: {exc}") from exc
        if not chain:
            raise ChainError(f"release {version}: no tracking migrations found")
        heads[version] = chain[-1]
    return heads


def first_releases(release_revisions: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """For each revision, the earliest release (by version, not by date) whose archive has it."""
    first: dict[str, str] = {}
    for version in sort_versions(release_revisions):
        for rev in release_revisions[version]:
            first.setdefault(rev, version)
    return first


def parse_available_versions(pip_output: str) -> list[str]:
    """Versions from ``pip index versions`` text, ignoring warnings and the INSTALLED lines."""
    for line in pip_output.splitlines():
        key, sep, rest = line.strip().partition(":")
        if sep and key.strip() == "Available versions":
            return [v.strip() for v in rest.split(",") if v.strip()]
    raise ValueError("no 'Available versions:' line in pip output")


def is_stable(version: str) -> bool:
    """Final releases (post-releases included) only: rc/dev builds never reach users' DBs."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return not (parsed.is_prerelease or parsed.is_devrelease)


def plan_sources(
    available: Mapping[str, Sequence[str]],
    min_version: str = "1.0.0",
    preference: Sequence[str] = PACKAGES,
) -> dict[str, list[str]]:
    """Which packages to try, in order, for each stable release ``>= min_version``.

    A release is any stable version listed for any package, so versions that exist only as
    mlflow-skinny (e.g. a yanked full release) or only as mlflow (before 1.14, or a release
    newer than the newest skinny) are covered too. Versions are compared as ``Version`` so
    ``1.13`` and ``1.13.0`` are the same release; the first spelling seen in ``preference``
    order is kept as the key.
    """
    floor = Version(min_version)
    spelled: dict[Version, str] = {}
    projects: dict[Version, list[str]] = defaultdict(list)
    for project in preference:
        for version in available.get(project, ()):
            if not is_stable(version):
                continue
            parsed = Version(version)
            if parsed < floor:
                continue
            spelled.setdefault(parsed, version)
            if project not in projects[parsed]:
                projects[parsed].append(project)
    return {spelled[v]: projects[v] for v in sorted(spelled)}


def tracking_sources(names_and_reader: Mapping[str, object]) -> list[str]:
    """Archive member names that are tracking migrations (helper kept pure for tests).

    ``names_and_reader`` maps normalised member names (``mlflow/...``) to anything; only the
    keys are looked at. The newest layout wins if both folders exist in one archive.
    """
    for folder in TRACKING_DIRS:
        hits = sorted(
            name
            for name in names_and_reader
            if str(PurePosixPath(name).parent) == folder
            and name.endswith(".py")
            and not name.endswith("/__init__.py")
        )
        if hits:
            return hits
    return []


def build_catalog(scans: Sequence[ReleaseScan]) -> tuple[dict, list[str]]:
    """Assemble releases.json's content, plus notes on anything surprising in the archives.

    Each revision's metadata comes from the newest release that ships it (so a docstring fixed
    later wins); a revision whose down_revision differs between releases is reported, since the
    chain order is taken from the newest definitions.
    """
    by_version = {scan.version: scan for scan in scans}
    versions = sort_versions(by_version)
    notes: list[str] = []

    release_pairs = {
        v: [(m.revision, m.down_revision) for m in by_version[v].migrations] for v in versions
    }
    heads = heads_per_release(release_pairs)
    first = first_releases({v: [m.revision for m in by_version[v].migrations] for v in versions})

    newest_def: dict[str, Migration] = {}
    down_seen: dict[str, set[str | None]] = defaultdict(set)
    present: dict[str, list[str]] = defaultdict(list)
    for v in versions:
        for m in by_version[v].migrations:
            newest_def[m.revision] = m
            down_seen[m.revision].add(m.down_revision)
            present[m.revision].append(v)
    for rev, downs in sorted(down_seen.items()):
        if len(downs) > 1:
            notes.append(f"revision {rev} has differing down_revisions across releases: {downs}")

    chain = order_chain((m.revision, m.down_revision) for m in newest_def.values())
    index = {rev: i for i, rev in enumerate(chain)}

    for rev in chain:
        fv = Version(first[rev])
        if fv.micro != 0 or fv.post is not None:
            notes.append(f"revision {rev} first appeared in patch release {first[rev]}")
        later = [v for v in versions if Version(v) > fv]
        missing = [v for v in later if v not in present[rev]]
        if missing:
            notes.append(f"revision {rev} (from {first[rev]}) is missing from later releases "
                         f"{', '.join(missing)}")

    prev: str | None = None
    for v in versions:
        if prev is not None and index[heads[v]] < index[heads[prev]]:
            notes.append(f"head goes backwards from {prev} ({heads[prev]}) to {v} ({heads[v]})")
        prev = v

    for v in versions:
        notes.extend(f"{v}: {note}" for note in by_version[v].notes)

    revisions = [
        {
            "revision": rev,
            "down_revision": newest_def[rev].down_revision,
            "description": newest_def[rev].description,
            "create_date": newest_def[rev].create_date,
            "first_release": first[rev],
        }
        for rev in chain
    ]
    data = {"generated_by": GENERATED_BY, "releases": heads, "revisions": revisions}
    return data, notes


# --------------------------------------------------------------------------------------------
# Archives and pip (I/O)
# --------------------------------------------------------------------------------------------


def read_archive_sources(path: Path) -> dict[str, str]:
    """Tracking migration sources from a wheel or sdist, keyed by ``mlflow/...`` member name.

    Read in place with zipfile/tarfile: installing 150 MLflow versions would be slow and would
    execute their setup code for no reason.
    """
    if path.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as zf:
            names: dict[str, str] = {}
            for raw in zf.namelist():
                name = _normalise_member(raw, sdist=path.suffix == ".zip")
                if name is not None:
                    names[name] = raw
            return {name: zf.read(names[name]).decode("utf-8") for name in tracking_sources(names)}
    with tarfile.open(path) as tf:
        infos = {}
        for info in tf.getmembers():
            if info.isfile():
                name = _normalise_member(info.name, sdist=True)
                if name is not None:
                    infos[name] = info
        out = {}
        for name in tracking_sources(infos):
            handle = tf.extractfile(infos[name])
            assert handle is not None
            with handle:
                out[name] = io.TextIOWrapper(handle, encoding="utf-8").read()
        return out


def _normalise_member(name: str, sdist: bool) -> str | None:
    """Strip an sdist's ``mlflow-X.Y.Z/`` top folder so both archive kinds use one layout."""
    parts = PurePosixPath(name).parts
    if sdist:
        parts = parts[1:]
    return "/".join(parts) if parts else None


def _archives_in(folder: Path) -> list[Path]:
    """Finished archives in a cache folder (partial downloads never land there)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))


def pip_versions(pip: Sequence[str], project: str) -> list[str]:
    """Stable versions pip can see for ``project`` (pip itself drops yanked and pre-releases)."""
    proc = subprocess.run(
        [*pip, "index", "versions", project],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip index versions {project} failed:\n{proc.stderr}{proc.stdout}")
    return [v for v in parse_available_versions(proc.stdout) if is_stable(v)]


_print_lock = threading.Lock()


def log(message: str) -> None:
    """Progress to stderr, so stdout stays the short summary."""
    with _print_lock:
        print(message, file=sys.stderr, flush=True)


# pip 24.1 started rejecting wheels whose Requires-Dist is not valid PEP 440/508 (mlflow-skinny
# and mlflow 1.27.0 declare ``scikit-learn (>=1.0.*)``), and it finds out only *after*
# downloading the whole file, then discards it. pip's own message says to use pip<24.1 for such
# releases. Downloading with that pip first means every archive is fetched exactly once; the
# current pip remains the fallback should the old one ever fail on a newer archive.
LEGACY_PIP = "pip==24.0"
_legacy_lock = threading.Lock()


def legacy_pip(pip: Sequence[str], cache: Path) -> list[str]:
    """A command running ``LEGACY_PIP`` from its wheel, fetched once into the cache."""
    folder = cache / "_legacy-pip"
    with _legacy_lock:
        wheels = [p for p in _archives_in(folder) if p.name.endswith(".whl")]
        if not wheels:
            tmp = cache / f".partial-legacy-pip-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            proc = _pip_download(pip, LEGACY_PIP, tmp, binary_only=True)
            if proc.returncode != 0 or not _archives_in(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
                raise RuntimeError(f"cannot fetch {LEGACY_PIP}:\n{_clean(proc.stderr)}")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
            wheels = _archives_in(folder)
    return [sys.executable, str(wheels[0] / "pip")]


def _clean(stderr: str) -> str:
    """pip's stderr without the noise about this machine's absent local indexes."""
    return "\n".join(
        line for line in stderr.splitlines() if "is ignored: it is neither" not in line
    ).strip()


def _pip_download(
    pip: Sequence[str], requirement: str, dest: Path, *, binary_only: bool
) -> subprocess.CompletedProcess[str]:
    """One ``pip download --no-deps``; wheels only, or (as a last resort) an sdist allowed."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [*pip, "download", "--no-deps", "--ignore-requires-python", "--no-cache-dir",
           "--disable-pip-version-check", "-d", str(dest)]
    cmd += ["--only-binary", ":all:"] if binary_only else ["--no-binary", ":none:"]
    cmd.append(requirement)
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def download(
    pip: Sequence[str], project: str, version: str, cache: Path
) -> tuple[Path, bool, list[str]]:
    """Fetch one archive into ``cache/project/version/`` unless it is already there.

    pip writes into a private ``.partial-*`` folder that is renamed into place only after it
    succeeded, so an interrupted run leaves no half file that a rerun would trust, and a rerun
    never downloads a finished archive again. Attempts, in order: the legacy pip for a wheel,
    this pip for a wheel, this pip allowing an sdist (for releases published without a wheel).
    Returns (path, was_cached, notes).
    """
    dest = cache / project / version
    existing = _archives_in(dest)
    if existing:
        return existing[0], True, []
    tmp = cache / project / f".partial-{version}-{os.getpid()}-{threading.get_ident()}"
    requirement = f"{project}=={version}"
    failures: list[str] = []
    attempts = (("legacy", True), ("current", True), ("current", False))
    for label, binary_only in attempts:
        runner = legacy_pip(pip, cache) if label == "legacy" else pip
        shutil.rmtree(tmp, ignore_errors=True)
        proc = _pip_download(runner, requirement, tmp, binary_only=binary_only)
        got = _archives_in(tmp)
        if proc.returncode == 0 and got:
            break
        failures.append(f"{label} pip: " + (_clean(proc.stderr).splitlines() or ["?"])[-1])
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"pip download {requirement} failed: " + "; ".join(failures))
    notes = [f"{requirement}: got {got[0].name} after: {'; '.join(failures)}"] if failures else []
    if len(got) > 1:
        notes.append(f"pip saved several files for {requirement}: {[p.name for p in got]}")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest / got[0].name, False, notes


def invalid_requirements(path: Path) -> list[str]:
    """Requires-Dist lines of a wheel that modern pip refuses (worth knowing, not fatal)."""
    if not path.name.endswith(".whl"):
        return []
    with zipfile.ZipFile(path) as zf:
        meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta is None:
            return []
        text = zf.read(meta).decode("utf-8", errors="replace")
    bad = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            spec = line.partition(":")[2].strip()
            try:
                Requirement(spec)
            except InvalidRequirement:
                bad.append(spec)
    return bad


def scan_release(
    pip: Sequence[str], version: str, projects: Sequence[str], cache: Path
) -> tuple[ReleaseScan, bool]:
    """Download (or reuse) the first package that ships the tracking chain for ``version``."""
    notes: list[str] = []
    for project in projects:
        path, cached, fetch_notes = download(pip, project, version, cache)
        notes.extend(fetch_notes)
        sources = read_archive_sources(path)
        if not sources:
            notes.append(f"{path.name} has no tracking migrations; trying the next package")
            continue
        folders = {str(PurePosixPath(n).parent) for n in sources}
        migrations = [parse_migration_source(src, f"{path.name}:{n}") for n, src in sources.items()]
        if folders != {TRACKING_DIRS[0]}:
            notes.append(f"{path.name} keeps the chain in {', '.join(sorted(folders))}")
        if not path.name.endswith(".whl"):
            notes.append(f"read the sdist {path.name}: pip found no usable wheel when fetching")
        bad = invalid_requirements(path)
        if bad:
            notes.append(f"{path.name} declares requirements pip>=24.1 rejects: {bad}")
        return ReleaseScan(version, project, path.name, migrations, notes), cached
    raise RuntimeError(f"{version}: none of {list(projects)} ships tracking migrations")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: list, download, parse, write, summarise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="download cache (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output JSON (default: the package's catalog/data/releases.json)")
    parser.add_argument("--min-version", default="1.0.0",
                        help="oldest release to examine (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=MAX_WORKERS,
                        help=f"parallel downloads, at most {MAX_WORKERS} (default: %(default)s)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    pip = [sys.executable, "-m", "pip"]
    cache = args.cache.expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    for stale in [*cache.glob(".partial-*"), *cache.glob("*/.partial-*")]:  # interrupted runs
        shutil.rmtree(stale, ignore_errors=True)

    available = {project: pip_versions(pip, project) for project in PACKAGES}
    plan = plan_sources(available, args.min_version)
    only = {
        project: [v for v, ps in plan.items() if ps == [project]] for project in PACKAGES
    }
    log(f"{len(plan)} stable releases >= {args.min_version}; "
        f"only on mlflow-skinny: {only[SKINNY] or 'none'}; "
        f"only on mlflow (within range): {len(only[FULL])}")

    workers = max(1, min(args.workers, MAX_WORKERS))
    scans: list[ReleaseScan] = []
    errors: list[str] = []
    downloaded = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(scan_release, pip, version, projects, cache): version
            for version, projects in plan.items()
        }
        for done, future in enumerate(as_completed(futures), 1):
            version = futures[future]
            try:
                scan, cached = future.result()
            except Exception as exc:  # report every failure, then stop without writing
                errors.append(f"{version}: {exc}")
                log(f"[{done}/{len(plan)}] {version}: ERROR {exc}")
                continue
            downloaded += not cached
            scans.append(scan)
            log(f"[{done}/{len(plan)}] {version}: {scan.archive} "
                f"({'cached' if cached else 'downloaded'}), {len(scan.migrations)} migrations")
    if errors:
        log("failed:\n  " + "\n  ".join(errors))
        return 1

    data, notes = build_catalog(scans)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_out, out)

    releases: dict[str, str] = data["releases"]
    versions = sort_versions(releases)
    newest_head = data["revisions"][-1]["revision"]
    with_head = [v for v in versions if releases[v] == newest_head]
    for note in notes:
        print(f"note: {note}")
    print(f"releases: {len(releases)} ({versions[0]} .. {versions[-1]})")
    print(f"revisions: {len(data['revisions'])} "
          f"(base {data['revisions'][0]['revision']})")
    print(f"newest head: {newest_head} (head of {', '.join(with_head)}; "
          f"newest release {versions[-1]})")
    print(f"archives downloaded this run: {downloaded}; took {time.monotonic() - started:.1f}s; "
          f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
