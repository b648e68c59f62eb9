"""File primitives shared by every JSON store (the registry file, the vector store file):
an OS-level lock, atomic replace and a parsed-file cache. Imports nothing of the project."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an flock on `<path>.lock` for a read-modify-write of `path`.

    The lock lives on a sidecar file because `path` itself is replaced on every write,
    and a lock on a replaced inode would protect nothing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        if not shared:
            _remove_stale_temporaries(path)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remove_stale_temporaries(path: Path) -> None:
    # Only the holder of the exclusive lock writes temporaries, so any found now were
    # left by a writer that was killed mid-write.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a part.

    Written to a temporary file in the same directory, fsynced, renamed over the target,
    then the directory is fsynced so the rename survives a power loss.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = str(path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp")
    # 0o666 less the umask, as any new file (mkstemp's 0o600 left files the service user
    # could not read when an operator wrote them); a replaced file keeps its own mode.
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_name, path.stat().st_mode & 0o777)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the names created or replaced in `directory` survive a power loss."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_bytes(path: Path, *, what: str, error: Callable[[str], Exception]) -> bytes:
    """The file's bytes, or `error` with a message naming it (`what` and its path) and
    saying why it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when `path` is replaced or rewritten; None when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ParsedFile(Generic[T]):
    """A file parsed once per change on disk: readers reuse the parsed value until the
    file is replaced or rewritten, by this process or another one."""

    def __init__(
        self,
        path: Path,
        *,
        parse: Callable[[bytes], T],
        empty: Callable[[], T],
        unreadable: Callable[[OSError], Exception],
    ) -> None:
        self.path = path
        self._parse = parse
        self._empty = empty
        self._unreadable = unreadable
        # One tuple, replaced whole: readers in other threads see the old or the new.
        self._cached: tuple[tuple[int, int, int], T] | None = None

    def read(self) -> T:
        try:
            with self.path.open("rb") as handle:
                st = os.fstat(handle.fileno())
                signature = (st.st_ino, st.st_mtime_ns, st.st_size)
                cached = self._cached
                if cached is not None and cached[0] == signature:
                    return cached[1]
                data = handle.read()
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            raise self._unreadable(exc) from exc
        value = self._parse(data)
        self._cached = (signature, value)
        return value

    def write(self, data: bytes, value: T) -> None:
        """Replace the file atomically with `data`, the serialised form of `value`.
        Call it under `locked(path)`, so the file on disk is exactly `value`."""
        atomic_write_bytes(self.path, data)
        signature = file_signature(self.path)
        if signature is not None:
            self._cached = (signature, value)
