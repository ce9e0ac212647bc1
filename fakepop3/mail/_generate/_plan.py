"""The per-message plan: the cheap facts of message *k*, and every message's size.

A message's plan (size, parent, date, time zone, locale, Message-ID, sender,
subject) is what other messages refer to: a reply copies its parent's sender
into ``To``, its thread root's subject, its ancestors' Message-IDs into
``References``.  The plan is the first draws of message *k*'s ``"message"``
stream, so it costs a few microseconds and needs no other message but the
ancestors; sizes come from their own ``"size"`` stream and need no Random
object at all (:meth:`Planner.sizes`: a ``STAT`` of a huge mailbox is cheap).

Rules a maintainer must keep:

* Draw order is part of the output: :meth:`Planner._raw_plan` is the start of
  message *k*'s stream and the builder continues the same stream after it;
  never reorder, add or drop a draw (the pinned digests catch it).
* A plan depends only on the knobs, the seed and *k* (and its ancestors' plans),
  never on which messages were asked for before, nor in which order.
* :meth:`Planner.sizes` inlines ``_random.derive``; keep the two in step.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from .._broken import BROKEN_KINDS, broken_message
from ._locale import Locale, locale_data
from ._random import GOLDEN, MASK64, MIX1, MIX2, derive

if TYPE_CHECKING:
    from ._hook import MessageHook

__all__ = ["Plan", "Planner", "RawPlan"]

#: The kinds the ``broken`` knob picks from, in a fixed order (part of the output).
_BROKEN_NAMES = tuple(BROKEN_KINDS)
TZ_MINUTES = (0, 0, 60, 120, -300, -240, -420, 330, 540, 480, 600, -180, 180, 345, -210)
MSGID_HOSTS = (
    "mail.gmail.com",
    "mx.example.net",
    "smtp.example.org",
    "outlook.example.com",
    "mailer.example.co.uk",
    "localhost.localdomain",
)


class RawPlan(NamedTuple):
    """Facts drawn from message *k*'s own stream only (its first draws)."""

    size: int
    parent: int | None
    own_date: int
    delay: int
    tz: int
    locale: str
    non_ascii: bool
    message_id: str
    sender_name: str
    sender_addr: str
    subject: str


class Plan(NamedTuple):
    """The cheap per-message facts other messages refer to."""

    size: int
    parent: int | None
    root: int
    depth: int
    date: int
    tz: int
    locale: str
    non_ascii: bool
    message_id: str
    sender_name: str
    sender_addr: str
    subject: str
    """The subject drawn for this message (a reply uses its thread root's)."""


class Planner:
    """Plans and sizes of a generated mailbox (the base of ``MessageGenerator``).

    The knobs are set by ``MessageGenerator.__init__`` (checked by ``check_knobs``).
    """

    seed: int
    locales: tuple[str, ...]
    non_ascii_locales: tuple[str, ...]
    start: int
    end: int
    min_size: int
    max_size: int
    threads: float
    non_ascii: float
    hook: MessageHook | None
    _plan_rng: random.Random
    #: Plans made, oldest first; at most 8,192 kept (the oldest go first).
    _plans: OrderedDict[int, Plan]
    _size_key: int
    _message_key: int
    #: The share of broken messages, and their own stream (fakepop3/mail/_broken.py).
    broken: float
    _broken_key: int

    def plan(self, index: int, drawn: RawPlan | None = None) -> Plan:
        """Size, parent, date, locale, Message-ID, sender and subject of message ``index``.

        ``drawn`` is message ``index``'s raw plan if the caller has drawn it already.
        """
        cached = self._plans.get(index)
        if cached is not None:
            return cached
        if index < 0:
            raise IndexError(index)
        # Walk up the thread without recursion, then resolve dates downwards.
        chain: list[tuple[int, RawPlan]] = []
        k: int | None = index
        while k is not None and k not in self._plans:
            if k == index and drawn is not None:
                raw = drawn
            else:
                rng = self._plan_rng
                rng.seed(derive(self._message_key, k))
                raw = self._raw_plan(k, rng)
            chain.append((k, raw))
            k = raw.parent
        resolved: dict[int, Plan] = {}
        for k, raw in reversed(chain):
            if raw.parent is None:
                date, root, depth = raw.own_date, k, 0
            else:
                pp = resolved.get(raw.parent) or self._plans[raw.parent]
                date = min(self.end - 1, pp.date + raw.delay)
                root, depth = pp.root, pp.depth + 1
            resolved[k] = Plan(
                raw.size,
                raw.parent,
                root,
                depth,
                date,
                raw.tz,
                raw.locale,
                raw.non_ascii,
                raw.message_id,
                raw.sender_name,
                raw.sender_addr,
                raw.subject,
            )
        for k, plan in resolved.items():
            self._plans[k] = plan
        while len(self._plans) > 8192:
            self._plans.popitem(last=False)
        return resolved[index]

    def _size(self, index: int) -> int:
        # Its own stream and no Random object: a STAT of a huge mailbox stays cheap.
        u = (derive(self._size_key, index) >> 11) / 9007199254740992.0  # 2**53
        return self.min_size + int((self.max_size - self.min_size) * (u * u * u))

    def broken_kind(self, index: int) -> str | None:
        """The kind of broken message that message ``index`` is (the ``broken`` knob), or
        None.  Its own stream, so the other messages are those of ``broken=0``."""
        if not self.broken:
            return None
        x = derive(self._broken_key, index)
        if (x >> 11) / 9007199254740992.0 >= self.broken:  # 2**53
            return None
        return _BROKEN_NAMES[(x & 0x7FF) % len(_BROKEN_NAMES)]

    def sizes(self, start: int, stop: int) -> list[int]:
        """``[size(k) for k in range(start, stop)]`` in one pass (no hook allowed)."""
        if self.hook is not None:
            raise ValueError("sizes() of a generator with a hook: build the messages")
        if self.broken:
            out = self._sizes(start, stop)
            for k in range(start, stop):
                kind = self.broken_kind(k)
                if kind is not None:
                    out[k - start] = len(_broken_bytes(kind, k))
            return out
        return self._sizes(start, stop)

    def _sizes(self, start: int, stop: int) -> list[int]:
        lo = self.min_size
        span = self.max_size - lo
        mask, mix1, mix2 = MASK64, MIX1, MIX2
        z = (self._size_key + start * GOLDEN) & mask
        out: list[int] = []
        append = out.append
        for _ in range(start, stop):
            # derive(), inlined: the state advances by the golden gamma per message.
            z = (z + GOLDEN) & mask
            x = ((z ^ (z >> 30)) * mix1) & mask
            x = ((x ^ (x >> 27)) * mix2) & mask
            u = ((x ^ (x >> 31)) >> 11) / 9007199254740992.0
            append(lo + int(span * (u * u * u)))
        return out

    def _raw_plan(self, index: int, rng: random.Random) -> RawPlan:
        """The first draws of message ``index``'s stream (``rng``, freshly seeded)."""
        size = self._size(index)
        parent: int | None = None
        if index > 0 and rng.random() < self.threads:
            parent = index - 1 - int(rng.random() * min(index, 40))
        non_ascii = rng.random() < self.non_ascii
        code = self.locales[int(rng.random() * len(self.locales))]
        if non_ascii and code not in self.non_ascii_locales:
            code = self.non_ascii_locales[int(rng.random() * len(self.non_ascii_locales))]
        tz = TZ_MINUTES[int(rng.random() * len(TZ_MINUTES))]
        delay = 60 + int(rng.random() * 3 * 86_400)
        own_date = self.start + int(rng.random() * (self.end - self.start))
        token = rng.getrandbits(64)
        host = MSGID_HOSTS[int(rng.random() * len(MSGID_HOSTS))]
        loc = locale_data(code)
        name, addr = loc.person(rng, non_ascii)
        return RawPlan(
            size,
            parent,
            own_date,
            delay,
            tz,
            code,
            non_ascii,
            f"<{token:016x}.{index}@{host}>",
            name,
            addr,
            self._draw_subject(loc, rng, non_ascii),
        )

    def message_id(self, index: int) -> str:
        """The ``Message-ID`` of message ``index`` (with angle brackets)."""
        return self.plan(index).message_id

    def subject(self, index: int) -> str:
        """The subject of message ``index`` (``Re: `` + the thread root's for replies)."""
        plan = self.plan(index)
        if not plan.depth:
            return plan.subject
        return "Re: " + self.plan(plan.root).subject

    @staticmethod
    def _draw_subject(loc: Locale, rng: random.Random, non_ascii: bool) -> str:
        kind = int(rng.random() * 4)
        if kind == 0:
            text = loc.sentence(rng, 3 + int(rng.random() * 6)).rstrip(".。")
        elif kind == 1:
            text = loc.catch_phrase(rng) if loc.code.startswith("en") else loc.sentence(rng, 4)
            text = text.rstrip(".。")
        elif kind == 2:
            tag = ("TICKET", "JIRA", "ops", "Invoice")[int(rng.random() * 4)]
            text = f"[{tag}-{int(rng.random() * 10_000)}] "
            text += loc.sentence(rng, 4).rstrip(".。")
        else:
            words = loc.words
            n = 2 + int(rng.random() * 4)
            text = " ".join(words[int(rng.random() * len(words))] for _ in range(n))
            text = text[:1].upper() + text[1:]
        text = " ".join(text.split())[:90]
        if non_ascii and text.isascii():
            nw = loc.non_ascii_words
            extra = nw[int(rng.random() * len(nw))] if nw else "€"
            text = f"{text} – {extra}"  # noqa: RUF001 - an en dash on purpose
        return text

    def _references(self, index: int) -> list[str]:
        refs: list[str] = []
        p = self.plan(index).parent
        while p is not None and len(refs) < 12:
            refs.append(self.plan(p).message_id)
            p = self.plan(p).parent
        refs.reverse()
        return refs


def _broken_bytes(kind: str, index: int) -> bytes:
    """Broken message ``index`` of ``kind`` as the generator gives it: ending with CRLF, so
    that its size is the size LIST reports."""
    data = broken_message(kind, index=index)
    return data if data.endswith(b"\r\n") else data + b"\r\n"
