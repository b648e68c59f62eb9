"""The journal beside the store file (vector_file.py): what this process has read of it,
and the appends. Its format, and why it exists, are vector_file_format.Change's."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from common.fileio import fsync_directory
from ingest.exceptions import VectorStoreError
from ingest.search.lexical import analyzer
from ingest.stores.vector_file_format import (
    Change,
    Snapshot,
    apply_changes,
    dump_change,
    dump_journal_header,
    parse_change,
    parse_journal_header,
)

# The journal is folded into the file once it is this share of the file's size or more
# (and at least JOURNAL_MIN_BYTES): a write then costs what it adds, plus a rewrite
# every so often whose cost, spread over the writes since, is a few times what they
# added.
JOURNAL_SHARE = 0.5
JOURNAL_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class _Read:
    """The journal as this process last read it: over which parsed file, its inode and
    how far (the end of its last complete line), and the snapshot it made of them.
    `inode` None: there was no journal; `stale`: one of another generation."""

    base: Snapshot
    inode: int | None
    offset: int
    snapshot: Snapshot
    recount: bool = False
    stale: bool = False


class Journal:
    """The journal at `path`, of a store of `dim` dimensions."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self._read: _Read | None = None

    def over(self, base: Snapshot) -> Snapshot:
        """The parsed file `base` with the journal's changes replayed over it: read only
        from where this process last read, while the file is the same."""
        known = self._read
        try:
            with self.path.open("rb") as handle:
                status = os.fstat(handle.fileno())
                inode = status.st_ino
                if known is not None and known.base is base and known.inode == inode:
                    if known.stale or known.offset == status.st_size:
                        return known.snapshot
                    handle.seek(known.offset)
                else:
                    known = None
                data = handle.read()
        except FileNotFoundError:
            self._read = _Read(base, None, 0, base)
            return base
        except OSError as exc:
            raise VectorStoreError(f"vector store {self.path} cannot be read: {exc}") from exc
        try:
            return self._replay(base, known, inode, data)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise VectorStoreError(
                f"vector store journal {self.path} is damaged ({exc}); restore the "
                "store from a backup or re-ingest the documents"
            ) from None

    def _replay(self, base: Snapshot, known: _Read | None, inode: int, data: bytes) -> Snapshot:
        complete = data[: data.rfind(b"\n") + 1]  # a line cut short is not read
        lines = complete.splitlines()
        if known is None:  # from the journal's start: its header first
            if not lines:
                return base
            generation, counted_by = parse_journal_header(lines[0])
            if generation != base.generation or not generation:
                self._read = _Read(base, inode, len(complete), base, stale=True)
                return base
            known = _Read(base, inode, 0, base, recount=counted_by != analyzer())
            lines = lines[1:]
        changes = [parse_change(line, self.dim, recount=known.recount) for line in lines]
        snapshot = apply_changes(known.snapshot, changes) if changes else known.snapshot
        offset = known.offset + len(complete)
        self._read = _Read(base, inode, offset, snapshot, known.recount)
        return snapshot

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def folded(self, snapshot: Snapshot) -> None:
        """The file was rewritten as `snapshot`, with every change in it: no journal."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # of the last generation: ignored if it stays
        self._read = _Read(snapshot, None, 0, snapshot)

    def append(self, current: Snapshot, change: Change, changed: Snapshot, file_size: int) -> bool:
        """Append the change that makes `changed` of `current` (just read, under the
        store's lock). False when it is not to be: the file is to be rewritten instead (no
        file yet, a journal of another generation or analyzer, a file counted again, or
        the journal grown to its share of the file)."""
        known = self._read
        line = dump_change(change)
        offset = known.offset if known is not None and known.inode is not None else 0
        if (
            not file_size
            or known is None
            or known.snapshot is not current
            or known.stale
            or known.recount
            or known.base.recounted
            or offset + len(line) > max(JOURNAL_MIN_BYTES, JOURNAL_SHARE * file_size)
        ):
            return False
        try:
            inode, offset = self._write(known, current.generation, line)
        except OSError as exc:
            raise VectorStoreError(f"vector store {self.path} cannot be written: {exc}") from exc
        self._read = _Read(known.base, inode, offset, changed)
        return True

    def _write(self, known: _Read, generation: str, line: bytes) -> tuple[int, int]:
        """Write the line at the end of the journal's last complete line (a new journal
        starts with its header), durably; the journal's inode and its new end."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            if known.inode is None:
                os.ftruncate(fd, 0)
                line = dump_journal_header(generation) + line
                offset = 0
            else:
                offset = known.offset
                os.ftruncate(fd, offset)  # what a crash left of a line after it
            os.lseek(fd, offset, os.SEEK_SET)
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if known.inode is None:
            fsync_directory(self.path.parent)  # the new journal's name survives a power loss
        return inode, offset + len(line)
