"""Hold and release: a command's reply kept back until the test lets it go.

``faults.hold("RETR", nth=2)`` (or ``faults.on("RETR", nth=2).hold()``) returns a
:class:`Gate`.  When the rule fires, the command runs and its reply waits at the gate; the
test sees that with :meth:`Gate.wait_held` (an event, never a sleep), does what it wants
while the client waits (add mail, run a second client, stop the server), then calls
:meth:`Gate.release`.  Used as a context manager, the gate is released and its rule removed
on exit, so a client is never left waiting.

Rules a maintainer must keep:

* A gate is thread-safe: the test thread releases and waits, the server's loop holds; the
  loop is woken with ``call_soon_threadsafe``, never blocked.
* Once released, a gate stays open: later hits of its rule pass at once (a reset that keeps
  its rule closes it again, its count at 0).
* A server that stops or resets releases every gate of its rules first, so that no client is
  left waiting.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from ._rules import FaultRule

__all__ = ["Gate"]


class Gate:
    """Where held replies wait (see the module docs)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._released = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        # Who waits for the held count to grow (wait_held_async), woken at each hit.
        self._watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        #: How many replies were held so far.
        self.held = 0
        #: The rule that holds at this gate (set when it is added).
        self.rule: FaultRule | None = None

    @property
    def released(self) -> bool:
        return self._released

    @property
    def waiting(self) -> int:
        """How many replies wait at the gate now."""
        with self._cond:
            return len(self._waiters)

    def _rearm(self) -> None:
        """Closed again, nothing held (after a reset kept its rule: it holds again)."""
        with self._cond:
            self._released = False
            self.held = 0

    def release(self) -> None:
        """Let every held reply go, and every later one pass."""
        with self._cond:
            self._released = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_open, future)

    def wait_held(self, count: int = 1, timeout: float | None = 10.0) -> None:
        """Block until ``count`` replies have been held; ``TimeoutError`` after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.held >= count, timeout):
                raise self._not_held(count, timeout)

    def _not_held(self, count: int, timeout: float | None) -> TimeoutError:
        return TimeoutError(f"waited {timeout}s for {count} held repl(ies); {self.held} held")

    async def wait_held_async(self, count: int = 1, timeout: float = 10.0) -> None:
        """On a loop (the control API's ``GET /api/v1/holds/{id}?held=N``): return once
        ``count`` replies have been held; ``TimeoutError`` after ``timeout``, as
        :meth:`wait_held`."""
        import asyncio  # here only: importing fakepop3.faults loads no asyncio

        try:
            await asyncio.wait_for(self._held_at_least(count), timeout)
        except asyncio.TimeoutError:  # TimeoutError itself from 3.11 on
            raise self._not_held(count, timeout) from None

    async def _held_at_least(self, count: int) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self.held >= count:
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._watchers.append((loop, future))
            await self._await(self._watchers, loop, future)

    async def wait(self) -> None:
        """Called on the server's loop by the held connection: returns once released."""
        import asyncio  # here only: importing fakepop3.faults loads no asyncio

        loop = asyncio.get_running_loop()
        with self._cond:
            self.held += 1
            self._cond.notify_all()
            watchers, self._watchers = self._watchers, []
            released = self._released
            if not released:
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, future))
        for watcher_loop, watcher in watchers:
            watcher_loop.call_soon_threadsafe(_open, watcher)
        if released:
            return
        await self._await(self._waiters, loop, future)

    async def _await(
        self,
        waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[None],
    ) -> None:
        """Await ``future``, then take it out of ``waiting`` (the list it was put in) however it
        ended; a list that ``release`` or a hit took over is left alone, already handled."""
        try:
            await future
        finally:
            with self._cond:
                if (loop, future) in waiting:
                    waiting.remove((loop, future))

    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        if self.rule is not None:
            self.rule.remove()

    def __repr__(self) -> str:
        state = "released" if self._released else "closed"
        return f"<Gate {state}, {self.held} held>"


def _open(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
