"""Load real mail from disk: a ``.eml`` file, a folder of them, an mbox or a Maildir.

Every loader returns the raw messages as ``bytes``, exactly as stored apart from
line ends (the standard library's :mod:`mailbox` turns them into ``\\n``; the
store serves every message with CRLF). For mbox, the ``From `` separator line is
not part of a message, and ``>From `` quoting is kept as stored.

Rules a maintainer must keep: a loader never rewrites a message (no parsing,
no re-encoding); errors are :class:`MailLoadError` (a ``ValueError``) or
:class:`MailNotFoundError` (also a ``FileNotFoundError``) naming the path, and
the CLI shows their ``expected`` text as it is.

>>> load_messages("tests/data/inbox.mbox")  # doctest: +SKIP
[b'From: ...', ...]
"""

from __future__ import annotations

import errno
import mailbox
import os
import re
from pathlib import Path
from typing import Literal

__all__ = [
    "MailFormat",
    "MailLoadError",
    "MailNotFoundError",
    "detect_format",
    "load_eml",
    "load_eml_dir",
    "load_maildir",
    "load_mbox",
    "load_messages",
]

MailFormat = Literal["eml", "eml-dir", "mbox", "maildir"]
"""The formats :func:`load_messages` reads."""

StrPath = str | os.PathLike[str]

# A header field line: a field name (printable ASCII but colon) and a colon.
_HEADER_RE = re.compile(rb"[!-9;-~]+[ \t]*:")
_EML_SUFFIXES = (".eml",)


class MailLoadError(ValueError):
    """The path exists but does not hold mail in a format this module reads."""

    def __init__(self, path: StrPath, expected: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.message = f"{os.fspath(path)!s}: {expected}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class MailNotFoundError(MailLoadError, FileNotFoundError):
    """The path does not exist (both a :class:`MailLoadError` and a :class:`FileNotFoundError`)."""

    def __init__(self, path: StrPath) -> None:
        super().__init__(
            path,
            "no such file or folder (expected an .eml file, a folder of .eml files, "
            "an mbox file or a Maildir)",
        )
        self.errno = errno.ENOENT
        self.strerror = self.expected
        self.filename = os.fspath(path)


def _looks_like_message(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    return bool(_HEADER_RE.match(first))


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _eml_files(path: Path) -> list[Path]:
    return sorted(
        (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _EML_SUFFIXES),
        key=lambda p: p.name,
    )


def detect_format(path: StrPath) -> MailFormat:
    """Tell which format ``path`` holds, from the path and its first bytes.

    A folder with ``cur/`` and ``new/`` is a Maildir; another folder must hold
    ``.eml`` files. A file starting with ``From `` is an mbox (as is an empty file
    named ``*.mbox``); a file starting with a header field is a single message.

    :raises MailNotFoundError: the path does not exist.
    :raises MailLoadError: the path holds nothing this module reads.
    """
    p = Path(path)
    if not p.exists():
        raise MailNotFoundError(path)
    if p.is_dir():
        if _is_maildir(p):
            return "maildir"
        if _eml_files(p):
            return "eml-dir"
        raise MailLoadError(
            path, "folder is neither a Maildir (cur/, new/, tmp/) nor holds any .eml files"
        )
    if not p.is_file():
        raise MailLoadError(path, "not a regular file or folder")
    with p.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"From "):
        return "mbox"
    if not head:
        if p.suffix.lower() in (".mbox", ".mbx") or p.name.lower() == "mbox":
            return "mbox"
        raise MailLoadError(path, "empty file (expected an .eml message or an mbox file)")
    if _looks_like_message(head):
        return "eml"
    raise MailLoadError(
        path,
        "not mail (expected an .eml message starting with a header field, "
        "or an mbox file starting with 'From ')",
    )


def load_eml(path: StrPath) -> list[bytes]:
    """One message from an ``.eml`` file, as a one-item list of its bytes."""
    p = Path(path)
    if not p.exists():
        raise MailNotFoundError(path)
    if not p.is_file():
        raise MailLoadError(path, "expected an .eml file, found a folder")
    data = p.read_bytes()
    if not _looks_like_message(data[:4096]):
        raise MailLoadError(path, "not an .eml message (it does not start with a header field)")
    return [data]


def load_eml_dir(path: StrPath) -> list[bytes]:
    """Every ``*.eml`` file of a folder (not recursive), in file-name order."""
    p = Path(path)
    if not p.exists():
        raise MailNotFoundError(path)
    if not p.is_dir():
        raise MailLoadError(path, "expected a folder of .eml files, found a file")
    files = _eml_files(p)
    if not files:
        raise MailLoadError(path, "folder holds no .eml files")
    out: list[bytes] = []
    for f in files:
        out.extend(load_eml(f))
    return out


def load_mbox(path: StrPath) -> list[bytes]:
    """The messages of an mbox file, in file order, without the ``From `` lines."""
    p = Path(path)
    if not p.exists():
        raise MailNotFoundError(path)
    if not p.is_file():
        raise MailLoadError(path, "expected an mbox file, found a folder")
    with p.open("rb") as fh:
        head = fh.read(5)
    if head and head != b"From ":
        raise MailLoadError(path, "not an mbox file (it does not start with 'From ')")
    box = mailbox.mbox(p, create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def load_maildir(path: StrPath) -> list[bytes]:
    """The messages of a Maildir (``new/`` and ``cur/``), ordered by their unique names.

    Maildir unique names start with the delivery time, so this is delivery order
    for mail delivered by ordinary agents.
    """
    p = Path(path)
    if not p.exists():
        raise MailNotFoundError(path)
    if not p.is_dir() or not _is_maildir(p):
        raise MailLoadError(path, "not a Maildir (expected a folder with cur/ and new/)")
    box = mailbox.Maildir(p, factory=None, create=False)
    return [box.get_bytes(key) for key in sorted(box.keys())]


_LOADERS = {
    "eml": load_eml,
    "eml-dir": load_eml_dir,
    "mbox": load_mbox,
    "maildir": load_maildir,
}


def load_messages(path: StrPath, *, format: MailFormat | None = None) -> list[bytes]:
    """Load every message at ``path``, detecting the format unless ``format`` is given.

    :param path: an ``.eml`` file, a folder of ``.eml`` files, an mbox file or a Maildir.
    :param format: one of ``"eml"``, ``"eml-dir"``, ``"mbox"``, ``"maildir"`` to skip detection.
    :returns: raw messages, in file-name (folder), file (mbox) or delivery (Maildir) order.
    :raises MailNotFoundError: the path does not exist (a :class:`FileNotFoundError`).
    :raises MailLoadError: the path is not mail in one of these formats (a :class:`ValueError`).
    """
    fmt = detect_format(path) if format is None else format
    loader = _LOADERS.get(fmt)
    if loader is None:
        raise ValueError(f"unknown mail format {fmt!r}; expected one of {sorted(_LOADERS)}")
    return loader(path)
