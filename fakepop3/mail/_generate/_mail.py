"""The public face of the generator: :class:`GeneratedMail` and :func:`generate_messages`.

Rules a maintainer must keep:

* ``generate_messages`` and ``generate_message`` keep their signatures: users,
  the pytest marker's ``generate={...}`` and ``Mailbox.generate(**knobs)`` pass
  knobs to them by name.
* :class:`GeneratedMail` builds a message only when it is indexed; its sizes
  need no message built unless a hook is set (a hook may change the bytes).
* ``GeneratedMail`` holds its generator's lock around every use of the
  generator's Random objects (``message``, ``message_id``); sizes need none.
"""

from __future__ import annotations

import datetime as _dt
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import overload

from ._build import MessageGenerator
from ._hook import MessageHook
from ._knobs import DEFAULT_END, DEFAULT_NON_ASCII_LOCALES, DEFAULT_START, knob_values

__all__ = ["GeneratedMail", "generate_message", "generate_messages"]


class GeneratedMail(Sequence[bytes]):
    """A lazy, read-only sequence of generated messages.

    ``mail[k]`` builds message *k* on first access (an LRU of ``cache_size``
    messages keeps recent ones). :meth:`size` and :meth:`total_size` are exact
    and, without a hook, need no message to be built.
    """

    def __init__(self, generator: MessageGenerator, count: int, *, cache_size: int = 256) -> None:
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        self.generator = generator
        self._count = count
        self._cache_size = cache_size
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def _index(self, index: int) -> int:
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"message index {index} out of range for {self._count} messages")
        return index

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        k = self._index(index)
        with self._lock:
            data = self._cache.get(k)
            if data is None:
                data = self.generator.message(k)
                if self._cache_size > 0:
                    self._cache[k] = data
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(k)
            return data

    def __iter__(self) -> Iterator[bytes]:
        for k in range(self._count):
            yield self[k]

    def __repr__(self) -> str:
        g = self.generator
        return f"GeneratedMail(count={self._count}, seed={g.seed}, locale={g.locales!r})"

    def size(self, index: int) -> int:
        """Exact size in octets of message ``index`` (cheap unless a hook is set)."""
        k = self._index(index)
        if self.generator.hook is not None:
            return len(self[k])  # the hook may change the size: build (and cache) it
        return self.generator.size(k)  # a pure function of (seed, k): no lock needed

    def sizes(self) -> list[int]:
        """Exact sizes of all messages, in order.

        Without a hook this is one pass of integer arithmetic (about 0.5 s per
        million messages), building nothing and importing nothing.
        """
        if self.generator.hook is None:
            return self.generator.sizes(0, self._count)
        return [self.size(k) for k in range(self._count)]

    def size_array(self) -> array[int]:
        """:meth:`sizes` in an ``array.array`` (4-byte items while every size fits), made a
        slice at a time, so that no list of a million ints is ever held (what
        ``Mailbox.add_lazy`` keeps of a large mailbox)."""
        if self.generator.hook is not None:
            return array("Q", self.sizes())
        out = array("I")
        for start in range(0, self._count, 16_384):
            chunk = self.generator.sizes(start, min(start + 16_384, self._count))
            if out.typecode == "I" and chunk and max(chunk) > 0xFFFF_FFFF:
                out = array("Q", out)
            out.extend(chunk)
        return out

    def total_size(self) -> int:
        """Sum of all sizes: what ``STAT`` reports for the whole mailbox."""
        return sum(self.sizes())

    def message_id(self, index: int) -> str:
        """``Message-ID`` of message ``index`` without building it."""
        k = self._index(index)
        with self._lock:
            return self.generator.message_id(k)


def generate_messages(
    count: int,
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
    cache_size: int = 256,
) -> GeneratedMail:
    """A lazy mailbox of ``count`` generated messages.

    :param count: number of messages.
    :param seed: the same seed gives byte-identical messages on every run.
    :param locale: a Faker locale or a sequence of them (one is picked per message).
    :param start: start of the date range (datetime, date or epoch seconds).
    :param end: end of the date range (exclusive). Replies come 1 minute to 3 days
        after the message they answer, capped at ``end``.
    :param min_size: smallest message size in octets (at least :data:`MIN_SIZE_FLOOR`).
    :param max_size: largest message size; sizes lean towards ``min_size``.
    :param html: share of messages with an HTML alternative (some with an inline image).
    :param attachments: share of messages with 1-3 attachments.
    :param threads: share of messages that reply to one of the 40 before them.
    :param non_ascii: share of messages with non-ASCII names and subjects (drawn from
        ``non_ascii_locales`` unless the chosen locale is one of them).
    :param dot_lines: share of messages with a body line that starts with ``.``.
    :param broken: share of messages replaced by a deliberately malformed one (a kind of
        :data:`fakepop3.mail.BROKEN_KINDS` picked per message from the seed).
    :param hook: ``hook(ctx, message) -> bytes | str | None`` to customise or
        replace each message; see :class:`HookContext`.
    :param cache_size: how many built messages to keep (0: none).
    """
    knobs = knob_values(locals())
    del knobs["cache_size"]  # the mailbox's, not the generator's
    gen = MessageGenerator(**knobs)
    return GeneratedMail(gen, count, cache_size=cache_size)


def generate_message(
    index: int = 0,
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
) -> bytes:
    """Message ``index`` of the mailbox :func:`generate_messages` would give.

    Equal to ``generate_messages(n, ...)[index]`` for any ``n > index``.
    """
    if index < 0:
        raise IndexError(f"message index must not be negative, got {index}")
    gen = MessageGenerator(**knob_values(locals()))
    return gen.message(index)
