"""The mail store: users, their maildrops and the messages in them.

The store is shared between the test (which adds and inspects mail, from any
thread) and the server's sessions (which take a snapshot of a maildrop at login
and remove the messages they deleted at QUIT).  Every mutation goes through a
lock, so a test may add mail while the server runs.

A message is stored as the bytes it was given.  What the server sends is
derived once per message and cached: the bytes with every line end turned into
CRLF (and a final CRLF added when the message has none), their size in octets
(what LIST and STAT report) and the dot-stuffed form that RETR sends.

Rules a maintainer must keep:

* The store imports nothing of fakepop3 (the layers above it -- the protocol
  core, the server, the mail package -- import the store), and nothing at
  import time that pulls in ``socket``, ``ssl`` or ``asyncio``: ``email``'s
  message and policy modules (``email.utils`` imports ``socket`` on Python
  3.11) are imported only where a message object is handled.  A test reads
  this module's imports and checks ``sys.modules`` in a fresh interpreter.
* Mail the store does not make itself comes through small protocols it
  defines: :class:`LazySource` (messages made on demand, with their sizes known
  first) for :meth:`Mailbox.add_lazy`, and :class:`MailHelpers`, which
  ``fakepop3.mail`` registers with :func:`use_mail_helpers` when imported
  (``import fakepop3`` does), for ``Mailbox.add_message``, ``generate`` and
  ``load``.
* A large lazy source (``COMPACT_FROM`` messages or more) is kept compact: a
  :class:`MessageList` holds its sizes in an ``array`` and derives each UID from
  the message's index, and makes a :class:`Message` only when one is asked for
  (kept while someone holds it).  Small maildrops stay a plain list of
  :class:`Message` (their sessions index a tuple: the hot path is unchanged).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import sys
import threading
import weakref
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union, overload

if TYPE_CHECKING:  # imported where a message object is handled: email.utils imports socket
    import email.message

__all__ = [
    "LazySource",
    "MailHelpers",
    "MailStore",
    "Mailbox",
    "Message",
    "MessageInput",
    "MessageList",
    "MessageSource",
    "StoreSnapshot",
    "UnknownUserError",
    "use_mail_helpers",
]

MessageInput = Union[bytes, bytearray, memoryview, str, "email.message.Message", "Message"]

_UID_ALPHABET = frozenset(range(0x21, 0x7F))


class UnknownUserError(KeyError):
    """Raised when a test asks the store for a user it does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown user"


def to_crlf(raw: bytes) -> bytes:
    """Return ``raw`` with every line end as CRLF and a final CRLF.

    Bare LF becomes CRLF; CRLF stays CRLF (never CR CR LF); a lone CR inside a
    line is data and is left alone.  An empty message stays empty.
    """
    if b"\n" in raw and raw.count(b"\n") != raw.count(b"\r\n"):
        if b"\r\n" in raw:
            raw = raw.replace(b"\r\n", b"\n")
        raw = raw.replace(b"\n", b"\r\n")
    if raw and not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw


def dot_stuff(crlf: bytes) -> bytes:
    """Byte-stuff a CRLF message (RFC 1939 s3): a line starting with ``.`` gets one more."""
    stuffed = crlf.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed


class MessageSource(Protocol):
    """Where a lazy :class:`Message` gets its bytes: ``source[index]``."""

    def __getitem__(self, index: int, /) -> bytes: ...


class LazySource(MessageSource, Protocol):
    """Messages made on demand whose sizes are known first (``GeneratedMail`` is one).

    ``sizes()`` gives the exact size of every message (with CRLF line ends) without
    making them; ``source[k]`` makes message ``k`` when a session or a test first
    reads it.  See :meth:`Mailbox.add_lazy`.  A source may also have
    ``size_array()``, the same sizes in an ``array.array`` made without a list of
    them (``GeneratedMail`` has it): a large source is then added with less memory.
    """

    def __len__(self) -> int: ...

    def sizes(self) -> list[int]: ...


class MailHelpers(Protocol):
    """The mail makers behind ``Mailbox.add_message``, ``generate`` and ``load``.

    ``fakepop3.mail`` provides them (:func:`use_mail_helpers`); the store does not
    import the mail package.
    """

    def build_message(self, **fields: Any) -> bytes: ...

    def generate(self, mailbox: Mailbox, count: int, **knobs: Any) -> Sequence[Message]: ...

    def load_messages(self, path: str | os.PathLike[str], *, format: str | None) -> list[bytes]: ...


_mail_helpers: MailHelpers | None = None


def use_mail_helpers(helpers: MailHelpers) -> None:
    """Make ``helpers`` what ``Mailbox.add_message``, ``generate`` and ``load`` call."""
    global _mail_helpers
    _mail_helpers = helpers


def _mail(method: str) -> MailHelpers:
    if _mail_helpers is None:
        raise RuntimeError(
            f"Mailbox.{method}() needs the mail package: import fakepop3.mail "
            "(import fakepop3 does)"
        )
    return _mail_helpers


def _coerce(message: MessageInput) -> bytes:
    if isinstance(message, Message):
        return message.raw
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8", "surrogateescape")
    # An email.message.Message exists only once its module is imported: no import here.
    email_message = sys.modules.get("email.message")
    if email_message is not None and isinstance(message, email_message.Message):
        raw: bytes = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        return raw
    raise TypeError(
        f"a message must be bytes, str or email.message.Message, not {type(message).__name__}"
    )


def _check_uid(uid: str) -> str:
    # RFC 1939 s7: "The unique-id of a message is an arbitrary server-determined
    # string, consisting of one to 70 characters in the range 0x21 to 0x7E".
    if not 1 <= len(uid) <= 70 or any(ord(c) not in _UID_ALPHABET for c in uid):
        raise ValueError(
            f"UID {uid!r} is not valid: RFC 1939 wants 1 to 70 characters in 0x21-0x7E"
        )
    return uid


class Message:
    """One stored message: its bytes as given, its UID and what the server sends.

    ``size`` is the octet count LIST and STAT report: the message with CRLF line
    ends, without dot-stuffing (RFC 1939 s11).
    """

    __slots__ = (
        "__weakref__",
        "_body_offset",
        "_crlf",
        "_index",
        "_intl",
        "_raw",
        "_size",
        "_source",
        "_stuffed",
        "uid",
    )

    def __init__(
        self,
        raw: bytes | None,
        uid: str,
        *,
        source: MessageSource | None = None,
        index: int = 0,
        size: int | None = None,
    ) -> None:
        if raw is None and source is None:
            raise TypeError("a Message needs its bytes or a source to make them")
        self._raw = raw
        self._source = source
        self._index = index
        self._size = size
        #: The unique ID UIDL reports.
        self.uid = uid
        self._crlf: bytes | None = None
        self._stuffed: bytes | None = None
        self._body_offset: int | None = None
        self._intl: bool | None = None

    @classmethod
    def lazy(cls, source: MessageSource, index: int, uid: str, size: int) -> Message:
        """Message ``source[index]``, made on first use; ``size`` must be its CRLF size."""
        return cls(None, uid, source=source, index=index, size=size)

    def __repr__(self) -> str:
        return f"<Message uid={self.uid!r} size={self.size}>"

    @property
    def raw(self) -> bytes:
        """The message as it was stored (or generated)."""
        if self._raw is None:
            assert self._source is not None
            self._raw = self._source[self._index]
            self._source = None
        return self._raw

    @property
    def crlf(self) -> bytes:
        """The message as the server sends it, with CRLF line ends, before stuffing."""
        if self._crlf is None:
            self._crlf = to_crlf(self.raw)
        return self._crlf

    @property
    def size(self) -> int:
        """Octets as sent (CRLF line ends, no stuffing dots): what LIST and STAT report."""
        if self._size is None:
            self._size = len(self.crlf)
        return self._size

    @property
    def wire(self) -> bytes:
        """The dot-stuffed bytes of a RETR reply body (without the terminating ``.`` line)."""
        if self._stuffed is None:
            self._stuffed = dot_stuff(self.crlf)
        return self._stuffed

    def _body_start(self) -> int:
        """Where the body starts in :attr:`crlf` (after the blank line; the end if none)."""
        if self._body_offset is None:
            crlf = self.crlf
            if crlf.startswith(b"\r\n"):
                self._body_offset = 2
            else:
                end = crlf.find(b"\r\n\r\n")
                self._body_offset = len(crlf) if end < 0 else end + 4
        return self._body_offset

    @property
    def needs_utf8(self) -> bool:
        """Whether the header section holds octets outside ASCII: an internationalized message
        (RFC 6532), which RFC 6856 s2.1 lets a server send only to a client in UTF-8 mode."""
        if self._intl is None:
            self._intl = not self.crlf[: self._body_start()].isascii()
        return self._intl

    def top(self, lines: int) -> bytes:
        """The stuffed header block, the blank line and the first ``lines`` body lines."""
        crlf = self.crlf
        cut = self._body_start()
        for _ in range(lines):
            nxt = crlf.find(b"\r\n", cut)
            if nxt < 0:
                cut = len(crlf)
                break
            cut = nxt + 2
        return dot_stuff(crlf[:cut])

    @property
    def headers(self) -> bytes:
        """The header block of the message (CRLF line ends), for assertions."""
        crlf = self.crlf
        end = crlf.find(b"\r\n\r\n")
        return crlf if end < 0 else crlf[: end + 2]

    def as_email(self) -> email.message.EmailMessage:
        """Parse the message with the standard library (policy ``email.policy.default``)."""
        import email.message
        import email.parser
        import email.policy

        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


#: A lazy source of at least this many messages is kept compact (a :class:`MessageList`).
COMPACT_FROM = 10_000


class _Block:
    """The messages of one large lazy source, as added: their sizes in an array, their UIDs
    ``f"{first + k}.g{k}"`` (what :meth:`Mailbox.add_lazy` gives), and the :class:`Message`
    objects made so far, each kept while someone holds it (so one message is one object)."""

    __slots__ = ("first", "lock", "made", "sizes", "source")

    def __init__(self, source: MessageSource, first: int, sizes: array[int]) -> None:
        self.source = source
        self.first = first
        self.sizes = sizes
        self.made: weakref.WeakValueDictionary[int, Message] = weakref.WeakValueDictionary()
        # The test's thread and the server's may both ask: one message must stay one object.
        self.lock = threading.Lock()

    def uid(self, k: int) -> str:
        return f"{self.first + k}.g{k}"

    def message(self, k: int) -> Message:
        with self.lock:
            message = self.made.get(k)
            if message is None:
                message = Message.lazy(self.source, k, self.uid(k), self.sizes[k])
                self.made[k] = message
            return message


class _Slice:
    """Part of a :class:`MessageList`: the messages of a block at ``keys`` (a range, or the
    array of the indices left after deletions), in order."""

    __slots__ = ("block", "keys", "total")

    def __init__(self, block: _Block, keys: range | array[int], total: int | None = None) -> None:
        self.block = block
        self.keys = keys
        if total is None:
            sizes = block.sizes
            if isinstance(keys, range) and keys.step == 1:
                total = sum(sizes[keys.start : keys.stop])
            else:
                total = sum(sizes[k] for k in keys)
        self.total = total

    def __len__(self) -> int:
        return len(self.keys)

    def sizes(self) -> Iterable[int]:
        keys, sizes = self.keys, self.block.sizes
        if isinstance(keys, range) and keys.step == 1:
            return sizes[keys.start : keys.stop]
        return (sizes[k] for k in keys)

    def uids(self) -> Iterator[str]:
        first = self.block.first
        return (f"{first + k}.g{k}" for k in self.keys)

    def without(self, gone: set[int]) -> _Slice:
        """This slice without the indices ``gone`` (those of them it has)."""
        keys = self.keys
        present = {k for k in gone if k in keys} if isinstance(keys, range) else gone & set(keys)
        if not present:
            return self
        sizes = self.block.sizes
        kept = array("I", (k for k in keys if k not in present))
        return _Slice(self.block, kept, self.total - sum(sizes[k] for k in present))


_Part = tuple[Message, ...] | _Slice


class MessageList(Sequence[Message]):
    """A maildrop's messages, compact: an immutable sequence of parts, each a tuple of
    :class:`Message` or a run of a large lazy source (see ``COMPACT_FROM``), whose sizes and
    UIDs are known without making a :class:`Message`.

    ``ml[i]`` makes message ``i``'s :class:`Message` (the same object while it is held);
    :meth:`sizes`, :meth:`uids` and :attr:`total_size` make none.  Changes give a new list
    (:meth:`plus`, :meth:`without`), sharing the parts: a snapshot of it costs nothing.
    """

    __slots__ = ("_ends", "_parts", "total_size")

    def __init__(self, parts: Iterable[_Part] = ()) -> None:
        self._parts: tuple[_Part, ...] = tuple(p for p in parts if len(p))
        ends: list[int] = []
        end = total = 0
        for part in self._parts:
            end += len(part)
            ends.append(end)
            total += part.total if isinstance(part, _Slice) else sum(m.size for m in part)
        self._ends = ends
        #: The sum of the sizes: what STAT reports for the whole list.
        self.total_size = total

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...

    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("message index out of range")
        p = bisect.bisect_right(self._ends, index)
        part = self._parts[p]
        offset = index - (self._ends[p] - len(part))
        if isinstance(part, _Slice):
            return part.block.message(part.keys[offset])
        return part[offset]

    def __iter__(self) -> Iterator[Message]:
        for part in self._parts:
            if isinstance(part, _Slice):
                message = part.block.message
                for k in part.keys:
                    yield message(k)
            else:
                yield from part

    def __repr__(self) -> str:
        return f"<MessageList of {len(self)} messages, {self.total_size} octets>"

    def sizes(self) -> Iterator[int]:
        """The size of every message, in order (no :class:`Message` made)."""
        for part in self._parts:
            if isinstance(part, _Slice):
                yield from part.sizes()
            else:
                for m in part:
                    yield m.size

    def uids(self) -> Iterator[str]:
        """The UID of every message, in order (no :class:`Message` made)."""
        for part in self._parts:
            if isinstance(part, _Slice):
                yield from part.uids()
            else:
                for m in part:
                    yield m.uid

    def plus(self, messages: Sequence[Message]) -> MessageList:
        """This list and ``messages`` after it."""
        parts = list(self._parts)
        if parts and not isinstance(parts[-1], _Slice):
            parts[-1] = (*parts[-1], *messages)
        else:
            parts.append(tuple(messages))
        return MessageList(parts)

    def plus_source(self, source: MessageSource, first: int, sizes: array[int]) -> MessageList:
        """This list and every message of ``source`` after it (UIDs ``f"{first + k}.g{k}"``)."""
        return MessageList((*self._parts, _Slice(_Block(source, first, sizes), range(len(sizes)))))

    def without(self, messages: Iterable[Message]) -> MessageList:
        """This list without ``messages`` (those of it: by identity)."""
        gone = {id(m): m for m in messages}
        parts: list[_Part] = []
        for part in self._parts:
            if isinstance(part, _Slice):
                made = part.block.made
                keys = {m._index for m in gone.values() if made.get(m._index) is m}
                parts.append(part.without(keys) if keys else part)
            else:
                parts.append(tuple(m for m in part if id(m) not in gone))
        return MessageList(parts)


@dataclass(eq=False)
class Mailbox:
    """A user and their maildrop.

    The mailbox is safe to use from any thread.  A POP3 session works on a
    snapshot taken when it logs in; mail added afterwards shows at the next
    login (RFC 1939 keeps message numbers stable within a session).
    """

    #: The user name.
    name: str
    #: The password of USER/PASS, APOP and SASL PLAIN/LOGIN/CRAM-MD5 (None: no password login).
    password: str | None = field(default=None, repr=False)  # secrets stay out of reprs
    #: The OAuth bearer tokens accepted for this user (XOAUTH2, OAUTHBEARER).
    tokens: set[str] = field(default_factory=set, repr=False)
    #: The APOP shared secret, when not the password (None: APOP uses the password).
    apop_secret: str | None = field(default=None, repr=False)
    _messages: list[Message] = field(default_factory=list, repr=False)
    # The content when it holds a large lazy source (then ``_messages`` stays empty).
    _compact: MessageList | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _uid_counter: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _explicit_uids: set[str] = field(default_factory=set, repr=False)
    _holder: object | None = field(default=None, repr=False)
    _initial: Sequence[Message] | None = field(default=None, repr=False)
    last_login: float | None = field(default=None, repr=False)
    _generation: int = field(default=0, repr=False)
    # The maildrop as a tuple, shared by every session that logs in while it is unchanged,
    # and the answers (STAT, LIST, UIDL) computed once for it.
    _snapshot: Sequence[Message] | None = field(default=None, repr=False)
    _answers: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False)
    _held_generation: int = field(default=0, repr=False)

    # --- adding and reading mail, for tests -------------------------------------------------
    def add(self, message: MessageInput, *, uid: str | None = None) -> Message:
        """Append a message; return the stored :class:`Message` (with ``uid`` and ``size``).

        ``message`` may be bytes (stored as given), str (UTF-8), an
        ``email.message.Message`` or a :class:`Message` from another mailbox (a
        copy with a new UID is stored).
        """
        raw = _coerce(message)
        with self._lock:
            if uid is None:
                digest = hashlib.sha1(raw).hexdigest()[:12]
                uid = f"{next(self._uid_counter)}.{digest}"
                while uid in self._explicit_uids:  # a UID given by the test looks generated
                    uid = f"{next(self._uid_counter)}.{digest}"
            else:
                _check_uid(uid)
                compact = self._compact
                if uid in (
                    compact.uids() if compact is not None else (m.uid for m in self._messages)
                ):
                    raise ValueError(
                        f"mailbox {self.name!r} already has a message with UID {uid!r}"
                    )
                self._explicit_uids.add(uid)
            stored = Message(raw, uid)
            if self._compact is None:
                self._messages.append(stored)
            else:
                self._compact = self._compact.plus((stored,))
            self._changed()
            return stored

    def extend(self, messages: Iterable[MessageInput]) -> list[Message]:
        """Append several messages; return them stored (a login sees all of them or none)."""
        with self._lock:
            return [self.add(m) for m in messages]

    def add_lazy(self, source: LazySource) -> Sequence[Message]:
        """Append every message of ``source``, each made on first use; return them stored.

        Their sizes (what STAT and LIST report) come from ``source.sizes()`` at once;
        ``source[k]`` is asked for when a session or the test first reads message ``k``.
        A source of ``COMPACT_FROM`` messages or more is kept compact (see
        :class:`MessageList`) and gives a :class:`MessageList` of what was added.
        """
        if len(source) >= COMPACT_FROM:
            return self._add_compact(source)
        sizes = source.sizes()
        lazy = Message.lazy
        with self._lock:
            added = []
            for k, size in enumerate(sizes):
                n = next(self._uid_counter)
                added.append(lazy(source, k, f"{n}.g{k}", size))
            self._messages.extend(added)
            self._changed()
        return added

    def _add_compact(self, source: LazySource) -> MessageList:
        make = getattr(source, "size_array", None)
        sizes: array[int] = make() if make is not None else _size_array(source.sizes())
        with self._lock:
            first = next(self._uid_counter)
            if len(sizes) > 1:  # the counter moves on as if each message took its number
                next(itertools.islice(self._uid_counter, len(sizes) - 2, None))
            compact = self._compact
            if compact is None:
                compact = MessageList((tuple(self._messages),))
            self._compact = compact = compact.plus_source(source, first, sizes)
            self._messages = []
            self._changed()
        return MessageList(compact._parts[-1:])  # what was added

    def add_message(self, **fields: Any) -> Message:
        """Build a message in one line and add it: ``add_message(subject="Hi", text="...")``.

        Takes the keyword arguments of :func:`fakepop3.builder.build_message`
        (subject, sender, to, cc, text, html, attachments, headers, ...).
        """
        return self.add(_mail("add_message").build_message(**fields))

    def generate(self, count: int, **knobs: Any) -> Sequence[Message]:
        """Add ``count`` realistic messages made with Faker (see :func:`fakepop3.generate.generate_messages`).

        The same ``seed`` (and knobs) gives the same bytes on every run.  Messages
        are made lazily: their sizes are known at once, their bytes on first use.
        """
        return _mail("generate").generate(self, count, **knobs)

    def load(self, path: str | os.PathLike[str], *, format: str | None = None) -> list[Message]:
        """Add the messages of an ``.eml`` file, a folder of them, an mbox or a Maildir.

        ``format`` is one of ``"eml"``, ``"eml-dir"``, ``"mbox"``, ``"maildir"`` (see
        :func:`fakepop3.loaders.load_messages`); by default it is detected.
        """
        return self.extend(_mail("load").load_messages(path, format=format))

    @property
    def messages(self) -> list[Message]:
        """A copy of the list of messages now in the maildrop (deletions committed at QUIT).

        Of a large generated maildrop this makes every :class:`Message`: iterate the mailbox
        instead, or read :attr:`uids`."""
        with self._lock:
            return list(self._content())

    def _content(self) -> Sequence[Message]:
        """The content now, to keep (the lock is held): a copy, or the immutable compact list."""
        if self._compact is not None:
            return self._compact
        return tuple(self._messages)

    def __len__(self) -> int:
        with self._lock:
            return len(self._compact if self._compact is not None else self._messages)

    def __iter__(self) -> Iterator[Message]:
        with self._lock:
            return iter(self._content())

    def __getitem__(self, index: int) -> Message:
        with self._lock:
            return (self._compact if self._compact is not None else self._messages)[index]

    def remove(self, message: Message | str) -> None:
        """Remove a message (or the one with this UID) from the maildrop."""
        uid = message.uid if isinstance(message, Message) else message
        with self._lock:
            compact = self._compact
            if compact is not None:
                for i, found in enumerate(compact.uids()):
                    if found == uid:
                        self._compact = compact.without((compact[i],))
                        self._changed()
                        return
            for i, m in enumerate(self._messages):
                if m.uid == uid:
                    del self._messages[i]
                    self._changed()
                    return
        raise KeyError(f"mailbox {self.name!r} has no message with UID {uid!r}")

    def clear(self) -> None:
        """Remove every message."""
        with self._lock:
            self._messages.clear()
            self._compact = None
            self._changed()

    @property
    def uids(self) -> list[str]:
        """The UIDs of the messages in order (what UIDL lists at the next login)."""
        with self._lock:
            if self._compact is not None:
                return list(self._compact.uids())
            return [m.uid for m in self._messages]

    def snapshot_initial(self) -> None:
        """Remember the current content; :meth:`reset` goes back to it."""
        with self._lock:
            self._initial = self._content()

    def reset(self) -> None:
        """Put back the content remembered by :meth:`snapshot_initial` (or empty the mailbox)."""
        self._restore(self._initial or ())

    def _restore(self, messages: Iterable[Message]) -> None:
        with self._lock:
            if isinstance(messages, MessageList):
                self._compact, self._messages = messages, []
            else:
                self._compact, self._messages = None, list(messages)
            self._changed()
            # A session logged in before the reset must not commit its deletions into the
            # restored content at QUIT.
            self._generation += 1

    # --- used by the protocol core ----------------------------------------------------------
    @property
    def locked(self) -> bool:
        """True while a POP3 session holds the maildrop (between login and the session's end)."""
        return self._holder is not None

    def acquire(self, holder: object) -> Sequence[Message] | None:
        """Lock the maildrop for a session and return its snapshot; None if already locked."""
        taken = self.login(holder)
        return None if taken is None else taken[0]

    def login(self, holder: object) -> tuple[Sequence[Message], dict[str, tuple[Any, ...]]] | None:
        """:meth:`acquire`, and the cache of answers about the snapshot (STAT, LIST, UIDL...).

        Sessions on the current, unchanged maildrop share one dict, so each answer is computed
        once; a change starts a new dict.  Every dict belongs to one snapshot, so a session
        reads and fills it with no lock.
        """
        lock = self._lock
        lock.acquire()  # lock-acquire (bench/README.md, Speed notes)
        try:
            if self._holder is not None:
                return None
            self._holder = holder
            self._held_generation = self._generation
            if self._snapshot is None:
                self._snapshot = self._content()
            return self._snapshot, self._answers
        finally:
            lock.release()

    def login_shared(self, holder: object) -> tuple[Sequence[Message], dict[str, tuple[Any, ...]]]:
        """:meth:`login` without the exclusive lock (``maildrop_lock=False``, as Dovecot).

        A second session gets in too, with the snapshot of the maildrop as it is now; each
        session's deletions are committed at its own QUIT (a message deleted by both goes
        once).  The first session in stays the holder that :attr:`locked` reports.
        """
        with self._lock:
            if self._holder is None:
                self._holder = holder
                self._held_generation = self._generation
            if self._snapshot is None:
                self._snapshot = self._content()
            return self._snapshot, self._answers

    def _changed(self) -> None:
        """The content changed (the lock is held): drop the shared snapshot and answers."""
        self._snapshot = None
        self._answers = {}

    def release(self, holder: object) -> None:
        # No lock: only the holder clears the reference, and acquire() sees either value.
        if self._holder is holder:
            self._holder = None

    def commit_deletions(self, deleted: Sequence[Message]) -> None:
        """UPDATE state: remove these messages; mail added meanwhile stays."""
        if not deleted:
            return
        gone = {id(m) for m in deleted}
        with self._lock:
            if self._held_generation != self._generation:
                return  # the maildrop was reset during the session
            if self._compact is not None:
                self._compact = self._compact.without(deleted)
            self._messages = [m for m in self._messages if id(m) not in gone]
            self._changed()


def _size_array(sizes: Sequence[int]) -> array[int]:
    """``sizes`` in an array of 4-byte items (8 when a size does not fit)."""
    try:
        return array("I", sizes)
    except OverflowError:
        return array("Q", sizes)


class MailStore:
    """Users and their maildrops, by user name."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._mailboxes: dict[str, Mailbox] = {}

    def add_user(
        self,
        name: str,
        password: str | None = None,
        *,
        tokens: Iterable[str] = (),
        messages: Iterable[MessageInput] = (),
    ) -> Mailbox:
        """Create a user with an empty maildrop (or return the existing one, updated)."""
        if not name or any(c in name for c in "\r\n\0"):
            raise ValueError(
                f"user name {name!r} is not valid: it must be non-empty, without CR, LF or NUL"
            )
        with self._lock:
            mailbox = self._mailboxes.get(name)
            if mailbox is None:
                mailbox = Mailbox(name, password, set(tokens))
                self._mailboxes[name] = mailbox
            else:
                if password is not None:
                    mailbox.password = password
                mailbox.tokens.update(tokens)
        mailbox.extend(messages)
        return mailbox

    def mailbox(self, name: str) -> Mailbox:
        """The mailbox of user ``name``; :class:`UnknownUserError` if there is none."""
        with self._lock:
            try:
                return self._mailboxes[name]
            except KeyError:
                known = ", ".join(sorted(self._mailboxes)) or "none"
                raise UnknownUserError(
                    f"no user {name!r} in the store (users: {known}); add one with add_user()"
                ) from None

    __getitem__ = mailbox

    def get(self, name: str) -> Mailbox | None:
        """The mailbox of ``name``, or None (:meth:`mailbox` raises instead)."""
        # One dict lookup is atomic: no lock (a login asks for its mailbox).
        return self._mailboxes.get(name)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._mailboxes

    def __iter__(self) -> Iterator[Mailbox]:
        with self._lock:
            return iter(list(self._mailboxes.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._mailboxes)

    @property
    def users(self) -> list[str]:
        """The user names, in the order they were added."""
        with self._lock:
            return list(self._mailboxes)

    def snapshot_initial(self) -> None:
        for mailbox in self:
            mailbox.snapshot_initial()

    def reset(self) -> None:
        """Put every maildrop back to the content remembered by :meth:`snapshot_initial`."""
        for mailbox in self:
            mailbox.reset()

    def remove_user(self, name: str) -> Mailbox:
        """Remove user ``name`` and their maildrop (:class:`UnknownUserError` if there is none).

        A session logged in as that user goes on with its snapshot; its deletions are lost.
        """
        with self._lock:
            mailbox = self.mailbox(name)
            del self._mailboxes[name]
        with mailbox._lock:
            content = mailbox._content()
        mailbox._restore(content)  # a later QUIT of a session commits nothing
        return mailbox

    def snapshot(self) -> StoreSnapshot:
        """The users (passwords, tokens) and the content of every maildrop now, for
        :meth:`restore`.  Messages are shared, not copied: a snapshot costs a list a maildrop."""
        with self._lock:
            return StoreSnapshot(
                {
                    m.name: (m.password, frozenset(m.tokens), m.apop_secret, m._content())
                    for m in self._mailboxes.values()
                },
                dict(self._mailboxes),
            )

    def restore(self, snapshot: StoreSnapshot) -> None:
        """Put the users and maildrops back as they were in ``snapshot``: users added since are
        removed, removed ones come back, passwords, tokens and messages are those of then.
        A mailbox object that existed then is kept (a test's reference to it stays valid)."""
        with self._lock:
            for name in [n for n in self._mailboxes if n not in snapshot.users]:
                self.remove_user(name)
            for name, (password, tokens, apop_secret, messages) in snapshot.users.items():
                mailbox = self._mailboxes.get(name)
                if mailbox is None:
                    mailbox = snapshot.mailboxes.get(name) or Mailbox(name)
                    self._mailboxes[name] = mailbox
                mailbox.password = password
                mailbox.tokens = set(tokens)
                mailbox.apop_secret = apop_secret
                mailbox._restore(messages)


@dataclass(frozen=True)
class StoreSnapshot:
    """What :meth:`MailStore.snapshot` saw: ``users`` maps each name to (password, tokens,
    APOP secret, messages)."""

    users: dict[str, tuple[str | None, frozenset[str], str | None, Sequence[Message]]]
    mailboxes: dict[str, Mailbox] = field(default_factory=dict, repr=False, compare=False)
