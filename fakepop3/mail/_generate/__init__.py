"""Faker-driven generator of realistic RFC 5322 messages.

The messages look like real mail of the kind that breaks parsers: display names
and subjects in many scripts (RFC 2047 encoded words), replies threaded with
``In-Reply-To``/``References``, ``multipart/alternative`` with HTML,
``multipart/related`` inline images, attachments (text, CSV, JSON, calendar,
PDF-like, PNG, JPEG, binary) with real MIME types and file names (some RFC 2231
encoded), legacy charsets (ISO-8859-x, windows-125x, KOI8-R, ISO-2022-JP,
Shift_JIS, GB2312...), the transfer encodings ``7bit``, ``8bit``,
``quoted-printable`` and ``base64``, and body lines that start with ``.`` (so a
POP3 server's byte-stuffing is exercised).

Determinism
    Message *k* is a pure function of the knobs, the seed and *k*: it never
    depends on the current time, on hash randomisation, on how many messages were
    asked for or in which order. There are two streams per message: its size,
    and everything else (its plan -- parent, date, locale, sender, subject,
    Message-ID -- then its content). Each has a 64-bit key, a BLAKE2 digest of
    ``(seed, purpose)`` made once per generator; message *k*'s stream is seeded
    with the SplitMix64 output for ``key + (k + 1) * golden`` (integer
    arithmetic only, so :meth:`GeneratedMail.size` costs well under a
    microsecond). Floating point is used only for IEEE-exact operations (no
    ``log``/``exp``), so output is byte-identical on every machine for a given
    fakepop3, Faker and Python minor version.

Exact sizes without generating
    Every message is padded to an exact size drawn from ``[min_size, max_size]``
    (a cheap function of ``(seed, k)``), so :meth:`GeneratedMail.size` and
    :meth:`GeneratedMail.total_size` answer ``STAT`` for a 100,000-message
    mailbox without building a single message (unless a ``hook`` is given, since
    a hook may change the bytes). :meth:`GeneratedMail.sizes` computes all of
    them in one pass. Faker is not even imported until a message, a subject or a
    Message-ID is needed, so a first ``STAT`` stays cheap in a fresh process.

Speed
    Bytes are assembled directly from templates (no :class:`email.message.EmailMessage`)
    and rendered into one list of chunks joined once. Each locale's Faker data
    (person, internet, lorem and company providers only) is loaded when a
    message first needs it and kept for the process, with pools made from it at
    a fixed seed: 1,024 lorem sentences and 512 people (display name and
    address: a mailbox's regular correspondents). Messages draw from those pools
    with their own :class:`random.Random`, never through a shared Faker, so
    generators in different threads do not disturb each other; only a hook's
    ``ctx.faker`` is a (full, shared, locked) Faker. :class:`GeneratedMail`
    builds a message only when it is indexed.

Every message uses CRLF line ends, ends with CRLF and parses with
``email.parser.BytesParser(policy=email.policy.default)`` without defects.

Layout (each module opens with the rules it keeps)
    ``_random``  the seeded streams and their derivation
    ``_knobs``   the knobs' defaults and conversions
    ``_locale``  Faker's data per locale, the pools messages draw from
    ``_text``    filler lines, dates, encoded words and folding
    ``_mime``    parts, multiparts, base64 / quoted-printable, binary payloads
    ``_bodies``  the text and HTML parts and the attachments
    ``_plan``    the per-message plan and every message's size
    ``_build``   :class:`MessageGenerator`: a message from its plan, fitted to size
    ``_hook``    :class:`HookContext`, :data:`MessageHook`
    ``_mail``    :class:`GeneratedMail`, :func:`generate_messages`, :func:`generate_message`

The first rule of all: draw order is part of the output.  Never reorder, add or
drop a random draw anywhere; ``tests/test_generate.py`` pins the sha256 of the
messages of several seeds and knob sets, so any change shows at once.
"""

from __future__ import annotations

from ._build import MessageGenerator
from ._hook import HookContext, MessageHook
from ._knobs import (
    DEFAULT_END,
    DEFAULT_NON_ASCII_LOCALES,
    DEFAULT_START,
    MIN_SIZE_FLOOR,
    Knobs,
    check_knobs,
)
from ._mail import GeneratedMail, generate_message, generate_messages

__all__ = [
    "DEFAULT_END",
    "DEFAULT_NON_ASCII_LOCALES",
    "DEFAULT_START",
    "MIN_SIZE_FLOOR",
    "GeneratedMail",
    "HookContext",
    "Knobs",
    "MessageGenerator",
    "MessageHook",
    "check_knobs",
    "generate_message",
    "generate_messages",
]
