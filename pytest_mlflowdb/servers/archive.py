"""What a dump file is, and reading it end to end.

``pg_restore --list`` reads only the table of contents at the front of an archive, so it
passes a dump cut off at 60%; ``pg_restore -f /dev/null`` reads every data block and
rejects it ("could not read from input file: end of file"). Plain SQL has no table of
contents: it is read to the end (gzip's CRC checks a compressed one) and must end with
pg_dump's closing line. The header tells which ``pg_dump`` made the archive, hence the
``pg_restore`` it needs.
"""

from __future__ import annotations

import datetime
import gzip
import io
import os
import re
import stat
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_mlflowdb.servers.tools import ClientTools, Overran, last_error, major_of, run_bounded

CUSTOM, DIRECTORY, TAR, PLAIN, PLAIN_GZ = "custom", "directory", "tar", "plain", "plain.gz"
#: the formats pg_restore -j can restore in parallel
PARALLEL = (CUSTOM, DIRECTORY)
#: pg_dump's last line of a complete plain dump
CLOSING = b"-- PostgreSQL database dump complete"
_PLAIN_VERSION = re.compile(rb"^-- Dumped by pg_dump version (\d+[^\s]*)", re.MULTILINE)
_PLAIN_FROM = re.compile(rb"^-- Dumped from database version (\d+[^\s]*)", re.MULTILINE)


class ArchiveError(RuntimeError):
    """The file is not a readable pg_dump archive; the message is one line."""


@dataclass(frozen=True)
class Archive:
    """A dump file as found on disk, before it is read through."""

    path: Path
    format: str
    size: int
    #: when it was last written (the file's or, for a directory, its toc.dat's mtime)
    modified: datetime.datetime
    #: the pg_dump that made it and the server it dumped ('' when the header does not say)
    dumped_by: str = ""
    dumped_from: str = ""
    #: the database it is a dump of ('' when the header does not say: plain SQL)
    dumped_db: str = ""

    @property
    def needed_major(self) -> int:
        """The oldest pg_restore/psql major that can read it (its pg_dump's)."""
        return major_of(self.dumped_by)

    def describe(self) -> str:
        made = f", made by pg_dump {self.dumped_by}" if self.dumped_by else ""
        source = f" from PostgreSQL {self.dumped_from}" if self.dumped_from else ""
        return f"{self.format} archive of {_size(self.size)}{made}{source}"


def _size(size: int) -> str:
    from pytest_mlflowdb.config.thresholds import format_value

    return format_value("size", size)


def inspect(path: Path) -> Archive:
    """The archive at ``path``: its format, size and header; ArchiveError if it is none."""
    try:
        if path.is_dir():
            return _directory(path)
        head, info = _head(path)
    except FileNotFoundError:
        raise ArchiveError(f"no backup at {path}: no such file or directory") from None
    except PermissionError:
        raise ArchiveError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None
    modified = datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc)
    if info.st_size == 0:
        raise ArchiveError(f"{path} is empty (0 bytes): pg_dump wrote nothing")
    if head.startswith(b"PGDMP"):
        return Archive(path, CUSTOM, info.st_size, modified, *_header(head))
    if len(head) > 512 and head[257:262] == b"ustar":
        name = head[:100].split(b"\0", 1)[0]
        if name == b"toc.dat" and head[512:517] == b"PGDMP":
            return Archive(path, TAR, info.st_size, modified, *_header(head[512:]))
        raise ArchiveError(f"{path} is a tar file but not a pg_dump archive (no toc.dat first)")
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                text = handle.read(8192)
        except (OSError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{path} is gzip-compressed but cannot be read: {exc}") from None
        if text.startswith(b"PGDMP"):
            raise ArchiveError(f"{path} is a gzip-compressed custom archive: pg_restore "
                               "cannot read it so; gunzip it first")
        return _plain(path, PLAIN_GZ, info.st_size, modified, text)
    return _plain(path, PLAIN, info.st_size, modified, head)


def _head(path: Path) -> tuple[bytes, os.stat_result]:
    """The first 4 KiB of the regular file ``path`` and its stat, opened without blocking:
    a FIFO or a device (``/dev/zero``) is refused, never read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            from pytest_mlflowdb.config.fleet import describe_mode

            raise ArchiveError(f"{path} is {describe_mode(info.st_mode)}, not a pg_dump file")
        return os.read(fd, 4096), info
    finally:
        os.close(fd)


def _plain(path: Path, fmt: str, size: int, modified: datetime.datetime,
           text: bytes) -> Archive:
    if b"PostgreSQL database dump" not in text[:1024]:
        raise ArchiveError(f"{path} is not a pg_dump archive (custom, directory, tar) nor "
                           "plain SQL written by pg_dump")
    by = _PLAIN_VERSION.search(text)
    source = _PLAIN_FROM.search(text)
    return Archive(path, fmt, size, modified, by.group(1).decode() if by else "",
                   source.group(1).decode() if source else "")


def _directory(path: Path) -> Archive:
    toc = path / "toc.dat"
    try:
        with toc.open("rb") as handle:
            head = handle.read(4096)
        info = toc.stat()
    except FileNotFoundError:
        raise ArchiveError(f"{path} is a folder without toc.dat: not a pg_dump directory "
                           "archive") from None
    except OSError as exc:
        raise ArchiveError(f"cannot read {toc}: {exc.strerror or exc}") from None
    if not head.startswith(b"PGDMP"):
        raise ArchiveError(f"{toc} is not a pg_dump table of contents")
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return Archive(path, DIRECTORY, size,
                   datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc),
                   *_header(head))


def _header(data: bytes) -> tuple[str, str, str]:
    """(pg_dump version, server version, database) from an archive header
    (pg_backup_archiver.c's ReadHead); ('', '', '') when the header is too old or too new
    to be read here."""
    try:
        stream = io.BytesIO(data)
        stream.read(5)
        vmaj, vmin, vrev = struct.unpack("BBB", stream.read(3))
        int_size, _off_size, _fmt = struct.unpack("BBB", stream.read(3))
        version = (vmaj, vmin, vrev)

        def read_int() -> int:
            sign = stream.read(1)[0]
            raw = stream.read(int_size)
            value = int.from_bytes(raw, "little")
            return -value if sign else value

        def read_str() -> str:
            length = read_int()
            return "" if length <= 0 else stream.read(length).decode("utf-8", "replace")

        if version < (1, 10, 0):
            return "", "", ""
        if version >= (1, 15, 0):
            stream.read(1)  # compression algorithm
        else:
            read_int()  # compression level
        for _ in range(7):  # the creation time, a struct tm
            read_int()
        database = read_str()
        source = read_str()
        by = read_str()
        return by, source, database
    except (struct.error, IndexError, ValueError):
        return "", "", ""


def read_through(archive: Archive, tools: ClientTools, timeout: float) -> None:
    """Read every byte the archive holds, raising ArchiveError with the first problem."""
    if archive.format in (PLAIN, PLAIN_GZ):
        for _ in plain_lines(archive):
            pass
        return
    try:
        done = run_bounded([tools.path("pg_restore"), "-f", "/dev/null", str(archive.path)],
                           dict(os.environ), timeout)
    except Overran as exc:
        raise ArchiveError(f"reading the archive (pg_restore -f /dev/null) was {exc}: "
                           "longer than backup_step_timeout allows") from None
    if done.returncode != 0:
        raise ArchiveError(f"unreadable: {last_error(done.stderr)}")


def plain_lines(archive: Archive, complete: bool = True) -> Iterator[bytes]:
    """The lines of a plain (or gzip-compressed plain) dump; ArchiveError at the end when
    the data is damaged (gzip CRC, a cut stream) or, if it must be ``complete``, pg_dump's
    closing line is missing."""
    opener = gzip.open if archive.format == PLAIN_GZ else open
    tail: deque[bytes] = deque(maxlen=4)  # the closing line, "--", maybe "\unrestrict KEY"
    try:
        with opener(archive.path, "rb") as handle:
            for line in handle:
                if line.strip():
                    tail.append(line)
                yield line
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"unreadable: {exc}") from None
    if complete and not any(line.startswith(CLOSING) for line in tail):
        raise ArchiveError("the SQL ends before pg_dump's closing line "
                           f"'{CLOSING.decode()}': the dump is truncated")
