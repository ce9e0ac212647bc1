"""The lifecycle of a listening service, written once for ``POP3Server`` and ``SMTPIntake``.

A :class:`Service` runs either on the running loop (``async with`` / :meth:`~Service.start_async`)
or on the process's shared loop in a background thread (``with`` / :meth:`~Service.start`,
hosted by :class:`~fakepop3._loopthread.LoopThread`: one loop thread for every thread-hosted
service with the same ``loop_factory``; see that module for the rules).  Exceptions inside it are kept in ``errors`` (and
logged) so that a test can fail on them: :meth:`~Service.raise_errors`.

Rules a maintainer must keep:

* A subclass writes only :meth:`_open` (bind and start serving; on failure leave nothing
  listening) and :meth:`_close` (stop and wait for the connections), plus :meth:`_stopped` for
  what must happen after the thread host stopped.  Start, stop, ``with`` and ``async with``
  are never written again in a subclass.
* A subclass that can bind with no loop writes :meth:`_bind` too (in the caller's thread: bind
  and listen, set its ports; raise a bind error there) and :meth:`_serve` (on the loop: serve
  on those sockets; on failure close them).  Then :meth:`start` returns once bound, without
  waiting for the loop: clients that connect at once wait in the listen backlog until the loop
  accepts them, and :meth:`stop` (one round trip) runs after the loop-side start.  An error of
  that loop-side start comes after ``start()`` returned: it goes to ``errors`` (logged; the
  pytest fixture fails its test on it) and the service stops listening, so clients are refused
  instead of left waiting; ``running`` turns False.
* A subclass's ``__init__`` sets ``errors``, ``_running``, ``_loop``, ``_host`` and
  ``_loop_factory`` (directly, or with :meth:`_init_service`).
* This module imports neither the POP3 server nor the SMTP intake: both import it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from ._loopthread import ExceptionHandler, LoopThread

__all__ = ["ServerError", "Service"]

_S = TypeVar("_S", bound="Service")


class ServerError(RuntimeError):
    """An exception raised inside the server (a bug), re-raised for the test to see."""


class Service:
    """Start/stop on the running loop or in a thread, ``running``, and error reporting."""

    #: The name in messages ("this POP3Server is already running", "... inside the POP3 server").
    _kind: ClassVar[str] = "service"
    _what: ClassVar[str] = "the service"
    _thread_prefix: ClassVar[str] = "fakepop3"
    _log: ClassVar[logging.Logger] = logging.getLogger("fakepop3")
    _log_text: ClassVar[str] = "error inside the fakepop3 server"

    errors: list[BaseException]
    _running: bool
    _loop: asyncio.AbstractEventLoop | None
    _host: LoopThread | None
    _loop_factory: Callable[[], asyncio.AbstractEventLoop]

    def _init_service(
        self,
        errors: list[BaseException] | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        """Set the attributes the lifecycle uses (``errors``: a list to share, e.g. a server's)."""
        self.errors = errors if errors is not None else []
        self._running = False
        self._loop = None
        self._host = None  # the thread host of `with service:`
        self._loop_factory = loop_factory if loop_factory is not None else asyncio.new_event_loop

    # --- what a subclass writes -------------------------------------------------------------
    async def _open(self) -> None:
        """Bind and start serving on the running loop (``self._loop``)."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Stop listening, close every connection and wait for them."""
        raise NotImplementedError

    def _stopped(self) -> None:
        """Called once the thread host has stopped (after :meth:`stop`)."""

    def _bind(self) -> list[socket.socket] | None:
        """In the caller's thread, for :meth:`start`: bind and listen, or None to bind on the
        loop (:meth:`_open`; ``start`` then waits for it).  Raises a bind error."""
        return None

    async def _serve(self, bound: list[socket.socket]) -> None:
        """On the loop: serve on what :meth:`_bind` returned (on failure, close it)."""
        raise NotImplementedError

    async def _serve_bound(self, bound: list[socket.socket]) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._serve(bound)
        except asyncio.CancelledError:
            self._running = False
            self._unbind(bound)
            raise
        except BaseException as error:  # after start() returned: the service's own error
            self._running = False
            self._unbind(bound)  # clients are refused, not left in the backlog
            self._report(error)

    def _exception_handler(self) -> ExceptionHandler | None:
        """The thread-hosted loop's exception handler (None: asyncio's, which logs)."""
        return self._loop_exception

    # --- lifecycle on a running loop --------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between start and stop."""
        return self._running

    async def start_async(self) -> None:
        """Bind and start serving on the running loop."""
        if self._running:
            raise RuntimeError(f"this {self._kind} is already running")
        self._loop = asyncio.get_running_loop()
        await self._open()
        self._running = True

    async def stop_async(self) -> None:
        """Stop listening, close every connection and wait for them."""
        if not self._running:
            return
        self._running = False
        await self._close()

    async def __aenter__(self: _S) -> _S:
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
        """Start on the shared background loop (made by ``loop_factory``); returns once bound
        (a service with :meth:`_bind`) or once serving, and raises a bind error here."""
        if self._running or self._host is not None:
            raise RuntimeError(f"this {self._kind} is already running")
        bound = self._bind()
        if bound is None:
            host = LoopThread(
                f"{self._thread_prefix}-{id(self):x}",
                self.start_async,
                self.stop_async,
                loop_factory=self._loop_factory,
                exception_handler=self._exception_handler(),
            )
            host.start()
            self._host = host
            return
        host = LoopThread(
            f"{self._thread_prefix}-{id(self):x}",
            lambda: self._serve_bound(bound),
            self.stop_async,
            loop_factory=self._loop_factory,
            exception_handler=self._exception_handler(),
        )
        self._running = True  # before the hand-over: a loop-side failure turns it False
        try:
            host.start_soon()
        except BaseException:
            self._running = False
            self._unbind(bound)
            raise
        self._loop = host.loop  # the loop-side start records the same loop
        self._host = host

    def _unbind(self, bound: list[socket.socket]) -> None:
        """Close what :meth:`_bind` bound (a start that failed before reaching the loop)."""
        for sock in bound:
            sock.close()

    def stop(self) -> None:
        """Stop the thread-hosted service; returns once every connection is closed."""
        host, self._host = self._host, None
        if host is None:
            return
        if host.stop():
            self._stopped()
        else:  # inherited through fork: the parent's to stop (and to clean up after)
            self._running = False

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- errors -----------------------------------------------------------------------------
    def raise_errors(self) -> None:
        """Raise the first exception that happened inside the service, if any."""
        if self.errors:
            first = self.errors[0]
            text = "".join(traceback.format_exception(type(first), first, first.__traceback__))
            raise ServerError(
                f"{len(self.errors)} error(s) inside {self._what}; the first:\n{text}"
            ) from first

    def _report(self, error: BaseException) -> None:
        self.errors.append(error)
        self._log.error(self._log_text, exc_info=error)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, (ConnectionError, ssl.SSLError, asyncio.CancelledError)):
            return  # a client went away mid-write or sent bad TLS: not a server bug
        if error is None:
            error = ServerError(str(context.get("message")))
        self._report(error)
