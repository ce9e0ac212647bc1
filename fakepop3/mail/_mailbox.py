"""The store's mail helpers: what ``Mailbox.add_message``, ``generate`` and ``load`` call.

The store does not import the mail package; this module implements the store's
:class:`fakepop3.store.MailHelpers` protocol and ``fakepop3.mail`` registers it
(``store.use_mail_helpers``) when imported.

Rules a maintainer must keep:

* Import nothing heavy at module level (``email``, Faker, the generator): this
  module is imported with ``fakepop3.mail``, so by ``import fakepop3``.  Each
  helper imports what it needs when called.
* ``generate`` keeps the UIDs and laziness users rely on: without a hook the
  messages are added lazily (``Mailbox.add_lazy``: sizes now, bytes on first
  use, UIDs ``N.gK``); a hook may change the sizes, so with one every message is
  built at once and added as bytes (UIDs ``N.<sha1>``, as ``Mailbox.add`` makes).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..store import Mailbox, Message
    from ._loaders import MailFormat


def build_message(**fields: Any) -> bytes:
    """:func:`fakepop3.mail.build_message`, imported on first use."""
    from ._builder import build_message

    return build_message(**fields)


def generate(mailbox: Mailbox, count: int, **knobs: Any) -> Sequence[Message]:
    """Add ``count`` generated messages to ``mailbox`` (``generate_messages(count, **knobs)``)."""
    from ._generate import generate_messages

    mail = generate_messages(count, **knobs)
    if mail.generator.hook is None:
        return mailbox.add_lazy(mail)
    return mailbox.extend(list(mail))


def load_messages(path: str | os.PathLike[str], *, format: str | None) -> list[bytes]:
    """:func:`fakepop3.mail.load_messages`, imported on first use (it checks ``format``)."""
    from ._loaders import load_messages

    return load_messages(path, format=cast("MailFormat | None", format))
