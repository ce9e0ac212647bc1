"""What a session needs to know about its server: :class:`Settings`.

Rules: every field has a default; ``__post_init__`` checks the values and compiles what every
session of these settings shares (the reply builder and the dispatch).  Those are made once:
a ``Settings`` is not changed after it is made (make another with ``dataclasses.replace``).

The dispatch is compiled once per :func:`dispatch_key` in the process (compiling it costs
~250 µs, more than the rest of a server's start): the key holds every setting that
``_dispatch.py`` reads, and a test compares a cached dispatch with a fresh one for random
settings, so a setting read there and left out of the key fails it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import _validate as v
from .._cache import BoundedCache
from ..auth import ALL_MECHANISMS
from ..personas import Persona
from ._dispatch import Dispatch
from ._replies import Replies
from ._state import CAPABILITIES, MAX_LINE

#: The checks of ``disabled`` and ``mechanisms`` (the options schema uses them too).
check_disabled = v.names_in(
    CAPABILITIES, "capability names", "capability to disable", sort_known=True
)
check_mechanisms = v.names_in(ALL_MECHANISMS, "SASL mechanism names", "SASL mechanism")
_check_expire = v.optional(v.expire)
_check_login_delay = v.optional(v.non_negative)


#: Compiled dispatches by dispatch_key (a handful in a test run: one per profile of settings).
_DISPATCHES: BoundedCache[tuple[object, ...], Dispatch] = BoundedCache(64)


def dispatch_key(settings: Settings) -> tuple[object, ...]:
    """What the dispatch of ``settings`` depends on (see ``_dispatch.py``): the capabilities
    switched off (RESP-CODES among them, for the error replies), whether SASL has a
    mechanism, whether STLS has a certificate, ``require_tls``, and the persona (its texts
    and behaviours pick entries)."""
    return (
        settings.disabled,
        settings.utf8,
        bool(settings.mechanisms),
        settings.tls_available,
        settings.require_tls,
        settings.persona,
    )


@dataclass
class Settings:
    """What a session needs to know about its server.  Every field has a sane default."""

    hostname: str = "localhost"
    implementation: str = "fakepop3"
    greeting: str = "fakepop3 ready."
    disabled: frozenset[str] = frozenset()
    mechanisms: tuple[str, ...] = ALL_MECHANISMS
    tls_available: bool = False
    require_tls: bool = False
    any_login: bool = False
    login_delay: int | None = None
    enforce_login_delay: bool = True
    expire: int | str | None = None
    max_line: int = MAX_LINE
    max_bad_commands: int = 10
    #: Accept any run of spaces or TABs between words, and around them (the first release's
    #: syntax); by default a command line is as strict as Dovecot's (see ``_parse.py``).
    lenient_syntax: bool = False
    #: Lock the maildrop from login to the session's end: a second login gets -ERR [IN-USE]
    #: (RFC 1939 s4).  False lets a second session in, as Dovecot does by default.
    maildrop_lock: bool = True
    #: Offer UTF8 (RFC 6856): CAPA lists ``UTF8 USER`` and the UTF8 command exists; mail with
    #: UTF-8 headers goes only to a session in UTF-8 mode (``-ERR [UTF8]`` before it, s2.1).
    #: Off by default, as on Dovecot, Gmail and Outlook (none of them offers it).
    utf8: bool = False
    languages: dict[str, str] = field(default_factory=lambda: {"en": "English"})
    #: A real server's personality (fakepop3.personas): its texts, CAPA lines and behaviours
    #: are compiled into the replies and the dispatch here, once.  The options it sets
    #: (greeting, disabled, mechanisms ...) are given as the fields above
    #: (``POP3Server(persona=...)`` does that).
    persona: Persona | None = None
    #: What every session of these settings shares, made once in ``__post_init__``: the reply
    #: builder (and greeting), and the dispatch compiled from the command table.
    replies: Replies = field(init=False, repr=False, compare=False)
    dispatch: Dispatch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.disabled = frozenset(check_disabled(self.disabled, "disabled"))
        self.mechanisms = check_mechanisms(self.mechanisms, "mechanisms")
        self.expire = _check_expire(self.expire, "expire")
        self.login_delay = _check_login_delay(self.login_delay, "login_delay")
        if self.max_line < 255:
            raise ValueError(
                "max_line must be at least 255: RFC 2449 requires 255-octet command lines"
            )
        self.replies = Replies(self)
        key = dispatch_key(self)
        dispatch = _DISPATCHES.get(key)
        self.dispatch = (
            _DISPATCHES.put(key, Dispatch(self, self.replies)) if dispatch is None else dispatch
        )

    def enabled(self, capability: str) -> bool:
        if capability == "UTF8" and not self.utf8:
            return False
        return capability not in self.disabled
