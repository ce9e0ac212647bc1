"""Build one specific message in one line, for a test that needs exactly that message.

>>> raw = build_message(subject="Invoice 42", text="Please pay.",
...                     attachments={"invoice.pdf": b"%PDF-1.4 ..."})
>>> raw.startswith(b"From: ")
True

The result is RFC 5322 bytes with CRLF line ends. Defaults are fixed (a fixed
``Date``, a ``Message-ID`` derived from the content), so the same call gives
the same bytes on every run.

Rules a maintainer must keep: the defaults are fixed values (never the current
time, the host name or a random ID), the file-type table is Python's built-in
one (system ``mime.types`` files differ between machines), and this module is
imported only on first use (``email.policy`` imports ``socket`` on Python 3.11).
"""

from __future__ import annotations

import datetime as _dt
import email.policy
import hashlib
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import format_datetime

__all__ = ["DEFAULT_DATE", "Attachment", "Attachments", "build_message"]

#: ``Date`` of a built message unless one is given.
DEFAULT_DATE = _dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)

Attachment = tuple[str, bytes | str] | tuple[str, bytes | str, str]
"""``(file name, content)`` or ``(file name, content, "type/subtype")``."""
Attachments = Mapping[str, bytes | str] | Sequence[Attachment]
"""``{file name: content}`` or a sequence of :data:`Attachment` tuples."""

_POLICY = email.policy.default.clone(linesep="\r\n")
# Built-in table only: system mime.types files differ between machines.
_MIME = mimetypes.MimeTypes()


def _addresses(value: str | Sequence[str] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ", ".join(value)


def _attachment_items(attachments: Attachments) -> Iterable[tuple[str, bytes | str, str | None]]:
    if isinstance(attachments, Mapping):
        for name, content in attachments.items():
            yield name, content, None
        return
    for item in attachments:
        if len(item) == 3:
            name, content, ctype = item
            yield name, content, ctype
        else:
            name, content = item[0], item[1]
            yield name, content, None


def build_message(
    *,
    subject: str = "Test message",
    sender: str = "Sender <sender@example.com>",
    to: str | Sequence[str] = "Recipient <recipient@example.com>",
    cc: str | Sequence[str] | None = None,
    reply_to: str | None = None,
    text: str | None = None,
    html: str | None = None,
    attachments: Attachments | None = None,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    date: _dt.datetime | str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    """Build one message and return its bytes (CRLF line ends).

    :param subject: ``Subject`` (non-ASCII is RFC 2047 encoded).
    :param sender: ``From``, e.g. ``"Ann <ann@example.com>"``.
    :param to: ``To``: one address or a sequence of them.
    :param cc: ``Cc``, likewise.
    :param reply_to: ``Reply-To``.
    :param text: the plain-text body. If neither ``text`` nor ``html`` is
        given the body is ``"Hello."``.
    :param html: an HTML body; with ``text`` the two form ``multipart/alternative``.
    :param attachments: ``{name: content}`` or ``[(name, content[, mimetype])]``;
        ``str`` content is attached as UTF-8 text. The type is guessed from the
        name when not given (``application/octet-stream`` if unknown).
    :param headers: extra header fields, added after the standard ones (a
        sequence may repeat a name). A name already set (e.g. ``Subject``) is replaced.
    :param date: ``Date``; a datetime (naive means UTC) or a ready string.
        Defaults to :data:`DEFAULT_DATE`.
    :param message_id: ``Message-ID`` (angle brackets added if missing). Defaults
        to one derived from the subject, addresses and bodies.
    :param in_reply_to: ``Message-ID`` this message replies to; sets
        ``In-Reply-To`` and ``References``.
    """
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    msg["To"] = _addresses(to) or ""
    cc_value = _addresses(cc)
    if cc_value:
        msg["Cc"] = cc_value
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    if date is None:
        date = DEFAULT_DATE
    if isinstance(date, _dt.datetime):
        if date.tzinfo is None:
            date = date.replace(tzinfo=_dt.timezone.utc)
        date = format_datetime(date)
    msg["Date"] = date
    if message_id is None:
        digest = hashlib.sha256(
            "\0".join(
                [subject, sender, msg["To"], cc_value or "", text or "", html or "", date]
            ).encode("utf-8", "surrogatepass")
        ).hexdigest()[:24]
        message_id = f"<{digest}@fakepop3.invalid>"
    elif not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    msg["Message-ID"] = message_id
    if in_reply_to:
        ref = in_reply_to if in_reply_to.startswith("<") else f"<{in_reply_to}>"
        msg["In-Reply-To"] = ref
        msg["References"] = ref

    if text is None and html is None:
        text = "Hello."
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")

    for name, content, ctype in _attachment_items(attachments or ()):
        if ctype is None:
            ctype = _MIME.guess_type(name, strict=False)[0] or (
                "text/plain" if isinstance(content, str) else "application/octet-stream"
            )
        maintype, _, subtype = ctype.partition("/")
        if isinstance(content, str):
            if maintype != "text":
                content = content.encode("utf-8")
            else:
                msg.add_attachment(content, subtype=subtype or "plain", filename=name)
                continue
        msg.add_attachment(
            content, maintype=maintype, subtype=subtype or "octet-stream", filename=name
        )

    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        replaced: set[str] = set()
        for name, value in items:
            key = name.lower()
            if key not in replaced and name in msg:
                del msg[name]
            replaced.add(key)
            msg[name] = value
    return msg.as_bytes(policy=_POLICY)
