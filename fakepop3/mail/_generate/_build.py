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
from itertools import cycle

from ._bodies import attachment, html_part, text_part
from ._hook import HookContext, MessageHook
from ._knobs import DEFAULT_END, DEFAULT_NON_ASCII_LOCALES, DEFAULT_START, MIN_SIZE_FLOOR, to_epoch
from ._locale import faker_has_locale, locale_data
from ._mime import Multi, Part, b64_body, png
from ._plan import Plan, Planner
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


class MessageGenerator(Planner):
    """Builds message *k* of a generated mailbox on demand.

    All knobs are validated once here; see :func:`generate_messages` for their
    meaning. An instance may be shared between threads only if callers hold a
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
        non_ascii_locales: Sequence[str] = DEFAULT_NON_ASCII_LOCALES,
        hook: MessageHook | None = None,
    ) -> None:
        self.seed = int(seed)
        self.locales: tuple[str, ...] = (locale,) if isinstance(locale, str) else tuple(locale)
        if not self.locales:
            raise ValueError("locale: give at least one Faker locale")
        self.non_ascii_locales = tuple(non_ascii_locales) or ("de_DE",)
        self.start = to_epoch(start)
        self.end = to_epoch(end)
        if self.end <= self.start:
            raise ValueError(f"end ({end!r}) must be after start ({start!r})")
        if min_size < MIN_SIZE_FLOOR:
            raise ValueError(f"min_size must be at least {MIN_SIZE_FLOOR} octets, got {min_size}")
        if max_size < min_size:
            raise ValueError(f"max_size ({max_size}) must not be below min_size ({min_size})")
        self.min_size = int(min_size)
        self.max_size = int(max_size)
        for name, share in (
            ("html", html),
            ("attachments", attachments),
            ("threads", threads),
            ("non_ascii", non_ascii),
            ("dot_lines", dot_lines),
        ):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, got {share!r}")
        self.html = float(html)
        self.attachments = float(attachments)
        self.threads = float(threads)
        self.non_ascii = float(non_ascii)
        self.dot_lines = float(dot_lines)
        self.hook = hook
        self._plan_rng = random.Random(0)
        self._aux_rng = random.Random(0)
        self._content_rng = random.Random(0)
        self._plans: OrderedDict[int, Plan] = OrderedDict()
        self._size_key = stream_key(self.seed, "size")
        # Message k's stream: its plan (the first draws), then its content.
        self._message_key = stream_key(self.seed, "message")
        # Locales are loaded when a message first needs one; an unknown one fails now.
        for code in dict.fromkeys((*self.locales, *self.non_ascii_locales)):
            if not faker_has_locale(code):
                locale_data(code)

    def size(self, index: int) -> int:
        """The exact size in octets (CRLF line ends) of message ``index``.

        Computed without building the message unless a hook is set.
        """
        if self.hook is not None:
            return len(self.message(index))
        return self._size(index)

    def message(self, index: int) -> bytes:
        """Build message ``index`` (CRLF line ends), applying the hook if any."""
        data = self._build(index)
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
        # One stream per message: the plan's draws, then the content's. (Our own
        # Random: a process-wide Faker's would race with other threads.)
        rng = self._content_rng
        rng.seed(derive(self._message_key, index))
        plan = self.plan(index, self._raw_plan(index, rng))
        subject = self.subject(index)
        refs = self._references(index)
        loc = locale_data(plan.locale)

        # -- people
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
        # The header encodings' choices: the same on every shrinking level.
        header_rolls = [rng.random() for _ in range(2 * _MAX_NAMES)]

        # -- content choices
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
        aux = self._aux_rng
        logo = b64_body(png(rng, 400)) if with_inline else b""

        # -- degradation levels, applied in turn while the message is too big
        # (The names and the whole subject go last: non_ascii relies on them.)
        for level in range(10):
            if level < 1:
                paras = paragraphs
            elif level < 6:
                paras = paragraphs[:1]
            else:
                paras = [paragraphs[0][:2]] if level < 7 else []
            atts = n_att if level < 2 else 0
            inline_on = with_inline if level < 3 else False
            cc_l = cc if level < 3 else []
            refs_l = refs if level < 3 else refs[-1:]
            rt = reply_to if level < 3 else None
            rcpt = recipients if level < 4 else recipients[:1]
            html_on = with_html if level < 5 else False
            named = level < 8
            head = self._headers(
                plan,
                subject if level < 9 else subject[:20],
                rcpt,
                cc_l,
                rt,
                refs_l,
                mailer,
                named,
                cycle(header_rolls),
            )
            text_node, pad_at = text_part(
                paras, greeting, dot_line, plan.sender_name, charset_roll, cte_roll
            )
            body_node: Part | Multi = text_node
            boundary_n = 0

            def boundary() -> str:
                nonlocal boundary_n
                boundary_n += 1
                return f"=_fp{boundary_token:012x}_{index}_{boundary_n}"

            html_node: Part | Multi | None = None
            if html_on:
                cid = f"img{boundary_token:x}.{index}@fakepop3" if inline_on else None
                html_node = html_part(
                    paras, greeting, plan.sender_name, charset_roll, html_cte_roll, cid
                )
                if cid is not None:
                    inline = Part(
                        [
                            "Content-Type: image/png",
                            "Content-Transfer-Encoding: base64",
                            f"Content-ID: <{cid}>",
                            'Content-Disposition: inline; filename="logo.png"',
                        ],
                        logo,
                    )
                    html_node = Multi("related", boundary(), [html_node, inline])
                body_node = Multi("alternative", boundary(), [text_node, html_node])
            top: Part | Multi = body_node
            att_parts: list[Part] = []
            head_bytes = head.encode("ascii")
            chunks = [head_bytes]
            if atts:
                top = Multi("mixed", boundary(), [body_node])
                top.chunks(chunks)
                base_len = sum(map(len, chunks))
                del chunks[1:]
                avail = plan.size - base_len - 150 * atts
                att_rng = aux
                att_rng.seed(att_seed)
                for i in range(atts):
                    share = avail // (atts - i) if i < atts - 1 else avail
                    share = int(share * (0.4 + 0.5 * att_rng.random()))
                    part = attachment(att_rng, share, loc, i)
                    if part is None:
                        continue
                    att_parts.append(part)
                    avail -= len(part.render()) + 50
                top.parts.extend(att_parts)
            top.chunks(chunks)
            gap = plan.size - sum(map(len, chunks)) - len(signoff[0]) - 2
            if gap < 0:
                continue
            signoff_text = signoff[0]
            if gap == 1:
                signoff_text = signoff[1]
                gap = 0
            text_node.pad = (filler().block(rng, gap) + signoff_text + CRLF).encode("ascii")
            text_node.pad_at = pad_at
            chunks = [head_bytes]
            top.chunks(chunks)
            out = b"".join(chunks)
            assert len(out) == plan.size, (len(out), plan.size)
            return out
        raise AssertionError(
            f"message {index} cannot fit in {plan.size} octets"
        )  # pragma: no cover

    def _headers(
        self,
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
