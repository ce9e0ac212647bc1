"""The connection protocol: one client connection between asyncio and a protocol ``Session``.

``_Connection`` is an ``asyncio.BufferedProtocol``: it reads into the server's one receive
buffer, feeds the session, and carries out the session's actions (send, pause, throttle,
start TLS, close).  Rules a maintainer must keep:

* The session is made in one place, ``connection_made``; nothing else constructs one.
* Output is never lost: queued output is handed over before a close, and a reply is written
  only after every earlier one (a big reply is queued in ``CHUNK`` slices, paced by
  ``pause_writing``/``resume_writing``; a ``Stream``, the LIST or UIDL of a large maildrop, is
  queued as its iterator and a chunk made each time the transport can take more).
* While the connection waits (a fault's pause, a slow reader) it stops reading once
  ``MAX_PENDING_LINES`` lines are queued, so that a client cannot grow memory without bound.
* An exception inside the server is reported to the server (``server._report``) and ends the
  session with ``-ERR [SYS/PERM]``; it never escapes into the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import struct
from collections.abc import Callable, Iterator
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any

from .. import history as _history
from ..faults import Faults
from ..protocol import (
    Action,
    Close,
    Pause,
    Send,
    Session,
    StartTLS,
    State,
    Stream,
    Throttle,
)
from ..protocol._actions import Buffer

if TYPE_CHECKING:
    from ._pop3server import POP3Server

#: Largest piece handed to the transport at once; bigger replies are streamed with flow control.
CHUNK = 256 * 1024
#: Transport write buffer limits: above HIGH the session stops until the client reads.
HIGH_WATER = 512 * 1024
LOW_WATER = 128 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
#: Size of the receive buffer (one per server; a read takes at most this many bytes).
RECV_BUFFER = 64 * 1024
#: Connections the kernel queues before the server accepts them (asyncio's default is 100: a
#: Complete command lines a busy session may hold before the server stops reading.
MAX_PENDING_LINES = 1024


_CLOSED = State.CLOSED  # enum-global (bench/README.md, Speed notes)
_INTERNAL_ERROR = b"-ERR [SYS/PERM] Internal server error; the session is closed.\r\n"


# The connection's mode: one small int (see _Connection.mode).  0 is READING so that the fast
# lane's test is the truth of one attribute; a module global int is cheap to read.
_READING = 0  # nothing queued, writing not paused, not throttled: a packet may take the fast lane
_DRAINING = 1  # reading, but output is queued, writing is paused or the session is throttled
_ANSWERING = 2  # a task carries out the session's actions; reading is paused
_WAITING = 3  # that task waits on a fault (Pause, Throttle) while reading, to see a hang-up
_CLOSING = 4  # closed or closing (also before connection_made, and a refused connection)


class _Connection(asyncio.BufferedProtocol):
    """One client connection: feeds the session, carries out its actions.

    ``mode`` is its state (the module's ``_READING`` ... ``_CLOSING``).  ``_READING`` and
    ``_DRAINING`` are worked out from the facts (``out``, ``drained``, ``throttle``) by
    :meth:`_settle` whenever the connection is not answering; ``_go_async`` enters
    ``_ANSWERING``, ``_sleep`` ``_WAITING``, ``_close``/``_abort``/``connection_lost``
    ``_CLOSING``, which is never left.  A reply is written by :meth:`_write`; only the fast
    lane in :meth:`buffer_updated` (and the greeting) repeat its small case inline, for speed.
    """

    __slots__ = (
        "active",
        "close_reason",
        "drained",
        "implicit_tls",
        "last_activity",
        "line_timer",
        "loop",
        "mode",
        "out",
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
        self.mode = _CLOSING  # no session yet
        self.line_timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        # Output waiting for the transport to drain; made only when a reply is big or the
        # client is slow (list-not-deque, bench/README.md, Speed notes): slices, and the
        # iterators of streamed replies (each pulled a chunk at a time).
        self.out: collections.deque[memoryview | Iterator[bytes]] | None = None
        #: The rate of a Throttle fault (bytes a second): replies go out slowly from then on.
        self.throttle: float | None = None
        self.close_reason = _history.DROP
        #: Not None while the transport has paused writing; done when it resumes.
        self.drained: asyncio.Future[None] | None = None

    # --- asyncio callbacks --------------------------------------------------------------
    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # Not an isinstance check (nor a typing.cast call): uvloop's TCP transports have the
        # methods, not the base class.
        transport: asyncio.Transport = base  # type: ignore[assignment]
        self.transport = transport
        loop = self.server._loop
        # The server's loop, not asyncio's answer (stored-loop, bench/README.md, Speed notes).
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        server = self.server
        limit = server.max_connections
        if limit is not None and len(server._connections) >= limit:
            transport.write(b"-ERR [SYS/TEMP] Too many connections, try again later.\r\n")
            transport.close()
            return
        server._connections.add(self)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.session = session = self._make_session(peer[:2])  # an IPv6 peer has 4 fields
        # The server's idle sweep reads these: `active` says that bytes came in since its last
        # pass (active-flag, bench/README.md, Speed notes).
        self.last_activity = _monotonic()
        self.active = False
        self.mode = _READING
        try:
            line = session.greeting_line()  # the usual greeting: one line
            if line is not None:
                transport.write(line)  # written directly (bench/README.md, Speed notes)
            else:
                self._run(session.greeting())
        except Exception as error:
            self.server._report(error)
            self._abort(_INTERNAL_ERROR, _history.SERVER)

    def _make_session(self, peer: tuple[str, int]) -> Session:
        """The session of this connection: the one place a transport makes one."""
        server = self.server
        # Session.open, or a lint=True server's open_linted (fakepop3/protocol/_linted.py):
        # picked once per server, so that the other servers pay nothing per session.
        return server._open_session(
            server.store,
            server.settings,
            server.history,
            peer,
            self.implicit_tls,
            server.faults.hook if isinstance(server.faults, Faults) else server.faults,
            _monotonic,
            server._auth,
        )

    # asyncio reads into the server's one receive buffer, and the bytes are taken out at once
    # (recv-into, bench/README.md, Speed notes).
    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server._recv_buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self.server._recv_buffer[:nbytes].tobytes()  # tobytes (bench/README.md, Speed notes)
        if self.mode:  # not _READING: the general path
            self.data_received(data)
            return
        # The fast lane: one whole command line answered by one reply (the usual exchange).
        session: Session = self.session  # type: ignore[assignment]  # set in _READING
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
        # _write's small case inline: a call costs 9% of a session (bench/README.md, Speed notes)
        transport: asyncio.Transport = self.transport  # type: ignore[assignment]
        # (A Stream is only ever the last of two buffers: never written here.)
        if len(reply) == 1 and len(reply[0]) <= CHUNK:
            transport.write(reply[0])  # type: ignore[arg-type]
        elif len(reply) == 3 and len(reply[1]) <= CHUNK:  # status, body, "." line: one write
            transport.write(b"".join(reply))  # type: ignore[arg-type]
        else:
            self._send(reply)
        if session.state is _CLOSED:
            self._close(session.close_reason)

    def _send(self, reply: tuple[Buffer, ...]) -> None:
        """Send one reply while not answering (a big fast-lane reply, a one-reply command):
        written at once when it is small and the client reads, else answered by a task that
        waits for the output to drain."""
        self._write(reply)
        if self.out or self.drained is not None:
            self._go_async([])

    def _settle(self) -> None:
        """Work out ``_READING`` or ``_DRAINING`` from the facts, when not answering or closing."""
        if self.mode < _ANSWERING:
            if self.out or self.drained is not None or self.throttle is not None:
                self.mode = _DRAINING
            else:
                self.mode = _READING

    def data_received(self, data: bytes) -> None:
        session = self.session
        if self.mode == _CLOSING or session is None:
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
        if self.mode < _ANSWERING:
            try:
                self._process()
            except Exception as error:
                self.server._report(error)
                self._abort(_INTERNAL_ERROR, _history.SERVER)
            self._settle()
        else:
            if session.linting:  # these lines came before the reply to the one answered now
                session.note_busy()
            if session.pending_lines > MAX_PENDING_LINES and self.transport is not None:
                # Busy (a fault's delay, a slow reader): stop reading once a backlog builds
                # up, so a pipelining flood cannot grow the line queue without bound.
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.mode = _CLOSING
        if self.line_timer is not None:
            self.line_timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.drained is not None and not self.drained.done():
            self.drained.cancel()
        self.server._connections.discard(self)
        session = self.session
        if session is not None:
            transport = self.transport
            if session.tls and transport is not None and not transport.is_closing():
                # Python 3.10's TLS transport (implicit TLS, or after STLS) is not marked
                # closed when the client drops the connection: collected, it would warn
                # "unclosed transport" (a ResourceWarning, an error under -W error).
                transport.abort()
            try:
                session.connection_lost(self.close_reason)
            except Exception as error:  # pragma: no cover - a bug; surfaced to the test
                self.server._report(error)

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = self.loop.create_future()
        if self.mode == _READING:
            self.mode = _DRAINING

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        self._settle()

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
        while self.mode < _ANSWERING:
            actions = session.next_actions()
            if actions is None:
                return
            # The common case: one reply, nothing queued, the client reading.
            if self.mode == _READING and len(actions) == 1 and type(actions[0]) is Send:
                self._send(actions[0].buffers)
            else:
                self._run(actions)

    def _run(self, actions: list[Action]) -> None:
        """Carry out actions synchronously; hand the rest to a task at the first wait."""
        for i, action in enumerate(actions):
            if isinstance(action, Send) and self.throttle is None:
                self._write(action.buffers)
                if self.out or self.drained is not None:
                    self._go_async(actions[i + 1 :])
                    return
            elif isinstance(action, Close):
                self._close(action.reason, action.reset)
                return
            elif isinstance(action, Throttle):
                self.throttle = action.bytes_per_second
                self._settle()
            else:
                self._go_async(actions[i:])
                return

    def _go_async(self, rest: list[Action]) -> None:
        self.mode = _ANSWERING
        assert self.transport is not None
        self.transport.pause_reading()
        self.task = self.loop.create_task(self._run_async(rest))

    async def _run_async(self, actions: list[Action]) -> None:
        try:
            await self._flush()
            for action in actions:
                if self.mode == _CLOSING:
                    return
                if isinstance(action, Send):
                    if self.throttle is None:
                        self._write(action.buffers)
                        await self._flush()
                    else:
                        await self._write_slowly(action.buffers, self.throttle)
                elif isinstance(action, Pause):
                    await self._sleep(action.seconds, action.gate)
                elif isinstance(action, Throttle):
                    self.throttle = action.bytes_per_second
                elif isinstance(action, StartTLS):
                    await self._start_tls()
                elif isinstance(action, Close):
                    self._close(action.reason, action.reset)
                    return
            if self.mode == _CLOSING:
                return
            self.mode = _DRAINING  # no longer answering: _settle works out the rest
            self._settle()
            assert self.transport is not None
            self.transport.resume_reading()
            self._process()
            self._settle()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, ssl.SSLError, OSError):
            self._abort()
        except Exception as error:
            self.server._report(error)
            self._abort(_INTERNAL_ERROR, _history.SERVER)

    def _write(self, buffers: tuple[Buffer, ...]) -> None:
        """Write one reply (the one place that does): a small one in one write, a big one
        queued in CHUNK slices and pumped as the transport takes them (a Stream as its
        iterator, a chunk made each time)."""
        transport = self.transport
        assert transport is not None
        if not self.out:
            # The common case: a small reply goes out in one write (one send() call).
            if len(buffers) == 1 and len(buffers[0]) <= CHUNK:
                transport.write(buffers[0])  # type: ignore[arg-type]  # never a Stream alone
                return
            if type(buffers[-1]) is not Stream and sum(map(len, buffers)) <= CHUNK:
                transport.write(b"".join(buffers))  # type: ignore[arg-type]  # no Stream
                return
        # A big reply: the transport's buffer limits are raised (once is enough, but asking
        # each time is cheap here) so that it takes big slices, paced by pause_writing.
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        for buf in buffers:
            if type(buf) is Stream:
                if self.out is None:
                    self.out = collections.deque()
                self.out.append(iter(buf))
            elif self.out or len(buf) > CHUNK:
                if self.out is None:
                    self.out = collections.deque()
                view = memoryview(buf)  # type: ignore[arg-type]  # not a Stream
                for start in range(0, len(view), CHUNK):
                    self.out.append(view[start : start + CHUNK])
            else:
                transport.write(buf)  # type: ignore[arg-type]  # not a Stream
        self._pump()

    def _pump(self) -> None:
        transport = self.transport
        assert transport is not None
        out = self.out
        while out and self.drained is None and self.mode != _CLOSING:
            item = out[0]
            if isinstance(item, memoryview):
                out.popleft()
                transport.write(item)
                continue
            try:
                chunk = next(item, None)  # a Stream's next chunk
            except Exception as error:  # a bug in making it: reported, the session ends
                self.server._report(error)
                self._abort(_INTERNAL_ERROR, _history.SERVER)
                return
            if chunk is None:
                out.popleft()
            else:
                transport.write(chunk)

    async def _flush(self) -> None:
        """Wait until the queued output has been handed to the transport and it can take more.

        Waiting while the transport is paused also bounds a pipelining client that never
        reads: no further command is handled until its replies drain below HIGH_WATER.
        """
        while (self.out or self.drained is not None) and self.mode != _CLOSING:
            if self.drained is not None:
                await self.drained
            self._pump()

    async def _write_slowly(self, buffers: tuple[Buffer, ...], rate: float) -> None:
        transport = self.transport
        assert transport is not None
        step = max(1, int(rate / 20))
        for buf in buffers:
            for piece in buf if isinstance(buf, Stream) else (buf,):
                view = memoryview(piece)
                for start in range(0, len(view), step):
                    if self.mode == _CLOSING:
                        return
                    transport.write(view[start : start + step])
                    await self._sleep(step / rate)

    async def _sleep(self, seconds: float, gate: Any = None) -> None:
        """Wait for a fault (Pause, Throttle; a held reply's ``gate``) while reading, so a client
        hanging up ends the session."""
        transport = self.transport
        assert transport is not None
        transport.resume_reading()
        self.mode = _WAITING
        try:
            await (asyncio.sleep(seconds) if gate is None else gate.wait())
        finally:
            if self.mode != _CLOSING:
                self.mode = _ANSWERING
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
        elif self.mode != _CLOSING and now - self.last_activity >= timeout:
            # RFC 1939 s3: the server "should close the TCP connection without removing
            # any messages or sending any response to the client".
            self._abort(reason=_history.TIMEOUT)

    def _check_line(self) -> None:
        self.line_timer = None
        limit = self.server.command_timeout
        if self.mode == _CLOSING or limit is None or self.session is None:
            return
        if (
            self.mode == _ANSWERING or self.mode == _WAITING
        ):  # still answering an earlier command: the client may be reading it
            self.line_timer = self.loop.call_later(limit, self._check_line)
        elif self.session.has_partial_line():
            text = f"-ERR Command line not finished within {limit:g} seconds; closing.\r\n"
            self._abort(text.encode(), _history.TIMEOUT)

    def _close(self, reason: str, reset: bool = False) -> None:
        self.close_reason = reason
        self.mode = _CLOSING
        if self.transport is not None and reset:  # a reset fault: RST, unsent output dropped
            self.out = None
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.transport.abort()
        elif self.transport is not None:
            if self.out:
                # Queued output would be lost by close(); hand it over first.
                for item in self.out:
                    if isinstance(item, memoryview):
                        self.transport.write(item)
                    else:
                        for chunk in item:
                            self.transport.write(chunk)
                self.out = None
            self.transport.close()

    def _abort(self, message: bytes | None = None, reason: str = _history.DROP) -> None:
        """Close at once, discarding unsent output (optionally after a last line)."""
        if self.mode != _CLOSING:
            # A connection already closing keeps the reason it closed for: after QUIT, a TLS
            # connection stays open until the client answers the server's close_notify, and
            # a server stopping meanwhile must not turn that "quit" into "server".
            self.close_reason = reason
        self.mode = _CLOSING
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
