"""Mail for the store: generated (Faker), built one at a time, or loaded from disk.

* :func:`generate_messages` -- a lazy mailbox of realistic, seeded messages
  (``fakepop3/mail/_generate/``; its package docstring has the details).
* :func:`build_message` -- one exact message in one line (``_builder.py``).
* :func:`broken_message` -- a deliberately malformed one, of a kind in
  :data:`BROKEN_KINDS` (``_broken.py``).
* :func:`load_messages` -- ``.eml`` files, folders of them, mbox, Maildir
  (``_loaders.py``).

Rules a maintainer must keep:

* Importing this package is cheap and imports no ``email``, ``socket`` or
  Faker: the names below are loaded on first use (PEP 562), since
  ``import fakepop3`` imports this package.
* The store does not import this package; this package depends on the store,
  never the other way round.  Importing it registers ``_mailbox`` with the store
  (``store.use_mail_helpers``): that is what ``Mailbox.add_message``,
  ``Mailbox.generate`` and ``Mailbox.load`` call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .. import store as _store
from . import _mailbox

if TYPE_CHECKING:
    from ._broken import BROKEN_KINDS, broken_message
    from ._builder import DEFAULT_DATE, Attachment, Attachments, build_message
    from ._generate import (
        DEFAULT_END,
        DEFAULT_NON_ASCII_LOCALES,
        DEFAULT_START,
        MIN_SIZE_FLOOR,
        GeneratedMail,
        HookContext,
        MessageGenerator,
        MessageHook,
        generate_message,
        generate_messages,
    )
    from ._loaders import (
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

#: Where each public name lives (a private module of this package).
_WHERE = {
    **dict.fromkeys(("DEFAULT_DATE", "Attachment", "Attachments", "build_message"), "_builder"),
    **dict.fromkeys(("BROKEN_KINDS", "broken_message"), "_broken"),
    **dict.fromkeys(
        (
            "DEFAULT_END",
            "DEFAULT_NON_ASCII_LOCALES",
            "DEFAULT_START",
            "MIN_SIZE_FLOOR",
            "GeneratedMail",
            "HookContext",
            "MessageGenerator",
            "MessageHook",
            "generate_message",
            "generate_messages",
        ),
        "_generate",
    ),
    **dict.fromkeys(
        (
            "MailFormat",
            "MailLoadError",
            "MailNotFoundError",
            "detect_format",
            "load_eml",
            "load_eml_dir",
            "load_maildir",
            "load_mbox",
            "load_messages",
        ),
        "_loaders",
    ),
}

__all__ = [
    "BROKEN_KINDS",
    "DEFAULT_DATE",
    "DEFAULT_END",
    "DEFAULT_NON_ASCII_LOCALES",
    "DEFAULT_START",
    "MIN_SIZE_FLOOR",
    "Attachment",
    "Attachments",
    "GeneratedMail",
    "HookContext",
    "MailFormat",
    "MailLoadError",
    "MailNotFoundError",
    "MessageGenerator",
    "MessageHook",
    "broken_message",
    "build_message",
    "detect_format",
    "generate_message",
    "generate_messages",
    "load_eml",
    "load_eml_dir",
    "load_maildir",
    "load_mbox",
    "load_messages",
]

_store.use_mail_helpers(_mailbox)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
