"""Load real mail from disk (kept import path; the code is in :mod:`fakepop3.mail`)."""

from __future__ import annotations

from .mail._loaders import (
    MailFormat,
    MailLoadError,
    MailNotFoundError,
    detect_format,
    load_eml,
    load_eml_dir,
    load_maildir,
    load_mbox,
    load_messages,
)
from .mail._loaders import StrPath as StrPath

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
