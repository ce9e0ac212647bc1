"""Build one specific message in one line (kept import path; the code is in :mod:`fakepop3.mail`)."""

from __future__ import annotations

from .mail._builder import DEFAULT_DATE, Attachment, Attachments, build_message

__all__ = ["DEFAULT_DATE", "Attachment", "Attachments", "build_message"]
