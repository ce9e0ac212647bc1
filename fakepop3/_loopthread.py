"""Run an asyncio service on an event loop of its own, in a background thread.

Blocking clients (``poplib``, ``smtplib``) must never share a loop with the server they talk
to, so ``with POP3Server(...)`` and ``with SMTPIntake(...)`` host their ``start_async`` /
``stop_async`` here.  The service binds inside the thread before :meth:`LoopThread.start`
returns, and any error of start-up (a bind error, a loop factory that fails) is raised in the
caller rather than lost in the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["LoopThread"]

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class LoopThread:
    """One service's loop thread: :meth:`start` returns once it serves, :meth:`stop` once it stopped."""

    def __init__(
        self,
        name: str,
        start_async: Callable[[], Awaitable[None]],
        stop_async: Callable[[], Awaitable[None]],
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
        exception_handler: ExceptionHandler | None = None,
    ) -> None:
        self.name = name
        self._start_async = start_async
        self._stop_async = stop_async
        self._loop_factory = loop_factory
        self._exception_handler = exception_handler
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the thread and the service in it; raise what start-up raised."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                loop = self._loop_factory()
            except BaseException as error:  # a loop_factory that fails: raised in start()
                failure.append(error)
                ready.set()
                return
            if self._exception_handler is not None:
                loop.set_exception_handler(self._exception_handler)
            try:
                loop.run_until_complete(self._start_async())
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(self._stop_async())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread = thread
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Stop the service (its ``stop_async`` runs on its loop) and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None
        self._loop = None
