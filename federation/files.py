"""Writes that are whole or absent: a file appears under its name only once it is complete.

Each writer writes a temporary file beside the target (same directory, so the rename stays on
one file system), flushes and fsyncs it, then renames it over the target with `os.replace`,
which POSIX makes atomic. A process killed mid-write leaves at most a `.NAME.partial-*` file,
never a truncated `NAME` that a reader would take for whole.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path to write to; renamed to `target` when the block ends without error.

    For writers that want a path (pandas, torch). The temporary file is removed on error.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}{PARTIAL_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    # O_EXCL: never write into someone else's file; mode 0o666 lets the umask decide, as open() does.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """`open()` for writing, whole or absent (`mode` "w" or "wb")."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(target) as temporary, open(temporary, mode, encoding=None if "b" in mode else encoding) as fh:
        yield fh


def write_text(target: str | Path, text: str) -> Path:
    """Write `text` to `target`, whole or absent."""
    with atomic_open(target, "w") as fh:
        fh.write(text)
    return Path(target)


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Write `data` to `target`, whole or absent."""
    with atomic_open(target, "wb") as fh:
        fh.write(data)
    return Path(target)


def write_with(target: str | Path, writer: Callable[[Path], object]) -> Path:
    """Let `writer(path)` write the file (e.g. `frame.to_csv`), then publish it whole."""
    with atomic_path(target) as temporary:
        writer(temporary)
    return Path(target)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
