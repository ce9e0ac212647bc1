"""One shared event loop, in one background thread, for every thread-hosted service of a process.

Blocking clients (``poplib``, ``smtplib``) must never share a loop with the server they talk
to, so ``with POP3Server(...)`` and ``with SMTPIntake(...)`` run their ``start_async`` /
``stop_async`` on a loop in a background thread.  A thread and a loop per server cost more
than the rest of a test's fixture, so every thread-hosted service of the process shares one:

* **One loop per loop factory.**  The loop is made by the services' ``loop_factory`` (asyncio's
  by default; ``uvloop.new_event_loop`` for uvloop), in its thread, on the first
  :meth:`LoopThread.start`.  Services with the same factory share its loop.  The loop of a
  factory that lives as long as the process (a module-level function or a class, such as
  ``asyncio.new_event_loop`` and ``uvloop.new_event_loop``) is kept when idle, until the
  interpreter exits (``atexit``); the loop of any other callable (a lambda, a closure, a
  partial) ends with its last service, so a factory made per test leaves no thread behind.
* **Start-up errors are the caller's.**  :meth:`LoopThread.start` returns once the service
  serves, and raises what start-up raised (a bind error, a loop factory that fails).
  :meth:`LoopThread.start_soon` does not wait: the service bound its sockets in the caller's
  thread first (so a bind error is still the caller's, and a client that connects at once
  waits in the listen backlog until the loop accepts it), and what the loop-side start raises
  then is the service's own to report (``Service`` puts it in its ``errors`` and stops
  listening); what escapes goes to the loop's exception handler, so to the service's.
* **One round trip per start+stop.**  :meth:`LoopThread.stop` runs ``stop_async`` after the
  loop-side start (handed over first: the loop runs callbacks in order) and waits for it: the
  caller of ``start_soon`` and ``stop`` waits for the loop thread once, not twice (the loop
  thread still wakes for each hand-over, and runs each in one turn: :func:`_step_now`).
* **Isolation.**  Each service runs in a :mod:`contextvars` context naming its host, which its
  tasks and callbacks inherit; the loop's exception handler gives an error to the service it
  came from (its own exception handler, so its own ``errors``), or to asyncio's handler (which
  logs) when no service can be named.  ``stop_async`` of a service closes its own connections
  only.  Nothing blocks the loop: delays are timers.
* **Threads.**  Start and stop may be called from any thread at once (the registry has a lock;
  the loop is reached with ``call_soon_threadsafe``), but never from the loop's own thread
  (that would wait on itself): that raises ``RuntimeError``.
* **fork.**  A forked child (pytest-xdist's workers, ``multiprocessing``) has none of its
  parent's threads: ``os.register_at_fork`` forgets the parent's loops, so the child's first
  start makes its own, and a service inherited from the parent stops without touching them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import os
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

__all__ = ["LoopThread", "SharedLoop", "shared_loops"]

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

#: The host (LoopThread) whose service scheduled the running task or callback.
_OWNER: contextvars.ContextVar[LoopThread | None] = contextvars.ContextVar(
    "fakepop3_loop_owner", default=None
)
#: How long the shutdown at exit gives the services still running to stop.
_EXIT_GRACE = 2.0


def _kept_when_idle(factory: LoopFactory) -> bool:
    """A module-level function or a class: one object for the whole process."""
    qualname = getattr(factory, "__qualname__", None)
    return isinstance(qualname, str) and qualname == getattr(factory, "__name__", None)


class SharedLoop:
    """One loop factory's loop, run forever in a daemon thread, shared by its services."""

    def __init__(self, factory: LoopFactory) -> None:
        self.factory = factory
        self.keep = _kept_when_idle(factory)
        self.pid = os.getpid()
        self.hosts: set[LoopThread] = set()  # the services on it now (under _lock)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        # The start and stop tasks under way (the loop holds only weak references to tasks).
        self._tasks: set[asyncio.Task[None]] = set()

    def open(self) -> None:
        """Make the loop in a new thread and run it; raise what the loop factory raised."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                loop = self.factory()
            except BaseException as error:  # a loop_factory that fails: raised in open()
                failure.append(error)
                ready.set()
                return
            loop.set_exception_handler(self._exception)
            self.loop = loop
            ready.set()
            try:
                loop.run_forever()
                self._finish(loop)
            finally:
                loop.close()

        self.thread = threading.Thread(target=main, name="fakepop3-loop", daemon=True)
        self.thread.start()
        ready.wait()
        if failure:
            self.thread.join()
            raise failure[0]

    def _finish(self, loop: asyncio.AbstractEventLoop) -> None:
        """After the loop stopped: stop the services still on it (at exit), end what is left."""
        running = [host for host in list(self.hosts) if host.loop is not None]

        async def stop_all() -> None:
            stops = [host._stop_after_start() for host in running]
            await asyncio.wait_for(asyncio.gather(*stops, return_exceptions=True), _EXIT_GRACE)

        if running:
            try:
                loop.run_until_complete(stop_all())
            except BaseException:  # at exit, a service that cannot stop is left as it is
                pass
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())

    def close(self) -> None:
        """Stop the loop and join its thread (a thread of another process is left alone)."""
        loop, thread = self.loop, self.thread
        if loop is None or thread is None or self.pid != os.getpid():
            return
        if thread is threading.current_thread():
            raise RuntimeError("the fakepop3 loop cannot be closed from its own thread")
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # already closed
            return
        thread.join(_EXIT_GRACE * 2)

    def _check_thread(self, host: LoopThread) -> asyncio.AbstractEventLoop:
        loop = self.loop
        assert loop is not None
        if threading.current_thread() is self.thread:
            raise RuntimeError(
                f"{host.name}: a thread-hosted service cannot be started or stopped from the "
                "fakepop3 loop's own thread (a callback of a server); use start_async/stop_async"
            )
        return loop

    def submit(self, host: LoopThread, make: Callable[[], Awaitable[None]]) -> None:
        """Run ``make()`` on the loop in ``host``'s context, without waiting for it; the task is
        ``host._starting`` (set on the loop).  What it raises goes to the loop's exception
        handler (``host``'s, by the context)."""
        loop = self._check_thread(host)

        async def call() -> None:
            try:
                await make()
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                loop.call_exception_handler(
                    {"message": f"{host.name}: start-up on the loop failed", "exception": error}
                )

        def begin() -> None:  # on the loop, in `context`: the task and its callbacks inherit it
            task = _step_now(loop, call())
            if task is not None:
                host._starting = task
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        context = contextvars.copy_context()
        context.run(_OWNER.set, host)
        context.run(loop.call_soon_threadsafe, begin)

    def run(
        self, host: LoopThread, make: Callable[[], Awaitable[None]], *, now: bool = False
    ) -> None:
        """Run ``make()`` on the loop in ``host``'s context; wait for it and raise its error.
        ``now``: its first step runs in the callback (:func:`_step_now`), for a ``make`` that
        needs no current task there (``asyncio.timeout`` does, before 3.12)."""
        loop = self._check_thread(host)

        # A lock the task releases as it ends: the cheapest wake-up of the caller.
        done = threading.Lock()
        done.acquire()
        failure: list[BaseException] = []

        async def call() -> None:
            try:
                await make()
            except BaseException as error:
                failure.append(error)
            finally:
                done.release()

        def begin() -> None:  # on the loop, in `context`: the task and its callbacks inherit it
            try:
                task = _step_now(loop, call()) if now else _start_task(loop, call())
            except BaseException as error:  # the loop refused the task
                failure.append(error)
                done.release()
                return
            if task is not None and not task.done():
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        context = contextvars.copy_context()
        context.run(_OWNER.set, host)
        context.run(loop.call_soon_threadsafe, begin)  # the handle copies the current context
        done.acquire()
        if failure:
            raise failure[0]

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler: the one of the service the error came from."""
        host = self._owner(context)
        handler = host.exception_handler if host is not None else None
        if handler is None:
            loop.default_exception_handler(context)
        else:
            handler(loop, context)

    def _owner(self, context: dict[str, Any]) -> LoopThread | None:
        owner = _OWNER.get()  # called from inside a service's callback
        if owner is not None:
            return owner
        for key in ("handle", "future", "task"):  # called after a callback or task failed
            ctx = _context_of(context.get(key))
            if ctx is not None and ctx.get(_OWNER) is not None:
                return ctx.get(_OWNER)
        hosts = list(self.hosts)
        return hosts[0] if len(hosts) == 1 else None


def _start_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """A task of ``coro``, its first step run now where Python can (3.12+: ``eager_start``),
    which saves a turn of the loop."""
    if _EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg, unused-ignore]
    return loop.create_task(coro)


_EAGER = sys.version_info >= (3, 12)


def _step_now(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None] | None:
    """Run the first step of ``coro`` now (a start that binds nothing on the loop is usually all
    of it); None when that ended it, else the task running the rest.  ``coro`` must not raise
    but ``CancelledError``.  speed: one turn of the loop per start (bench/README.md, "step-now")."""
    if _EAGER:
        task = _start_task(loop, coro)
        return None if task.done() else task
    try:
        yielded = coro.send(None)  # before 3.12: the first step by hand, in this callback
    except StopIteration:
        return None
    return loop.create_task(_rest(coro, yielded))


@types.coroutine
def _rest(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """The rest of a coroutine whose first step :func:`_step_now` ran: what ``yield from``
    does, from the future it yielded on (a task runs it, so cancelling reaches ``coro``)."""
    while True:
        try:
            sent = yield yielded
        except BaseException as error:
            try:
                yielded = coro.throw(error)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


def _context_of(thing: object) -> contextvars.Context | None:
    """The context a handle or task runs in (``get_context()`` from 3.12, ``_context`` before)."""
    if thing is None:
        return None
    getter = getattr(thing, "get_context", None)
    try:
        found = getter() if callable(getter) else getattr(thing, "_context", None)
    except Exception:  # a loop of another kind may keep no context there
        return None
    return found if isinstance(found, contextvars.Context) else None


class _Registry:
    """The process's shared loops by factory; reset in a forked child."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loops: dict[LoopFactory, SharedLoop] = {}

    def acquire(self, host: LoopThread) -> SharedLoop:
        with self.lock:
            shared = self.loops.get(host.loop_factory)
            if shared is None:
                shared = SharedLoop(host.loop_factory)
                shared.open()  # raises a failing factory's error; nothing is registered
                self.loops[host.loop_factory] = shared
            shared.hosts.add(host)
            return shared

    def release(self, host: LoopThread, shared: SharedLoop) -> None:
        with self.lock:
            shared.hosts.discard(host)
            if shared.hosts or shared.keep or self.loops.get(shared.factory) is not shared:
                return
            del self.loops[shared.factory]
        shared.close()

    def close_all(self) -> None:
        with self.lock:
            loops = list(self.loops.values())
            self.loops.clear()
        for shared in loops:
            shared.close()

    def after_fork(self) -> None:
        self.lock = threading.Lock()  # another thread may have held it at the fork
        self.loops = {}


_registry = _Registry()
atexit.register(_registry.close_all)
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_registry.after_fork)


def shared_loops() -> dict[LoopFactory, SharedLoop]:
    """The shared loops of this process by loop factory (a copy; for tests and the bench)."""
    with _registry.lock:
        return dict(_registry.loops)


class LoopThread:
    """One service's place on the shared loop: :meth:`start` returns once it serves,
    :meth:`stop` once it stopped (and its connections are closed)."""

    def __init__(
        self,
        name: str,
        start_async: Callable[[], Awaitable[None]],
        stop_async: Callable[[], Awaitable[None]],
        *,
        loop_factory: LoopFactory = asyncio.new_event_loop,
        exception_handler: ExceptionHandler | None = None,
    ) -> None:
        self.name = name
        self._start = start_async
        self._stop = stop_async
        self.loop_factory = loop_factory
        self.exception_handler = exception_handler
        self._shared: SharedLoop | None = None
        # The loop-side start of start_soon while it runs (set and read on the loop only).
        self._starting: asyncio.Task[None] | None = None
        self._soon = False  # started by start_soon: its stop_async needs no current task

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the service runs on (None when stopped)."""
        return self._shared.loop if self._shared is not None else None

    def start(self) -> None:
        """Start the service on its factory's shared loop; raise what start-up raised."""
        self._hand_over(lambda shared: shared.run(self, self._start))

    def start_soon(self) -> None:
        """Hand the start to the shared loop and return without waiting for it: for a service
        that bound its sockets already (see the module's rules: its loop-side errors are its
        own), and whose start and stop need no current task before their first suspension
        (both run their first step at once).  Raises only what making the loop raised (a loop
        factory that fails)."""
        self._hand_over(lambda shared: shared.submit(self, self._start))
        self._soon = True

    def _hand_over(self, begin: Callable[[SharedLoop], object]) -> None:
        """Join the factory's shared loop and ``begin`` the start there; on an error, leave it."""
        if self._shared is not None:
            raise RuntimeError(f"{self.name} is already running")
        shared = _registry.acquire(self)
        try:
            begin(shared)
        except BaseException:
            _registry.release(self, shared)
            raise
        self._shared = shared

    async def _stop_after_start(self) -> None:
        """``stop_async``, once the loop-side start of :meth:`start_soon` ended (on the loop)."""
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            await asyncio.wait((starting,))
        await self._stop()

    def stop(self) -> bool:
        """Stop the service (its ``stop_async`` runs on the loop); True when it did.  A service
        inherited through ``fork`` from a parent is only forgotten (False): its loop thread is
        not in this process, and what it holds (sockets, files) is still the parent's."""
        shared, self._shared = self._shared, None
        if shared is None or shared.pid != os.getpid():
            return False
        try:
            shared.run(self, self._stop_after_start, now=self._soon)
        finally:
            _registry.release(self, shared)
        return True
