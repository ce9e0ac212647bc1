"""``POP3Server``: the options, the listeners, the lifecycle and the helpers for tests.

``async with POP3Server(...)`` serves on the running loop.  ``with
POP3Server(...)`` runs the same server on a loop of its own in a background
thread, so that blocking clients such as ``poplib`` never share a loop with it.
Either way the server binds before ``start`` returns: ``server.port`` is the
real port (also for port 0) and a bind error is raised in the caller.

Rules a maintainer must keep: the server imports no pytest; a connection's behaviour lives in
``_transport`` (the server only makes connections, sweeps idle ones and closes them all).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import poplib
from collections.abc import Callable, Iterable, Mapping
from time import monotonic as _monotonic
from typing import TYPE_CHECKING

from .. import history as _history
from .._binding import listen
from .._loopthread import LoopThread
from .._service import ServerError, Service
from ..auth import Authenticator
from ..faults import Faults
from ..history import History, SessionRecord
from ..options import check_python_options as _check_python_options
from ..protocol import Settings
from ..store import Mailbox, MailStore, MessageInput
from ..tls import TLSCertificates
from ._transport import RECV_BUFFER, _Connection

if TYPE_CHECKING:
    from ..smtp import SMTPIntake

__all__ = ["POP3Server", "ServerError", "uvloop_factory"]

log = logging.getLogger("fakepop3")

#: burst of more clients than that would see connects dropped and retried a second later).
BACKLOG = 1024


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """``uvloop.new_event_loop``, for ``POP3Server(loop_factory=...)`` (the ``speed`` extra).

    Raises :class:`RuntimeError` saying how to install it when uvloop is missing.
    """
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise RuntimeError(
            "uvloop is not installed (it does not run on Windows): pip install 'fakepop3[speed]'"
        ) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class POP3Server(Service):
    """A fake POP3 server for tests.

    Configure it with keyword arguments (all have sane defaults), then start it
    with ``with`` (thread-hosted) or ``async with`` (on the running loop)::

        with POP3Server(users={"alice": "secret"}) as server:
            server.mailbox("alice").add(b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
            client = poplib.POP3(server.host, server.port)

    ``tls=True`` makes test certificates with ``trustme`` and offers STLS;
    ``tls_port`` (0 for any free port) also listens with implicit TLS.

    Arguments (all keyword-only but ``users``):

    Every keyword is declared once in :mod:`fakepop3.options` (type, default,
    check, the CLI flag and TOML key of the standalone server); a bad value
    raises :class:`fakepop3.options.OptionError` (a ``ValueError``) with one line.

    * ``users``: ``{name: password}`` (or a list of names, for token-only or
      ``any_login`` users); the password is also the APOP secret.  More with
      :meth:`add_user`.
    * ``tokens``: ``{name: [token, ...]}``, OAuth bearer tokens for XOAUTH2 and
      OAUTHBEARER (a user named only here has no password).
    * ``host`` / ``port``: where to listen; ``127.0.0.1`` and 0 (a free port,
      reported in ``server.port`` once started).  A non-loopback host is logged
      as a warning.
    * ``tls``: ``True`` for trustme certificates, or a :class:`TLSCertificates`;
      enables STLS.  ``tls_port``: also listen with implicit TLS (POP3S).
    * ``require_tls``: refuse USER/PASS/APOP/AUTH until STLS.
    * ``store``: a :class:`MailStore` to share between servers.
    * ``history``: ``False`` turns recording off, or pass a :class:`History`.
    * ``timeout``: the autologout timer in seconds (RFC 1939: at least 600 on
      a real server); ``command_timeout``: how long one command line may take
      to arrive (slow-client guard).  ``None`` turns either off.
    * ``on_session_end``: called with each :class:`SessionRecord` as it ends.
    * ``faults``: a :class:`Faults` (default: an empty one, ``server.faults``).
    * ``disable``: capabilities to switch off (``"TOP"``, ``"UIDL"``, ``"USER"``,
      ``"SASL"``, ``"APOP"``, ``"STLS"``, ``"PIPELINING"``, ...); CAPA and the
      commands follow.  ``mechanisms``: the SASL mechanisms offered.
    * ``any_login``: accept any user name with any secret (a maildrop is made
      for a new name).
    * ``login_delay`` / ``expire``: advertise LOGIN-DELAY (and enforce it) and
      EXPIRE (RFC 2449).
    * ``hostname``: the name in the APOP timestamp and CRAM-MD5 challenges.
    * ``max_connections``: past it a new connection gets ``-ERR [SYS/TEMP]``.
    * ``max_bad_commands``: unknown or malformed commands before login that
      close the session.
    * ``lenient_syntax``: accept extra spaces and TABs in command lines (by default a
      line is as strict as Dovecot's: ``DELE 1 `` is refused, nothing deleted).
    * ``smtp``: ``True`` or a port to take mail over SMTP too (``smtp`` extra);
      ``smtp_host``: where it listens (default: ``host``).
    * ``settings``: a ready :class:`fakepop3.protocol.Settings` (overrides the
      protocol arguments above).
    * ``loop_factory``: makes the event loop of the thread-hosted server
      (``with`` / :meth:`start`; default ``asyncio.new_event_loop``), e.g.
      ``loop_factory=uvloop_factory()`` for uvloop (``speed`` extra).  ``async
      with`` serves on the running loop, whatever it is.
    """

    def __init__(
        self,
        users: Mapping[str, str | None] | Iterable[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool | TLSCertificates = False,
        tls_port: int | None = None,
        store: MailStore | None = None,
        history: bool | History = True,
        timeout: float | None = 600.0,
        command_timeout: float | None = 60.0,
        on_session_end: Callable[[SessionRecord], None] | None = None,
        faults: Faults | None = None,
        disable: Iterable[str] = (),
        mechanisms: Iterable[str] | None = None,
        require_tls: bool = False,
        any_login: bool = False,
        login_delay: int | None = None,
        expire: int | str | None = None,
        hostname: str = "localhost",
        max_connections: int | None = None,
        max_bad_commands: int = 10,
        settings: Settings | None = None,
        smtp: bool | int = False,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        tokens: Mapping[str, Iterable[str]] | None = None,
        smtp_host: str | None = None,
        lenient_syntax: bool = False,
    ) -> None:
        # Every keyword checked by its schema entry (fakepop3.options): locals() here holds
        # exactly the parameters, so the one list of options is the signature itself.
        checked = _check_python_options(locals())
        port, tls_port, smtp = checked["port"], checked["tls_port"], checked["smtp"]
        host = checked["host"]
        user_passwords: dict[str, str | None] = checked["users"] or {}
        user_tokens: dict[str, tuple[str, ...]] = checked["tokens"] or {}
        disable, mechanisms = checked["disable"], checked["mechanisms"]
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.store = store if store is not None else MailStore()
        for name, password in user_passwords.items():
            self.store.add_user(name, password)
        for name, tokens_of_name in user_tokens.items():
            self.store.add_user(name, tokens=tokens_of_name)
        self.history = history if isinstance(history, History) else History(enabled=history)
        if on_session_end is not None:
            self.history.add_session_listener(on_session_end)
        self.timeout = timeout
        #: Seconds a client may take to finish a command line it started (slowloris guard),
        #: and at most the time a TLS handshake may take; None: no limit but the idle timeout.
        self.command_timeout = command_timeout
        self.max_connections = max_connections
        if tls is True or (tls_port is not None and tls is False):
            self.tls: TLSCertificates | None = TLSCertificates.generate()
        elif isinstance(tls, TLSCertificates):
            self.tls = tls
        else:
            self.tls = None
        if require_tls and self.tls is None:
            raise ValueError("require_tls=True needs TLS: pass tls=True (or a TLSCertificates)")
        if settings is None:
            settings = Settings(
                hostname=hostname,
                disabled=frozenset(disable),
                mechanisms=tuple(mechanisms) if mechanisms is not None else Settings.mechanisms,
                tls_available=self.tls is not None,
                require_tls=require_tls,
                any_login=any_login,
                login_delay=login_delay,
                expire=expire,
                max_bad_commands=max_bad_commands,
                lenient_syntax=lenient_syntax,
            )
        self.settings = settings
        self._auth = Authenticator(self.store, any_login=settings.any_login)
        self.faults = faults if faults is not None else Faults()
        self.errors: list[BaseException] = []
        self._connections: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        # One receive buffer per server: a server runs on one loop, and each read is consumed
        # before the next one starts (see _Connection.get_buffer).
        self._recv_buffer = memoryview(bytearray(RECV_BUFFER))
        self._servers: list[asyncio.AbstractServer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: LoopThread | None = None  # the thread host of `with server:`
        self._loop_factory = loop_factory if loop_factory is not None else asyncio.new_event_loop
        self._running = False
        #: SMTP intake (``smtp=True`` or a port): mail sent to ``user@anything`` lands in
        #: that user's maildrop.  Needs the ``smtp`` extra (aiosmtpd).
        self.smtp: SMTPIntake | None = None
        self._smtp_port: int | None = None if smtp is False else (0 if smtp is True else smtp)
        #: Where the SMTP intake listens (None: ``host``).
        self.smtp_host = smtp_host

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self._running else "stopped"
        return f"<POP3Server {state} users={self.store.users}>"

    # --- mail and users -------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        password: str | None = None,
        *,
        tokens: Iterable[str] = (),
        messages: Iterable[MessageInput] = (),
    ) -> Mailbox:
        """Add a user (password and/or OAuth tokens) with an optional list of messages."""
        return self.store.add_user(name, password, tokens=tokens, messages=messages)

    def mailbox(self, name: str) -> Mailbox:
        """The maildrop of user ``name``."""
        return self.store.mailbox(name)

    def reset(self) -> None:
        """Put every maildrop back to its content at start, and clear the history."""
        self.store.reset()
        self.history.clear()

    def smtp_intake(self, host: str | None = None, port: int = 0) -> SMTPIntake:
        """A new (stopped) SMTP intake into this server's store, with its ``any_login`` and
        ``hostname``, reporting errors to ``server.errors``: how ``smtp=...`` makes its own.
        ``host`` defaults to the server's."""
        from ..smtp import SMTPIntake

        return SMTPIntake(
            self.store,
            self.host if host is None else host,
            port,
            any_login=self.settings.any_login,
            hostname=self.settings.hostname,
            errors=self.errors,
        )

    def connection_protocol(self, implicit_tls: bool = False) -> asyncio.BufferedProtocol:
        """A new connection protocol of this server, as its listeners make one per client
        (``implicit_tls``: the POP3S listener's).  For hosting the server on another transport,
        and for ``bench/instructions.py``, which feeds it bytes with no socket."""
        return _Connection(self, implicit_tls)

    # --- the lifecycle (Service): start/stop, with, async with, running, errors -------------
    _kind = "POP3Server"
    _what = "the POP3 server"

    async def _open(self) -> None:
        """Bind the listeners (and the SMTP intake), then start the idle sweep."""
        loop = self._loop
        assert loop is not None
        binding = self.port
        try:
            # Every address of the host on one port (see _binding: port 0 and "localhost").
            plain = await listen(
                loop, lambda: _Connection(self, False), self.host, self.port, backlog=BACKLOG
            )
            self._servers.extend(plain)
            self.port = plain[0].sockets[0].getsockname()[1]
            if self.tls_port is not None:
                assert self.tls is not None
                binding = self.tls_port
                secure = await listen(
                    loop,
                    lambda: _Connection(self, True),
                    self.host,
                    self.tls_port,
                    backlog=BACKLOG,
                    ssl=self.tls.server_context,
                    ssl_handshake_timeout=self._handshake_timeout(),
                )
                self._servers.extend(secure)
                self.tls_port = secure[0].sockets[0].getsockname()[1]
        except OSError as error:
            for server in self._servers:
                server.close()
            self._servers.clear()
            raise OSError(
                error.errno, f"fakepop3 cannot listen on {self.host}:{binding}: {error.strerror}"
            ) from error
        _warn_if_exposed(self.host)  # once bound: a bind that fails says so itself
        if self._smtp_port is not None:
            intake = self.smtp_intake(
                self.smtp_host if self.smtp_host is not None else self.host, self._smtp_port
            )
            try:
                await intake.start_async()
            except BaseException:
                for server in self._servers:
                    server.close()
                self._servers.clear()
                raise
            self.smtp = intake
        self.store.snapshot_initial()
        if self.timeout is not None:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    def _sweep_interval(self) -> float:
        assert self.timeout is not None
        return max(0.02, min(1.0, self.timeout / 8))

    def _sweep(self) -> None:
        """The autologout timer of every session, checked by one timer per server.

        One timer per connection cost a heap push and a cancel per session; a session
        ends at most two ``_sweep_interval()`` after its idle time reached ``timeout``.
        """
        timeout = self.timeout
        if not self._running or timeout is None or self._loop is None:
            return
        now = _monotonic()
        for conn in list(self._connections):
            conn._check_idle(now, timeout)
        self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    async def _close(self) -> None:
        """Stop listening, close every session (without UPDATE) and wait for them."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self.smtp is not None:
            await self.smtp.stop_async()
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn._abort(reason=_history.SERVER)
        for server in self._servers:
            await server.wait_closed()
        # Let connection_lost callbacks run so every session is recorded as ended.
        for _ in range(3):
            if not self._connections:
                break
            await asyncio.sleep(0)
        self._servers.clear()

    def _stopped(self) -> None:
        if self.tls is not None:
            self.tls.cleanup()

    # --- for tests ------------------------------------------------------------------------
    @property
    def smtp_port(self) -> int | None:
        """The SMTP intake's real port while it runs (``smtp=True`` or a port), else None."""
        return self.smtp.port if self.smtp is not None else None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the plain POP3 listener."""
        return (self.host, self.port)

    def wait_for_sessions(self, count: int, timeout: float | None = 10.0) -> None:
        """Block until ``count`` sessions have ended since start (``TimeoutError`` otherwise)."""
        self.history.wait_for_sessions(count, timeout)

    async def wait_for_sessions_async(self, count: int) -> None:
        """Wait until ``count`` sessions have ended since start."""
        await self.history.wait_for_sessions_async(count)

    def client(
        self, user: str | None = None, password: str | None = None, *, timeout: float = 10.0
    ) -> poplib.POP3:
        """A ``poplib.POP3`` connected to this server, logged in if ``user`` is given."""
        client = poplib.POP3(self.host, self.port, timeout=timeout)
        if user is not None:
            _login(client, self, user, password)
        return client

    def ssl_client(
        self, user: str | None = None, password: str | None = None, *, timeout: float = 10.0
    ) -> poplib.POP3_SSL:
        """A ``poplib.POP3_SSL`` connected to the implicit-TLS port, verifying the certificate."""
        if self.tls is None or self.tls_port is None:
            raise RuntimeError("this server has no implicit-TLS port; pass tls_port=0")
        client = poplib.POP3_SSL(
            self.host, self.tls_port, timeout=timeout, context=self.tls.client_context()
        )
        if user is not None:
            _login(client, self, user, password)
        return client

    def _handshake_timeout(self) -> float:
        """Seconds a TLS handshake may take: 30, or less when ``command_timeout`` is shorter."""
        if self.command_timeout is None:
            return 30.0
        return min(30.0, self.command_timeout)


def _login(client: poplib.POP3, server: POP3Server, user: str, password: str | None) -> None:
    if password is None:
        mailbox = server.store.get(user)
        password = mailbox.password if mailbox is not None and mailbox.password is not None else ""
    try:
        client.user(user)
        client.pass_(password)
    except BaseException:
        client.close()  # a failed login must not leak the socket
        raise


def _warn_if_exposed(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log.warning(
            "fakepop3 is listening on %s, not on loopback: other machines can reach this fake "
            "server and its test passwords",
            host or "every address",
        )
