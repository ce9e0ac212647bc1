"""SMTP intake: mail sent over SMTP lands in a user's maildrop (the ``smtp`` extra).

A CI job or a test can then check "send, then fetch" end to end::

    with POP3Server(users={"alice": "secret"}) as server, SMTPIntake(server.store) as smtp:
        with smtplib.SMTP(smtp.host, smtp.port) as client:
            client.sendmail("app@example.com", ["alice@example.com"], message_bytes)
        pop = server.client("alice")        # RETR 1 gives message_bytes back

The local part of a recipient address is the user name (``alice@anything``;
an exact match first, then a case-insensitive one).  Unknown recipients get
``550`` unless the server accepts any login (``any_login=True``), in which case
their maildrop is made.  The message is stored as the client sent it (after
SMTP's dot-unstuffing), without added ``Received`` or ``Return-Path`` headers.
Like any mail added while the server runs, it shows at the user's next login.

The server is ``aiosmtpd``'s protocol on a listener bound here (port 0 picks a
free port; :attr:`SMTPIntake.port` is the real one), either on the running loop
(``async with``/:meth:`SMTPIntake.start_async`) or on the process's shared
background loop thread (``with``/:meth:`SMTPIntake.start`).

This module knows the store, never the POP3 server (``POP3Server(smtp=...)`` makes its intake
with :meth:`POP3Server.smtp_intake`, the one place that wires the two).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._binding import bind, off_the_loop, serve
from ._loopthread import ExceptionHandler
from ._service import Service
from ._validate import is_loopback
from ._validate import port as check_port
from .store import MailStore

__all__ = ["Delivery", "SMTPIntake"]

log = logging.getLogger("fakepop3.smtp")

MISSING_AIOSMTPD = (
    "SMTP intake needs the 'aiosmtpd' package, which is not installed: pip install 'fakepop3[smtp]'"
)


def _aiosmtpd_smtp() -> Any:
    try:
        from aiosmtpd import smtp
    except ImportError:
        raise RuntimeError(MISSING_AIOSMTPD) from None
    return smtp


@dataclass(frozen=True)
class Delivery:
    """One message taken in over SMTP."""

    mail_from: str
    #: The users whose maildrops got the message, in RCPT order.
    users: tuple[str, ...]
    #: The RCPT TO addresses as the client sent them.
    recipients: tuple[str, ...]
    size: int
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "mail_from": self.mail_from,
            "users": list(self.users),
            "recipients": list(self.recipients),
            "size": self.size,
            "time": self.received_at,
        }


class _Handler:
    """aiosmtpd handler: RCPT resolves users, DATA stores the message."""

    def __init__(self, intake: SMTPIntake) -> None:
        self.intake = intake

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        user = self.intake.resolve(address)
        if user is None:
            return f"550 5.1.1 No such user here: {address}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            delivery = self.intake.deliver(
                str(envelope.mail_from or ""),
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or b""),
            )
        except Exception as error:
            self.intake._report(error)
            return "451 4.3.0 Internal error in fakepop3 while storing the message"
        return f"250 OK: delivered to {', '.join(delivery.users)}"


class SMTPIntake(Service):
    """An SMTP listener that delivers into the maildrops of a :class:`~fakepop3.MailStore`.

    ``SMTPIntake(store, host="127.0.0.1", port=0)``: ``port`` 0 picks a free port.
    ``any_login`` accepts mail for unknown users and makes their maildrops;
    ``hostname`` is the name in the greeting.  Exceptions inside the intake go to
    ``errors`` (pass a list to share one, e.g. a server's ``errors``) and
    :meth:`raise_errors`.  Start it with ``with``/:meth:`start` (a background
    thread) or ``async with``/:meth:`start_async` (the running loop).

    Deprecated: ``SMTPIntake(server)`` (any object with ``.store``), kept for a
    release, takes the store, host, ``any_login``, hostname and ``errors`` of
    that server; use ``POP3Server(smtp=...)`` or ``SMTPIntake(server.store, ...)``.
    """

    _kind = "SMTPIntake"
    _what = "the SMTP intake"
    _thread_prefix = "fakepop3-smtp"
    _log = log
    _log_text = "error inside the fakepop3 SMTP intake"

    def __init__(
        self,
        store: MailStore,
        host: str | None = None,
        port: int = 0,
        *,
        any_login: bool | None = None,
        hostname: str | None = None,
        data_size_limit: int | None = 64 * 1024 * 1024,
        errors: list[BaseException] | None = None,
    ) -> None:
        _aiosmtpd_smtp()  # fail here, with the install hint, when the extra is missing
        check_port(port, "SMTP port")
        if not isinstance(store, MailStore) and hasattr(store, "store"):
            # The old form, SMTPIntake(server): read what it offered, without knowing its type.
            warnings.warn(
                "SMTPIntake(server) is deprecated: use POP3Server(smtp=...) or "
                "SMTPIntake(server.store, host, port, any_login=..., hostname=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            server: Any = store
            store = server.store
            host = server.host if host is None else host
            any_login = server.settings.any_login if any_login is None else any_login
            hostname = server.settings.hostname if hostname is None else hostname
            errors = server.errors if errors is None else errors
        self._init_service(errors)
        self.store = store
        self.host = host if host is not None else "127.0.0.1"
        self.port = port
        self._asked_port = port  # the port before binding
        self.any_login = bool(any_login)
        self.hostname = hostname if hostname is not None else "localhost"
        self.data_size_limit = data_size_limit
        self.deliveries: list[Delivery] = []
        self._listeners: list[Callable[[Delivery], None]] = []
        self._lock = threading.Lock()
        self._servers: list[asyncio.Server] = []  # one per address of the host, one port
        self._protocols: set[Any] = set()
        #: Called before each delivery: a POP3Server's own intake takes the server's default
        #: reset baseline there, so a reset removes mail that came in over SMTP.
        self.before_delivery: Callable[[], None] | None = None

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self.running else "stopped"
        return f"<SMTPIntake {state}>"

    # --- delivery (also usable without SMTP) ------------------------------------------------
    def resolve(self, address: str) -> str | None:
        """The user name an address delivers to, or None if the recipient is unknown."""
        local = address.rpartition("@")[0] if "@" in address else address
        if not local or any(c in local for c in "\r\n\0"):
            return None
        store = self.store
        if local in store:
            return local
        folded = [name for name in store.users if name.casefold() == local.casefold()]
        if len(folded) == 1:
            return folded[0]
        if self.any_login:
            return local
        return None

    def deliver(self, mail_from: str, recipients: list[str], content: bytes) -> Delivery:
        """Store ``content`` in the maildrop of each recipient's user (made if needed)."""
        if self.before_delivery is not None:
            self.before_delivery()
        users: list[str] = []
        for address in recipients:
            user = self.resolve(address)
            if user is None:
                raise ValueError(f"no user for recipient {address!r}")
            if user not in users:
                users.append(user)
        for user in users:
            # add_user returns the existing maildrop; it makes one only for any_login.
            self.store.add_user(user).add(content)
        delivery = Delivery(mail_from, tuple(users), tuple(recipients), len(content), time.time())
        with self._lock:
            self.deliveries.append(delivery)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(delivery)
        return delivery

    def add_listener(self, listener: Callable[[Delivery], None]) -> None:
        """Call ``listener(delivery)`` for every message taken in from now on."""
        with self._lock:
            self._listeners.append(listener)

    # --- the lifecycle (Service): start/stop, with, async with, running, errors -------------
    def _exception_handler(self) -> ExceptionHandler | None:
        return None  # asyncio's own (it logs): aiosmtpd reports a client's errors itself

    def _bind(self) -> list[socket.socket]:
        """In the caller's thread (``start()``): bind and listen (raises a bind error)."""
        _aiosmtpd_smtp()  # a missing extra is the caller's error too
        return self._bind_listeners()

    async def _open(self) -> None:
        """Bind and start serving SMTP on the running loop."""
        _aiosmtpd_smtp()  # before binding: a missing extra leaves nothing bound
        assert self._loop is not None
        bound = await off_the_loop(self._loop, self.host, self._bind_listeners)
        await self._serve(bound)

    def _bind_listeners(self) -> list[socket.socket]:
        sockets = bind(self.host, self.port, who="fakepop3 SMTP intake")
        self._asked_port = self.port  # put back if this start fails after all
        self.port = sockets[0].getsockname()[1]
        if not is_loopback(self.host):  # after the bind: a bind that fails says so itself
            log.warning(
                "the fakepop3 SMTP intake is listening on %s:%d, not on loopback: other "
                "machines can reach this fake server and put mail into its maildrops",
                self.host or "every address",
                self.port,
            )
        return sockets

    def _unbind(self, bound: list[socket.socket]) -> None:
        super()._unbind(bound)
        self.port = self._asked_port  # a failed start leaves the port as given

    async def _serve(self, bound: list[socket.socket]) -> None:
        """Serve SMTP on the sockets bound (on failure, every one is closed)."""
        smtp = _aiosmtpd_smtp()
        loop = asyncio.get_running_loop()
        handler = _Handler(self)

        def factory() -> Any:
            protocol = smtp.SMTP(
                handler,
                hostname=self.hostname,
                ident="fakepop3 SMTP intake",
                enable_SMTPUTF8=True,
                data_size_limit=self.data_size_limit,
                loop=loop,
            )
            self._protocols.add(protocol)
            original = protocol.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                self._protocols.discard(protocol)
                original(exc)

            protocol.connection_lost = connection_lost
            return protocol

        self._servers = await serve(loop, factory, bound)

    async def _close(self) -> None:
        """Stop listening and close every SMTP connection."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for protocol in list(self._protocols):
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.close()
        for server in servers:
            await server.wait_closed()
        for _ in range(3):
            if not self._protocols:
                break
            await asyncio.sleep(0)
