"""Mail sources: where raw messages come from, streamed one at a time.

A source yields ``RawItem``s: a stable ``key`` (so a rerun knows what it already imported), the
folder the message sits in, and either the message bytes or the error met reading them. Reading
errors are items too, so the importer can count and report them without stopping.
An IMAP source slots in by yielding keys such as ``INBOX;UIDVALIDITY=…;UID=…``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.exceptions import TillerError
from app.files import ReadRefused, read_regular_file
from app.mail.charsets import display_name, storable_text

# Larger files are counted as skipped ("too-large") without being read: no real message comes near
# it, and a symlink to a huge file (or /dev/zero) must not take the machine's memory.
MAX_MESSAGE_BYTES = 50 * 2**20

# Folder names that hold the user's own sent mail (Enron CMU names, Maildir++, Gmail, Thunderbird,
# Outlook exports); matched against each path component, case-insensitively.
_SENT_FOLDER = re.compile(r"^(_?sent([ _-]?(items|mail|messages))?|gesendet.*|envoy.*)$", re.I)
_SKIP_FILES = {".ds_store", "maildirfolder", "dovecot.index", "dovecot-uidlist", "dovecot-keywords", "thumbs.db"}


@dataclass
class RawItem:
    key: str  # stable within the source: relative path, or "path@offset" inside an mbox
    folder: str  # folder the message was found in ("" for the top level)
    data: bytes | None = None
    error: str | None = None  # set when the bytes could not be read
    path: str | None = None  # for one-file-per-message sources, read only when asked
    note: str | None = None  # a warning the source has about this item (a damaged mbox separator)
    error_reason: str | None = None  # the skip reason that goes with ``error`` (default "unreadable")
    sent: bool | None = None  # the source knows whether the folder holds sent mail (IMAP's \Sent); None: by name

    def read(self) -> tuple[bytes | None, str | None]:
        """The message bytes, or the reason they cannot be read. Files are read here, lazily, so an
        import that resumes skips already-imported files without opening them."""
        if self.data is None and self.error is None and self.path is not None:
            self.data, self.error, self.error_reason = read_message_file(self.path)
        return self.data, self.error

    @property
    def is_sent_folder(self) -> bool:
        return self.sent if self.sent is not None else is_sent_folder(self.folder)


@functools.lru_cache(maxsize=4096)  # asked once per message, about a handful of folders
def is_sent_folder(folder: str) -> bool:
    """True for sent-mail folders, also inside Maildir++ (``INBOX.Sent``) and file names
    (``quigley-d.sent_items``)."""
    if re.search(r"\[gmail\][./]sent mail", folder, re.I):
        return True
    return any(_SENT_FOLDER.match(p) for p in re.split(r"[\\/.]", folder) if p)


class MailSource(Protocol):
    kind: str
    location: str

    def iter_items(self) -> Iterator[RawItem]: ...

    def estimate(self) -> int | None:
        """How many items to expect, when cheap to know (drives the progress bar's total)."""
        ...


class SourceError(TillerError):
    """The source as a whole cannot be read (missing path, not a mailbox)."""


def _walk_files(root: Path) -> Iterator[Path]:
    """All regular files under root in a stable order, hidden files and Maildir tmp/ skipped."""
    for full, _, _ in _walk_keys(root):
        yield Path(full)


def _natural_key(name: str):
    # ASCII digits only: str.isdigit() is true for "²", which int() refuses (found by the fuzzer).
    # re.split with a group puts the digit runs at the odd positions, so keys always compare
    # int with int and str with str.
    parts = re.split(r"([0-9]+)", name)
    return [int(t) if i % 2 else t for i, t in enumerate(parts)]


def read_message_file(path: str | Path, limit: int = MAX_MESSAGE_BYTES) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, None, None), or (None, why, reason code): only regular files of at most ``limit``
    bytes are read (app.files.read_regular_file)."""
    try:
        return read_regular_file(path, limit), None, None
    except ReadRefused as refused:
        return None, refused.detail, refused.reason


def _walk_keys(root: Path, errors: list[OSError] | None = None) -> Iterator[tuple[str, str, str]]:
    """(absolute path, path relative to root, relative folder) for every file, as plain strings:
    pathlib objects per file cost more than parsing small messages. Directories that cannot be
    listed are appended to ``errors`` (os.walk would skip them silently)."""
    root_str = str(root)
    prefix = len(root_str) + 1
    for dirpath, dirnames, filenames in os.walk(root_str, onerror=errors.append if errors is not None else None):
        dirnames[:] = sorted(d for d in dirnames if _walked_dir(d))
        rel_dir = dirpath[prefix:] if len(dirpath) > len(root_str) else ""
        for name in sorted(filenames, key=_natural_key):
            if not _walked_file(name):
                continue
            full = os.path.join(dirpath, name)
            yield full, (os.path.join(rel_dir, name) if rel_dir else name), rel_dir


def _count_files(root: Path, suffix: str = "") -> int:
    """How many files _walk_keys will yield (ending in ``suffix``), without sorting or joining
    paths: the progress bar's total should cost a fraction of the import."""
    count = 0
    for _, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if _walked_dir(d)]
        count += sum(1 for name in filenames if _walked_file(name) and name.lower().endswith(suffix))
    return count


def _walked_dir(name: str) -> bool:
    return name != "tmp" and not name.startswith(".git")


def _walked_file(name: str) -> bool:
    return not name.startswith(".") and name.lower() not in _SKIP_FILES


class MaildirSource:
    """A Maildir tree (cur/new/tmp) or any tree of one-message-per-file folders (the Enron layout).

    The folder of a Maildir message is the directory holding ``cur``/``new``; Maildir++ folder names
    (".Sent") are reported without the leading dot.
    """

    kind = "maildir"

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.location = str(self.root)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: not a directory")

    def _folder(self, rel_dir: str) -> str:
        parts = [p for p in rel_dir.split(os.sep) if p]
        if parts and parts[-1] in ("cur", "new"):
            parts = parts[:-1]
        if not parts and is_sent_folder(self.root.name.lstrip(".")):
            # the user imported their sent folder itself (".../Maildir/.Sent", ".../sent_items"): its
            # mail is sent mail, whichever of the overlapping imports of a mailbox comes first
            return display_name(self.root.name.lstrip("."))
        return "/".join(display_name(p[1:] if p.startswith(".") and len(p) > 1 else p) for p in parts)

    def estimate(self) -> int | None:
        return _count_files(self.root)

    def iter_items(self) -> Iterator[RawItem]:
        yield from self._items(suffix="")

    def _items(self, suffix: str) -> Iterator[RawItem]:
        """Items for the files ending in ``suffix``, and one skipped item per directory that
        cannot be listed, so the counts still account for everything. Keys are the relative
        paths, made storable (a Latin-1 file name cannot go into SQLite as it is); the item keeps
        the real path to read."""
        errors: list[OSError] = []
        for full, rel, rel_dir in _walk_keys(self.root, errors):
            while errors:
                yield self._unlistable(errors.pop(0))
            if full.lower().endswith(suffix):
                yield RawItem(key=storable_text(rel), folder=self._folder(rel_dir), path=full)
        for error in errors:
            yield self._unlistable(error)

    def _unlistable(self, error: OSError) -> RawItem:
        where = os.path.relpath(error.filename, self.root) if error.filename else "?"
        return RawItem(
            key=storable_text(where) + os.sep,
            folder=self._folder(where if where != "." else ""),
            error_reason="unreadable",
            error=f"directory cannot be listed: {error.strerror or error}; its messages were not imported",
        )


class EmlFolderSource(MaildirSource):
    """A folder (searched recursively) of ``.eml`` files; other files are ignored."""

    kind = "eml"

    def estimate(self) -> int | None:
        return _count_files(self.root, suffix=".eml")

    def iter_items(self) -> Iterator[RawItem]:
        yield from self._items(suffix=".eml")


class MboxSource:
    """One mbox file, read as a stream of messages split at ``From `` lines.

    Python's ``mailbox.mbox`` builds a table of contents of the whole file first; this reader keeps
    only the current message in memory. Keys are byte offsets, stable while the file is appended to.
    The folder is the file's name without ``.mbox``, so ``Sent.mbox`` counts as a sent folder.
    """

    kind = "mbox"

    def __init__(self, path: Path | str, folder: str | None = None):
        self.path = Path(path).resolve()
        self.location = str(self.path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: not a file")
        name = self.path.name
        self.folder = folder if folder is not None else (name[:-5] if name.lower().endswith(".mbox") else name)

    def estimate(self) -> int | None:
        count = 0
        previous_blank = True
        at_line_start = True
        with open(self.path, "rb") as fh:
            while line := fh.readline(_MBOX_LINE_LIMIT):
                if at_line_start and previous_blank and line.startswith(b"From "):
                    count += 1
                previous_blank = at_line_start and line in (b"\n", b"\r\n")
                at_line_start = line.endswith(b"\n")
        return count

    def iter_items(self) -> Iterator[RawItem]:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed by the with below; an open error is an item
        except OSError as exc:
            yield RawItem(key=f"{self.path.name}@0", folder=self.folder, data=None, error=f"unreadable: {exc}")
            return
        with fh:
            message = _MboxMessage(0)
            offset = 0
            previous_blank = True
            at_line_start = True
            while True:
                # bounded reads: a file without line breaks must not be read into memory whole
                line = fh.readline(_MBOX_LINE_LIMIT)
                if not line:
                    break
                if at_line_start:
                    if previous_blank and line.startswith(b"From ") and message.size:
                        yield self._item(message)
                        message = _MboxMessage(offset)
                    elif message.size and _looks_like_separator(line, previous_blank):
                        message.suspects.append(offset)
                message.add(line)
                offset += len(line)
                # the newline ending a line longer than one read is not a blank line of its own (a
                # body line of exactly k x 1 MiB followed by "From " split the message there)
                previous_blank = at_line_start and line in (b"\n", b"\r\n")
                at_line_start = line.endswith(b"\n")
            if message.size:
                yield self._item(message)

    def _item(self, message: _MboxMessage) -> RawItem:
        key = f"{storable_text(self.path.name)}@{message.start}"
        if message.lines is None:
            return RawItem(
                key=key,
                folder=self.folder,
                error_reason="too-large",
                error=f"{message.size:,} bytes, over the {MAX_MESSAGE_BYTES:,}-byte limit for one message",
            )
        lines = message.lines
        body = lines[1:] if lines[0].startswith(b"From ") else lines
        data = b"".join(body)
        # the blank line that separates mbox messages belongs to the format, not to the message
        if data.endswith(b"\n\n"):
            data = data[:-1]
        note = None
        if message.suspects:
            at = ", ".join(f"byte {o:,}" for o in message.suspects[:3])
            note = (
                f"mbox: a line at {at} looks like a damaged 'From ' separator; this item may hold two messages merged"
            )
        return RawItem(key=key, folder=self.folder, data=data, note=note)


_MBOX_LINE_LIMIT = 1 << 20
# An mbox separator: "From <sender> <asctime date>". A line of that shape that did not split the
# mbox (no blank line before it, or a damaged "From") means two messages were probably merged.
_SEPARATOR_SHAPE = re.compile(
    rb"^(\S{3,6}) \S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} "
    rb"\d\d:\d\d(?::\d\d)? (?:\S+ )?\d{4}\s*$"
)


def _looks_like_separator(line: bytes, previous_blank: bool) -> bool:
    if not line[:1].isalpha():  # ">From " is the mbox's own escape of a body line
        return False
    match = _SEPARATOR_SHAPE.match(line)
    if match is None:
        return False
    word = match.group(1)
    return word != b"From" or not previous_blank


class _MboxMessage:
    """One message's lines while an mbox is read; the lines are dropped (only counted) once the
    message passes the size limit."""

    __slots__ = ("start", "lines", "size", "suspects")

    def __init__(self, start: int):
        self.start = start
        self.lines: list[bytes] | None = []
        self.size = 0
        self.suspects: list[int] = []

    def add(self, line: bytes) -> None:
        self.size += len(line)
        if self.lines is not None:
            if self.size > MAX_MESSAGE_BYTES:
                self.lines = None
            else:
                self.lines.append(line)


class MboxFolderSource:
    """A folder of ``.mbox`` files (an export of several mailboxes), each read as an ``MboxSource``."""

    kind = "mbox-folder"

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.location = str(self.root)
        self.files = [p for p in _walk_files(self.root) if _is_mbox_file(p)]
        if not self.files:
            raise SourceError(f"{self.root}: holds no .mbox files")

    def estimate(self) -> int | None:
        return sum(MboxSource(p).estimate() or 0 for p in self.files)

    def iter_items(self) -> Iterator[RawItem]:
        for path in self.files:
            rel_dir = path.parent.relative_to(self.root)
            name = path.name[:-5] if path.name.lower().endswith(".mbox") else path.name
            folder = str(rel_dir / name) if str(rel_dir) != "." else name
            for item in MboxSource(path, folder=folder).iter_items():
                item.key = str(path.relative_to(self.root)) + item.key[len(path.name) :]
                yield item


def _is_mbox_file(path: Path) -> bool:
    return path.suffix.lower() in (".mbox", ".mbx")


def open_source(path: Path | str, kind: str | None = None) -> MailSource:
    """The source for ``path``; ``kind`` is maildir, mbox, mbox-folder, eml, or None to detect it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    if kind is None:
        kind = detect_kind(path)
    if kind == "mbox":
        return MboxSource(path)
    if kind == "eml":
        return EmlFolderSource(path)
    if kind == "mbox-folder":
        return MboxFolderSource(path)
    if kind == "maildir":
        return MaildirSource(path)
    raise SourceError(f"{path}: unknown source kind {kind!r} (expected maildir, mbox, mbox-folder or eml)")


def detect_kind(path: Path) -> str:
    if path.is_file():
        with open(path, "rb") as fh:
            first = fh.read(5)
        if first == b"From " or path.suffix.lower() in (".mbox", ".mbx"):
            return "mbox"
        if path.suffix.lower() == ".eml":
            raise SourceError(f"{path}: a single .eml file; import the folder that holds it")
        raise SourceError(f"{path}: not an mbox file (it does not start with a 'From ' line)")
    if path.is_dir():
        for file in _walk_files(path):
            if _is_mbox_file(file):
                return "mbox-folder"
            return "eml" if file.suffix.lower() == ".eml" else "maildir"
        raise SourceError(f"{path}: the folder holds no files")
    raise SourceError(f"{path}: neither a file nor a folder")
