"""The asyncio transport around the protocol core, and the server that hosts it.

``async with POP3Server(...)`` serves on the running loop.  ``with
POP3Server(...)`` runs the same server on a loop of its own in a background
thread, so that blocking clients such as ``poplib`` never share a loop with it.
Either way the server binds before ``start`` returns: ``server.port`` is the
real port (also for port 0) and a bind error is raised in the caller.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import poplib
import socket
import ssl
import struct
import traceback
from collections.abc import Callable, Iterable, Mapping
from time import monotonic as _monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import history as _history
from ._binding import listen
from ._loopthread import LoopThread
from .auth import Authenticator
from .faults import Faults
from .history import History, SessionRecord
from .protocol import (
    Action,
    Close,
    Pause,
    Send,
    Session,
    Settings,
    StartTLS,
    State,
    Throttle,
)
from .store import Mailbox, MailStore, MessageInput
from .tls import TLSCertificates

if TYPE_CHECKING:
    from .smtp import SMTPIntake

__all__ = ["POP3Server", "ServerError", "uvloop_factory"]

log = logging.getLogger("fakepop3")

#: Largest piece handed to the transport at once; bigger replies are streamed with flow control.
CHUNK = 256 * 1024
#: Transport write buffer limits: above HIGH the session stops until the client reads.
HIGH_WATER = 512 * 1024
LOW_WATER = 128 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
#: Size of the receive buffer (one per server; a read takes at most this many bytes).
RECV_BUFFER = 64 * 1024
#: Connections the kernel queues before the server accepts them (asyncio's default is 100: a
#: burst of more clients than that would see connects dropped and retried a second later).
BACKLOG = 1024
#: Complete command lines a busy session may hold before the server stops reading.
MAX_PENDING_LINES = 1024


_CLOSED = State.CLOSED  # a module global: cheaper to read than an Enum class attribute
_INTERNAL_ERROR = b"-ERR [SYS/PERM] Internal server error; the session is closed.\r\n"


class ServerError(RuntimeError):
    """An exception raised inside the server (a bug), re-raised for the test to see."""


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


class _Connection(asyncio.BufferedProtocol):
    """One client connection: feeds the session, carries out its actions."""

    __slots__ = (
        "active",
        "busy",
        "close_reason",
        "closing",
        "drained",
        "fast",
        "implicit_tls",
        "last_activity",
        "line_timer",
        "loop",
        "out",
        "paused_writing",
        "server",
        "session",
        "task",
        "throttle",
        "transport",
    )

    def __init__(self, server: POP3Server, implicit_tls: bool) -> None:
        self.server = server
        self.implicit_tls = implicit_tls
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.busy = False
        self.closing = False
        self.paused_writing = False
        self.line_timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        # Output waiting for the transport to drain; made only when a reply is big or the
        # client is slow (an empty deque costs ~700 bytes per idle session).
        self.out: collections.deque[memoryview] | None = None
        self.throttle: float | None = None
        self.close_reason = _history.DROP
        self.drained: asyncio.Future[None] | None = None
        # True while a command line may go straight to the session's fast lane: a session,
        # nothing queued or paused, not busy, closing or throttled (see _refresh_fast).
        self.fast = False

    # --- asyncio callbacks --------------------------------------------------------------
    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # Not an isinstance check (nor a typing.cast call): uvloop's TCP transports have the
        # methods, not the base class.
        transport: asyncio.Transport = base  # type: ignore[assignment]
        self.transport = transport
        loop = self.server._loop
        # The server's loop (asking asyncio costs a getpid() system call per connection).
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        server = self.server
        limit = server.max_connections
        if limit is not None and len(server._connections) >= limit:
            transport.write(b"-ERR [SYS/TEMP] Too many connections, try again later.\r\n")
            transport.close()
            return
        server._connections.add(self)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.session = session = Session.open(
            server.store,
            server.settings,
            server.history,
            peer[:2],  # (host, port): an IPv6 address has two more fields
            self.implicit_tls,
            server.faults,
            _monotonic,
            server._auth,
        )
        # The server's idle sweep reads these: `active` says that bytes came in since its last
        # pass (a flag is cheaper to set on every read than asking the clock).
        self.last_activity = _monotonic()
        self.active = False
        self.fast = True
        try:
            line = session.greeting_line()  # the usual greeting: one line
            if line is not None:
                transport.write(line)
            else:
                self._run(self.session.greeting())
        except Exception as error:
            self.server._report(error)
            self._abort(_INTERNAL_ERROR, _history.SERVER)

    # asyncio reads into the server's one receive buffer (recv_into), and the bytes are taken
    # out at once: a plain Protocol makes asyncio allocate a 256 KiB object per read, which
    # glibc serves with mmap/mremap/munmap (three system calls per command, ~30% of the CPU).
    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server._recv_buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self.server._recv_buffer[:nbytes].tobytes()  # cheaper than bytes(view)
        session = self.session
        if not self.fast or session is None:
            self.data_received(data)
            return
        # The fast lane: one whole command line answered by one reply (the usual exchange).
        try:
            reply = session.answer_line(data)
        except Exception as error:
            self.server._report(error)
            self._abort(_INTERNAL_ERROR, _history.SERVER)
            return
        if reply is None:
            self.data_received(data)
            return
        self.active = True
        if len(reply) == 1 and len(reply[0]) <= CHUNK:
            self.transport.write(reply[0])  # type: ignore[union-attr]
        elif len(reply) == 3 and len(reply[1]) <= CHUNK:  # status, body, "." line: one write
            self.transport.write(b"".join(reply))  # type: ignore[union-attr]
        else:
            self._send(reply)
        if session.state is _CLOSED:
            self._close(session._close_reason)  # the close_reason property, without a call

    def _send(self, reply: tuple[bytes | memoryview, ...]) -> None:
        self._write(reply)
        if self.out or self.paused_writing:
            self._go_async([])
        else:
            self._refresh_fast()

    def _refresh_fast(self) -> None:
        """Work out ``fast``, read once per packet by buffer_updated.  Whatever makes it false
        clears it where it happens; it is worked out again after the general path ran."""
        self.fast = (
            self.session is not None
            and not self.busy
            and not self.closing
            and not self.out
            and not self.paused_writing
            and self.throttle is None
        )

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or self.closing:
            return
        self.active = True
        session.receive_data(data)
        limit = self.server.command_timeout
        if limit is not None:
            # The idle timer restarts on any byte, so a client sending one byte a second would
            # hold the connection for ever: a command line must also end within the limit.
            if self.line_timer is not None and data.find(b"\n") >= 0:
                self.line_timer.cancel()
                self.line_timer = None
            if self.line_timer is None and session.has_partial_line():
                self.line_timer = self.loop.call_later(limit, self._check_line)
        if not self.busy:
            try:
                self._process()
            except Exception as error:
                self.server._report(error)
                self._abort(_INTERNAL_ERROR, _history.SERVER)
            self._refresh_fast()
        elif session.pending_lines > MAX_PENDING_LINES and self.transport is not None:
            # Busy (a fault's delay, a slow reader): stop reading once a backlog builds up,
            # so a pipelining flood cannot grow the line queue without bound.
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.fast = False
        if self.line_timer is not None:
            self.line_timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.drained is not None and not self.drained.done():
            self.drained.cancel()
        self.server._connections.discard(self)
        if self.session is not None:
            try:
                self.session.connection_lost(self.close_reason)
            except Exception as error:  # pragma: no cover - a bug; surfaced to the test
                self.server._report(error)

    def pause_writing(self) -> None:
        self.paused_writing = True
        self.fast = False

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._refresh_fast()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # --- running the session ------------------------------------------------------------
    def _guard(self, func: Callable[..., None], *args: Any) -> None:
        try:
            func(*args)
        except Exception as error:
            self.server._report(error)
            self._abort(_INTERNAL_ERROR, _history.SERVER)

    def _process(self) -> None:
        session = self.session
        assert session is not None
        transport = self.transport
        while not self.busy and not self.closing:
            actions = session.next_actions()
            if actions is None:
                return
            # The common case inline: one small reply, nothing queued, the client reading.
            if len(actions) == 1 and not self.out and not self.paused_writing:
                action = actions[0]
                if type(action) is Send and self.throttle is None:
                    buffers = action.buffers
                    if len(buffers) == 1 and len(buffers[0]) <= CHUNK and transport is not None:
                        transport.write(buffers[0])
                        continue
            self._run(actions)

    def _run(self, actions: list[Action]) -> None:
        """Carry out actions synchronously; hand the rest to a task at the first wait."""
        if len(actions) == 1 and type(actions[0]) is Send and self.throttle is None:
            self._write(actions[0].buffers)  # the common case: one reply
            if self.out or self.paused_writing:
                self._go_async([])
            return
        for i, action in enumerate(actions):
            if isinstance(action, Send) and self.throttle is None:
                self._write(action.buffers)
                if self.out or self.paused_writing:
                    self._go_async(actions[i + 1 :])
                    return
            elif isinstance(action, Close):
                self._close(action.reason)
                return
            elif isinstance(action, Throttle):
                self.throttle = action.bytes_per_second
                self.fast = False
            else:
                self._go_async(actions[i:])
                return

    def _go_async(self, rest: list[Action]) -> None:
        self.busy = True
        self.fast = False
        assert self.transport is not None
        self.transport.pause_reading()
        self.task = self.loop.create_task(self._run_async(rest))

    async def _run_async(self, actions: list[Action]) -> None:
        try:
            await self._flush()
            for action in actions:
                if self.closing:
                    return
                if isinstance(action, Send):
                    if self.throttle is None:
                        self._write(action.buffers)
                        await self._flush()
                    else:
                        await self._write_slowly(action.buffers, self.throttle)
                elif isinstance(action, Pause):
                    await self._sleep(action.seconds)
                elif isinstance(action, Throttle):
                    self.throttle = action.bytes_per_second
                    self.fast = False
                elif isinstance(action, StartTLS):
                    await self._start_tls()
                elif isinstance(action, Close):
                    self._close(action.reason)
                    return
            if self.closing:
                return
            self.busy = False
            assert self.transport is not None
            self.transport.resume_reading()
            self._process()
            self._refresh_fast()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, ssl.SSLError, OSError):
            self._abort()
        except Exception as error:
            self.server._report(error)
            self._abort(_INTERNAL_ERROR, _history.SERVER)

    def _write(self, buffers: tuple[bytes | memoryview, ...]) -> None:
        transport = self.transport
        assert transport is not None
        if not self.out:
            # The common case: a small reply goes out in one write (one send() call).
            if len(buffers) == 1 and len(buffers[0]) <= CHUNK:
                transport.write(buffers[0])
                return
            if sum(map(len, buffers)) <= CHUNK:
                transport.write(b"".join(buffers))
                return
        # A big reply: the transport's buffer limits are raised (once is enough, but asking
        # each time is cheap here) so that it takes big slices, paced by pause_writing.
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        for buf in buffers:
            if self.out or len(buf) > CHUNK:
                self.fast = False  # output queued: the fast lane waits for it (see _refresh_fast)
                if self.out is None:
                    self.out = collections.deque()
                view = memoryview(buf)
                for start in range(0, len(view), CHUNK):
                    self.out.append(view[start : start + CHUNK])
            else:
                transport.write(buf)
        self._pump()

    def _pump(self) -> None:
        transport = self.transport
        assert transport is not None
        while self.out and not self.paused_writing and not self.closing:
            transport.write(self.out.popleft())

    async def _flush(self) -> None:
        """Wait until the queued output has been handed to the transport and it can take more.

        Waiting while the transport is paused also bounds a pipelining client that never
        reads: no further command is handled until its replies drain below HIGH_WATER.
        """
        while (self.out or self.paused_writing) and not self.closing:
            if self.paused_writing:
                self.drained = self.loop.create_future()
                await self.drained
            self._pump()

    async def _write_slowly(self, buffers: tuple[bytes | memoryview, ...], rate: float) -> None:
        transport = self.transport
        assert transport is not None
        step = max(1, int(rate / 20))
        for buf in buffers:
            view = memoryview(buf)
            for start in range(0, len(view), step):
                if self.closing:
                    return
                transport.write(view[start : start + step])
                await self._sleep(step / rate)

    async def _sleep(self, seconds: float) -> None:
        """Wait for a fault (Pause, Throttle) while reading, so a client hanging up ends the session."""
        transport = self.transport
        assert transport is not None
        transport.resume_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            if not self.closing:
                transport.pause_reading()

    async def _start_tls(self) -> None:
        tls = self.server.tls
        assert tls is not None and self.transport is not None and self.session is not None
        await self._flush()
        transport = self.transport
        try:
            new = await self.loop.start_tls(
                transport,
                self,
                tls.server_context,
                server_side=True,
                ssl_handshake_timeout=self.server._handshake_timeout(),
            )
        except BaseException:
            # A handshake that fails, times out or is cut: asyncio tells the TLS layer, never
            # this protocol, so end the session here (or it stays open and counted for ever).
            transport.abort()
            self.connection_lost(None)
            raise
        if new is None:  # pragma: no cover - the connection went away during the handshake
            transport.abort()
            self.connection_lost(None)
            return
        self.transport = new
        self.session.tls_started()

    def _check_idle(self, now: float, timeout: float) -> None:
        """Called by the server's sweep: end the session if it has been idle too long.

        Bytes that came in since the last pass count as activity now (never earlier than
        they came), so a session is never ended early; it ends at most two sweep intervals
        after its idle time reached ``timeout``.
        """
        if self.active:
            self.active = False
            self.last_activity = now
        elif not self.closing and now - self.last_activity >= timeout:
            # RFC 1939 s3: the server "should close the TCP connection without removing
            # any messages or sending any response to the client".
            self._abort(reason=_history.TIMEOUT)

    def _check_line(self) -> None:
        self.line_timer = None
        limit = self.server.command_timeout
        if self.closing or limit is None or self.session is None:
            return
        if self.busy:  # still answering an earlier command: the client may be reading it
            self.line_timer = self.loop.call_later(limit, self._check_line)
        elif self.session.has_partial_line():
            text = f"-ERR Command line not finished within {limit:g} seconds; closing.\r\n"
            self._abort(text.encode(), _history.TIMEOUT)

    def _close(self, reason: str) -> None:
        self.close_reason = reason
        self.closing = True
        self.fast = False
        if self.transport is not None:
            if self.out:
                # Queued output would be lost by close(); hand it over first.
                for view in self.out:
                    self.transport.write(view)
                self.out = None
            self.transport.close()

    def _abort(self, message: bytes | None = None, reason: str = _history.DROP) -> None:
        """Close at once, discarding unsent output (optionally after a last line)."""
        if not self.closing:
            # A connection already closing keeps the reason it closed for: after QUIT, a TLS
            # connection stays open until the client answers the server's close_notify, and
            # a server stopping meanwhile must not turn that "quit" into "server".
            self.close_reason = reason
        self.closing = True
        self.fast = False
        unsent = bool(self.out)
        self.out = None
        if self.transport is not None:
            if message and not self.transport.is_closing():
                self.transport.write(message)
                self.transport.close()
            else:
                # With a reply still queued, reset rather than FIN: otherwise the kernel goes on
                # trickling it to a client that reads slowly, long after the session was dropped.
                sock = self.transport.get_extra_info("socket")
                if sock is not None and (unsent or self.transport.get_write_buffer_size()):
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                self.transport.abort()


class POP3Server:
    """A fake POP3 server for tests.

    Configure it with keyword arguments (all have sane defaults), then start it
    with ``with`` (thread-hosted) or ``async with`` (on the running loop)::

        with POP3Server(users={"alice": "secret"}) as server:
            server.mailbox("alice").add(b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
            client = poplib.POP3(server.host, server.port)

    ``tls=True`` makes test certificates with ``trustme`` and offers STLS;
    ``tls_port`` (0 for any free port) also listens with implicit TLS.

    Arguments (all keyword-only but ``users``):

    * ``users``: ``{name: password}`` (or a list of names, for token-only or
      ``any_login`` users).  More with :meth:`add_user`.
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
    * ``smtp``: ``True`` or a port to take mail over SMTP too (``smtp`` extra).
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
    ) -> None:
        _check_port("port", port)
        if smtp is not False and smtp is not True:
            _check_port("smtp", smtp)
        if tls_port is not None:
            _check_port("tls_port", tls_port)
        if timeout is not None and timeout <= 0:
            raise ValueError(
                f"timeout must be a positive number of seconds or None, not {timeout!r}"
            )
        if command_timeout is not None and command_timeout <= 0:
            raise ValueError(
                "command_timeout must be a positive number of seconds or None, "
                f"not {command_timeout!r}"
            )
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections!r}")
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.store = store if store is not None else MailStore()
        if isinstance(users, Mapping):
            for name, password in users.items():
                self.store.add_user(name, password)
        elif users is not None:
            if isinstance(users, str):
                raise TypeError("users must be a mapping of name to password, or a list of names")
            for name in users:
                self.store.add_user(name)
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

    def connection_protocol(self, implicit_tls: bool = False) -> asyncio.BufferedProtocol:
        """A new connection protocol of this server, as its listeners make one per client
        (``implicit_tls``: the POP3S listener's).  For hosting the server on another transport,
        and for ``bench/instructions.py``, which feeds it bytes with no socket."""
        return _Connection(self, implicit_tls)

    # --- lifecycle on a running loop ------------------------------------------------------
    async def start_async(self) -> None:
        """Bind and start serving on the running loop."""
        if self._running:
            raise RuntimeError("this POP3Server is already running")
        loop = asyncio.get_running_loop()
        self._loop = loop
        _warn_if_exposed(self.host)
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
        if self._smtp_port is not None:
            from .smtp import SMTPIntake

            intake = SMTPIntake(self, self.host, self._smtp_port)
            try:
                await intake.start_async()
            except BaseException:
                for server in self._servers:
                    server.close()
                self._servers.clear()
                raise
            self.smtp = intake
        self.store.snapshot_initial()
        self._running = True
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

    async def stop_async(self) -> None:
        """Stop listening, close every session (without UPDATE) and wait for them."""
        if not self._running:
            return
        self._running = False
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

    async def __aenter__(self) -> POP3Server:
        await self.start_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()

    # --- lifecycle in a thread ------------------------------------------------------------
    def start(self) -> None:
        """Start the server on its own event loop in a background thread."""
        if self._running or self._host is not None:
            raise RuntimeError("this POP3Server is already running")
        host = LoopThread(
            f"fakepop3-{id(self):x}",
            self.start_async,
            self.stop_async,
            loop_factory=self._loop_factory,
            exception_handler=self._loop_exception,
        )
        host.start()
        self._host = host

    def stop(self) -> None:
        """Stop the thread-hosted server; returns once every session is closed."""
        host, self._host = self._host, None
        if host is None:
            return
        host.stop()
        if self.tls is not None:
            self.tls.cleanup()

    def __enter__(self) -> POP3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- for tests ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between start and stop."""
        return self._running

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

    def raise_errors(self) -> None:
        """Raise the first exception that happened inside the server, if any."""
        if self.errors:
            first = self.errors[0]
            text = "".join(traceback.format_exception(type(first), first, first.__traceback__))
            raise ServerError(
                f"{len(self.errors)} error(s) inside the POP3 server; the first:\n{text}"
            ) from first

    def _handshake_timeout(self) -> float:
        """Seconds a TLS handshake may take: 30, or less when ``command_timeout`` is shorter."""
        if self.command_timeout is None:
            return 30.0
        return min(30.0, self.command_timeout)

    def _report(self, error: BaseException) -> None:
        self.errors.append(error)
        log.error("error inside the fakepop3 server", exc_info=error)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, (ConnectionError, ssl.SSLError, asyncio.CancelledError)):
            return  # a client went away mid-write or sent bad TLS: not a server bug
        if error is None:
            error = ServerError(str(context.get("message")))
        self._report(error)


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


def _check_port(name: str, port: object) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(
            f"{name} must be an integer from 0 to 65535 (0 picks a free port), not {port!r}"
        )


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
