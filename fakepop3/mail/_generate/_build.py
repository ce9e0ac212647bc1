"""The message builder: :class:`MessageGenerator` makes message *k* from its plan.

Building message *k* continues its ``"message"`` stream where its plan's draws
stopped: the people (recipients, Cc, Reply-To, mailer, the header encodings'
rolls), then the content choices (HTML, inline image, attachments, paragraphs,
greeting, sign-off, dot line, charset and transfer-encoding rolls, boundary,
attachment seed).  The message is then rendered and, if too big for its
planned size, rendered again with less (the shrinking ladder) until it fits;
the gap left is closed with filler lines, so the size is exact.

Rules a maintainer must keep:

* Draw order is part of the output: never reorder, add or drop a draw, and
  draw nothing while shrinking (every rung reuses the same choices; the
  attachment stream is reseeded per rung).  The pinned digests in
  ``tests/test_generate.py`` catch any change.
* A message is exactly ``plan.size`` octets, CRLF line ends, ends with CRLF,
  ASCII headers, and parses without defects with ``email.policy.default``.
* The generator's Random objects are its own (never a shared Faker), so
  generators in different threads do not disturb each other; one instance is
  used by one thread at a time (``GeneratedMail`` holds a lock).
"""

from __future__ import annotations

import datetime as _dt
import random
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count, cycle
from typing import Literal

from ._bodies import attachment, html_part, text_part
from ._hook import HookContext, MessageHook
from ._knobs import (
    DEFAULT_END,
    DEFAULT_NON_ASCII_LOCALES,
    DEFAULT_START,
    check_knobs,
    knob_values,
)
from ._locale import Locale, locale_data
from ._mime import Multi, Part, b64_body, png
from ._plan import Plan, Planner, _broken_bytes
from ._random import derive, stream_key
from ._text import CRLF, display_name, filler, format_date, subject_value

__all__ = ["MessageGenerator"]

_GREETINGS = ("Hi,", "Hello,", "Hi all,", "Dear team,", "Good morning,", "Hi there,", "Hey,")
#: Sign-offs in two spellings one octet apart: how a 1-octet gap is closed.
_SIGNOFFS = (
    ("Thanks", "Thanks!"),
    ("Cheers", "Cheers!"),
    ("Best", "Best,"),
    ("Regards", "Regards,"),
    ("Kind regards", "Kind regards,"),
)
_DOT_LINES = (
    ".",
    "..",
    "...",
    ". .",
    ".hidden files are skipped by default",
    "...and that was the whole story.",
    ".NET 8 is fine for the client.",
    ".\t(a dot and a tab)",
)
_MAILERS = (
    "Mozilla Thunderbird 115.6.0",
    "Microsoft Outlook 16.0",
    "Apple Mail (2.3731.700.6)",
    "Roundcube Webmail/1.6.5",
    "K-9 Mail for Android",
    "Evolution 3.50.2",
    "mutt/2.2.12",
)
#: At most this many names in a message's headers (From, 1-2 To, 0-3 Cc, Reply-To),
#: plus the subject: each may take two random choices when RFC 2047 encoded.
_MAX_NAMES = 9


@dataclass(slots=True)
class _People:
    """Who a message is to, drawn once (every rung of the ladder shows them, or fewer)."""

    recipients: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    reply_to: tuple[str, str] | None
    mailer: str
    header_rolls: list[float]


@dataclass(slots=True)
class _Content:
    """A message's body choices, drawn once (every rung of the ladder uses them, or fewer)."""

    with_html: bool
    with_inline: bool
    n_att: int
    paragraphs: list[list[str]]
    greeting: str
    signoff: tuple[str, str]
    dot_line: str | None
    charset_roll: float
    cte_roll: float
    html_cte_roll: float
    boundary_token: int
    att_seed: int
    logo: bytes


@dataclass(frozen=True, slots=True)
class _Rung:
    """What one rung of the shrinking ladder keeps of a message's choices."""

    paragraphs: Literal["all", "first", "two lines", "none"]
    attachments: bool
    extras: bool
    """The inline image, Cc, Reply-To and every References entry (else only the parent's)."""
    all_recipients: bool
    html: bool
    names: bool
    """Display names (else bare addresses)."""
    full_subject: bool


#: The shrinking ladder.  A message is rendered on the first rung; while it is bigger
#: than its planned size it is rendered again on the next one, which keeps less.  The
#: names and the whole subject go last: ``non_ascii`` relies on them.  Rung 9 always
#: fits ``MIN_SIZE_FLOOR``.  Changing a rung changes the output of the messages that
#: land on it (the pinned digests in tests/test_generate.py cover every rung).
# fmt: off
_LADDER: tuple[_Rung, ...] = (
    #     paragraphs   attach extras all-to html   names  subject
    _Rung("all",       True,  True,  True,  True,  True,  True),   # 0: everything
    _Rung("first",     True,  True,  True,  True,  True,  True),   # 1: one paragraph
    _Rung("first",     False, True,  True,  True,  True,  True),   # 2: no attachments
    _Rung("first",     False, False, True,  True,  True,  True),   # 3: no image, Cc, Reply-To
    _Rung("first",     False, False, False, True,  True,  True),   # 4: one recipient
    _Rung("first",     False, False, False, False, True,  True),   # 5: no HTML
    _Rung("two lines", False, False, False, False, True,  True),   # 6: two lines of text
    _Rung("none",      False, False, False, False, True,  True),   # 7: no text
    _Rung("none",      False, False, False, False, False, True),   # 8: no display names
    _Rung("none",      False, False, False, False, False, False),  # 9: subject cut to 20
)
# fmt: on


class MessageGenerator(Planner):
    """Builds message *k* of a generated mailbox on demand.

    The knobs are checked by :func:`check_knobs`; see :func:`generate_messages` for
    their meaning. An instance may be shared between threads only if callers hold a
    lock around :meth:`message` (its random generators and caches are its own;
    :class:`GeneratedMail` holds one). :meth:`size` and :meth:`sizes` need none.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        locale: str | Sequence[str] = "en_US",
        start: _dt.datetime | _dt.date | float = DEFAULT_START,
        end: _dt.datetime | _dt.date | float = DEFAULT_END,
        min_size: int = 2_000,
        max_size: int = 20_000,
        html: float = 0.5,
        attachments: float = 0.3,
        threads: float = 0.3,
        non_ascii: float = 0.2,
        dot_lines: float = 0.25,
        broken: float = 0.0,
        non_ascii_locales: Sequence[str] = DEFAULT_NON_ASCII_LOCALES,
        hook: MessageHook | None = None,
    ) -> None:
        knobs = check_knobs(**knob_values(locals()))
        self.seed = knobs["seed"]
        self.locales = knobs["locale"]
        self.non_ascii_locales = knobs["non_ascii_locales"]
        self.start = knobs["start"]
        self.end = knobs["end"]
        self.min_size = knobs["min_size"]
        self.max_size = knobs["max_size"]
        self.html = knobs["html"]
        self.attachments = knobs["attachments"]
        self.threads = knobs["threads"]
        self.non_ascii = knobs["non_ascii"]
        self.dot_lines = knobs["dot_lines"]
        self.broken = knobs["broken"]
        self._broken_key = stream_key(self.seed, "broken")
        self.hook = knobs["hook"]
        self._plan_rng = random.Random(0)
        self._aux_rng = random.Random(0)
        self._content_rng = random.Random(0)
        self._plans = OrderedDict()
        self._size_key = stream_key(self.seed, "size")
        # Message k's stream: its plan (the first draws), then its content.
        self._message_key = stream_key(self.seed, "message")

    def size(self, index: int) -> int:
        """The exact size in octets (CRLF line ends) of message ``index``.

        Computed without building the message unless a hook is set.
        """
        if self.hook is not None:
            return len(self.message(index))
        kind = self.broken_kind(index)
        return self._size(index) if kind is None else len(_broken_bytes(kind, index))

    def message(self, index: int) -> bytes:
        """Build message ``index`` (CRLF line ends), applying the hook if any."""
        kind = self.broken_kind(index)
        data = self._build(index) if kind is None else _broken_bytes(kind, index)
        if self.hook is None:
            return data
        plan = self.plan(index)
        loc = locale_data(plan.locale)
        with loc.lock:  # the Faker instance is shared by every generator of the process
            faker = loc.full_faker
            faker.seed_instance(derive(stream_key(self.seed, "hook"), index))
            ctx = HookContext(
                index=index,
                seed=self.seed,
                message_id=plan.message_id,
                parent=plan.parent,
                random=random.Random(derive(stream_key(self.seed, "hook-random"), index)),
                faker=faker,
            )
            result = self.hook(ctx, data)
        if result is None:
            return data
        if isinstance(result, str):
            result = result.encode("utf-8")
        if not isinstance(result, bytes):
            raise TypeError(
                f"message hook must return bytes, str or None, not {type(result).__name__}"
            )
        return result

    def _build(self, index: int) -> bytes:
        """Message ``index``: its plan, its choices, then the first rung of the ladder that fits."""
        # One stream per message: the plan's draws, then the content's. (Our own
        # Random: a process-wide Faker's would race with other threads.)
        rng = self._content_rng
        rng.seed(derive(self._message_key, index))
        plan = self.plan(index, self._raw_plan(index, rng))
        subject = self.subject(index)
        refs = self._references(index)
        loc = locale_data(plan.locale)
        people = self._draw_people(rng, plan, loc)
        content = self._draw_content(rng, plan, loc)
        for rung in _LADDER:
            head, top, text_node, pad_at = self._render(
                index, plan, loc, subject, refs, people, content, rung
            )
            chunks = [head]
            top.chunks(chunks)
            gap = plan.size - sum(map(len, chunks)) - len(content.signoff[0]) - 2
            if gap >= 0:
                out = _fill(rng, chunks, text_node.body, pad_at, gap, content.signoff)
                assert len(out) == plan.size, (len(out), plan.size)
                return out
        raise AssertionError(
            f"message {index} cannot fit in {plan.size} octets"
        )  # pragma: no cover

    def _draw_people(self, rng: random.Random, plan: Plan, loc: Locale) -> _People:
        """The recipients, Cc, Reply-To, mailer and header rolls (draws after the plan's)."""
        recipients: list[tuple[str, str]] = []
        if plan.parent is not None:
            pp = self.plan(plan.parent)
            recipients.append((pp.sender_name, pp.sender_addr))
        for _ in range(int(rng.random() * 2) + (0 if recipients else 1)):
            recipients.append(loc.person(rng))
        cc: list[tuple[str, str]] = []
        for _ in range(int(rng.random() * rng.random() * 4)):
            cc.append(loc.person(rng))
        reply_to = None
        if rng.random() < 0.15:
            reply_to = (plan.sender_name, "reply+" + plan.sender_addr)
        mailer = _MAILERS[int(rng.random() * len(_MAILERS))]
        # The header encodings' choices: the same on every rung of the ladder.
        header_rolls = [rng.random() for _ in range(2 * _MAX_NAMES)]
        return _People(recipients, cc, reply_to, mailer, header_rolls)

    def _draw_content(self, rng: random.Random, plan: Plan, loc: Locale) -> _Content:
        """The body's choices (draws after the people's), made once for every rung."""
        with_html = rng.random() < self.html
        with_inline = with_html and rng.random() < 0.3
        n_att = (1 + int(rng.random() * rng.random() * 3)) if rng.random() < self.attachments else 0
        # Fewer paragraphs for small messages, so that they rarely need shrinking.
        n_par = 1 + int(rng.random() * 3)
        n_par = max(1, min(n_par, (plan.size - 900) // (1400 if with_html else 700)))
        paragraphs = [loc.paragraph(rng, 2 + int(rng.random() * 4)) for _ in range(n_par)]
        greeting = _GREETINGS[int(rng.random() * len(_GREETINGS))]
        signoff = _SIGNOFFS[int(rng.random() * len(_SIGNOFFS))]
        dot_line = (
            _DOT_LINES[int(rng.random() * len(_DOT_LINES))]
            if rng.random() < self.dot_lines
            else None
        )
        charset_roll = rng.random()
        cte_roll = rng.random()
        html_cte_roll = rng.random()
        boundary_token = rng.getrandbits(48)
        att_seed = rng.getrandbits(64)
        logo = b64_body(png(rng, 400)) if with_inline else b""
        return _Content(
            with_html,
            with_inline,
            n_att,
            paragraphs,
            greeting,
            signoff,
            dot_line,
            charset_roll,
            cte_roll,
            html_cte_roll,
            boundary_token,
            att_seed,
            logo,
        )

    def _render(
        self,
        index: int,
        plan: Plan,
        loc: Locale,
        subject: str,
        refs: list[str],
        people: _People,
        content: _Content,
        rung: _Rung,
    ) -> tuple[bytes, Part | Multi, Part, int]:
        """The header block and MIME tree of one rung; the text part and where its padding goes.

        Draws only from the attachment stream, reseeded here: every rung makes the
        same choices, and the content stream is left for the filler.
        """
        paras = content.paragraphs
        keep = rung.paragraphs
        if keep != "all":
            paras = paras[:1] if keep == "first" else [paras[0][:2]] if keep == "two lines" else []
        extras = rung.extras
        head = _headers(
            plan,
            subject if rung.full_subject else subject[:20],
            people.recipients if rung.all_recipients else people.recipients[:1],
            people.cc if extras else [],
            people.reply_to if extras else None,
            refs if extras else refs[-1:],
            people.mailer,
            rung.names,
            cycle(people.header_rolls),
        ).encode("ascii")
        text_node, pad_at = text_part(
            paras,
            content.greeting,
            content.dot_line,
            plan.sender_name,
            content.charset_roll,
            content.cte_roll,
        )
        numbers = count(1)
        token = content.boundary_token

        def boundary() -> str:
            return f"=_fp{token:012x}_{index}_{next(numbers)}"

        body: Part | Multi = text_node
        if content.with_html and rung.html:
            cid = f"img{token:x}.{index}@fakepop3" if content.with_inline and extras else None
            html_node: Part | Multi = html_part(
                paras,
                content.greeting,
                plan.sender_name,
                content.charset_roll,
                content.html_cte_roll,
                cid,
            )
            if cid is not None:
                inline = Part(
                    [
                        "Content-Type: image/png",
                        "Content-Transfer-Encoding: base64",
                        f"Content-ID: <{cid}>",
                        'Content-Disposition: inline; filename="logo.png"',
                    ],
                    content.logo,
                )
                html_node = Multi("related", boundary(), [html_node, inline])
            body = Multi("alternative", boundary(), [text_node, html_node])
        if not (content.n_att and rung.attachments):
            return head, body, text_node, pad_at
        top = Multi("mixed", boundary(), [body])
        self._attach(top, len(head), plan, loc, content.n_att, content.att_seed)
        return head, top, text_node, pad_at

    def _attach(
        self, top: Multi, head_len: int, plan: Plan, loc: Locale, atts: int, att_seed: int
    ) -> None:
        """Add up to ``atts`` attachments to ``top``, sharing the room the message has left."""
        chunks: list[bytes] = []
        top.chunks(chunks)
        avail = plan.size - head_len - sum(map(len, chunks)) - 150 * atts
        att_rng = self._aux_rng
        att_rng.seed(att_seed)
        att_parts: list[Part] = []
        for i in range(atts):
            share = avail // (atts - i) if i < atts - 1 else avail
            share = int(share * (0.4 + 0.5 * att_rng.random()))
            part = attachment(att_rng, share, loc, i)
            if part is None:
                continue
            att_parts.append(part)
            avail -= len(part.render()) + 50
        top.parts.extend(att_parts)


def _fill(
    rng: random.Random,
    chunks: list[bytes],
    body: bytes,
    pad_at: int,
    gap: int,
    signoff: tuple[str, str],
) -> bytes:
    """The rendered ``chunks`` joined, ``gap`` octets of filler and the sign-off spliced in.

    They go into the text part's ``body`` at ``pad_at``; a 1-octet gap (which no
    filler line can close) takes the sign-off's longer spelling.
    """
    signoff_text = signoff[0]
    if gap == 1:
        signoff_text = signoff[1]
        gap = 0
    pad = (filler().block(rng, gap) + signoff_text + CRLF).encode("ascii")
    # The body is one chunk, the object itself (Part.chunks); every other chunk is a
    # fresh bytes object of a header block or a delimiter, so identity finds it.
    at = next(i for i, chunk in enumerate(chunks) if chunk is body)
    chunks[at : at + 1] = (body[:pad_at], pad, body[pad_at:])
    return b"".join(chunks)


def _headers(
    plan: Plan,
    subject: str,
    rcpt: list[tuple[str, str]],
    cc: list[tuple[str, str]],
    reply_to: tuple[str, str] | None,
    refs: list[str],
    mailer: str,
    named: bool,
    rolls: Iterator[float],
) -> str:
    """The header block (ASCII, CRLF, without the blank line); encoded words take ``rolls``."""

    def addr(pair: tuple[str, str]) -> str:
        name, address = pair
        dn = display_name(name, rolls) if named else ""
        return f"{dn} <{address}>" if dn else address

    lines = [
        f"From: {addr((plan.sender_name, plan.sender_addr))}",
        "To: " + ("," + CRLF + "\t").join(addr(r) for r in rcpt),
    ]
    if cc:
        lines.append("Cc: " + ("," + CRLF + "\t").join(addr(r) for r in cc))
    if reply_to is not None:
        lines.append(f"Reply-To: {addr(reply_to)}")
    lines.append(f"Subject: {subject_value(subject, rolls)}")
    lines.append(f"Date: {format_date(plan.date, plan.tz)}")
    lines.append(f"Message-ID: {plan.message_id}")
    if refs:
        lines.append(f"In-Reply-To: {refs[-1]}")
        lines.append("References: " + (CRLF + " ").join(refs))
    lines.append(f"X-Mailer: {mailer}")
    lines.append("MIME-Version: 1.0")
    return CRLF.join(lines) + CRLF
