"""One function per POP3 command: what it does once it may run, with the RFC text beside it.

A handler is ``handler(session, args) -> reply``.  The dispatcher has already checked what the
command table (``_state.COMMANDS``) says: the state, the arity, the capability and TLS.  Rules:

- A handler never checks the state, the number of arguments, a capability or TLS (rule 1 of
  ``_state.py``); it starts at the command's own checks (a message number, a digest ...).
- It returns a reply: a tuple of bytes, the status line first (rule 5).
- After changing ``session.state`` (login, QUIT) it calls ``session._refresh()``, so the
  session picks the dispatch of its new state.
- It reads and writes the session's fields; it does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from .. import history as _history
from ..auth import Challenge, Failure, Mechanism, Success, make_mechanism
from ..store import Mailbox, Message, MessageList
from ._actions import Buffer, Stream
from ._replies import known_retr_status, lines, retr_status
from ._state import CLOSED, COMMANDS, TRANSACTION, UPDATE

if TYPE_CHECKING:
    from ._session import Session

Reply = tuple[Buffer, ...]
Handler = Callable[["Session", tuple[str, ...]], Reply]

#: The SASL mechanisms of OAuth: a persona without basic auth takes these only.
OAUTH_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER"})


# --- helpers ------------------------------------------------------------------------------
def message_number(session: Session, arg: str) -> Message | bytes:
    """Resolve a message-number argument, or return the ``-ERR`` reply."""
    # RFC 1939 s5: "a message-number argument ... may NOT refer to a message marked as deleted".
    if not arg.isascii() or not arg.isdigit():
        return session._reply.err(f"Invalid message number: {arg[:40]}")
    number = int(arg)
    if number < 1 or number > len(session.messages):
        return session._reply.err(f"There's no message {number}.")
    if number in session.deleted:
        return session._reply.err("Message is deleted.")
    return session.messages[number - 1]


def login(session: Session, mailbox: Mailbox, recent: bool = False) -> bytes:
    """Enter TRANSACTION on ``mailbox`` (the credentials are checked), or the ``-ERR``."""
    s = session.settings
    now = session.clock()
    if (
        s.login_delay
        and s.enforce_login_delay
        and mailbox.last_login is not None
        and now - mailbox.last_login < s.login_delay
    ):
        # RFC 2449 s8.1.1: LOGIN-DELAY "occurs on an -ERR response to an AUTH, USER,
        # PASS or APOP command" when the user logged in too recently.
        return session._reply.login_delay
    taken = mailbox.login(session) if s.maildrop_lock else mailbox.login_shared(session)
    if taken is None:
        # RFC 2449 s8.1.2: IN-USE "occurs on an -ERR response to an AUTH, APOP, or PASS
        # command. It indicates the authentication was successful, but the user's maildrop
        # is currently in use".
        return session._reply.in_use
    mailbox.last_login = now
    session.mailbox = mailbox
    session.messages, session._answers = taken
    if s.persona is not None and s.persona.pop_once:
        _pop_once_login(session, mailbox, recent)
    session.user = mailbox.name
    session.record.user = mailbox.name
    session.state = TRANSACTION
    session._refresh()
    return session._reply.logged_in


# --- Gmail's normal mode (a persona's pop_once) ----------------------------------------------
#: The UIDs of the messages each maildrop has given out in a session that ended with QUIT,
#: and those retrieved in its open session (one at a time: the maildrop is locked), each with
#: the maildrop's generation (``Mailbox._generation``: a reset or restore starts a new one, and
#: forgets what was popped, as it forgets deletions).
_POPPED: WeakKeyDictionary[Mailbox, tuple[int, set[str]]] = WeakKeyDictionary()
_RETRIEVED: WeakKeyDictionary[Mailbox, tuple[int, set[str]]] = WeakKeyDictionary()


def _pop_once_login(session: Session, mailbox: Mailbox, recent: bool) -> None:
    """Gmail's normal mode hides the messages popped before; recent mode shows them all."""
    generation = mailbox._generation
    _RETRIEVED[mailbox] = (generation, set())
    popped = _POPPED.get(mailbox)
    if not recent and popped is not None and popped[0] == generation and popped[1]:
        hidden = popped[1]
        messages = session.messages
        if isinstance(messages, MessageList):  # no Message made but those hidden
            gone = [messages[i] for i, uid in enumerate(messages.uids()) if uid in hidden]
            session.messages = messages.without(gone)
        else:
            session.messages = tuple(m for m in messages if m.uid not in hidden)
        session._answers = {}  # not the shared answers of the whole snapshot


def retr_once(session: Session, args: tuple[str, ...]) -> Reply:
    """RETR, remembering the message as retrieved (a persona's pop_once)."""
    reply = retr(session, args)
    retrieved = _RETRIEVED.get(session.mailbox) if session.mailbox is not None else None
    if len(reply) > 1 and retrieved is not None:
        retrieved[1].add(session.messages[int(args[0]) - 1].uid)
    return reply


def quit_once(session: Session, args: tuple[str, ...]) -> Reply:
    """QUIT, marking what the session retrieved as popped (Gmail: "if the POP session ends
    normally (with the QUIT command), Gmail will mark the message as popped")."""
    mailbox = session.mailbox
    if session.state is TRANSACTION and mailbox is not None:
        generation, retrieved = _RETRIEVED.pop(mailbox, (-1, set()))
        if generation == mailbox._generation:  # no reset since the login
            popped = _POPPED.get(mailbox)
            if popped is None or popped[0] != generation:
                popped = _POPPED[mailbox] = (generation, set())
            popped[1].update(retrieved)
    return quit_(session, args)


def auth_failed(
    session: Session, text: str = "Authentication failed.", code: str | None = "AUTH"
) -> bytes:
    reply = session._reply
    if reply.sasl_failed is not None:
        return reply.sasl_failed
    if code == "AUTH" and not session.settings.enabled("AUTH-RESP-CODE"):
        code = None
    return reply.err(text, code)


def mechanisms(session: Session) -> list[str]:
    """The SASL mechanisms offered now (none before TLS under ``require_tls``)."""
    if session.settings.require_tls and not session.tls:
        return []
    return list(session.settings.mechanisms)


def b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def sasl_step(
    session: Session, mech: Mechanism, step: Challenge | Success | Failure
) -> tuple[bytes, ...]:
    """The reply to one step of a SASL exchange: a challenge, a login, or its failure."""
    if isinstance(step, Challenge):
        session._sasl = mech
        session._refresh()
        return (b"+ " + base64.b64encode(step.data) + b"\r\n",)
    session._sasl = None
    if isinstance(step, Success):
        return (login(session, step.mailbox),)
    return (auth_failed(session, step.text, step.code),)


def capabilities(session: Session) -> list[str]:
    """What CAPA lists now (RFC 2449 s5 and s6; STLS per RFC 2595; UTF8/LANG per RFC 6856)."""
    s = session.settings
    persona_lines = session._reply.capa_lines
    if persona_lines is not None:
        # A persona's lines as seen, STLS only while it can be used.
        shown = persona_lines[1] if session.state is TRANSACTION else persona_lines[0]
        if s.tls_available and not session.tls and not session.utf8:
            return list(shown)
        return [line for line in shown if line.split()[:1] != ["STLS"]]
    caps: list[str] = []
    for cap in ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"):
        # AUTH-RESP-CODE promises [AUTH] codes, which RESP-CODES switched off strips.
        if s.enabled(cap) and (cap != "AUTH-RESP-CODE" or s.enabled("RESP-CODES")):
            caps.append(cap)
    if s.enabled("USER") and not (s.require_tls and not session.tls):
        caps.append("USER")
    mechs = mechanisms(session)
    if s.enabled("SASL") and mechs:
        caps.append("SASL " + " ".join(mechs))
    # RFC 6856 s2: after UTF8 the client MUST NOT issue STLS, so it is no longer offered.
    if s.enabled("STLS") and s.tls_available and not session.tls and not session.utf8:
        caps.append("STLS")
    if s.enabled("UTF8"):
        caps.append("UTF8 USER")
    if s.enabled("LANG"):
        caps.append("LANG")
    if s.login_delay is not None:
        caps.append(f"LOGIN-DELAY {s.login_delay}")
    if s.expire is not None:
        caps.append(f"EXPIRE {str(s.expire).upper()}")
    if s.enabled("IMPLEMENTATION") and session.state is TRANSACTION:
        caps.append(f"IMPLEMENTATION {s.implementation}")
    return caps


def run(
    session: Session, entry: tuple[Handler, int, int], name: str, args: tuple[str, ...]
) -> Reply:
    """Run a command by its entry in the dispatch: the arity check, then the handler."""
    handler, low, high = entry
    if low <= len(args) <= high:
        return handler(session, args)
    return wrong_arity(session, name, args)


def wrong_arity(session: Session, name: str, args: tuple[str, ...]) -> Reply:
    """The reply when the arguments are fewer or more than the table allows (steps 4 and 5 of
    rule 3 in ``_state.py``): the bare form of the command, or the arity error."""
    if name != "PASS":
        session._pending_user = None  # PASS only right after USER (RFC 1939 s7)
    command = COMMANDS[name]
    if command.bare and not args:
        return BARE_FORMS[name](session, args)
    if len(args) < command.min_args:
        return (session._reply.err(f"{name} needs {command.needs}."),)
    return (session._reply.err(f"Too many arguments for {name}."),)


# --- AUTHORIZATION ------------------------------------------------------------------------
def user(session: Session, args: tuple[str, ...]) -> Reply:
    session._pending_user = args[0]
    # Like Dovecot: +OK for any name, so USER reveals nothing; PASS decides.
    return session._reply.user_ok


def pass_(session: Session, args: tuple[str, ...]) -> Reply:
    # RFC 1939 s7: PASS "may only be given in the AUTHORIZATION state immediately after a
    # successful USER command".
    reply = session._reply
    if session._pending_user is None:
        return (reply.no_user,)
    if not args:  # the arity check the table leaves to this handler (see its PASS row)
        return (reply.err(f"PASS needs {COMMANDS['PASS'].needs}."),)
    name, session._pending_user = session._pending_user, None
    recent = False
    prefix = reply.recent_prefix
    if prefix is not None and name.startswith(prefix) and len(name) > len(prefix):
        name, recent = name[len(prefix) :], True  # Gmail's recent mode
    mailbox = session.auth.check_password(name, args[0])
    if mailbox is None:
        session.user = None
        if reply.unknown_user is not None and session.store.get(name) is None:
            return (reply.unknown_user,)
        return (reply.auth_failed,)
    return (login(session, mailbox, recent),)


def pass_refused(session: Session, args: tuple[str, ...]) -> Reply:
    """PASS on a server that takes no password (a persona's ``basic_auth = false``)."""
    if session._pending_user is None:
        return (session._reply.no_user,)
    session._pending_user = None
    refusal = session._reply.basic_auth_refused
    assert refusal is not None
    return (refusal,)


def apop(session: Session, args: tuple[str, ...]) -> Reply:
    name, digest = args
    if len(digest) != 32 or any(c not in "0123456789abcdefABCDEF" for c in digest):
        return (session._reply.err("APOP digest must be 32 hexadecimal digits."),)
    timestamp = session.timestamp.encode()

    def expected(password: str) -> str:
        # RFC 1939 s7: MD5 of the timestamp (with its angle brackets) and the shared secret.
        return hashlib.md5(timestamp + password.encode("utf-8")).hexdigest()

    mailbox = session.auth.check_digest(name, expected, digest, apop=True)
    if mailbox is None:
        return (session._reply.auth_failed,)
    return (login(session, mailbox),)


def auth_mechanisms(session: Session, args: tuple[str, ...]) -> Reply:
    """AUTH alone (RFC 1734 behaviour that clients still use): the list of mechanisms."""
    return lines(session._reply.ok("List of supported mechanisms follows"), mechanisms(session))


def auth(session: Session, args: tuple[str, ...]) -> Reply:
    name = args[0].upper()
    if name not in mechanisms(session):
        return (session._reply.err(f"Unsupported authentication mechanism: {args[0][:40]}"),)
    refusal = session._reply.basic_auth_refused
    if refusal is not None and name not in OAUTH_MECHANISMS:
        return (refusal,)  # a persona that takes OAuth only
    mech = make_mechanism(name, session.auth, session.settings.hostname)
    assert mech is not None
    initial: bytes | None = None
    if len(args) == 2:
        # RFC 5034 s4: an initial response of "=" is an empty one.
        decoded = b"" if args[1] == "=" else b64(args[1])
        if decoded is None:
            return (session._reply.err("Invalid base64 in initial response."),)
        initial = decoded
    return sasl_step(session, mech, mech.start(initial))


def stls(session: Session, args: tuple[str, ...]) -> Reply:
    if session.utf8:
        # RFC 6856 s2: after UTF8, the client MUST NOT issue STLS.
        return (session._reply.err("STLS is not allowed after UTF8."),)
    session._starting_tls = True
    session._refresh()
    return (session._reply.ok("Begin TLS negotiation now."),)


def utf8(session: Session, args: tuple[str, ...]) -> Reply:
    session.utf8 = True
    return (session._reply.ok("UTF8 enabled"),)


def lang(session: Session, args: tuple[str, ...]) -> Reply:
    langs = session.settings.languages
    if not args:
        return lines(
            session._reply.ok("Language listing follows:"), [f"{k} {v}" for k, v in langs.items()]
        )
    tag = args[0]
    if tag == "*":
        session.language = next(iter(langs))
        return (session._reply.ok(f"{session.language} Default language selected"),)
    for key in langs:
        if key.lower() == tag.lower():
            session.language = key
            return (session._reply.ok(f"{key} Language changed"),)
    return (session._reply.err(f"Unsupported language: {tag[:40]}"),)


def capa(session: Session, args: tuple[str, ...]) -> Reply:
    return lines(session._reply.capa_status, capabilities(session))


def quit_(session: Session, args: tuple[str, ...]) -> Reply:
    if session.state is TRANSACTION:
        # RFC 1939 s6: QUIT in TRANSACTION enters UPDATE: "removes all messages marked
        # as deleted from the maildrop and replies as to the status of this operation".
        # (UPDATE lasts only while this runs: no command is read in it, so no _refresh.)
        session.state = UPDATE
        mailbox = session.mailbox
        assert mailbox is not None
        if session.deleted:
            mailbox.commit_deletions([session.messages[n - 1] for n in sorted(session.deleted)])
        mailbox.release(session)
        session._released = True
    session.close_reason = _history.QUIT
    session.state = CLOSED
    session._refresh()
    return session._reply.logging_out


# --- TRANSACTION --------------------------------------------------------------------------
#: A LIST or UIDL of at least this many lines is streamed (a :class:`Stream`), not built whole.
STREAM_FROM = 10_000
#: Lines per chunk of a streamed reply (about 50 to 150 KB).
STREAM_CHUNK = 4096


def live(session: Session) -> list[tuple[int, Message]]:
    """The messages not marked as deleted, with their numbers (makes every :class:`Message`:
    STAT, LIST and UIDL use :func:`totals`, :func:`sizes_of` and :func:`uids_of`)."""
    return [(i, m) for i, m in enumerate(session.messages, 1) if i not in session.deleted]


def sizes_of(messages: Iterable[Message]) -> Iterable[int]:
    """The size of each message, in order (of a :class:`MessageList`, making no Message)."""
    if isinstance(messages, MessageList):
        return messages.sizes()
    return [m.size for m in messages]


def uids_of(messages: Iterable[Message]) -> Iterable[str]:
    """The UID of each message, in order (of a :class:`MessageList`, making no Message)."""
    if isinstance(messages, MessageList):
        return messages.uids()
    return [m.uid for m in messages]


def totals(session: Session) -> tuple[int, int]:
    """How many messages are not marked as deleted, and their octets (STAT, RSET)."""
    messages, deleted = session.messages, session.deleted
    if isinstance(messages, MessageList):
        octets = messages.total_size - sum(messages[n - 1].size for n in deleted)
        return len(messages) - len(deleted), octets
    kept = live(session)
    return len(kept), sum(m.size for _, m in kept)


def numbered_lines(
    values: Iterable[object], deleted: AbstractSet[int], chunk: int = STREAM_CHUNK
) -> Iterator[bytes]:
    """``"{n} {value}\r\n"`` for each value whose number ``n`` (from 1) is not in ``deleted``,
    ``chunk`` lines at a time, encoded as :func:`lines` encodes them; then the ``.`` line."""
    pairs = enumerate(values, 1)
    while True:
        batch = list(itertools.islice(pairs, chunk))
        if not batch:
            break
        if deleted:
            batch = [pair for pair in batch if pair[0] not in deleted]
        if batch:
            yield "".join([f"{n} {value}\r\n" for n, value in batch]).encode("utf-8", "replace")
    yield b".\r\n"


def _multiline(
    session: Session, status: bytes, values: Callable[[], Iterable[object]], count: int
) -> Reply:
    """A LIST or UIDL reply: built whole, or streamed when it has ``STREAM_FROM`` lines."""
    deleted = session.deleted
    if count >= STREAM_FROM:
        return (status, Stream(lambda: numbered_lines(values(), deleted)))
    return lines(
        status, [f"{n} {value}" for n, value in enumerate(values(), 1) if n not in deleted]
    )


def _stat_answer(session: Session) -> Reply:
    count, octets = totals(session)
    return (session._reply.ok(f"{count} {octets}"),)


def _list_answer(session: Session) -> Reply:
    messages = session.messages
    count = len(messages) - len(session.deleted)
    status = session._reply.ok(f"{count} messages:")
    return _multiline(session, status, lambda: sizes_of(messages), count)


def _uidl_answer(session: Session) -> Reply:
    messages = session.messages
    count = len(messages) - len(session.deleted)
    return _multiline(session, session._reply.ok(), lambda: uids_of(messages), count)


#: What computes each answer of :func:`shared_answer`.
_ANSWER_MAKERS: dict[str, Callable[[Session], Reply]] = {
    "STAT": _stat_answer,
    "LIST": _list_answer,
    "UIDL": _uidl_answer,
}


def shared_answer(session: Session, key: str) -> Reply:
    """STAT, LIST or UIDL about the whole maildrop: with no deletion marked, every session on
    the same unchanged maildrop gets the same bytes, so they are computed once (and kept in
    the dict of the snapshot, ``session._answers``)."""
    if session.deleted:
        return _ANSWER_MAKERS[key](session)
    answer = session._answers.get(key)
    if answer is None:
        answer = session._answers[key] = _ANSWER_MAKERS[key](session)
    return answer


def stat(session: Session, args: tuple[str, ...]) -> Reply:
    if not session.deleted:  # the usual case, answered without a call (see shared_answer)
        shared = session._answers.get("STAT")
        if shared is not None:
            return shared
    return shared_answer(session, "STAT")


def _one(session: Session, name: str, arg: str) -> Reply:
    """LIST n or UIDL n: one message (RFC 1939 s5, s7)."""
    message = message_number(session, arg)
    if isinstance(message, bytes):
        return (message,)
    value = message.size if name == "LIST" else message.uid
    return (session._reply.ok(f"{int(arg)} {value}"),)


def list_(session: Session, args: tuple[str, ...]) -> Reply:
    if args:
        return _one(session, "LIST", args[0])
    if not session.deleted:
        shared = session._answers.get("LIST")
        if shared is not None:
            return shared
    return shared_answer(session, "LIST")


def uidl_formatted(session: Session, args: tuple[str, ...]) -> Reply:
    """UIDL in a persona's format (``uidl = "..."``)."""
    uid_of = session._reply.uid_of
    assert uid_of is not None
    if args:
        message = message_number(session, args[0])
        if isinstance(message, bytes):
            return (message,)
        return (session._reply.ok(f"{int(args[0])} {uid_of(message.uid)}"),)
    messages = session.messages
    count = len(messages) - len(session.deleted)
    return _multiline(session, session._reply.ok(), lambda: map(uid_of, uids_of(messages)), count)


def uidl(session: Session, args: tuple[str, ...]) -> Reply:
    if args:
        return _one(session, "UIDL", args[0])
    if not session.deleted:
        shared = session._answers.get("UIDL")
        if shared is not None:
            return shared
    return shared_answer(session, "UIDL")


def retr(session: Session, args: tuple[str, ...]) -> Reply:
    message = message_number(session, args[0])
    if isinstance(message, bytes):
        return (message,)
    # The slots behind Message.size and Message.wire, read directly once made: a property
    # read is a Python call.  See bench/README.md, "Speed notes".
    size = message._size
    if size is None:
        size = message.size
    # RFC 6856 s2.1: "When UTF-8 mode has not been enabled, character strings outside the
    # ASCII repertoire MUST NOT be sent to the client as is" (the server may refuse instead).
    refused = session._reply.utf8_refused
    if refused is not None and not session.utf8:
        intl = message._intl
        if intl is None:
            intl = message.needs_utf8
        if intl:
            return (refused,)
    wire = message._stuffed
    if wire is None:
        wire = message.wire
    status = known_retr_status(size)
    if status is None:
        status = retr_status(size)
    return (status, wire, b".\r\n")


def top(session: Session, args: tuple[str, ...]) -> Reply:
    message = message_number(session, args[0])
    if isinstance(message, bytes):
        return (message,)
    if not args[1].isascii() or not args[1].isdigit():
        return (session._reply.err(f"Invalid size: {args[1][:40]}"),)
    refused = session._reply.utf8_refused
    if refused is not None and not session.utf8 and message.needs_utf8:
        return (refused,)  # RFC 6856 s2.1, as for RETR
    return (session._reply.ok(), message.top(int(args[1])), b".\r\n")


def dele(session: Session, args: tuple[str, ...]) -> Reply:
    message = message_number(session, args[0])
    if isinstance(message, bytes):
        return (message,)
    session.deleted = {*session.deleted, int(args[0])}
    return (session._reply.ok("Marked to be deleted."),)


def rset(session: Session, args: tuple[str, ...]) -> Reply:
    session.deleted = frozenset()
    count, octets = totals(session)
    return (session._reply.ok(f"{count} messages ({octets} octets)"),)


def noop(session: Session, args: tuple[str, ...]) -> Reply:
    return (session._reply.ok(),)


def obsolete(session: Session, args: tuple[str, ...]) -> Reply:
    # LAST (RFC 1460) and RPOP (RFC 1081) are gone from RFC 1939; fetchmail still sends LAST.
    return (session._reply.err("Command not supported (obsolete)."),)


#: The handler of every command of the table.
HANDLERS: dict[str, Handler] = {
    "USER": user,
    "PASS": pass_,
    "APOP": apop,
    "AUTH": auth,
    "STLS": stls,
    "UTF8": utf8,
    "LANG": lang,
    "CAPA": capa,
    "QUIT": quit_,
    "STAT": stat,
    "LIST": list_,
    "UIDL": uidl,
    "RETR": retr,
    "TOP": top,
    "DELE": dele,
    "RSET": rset,
    "NOOP": noop,
    "LAST": obsolete,
    "RPOP": obsolete,
}

#: The handlers a persona puts in place of the usual ones (see _dispatch._entry).
PERSONA_HANDLERS: dict[str, Handler] = {
    "RETR": retr_once,
    "QUIT": quit_once,
    "UIDL": uidl_formatted,
    "PASS": pass_refused,
}

#: The handlers of the bare forms (``Command.bare``): the command with no argument.
BARE_FORMS: dict[str, Handler] = {"AUTH": auth_mechanisms}

assert HANDLERS.keys() == COMMANDS.keys(), "every command of the table has a handler"
assert all(COMMANDS[name].bare for name in BARE_FORMS)
