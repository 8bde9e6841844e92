"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name, flush to disk, then rename: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ReadRefused(ValueError):
    """A file Tiller was asked to read is not a regular file, too large, or not text."""


def read_bytes_bounded(path: Path | str, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ReadRefused (one sentence naming
    the file) otherwise. A FIFO would block and /dev/zero never ends: neither is read."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ReadRefused(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReadRefused(f"{path}: the {what} must be a regular file")
        if info.st_size > limit:
            raise ReadRefused(f"{path}: the {what} is {info.st_size:,} bytes; at most {limit:,} are read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ReadRefused(f"{path}: the {what} is over {limit:,} bytes (it grew while read)")
        return b"".join(chunks)
    except OSError as exc:
        raise ReadRefused(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_text_bounded(path: Path | str, limit: int, what: str = "file", errors: str = "strict") -> str:
    """A regular UTF-8 text file of at most ``limit`` bytes (see :func:`read_bytes_bounded`)."""
    data = read_bytes_bounded(path, limit, what)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise ReadRefused(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None
