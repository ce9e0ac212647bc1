"""SMTP intake: mail sent over SMTP lands in a user's maildrop (the ``smtp`` extra).

A CI job or a test can then check "send, then fetch" end to end::

    with POP3Server(users={"alice": "secret"}) as server, SMTPIntake(server) as smtp:
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
(``async with``/:meth:`SMTPIntake.start_async`) or on a loop of its own in a
background thread (``with``/:meth:`SMTPIntake.start`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._binding import listen
from ._loopthread import LoopThread

if TYPE_CHECKING:
    from .server import POP3Server

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


class SMTPIntake:
    """An SMTP listener that delivers into the maildrops of a :class:`~fakepop3.POP3Server`.

    ``host`` defaults to the POP3 server's host; ``port`` 0 picks a free port.
    ``any_login`` (default: the POP3 server's setting) accepts mail for unknown
    users and makes their maildrops.  Start it with ``with``/:meth:`start`
    (a background thread) or ``async with``/:meth:`start_async` (the running loop).
    """

    def __init__(
        self,
        server: POP3Server,
        host: str | None = None,
        port: int = 0,
        *,
        any_login: bool | None = None,
        hostname: str | None = None,
        data_size_limit: int | None = 64 * 1024 * 1024,
    ) -> None:
        _aiosmtpd_smtp()  # fail here, with the install hint, when the extra is missing
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(
                f"SMTP port must be an integer from 0 to 65535 (0 picks a free port), not {port!r}"
            )
        self.server = server
        self.host = host if host is not None else server.host
        self.port = port
        self.any_login = server.settings.any_login if any_login is None else any_login
        self.hostname = hostname if hostname is not None else server.settings.hostname
        self.data_size_limit = data_size_limit
        self.deliveries: list[Delivery] = []
        self._listeners: list[Callable[[Delivery], None]] = []
        self._lock = threading.Lock()
        self._servers: list[asyncio.Server] = []  # one per address of the host, one port
        self._protocols: set[Any] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: LoopThread | None = None  # the thread host of `with intake:`

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self.running else "stopped"
        return f"<SMTPIntake {state}>"

    @property
    def running(self) -> bool:
        return bool(self._servers)

    # --- delivery (also usable without SMTP) ------------------------------------------------
    def resolve(self, address: str) -> str | None:
        """The user name an address delivers to, or None if the recipient is unknown."""
        local = address.rpartition("@")[0] if "@" in address else address
        if not local or any(c in local for c in "\r\n\0"):
            return None
        store = self.server.store
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
        users: list[str] = []
        for address in recipients:
            user = self.resolve(address)
            if user is None:
                raise ValueError(f"no user for recipient {address!r}")
            if user not in users:
                users.append(user)
        for user in users:
            # add_user returns the existing maildrop; it makes one only for any_login.
            self.server.store.add_user(user).add(content)
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

    def _report(self, error: BaseException) -> None:
        self.server.errors.append(error)
        log.error("error inside the fakepop3 SMTP intake", exc_info=error)

    # --- lifecycle on a running loop --------------------------------------------------------
    async def start_async(self) -> None:
        """Bind and start serving SMTP on the running loop."""
        if self._servers:
            raise RuntimeError("this SMTPIntake is already running")
        smtp = _aiosmtpd_smtp()
        loop = asyncio.get_running_loop()
        self._loop = loop
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

        try:
            servers = await listen(loop, factory, self.host, self.port)
        except OSError as error:
            raise OSError(
                error.errno,
                f"fakepop3 SMTP intake cannot listen on {self.host}:{self.port}: {error.strerror}",
            ) from error
        self._servers = servers
        self.port = servers[0].sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        """Stop listening and close every SMTP connection."""
        servers, self._servers = self._servers, []
        if not servers:
            return
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

    async def __aenter__(self) -> SMTPIntake:
        await self.start_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()

    # --- lifecycle in a thread --------------------------------------------------------------
    def start(self) -> None:
        """Start on a loop of its own in a background thread; returns once listening."""
        if self._servers or self._host is not None:
            raise RuntimeError("this SMTPIntake is already running")
        host = LoopThread(f"fakepop3-smtp-{id(self):x}", self.start_async, self.stop_async)
        host.start()
        self._host = host

    def stop(self) -> None:
        """Stop the thread-hosted intake; returns once its connections are closed."""
        host, self._host = self._host, None
        if host is not None:
            host.stop()

    def __enter__(self) -> SMTPIntake:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
