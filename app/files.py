"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import os
from pathlib import Path

from app.exceptions import TillerError


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


def write_atomic_dir(target: Path, fill) -> None:
    """Fill a temporary sibling folder (``fill(tmp)``), then swap it in for ``target``: readers see
    the old folder or the new one, and a failure at any point leaves the old one in place (the
    swap is two renames; if the second fails, the first is undone)."""
    import shutil

    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        had_old = target.exists()
        if had_old:
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if had_old:
                os.replace(old, target)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: Path | str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


class ReadRefused(TillerError, ValueError):
    """A file Tiller was asked to read is not a regular file, too large, or unreadable. ``reason``
    is a short code (not-a-file, too-large, unreadable), ``detail`` the why without the path."""

    def __init__(self, message: str, reason: str = "unreadable", detail: str = ""):
        super().__init__(message)
        self.reason = reason
        self.detail = detail or message


def read_regular_file(path: Path | str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else ReadRefused. Only regular
    files are read (a FIFO would block, /dev/zero never ends), opened non-blocking so that even a
    FIFO answers at once, and never more than ``limit`` + 1 bytes (a file may grow while read)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ReadRefused(
            f"{path}: {exc.strerror or exc}", "unreadable", f"cannot open: {exc.strerror or exc}"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _file_type(info.st_mode)
            raise ReadRefused(f"{path}: not a regular file ({kind})", "not-a-file", f"not a regular file ({kind})")
        if info.st_size > limit:
            raise ReadRefused(
                f"{path}: {info.st_size:,} bytes, over the {limit:,}-byte limit",
                "too-large",
                f"{info.st_size:,} bytes, over the {limit:,}-byte limit for one message",
            )
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
            raise ReadRefused(
                f"{path}: over {limit:,} bytes (it grew while read)",
                "too-large",
                f"over the {limit:,}-byte limit for one message (it grew while read)",
            )
        return b"".join(chunks)
    except OSError as exc:
        raise ReadRefused(
            f"{path}: {exc.strerror or exc}", "unreadable", f"read failed: {exc.strerror or exc}"
        ) from None
    finally:
        os.close(fd)


def _file_type(mode: int) -> str:
    import stat

    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def read_bytes_bounded(path: Path | str, limit: int, what: str = "file") -> bytes:
    """:func:`read_regular_file` for a file the user named, with a sentence naming what it is for."""
    try:
        return read_regular_file(path, limit)
    except ReadRefused as exc:
        if exc.reason == "not-a-file":
            raise ReadRefused(f"{path}: the {what} must be a regular file", exc.reason) from None
        if exc.reason == "too-large":
            raise ReadRefused(
                f"{path}: the {what} is too large; at most {limit:,} bytes are read", exc.reason
            ) from None
        raise ReadRefused(f"{path}: cannot read the {what} ({exc.detail})", exc.reason) from None


def read_text_bounded(path: Path | str, limit: int, what: str = "file", errors: str = "strict") -> str:
    """A regular UTF-8 text file of at most ``limit`` bytes (see :func:`read_bytes_bounded`)."""
    data = read_bytes_bounded(path, limit, what)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise ReadRefused(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None
