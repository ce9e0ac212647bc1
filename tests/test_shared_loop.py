"""The shared loop of thread-hosted servers (fakepop3/_loopthread.py), driven as users drive it.

Every ``with POP3Server()`` of a process runs on one background loop; these tests hold the
isolation that one loop per server gave for free: errors, stops and fault delays stay with
their own server, start/stop is safe from many threads, a forked child gets its own loop, and
the servers still running at exit are stopped.  All synchronisation is by events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import poplib
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fakepop3 import CommandRecord, Faults, POP3Server, ServerError
from fakepop3._loopthread import LoopThread, shared_loops

from .conftest import USERS, RawClient, login

HELLO = b"Subject: Hello\r\n\r\nHi!\r\n"


def session(server: POP3Server, user: str = "alice") -> tuple[int, int]:
    client = server.client(user)
    stat = client.stat()
    client.quit()
    return stat


def test_thread_hosted_servers_share_one_loop_and_one_thread() -> None:
    with POP3Server(users=USERS) as first, POP3Server(users=USERS) as second:
        assert first._loop is not None
        assert first._loop is second._loop
        shared = shared_loops()[asyncio.new_event_loop]
        assert shared.loop is first._loop
        assert shared.thread is not None and shared.thread.is_alive()
        threads = threading.active_count()
        with POP3Server(users=USERS) as third:
            assert third._loop is first._loop
            assert threading.active_count() == threads  # no thread per server
            first.mailbox("alice").add(HELLO)
            assert session(first) == (1, len(HELLO))
            assert session(second) == (0, 0)
            assert session(third) == (0, 0)
    # The default factory's loop stays for the next server of the process.
    assert shared_loops()[asyncio.new_event_loop] is shared
    assert shared.thread.is_alive()


def test_a_server_error_goes_to_its_own_server_only() -> None:
    def boom(record: CommandRecord) -> None:
        if record.command == "STAT":
            raise RuntimeError("boom on the first server")

    with POP3Server(users=USERS) as broken, POP3Server(users=USERS) as fine:
        broken.history.add_listener(boom)
        client = broken.client("alice")
        with pytest.raises(poplib.error_proto, match="Internal server error"):
            client.stat()
        client.close()
        assert session(fine) == (0, 0)
    assert fine.errors == []
    fine.raise_errors()
    with pytest.raises(ServerError, match="boom on the first server"):
        broken.raise_errors()


def test_an_error_in_a_callback_a_server_scheduled_goes_to_that_server() -> None:
    """A callback that fails after its server scheduled it reaches the loop's exception
    handler; the context it ran in names its server."""
    scheduled = threading.Event()

    def fail_later() -> None:
        raise ZeroDivisionError("a callback of the first server")

    def schedule(record: CommandRecord) -> None:
        if record.command == "NOOP":
            asyncio.get_running_loop().call_soon(fail_later)
            asyncio.get_running_loop().call_soon(scheduled.set)

    with POP3Server(users=USERS) as first, POP3Server(users=USERS) as second:
        first.history.add_listener(schedule)
        client = first.client("alice")
        client.noop()
        assert scheduled.wait(10)
        client.quit()
        assert session(second) == (0, 0)
    assert second.errors == []
    assert [type(e) for e in first.errors] == [ZeroDivisionError]


def test_an_error_no_server_can_be_named_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Outside every server's context, with two servers on the loop: asyncio's handler logs it."""
    with POP3Server(users=USERS) as first, POP3Server(users=USERS) as second:
        shared = shared_loops()[asyncio.new_event_loop]
        assert shared.loop is not None
        done = threading.Event()
        context: dict[str, Any] = {"message": "an orphan error", "exception": KeyError("x")}

        def orphan() -> None:
            assert shared.loop is not None
            shared.loop.call_exception_handler(context)
            done.set()

        import contextvars

        contextvars.Context().run(shared.loop.call_soon_threadsafe, orphan)
        assert done.wait(10)
    assert first.errors == [] and second.errors == []
    assert "an orphan error" in caplog.text


def test_stop_waits_for_its_own_connections_only() -> None:
    with POP3Server(users=USERS) as staying:
        staying.mailbox("alice").add(HELLO)
        kept = staying.client("alice")
        with POP3Server(users=USERS) as leaving:
            gone = leaving.client("alice")
        leaving.wait_for_sessions(1, timeout=0)
        assert leaving.history.sessions[0].end_reason == "server"
        with pytest.raises((poplib.error_proto, OSError)):
            gone.stat()
        gone.close()
        # The other server's session was never touched.
        assert kept.stat() == (1, len(HELLO))
        kept.quit()
        staying.wait_for_sessions(1)
    assert staying.history.sessions[0].end_reason == "quit"
    staying.raise_errors()
    leaving.raise_errors()


def test_a_delay_fault_on_one_server_never_holds_another() -> None:
    faults = Faults()
    faults.on("RETR").delay(3600)
    retr_ran = threading.Event()
    replied = threading.Event()
    got: list[bytes] = []
    slow = POP3Server(users=USERS, faults=faults)
    slow.history.add_listener(lambda r: retr_ran.set() if r.command == "RETR" else None)
    with slow, POP3Server(users=USERS) as quick:
        slow.mailbox("alice").add(HELLO)
        quick.mailbox("alice").add(HELLO)
        client = RawClient(slow.host, slow.port)
        client.login()

        def retr() -> None:
            client.send(b"RETR 1\r\n")
            try:
                got.append(client.read_line())
            except (ConnectionError, OSError):
                got.append(b"")
            replied.set()

        waiting = threading.Thread(target=retr)
        waiting.start()
        assert retr_ran.wait(10)  # the slow server is inside its hour-long delay now
        other = quick.client("alice")
        assert b"".join(other.retr(1)[1]) == HELLO.replace(b"\r\n", b"")
        other.quit()
        quick.wait_for_sessions(1)
        assert not replied.is_set()  # the quick server answered while the slow one still waits
    waiting.join(10)
    client.close()
    assert replied.is_set() and got == [b""]  # the stop closed the delayed session unanswered
    slow.raise_errors()
    quick.raise_errors()


def at_once(workers: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(0)`` ... ``work(workers - 1)`` in as many threads, released together; what
    they raised."""
    barrier = threading.Barrier(workers)
    failures: list[BaseException] = []

    def run(number: int) -> None:
        try:
            barrier.wait(10)
            work(number)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return failures


def test_start_and_stop_from_many_threads_at_once() -> None:
    workers, cycles = 8, 10
    servers: list[POP3Server] = []
    lock = threading.Lock()

    def work(number: int) -> None:
        for cycle in range(cycles):
            server = POP3Server(users={"alice": f"pw{number}"})
            with server:
                server.mailbox("alice").extend([HELLO] * (cycle + 1))
                client = poplib.POP3(server.host, server.port, timeout=10)
                login(client, "alice", f"pw{number}")
                assert client.stat() == (cycle + 1, (cycle + 1) * len(HELLO))
                client.quit()
                server.wait_for_sessions(1)
            with lock:
                servers.append(server)

    assert at_once(workers, work) == []
    assert len(servers) == workers * cycles
    for server in servers:
        assert not server.running
        server.raise_errors()
    assert len({id(s._loop) for s in servers}) == 1


def test_a_bind_error_is_raised_in_the_caller_and_the_loop_serves_on() -> None:
    with POP3Server(users=USERS) as taken:
        clash = POP3Server(users=USERS, port=taken.port)
        with pytest.raises(OSError, match="fakepop3 cannot listen on"):
            clash.start()
        assert not clash.running
        shared = shared_loops()[asyncio.new_event_loop]
        assert all(host.name != f"fakepop3-{id(clash):x}" for host in shared.hosts)
        assert session(taken) == (0, 0)
        with POP3Server(users=USERS) as after:
            assert session(after) == (0, 0)


def test_a_per_test_loop_factory_gets_a_loop_that_ends_with_its_last_server() -> None:
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:  # a closure: made anew by each caller
        loop = asyncio.new_event_loop()
        made.append(loop)
        return loop

    with POP3Server(users=USERS, loop_factory=factory) as one:
        with POP3Server(users=USERS, loop_factory=factory) as two:
            assert made == [one._loop] and two._loop is one._loop
            assert session(two) == (0, 0)
        shared = shared_loops()[factory]
        assert session(one) == (0, 0)
    assert factory not in shared_loops()
    assert shared.thread is not None and not shared.thread.is_alive()
    assert made[0].is_closed()


def test_a_server_cannot_be_started_from_the_loop_thread_itself() -> None:
    seen: list[BaseException] = []

    def start_another(record: CommandRecord) -> None:
        if record.command == "NOOP":
            try:
                POP3Server().start()
            except RuntimeError as error:
                seen.append(error)

    with POP3Server(users=USERS) as server:
        server.history.add_listener(start_another)
        client = server.client("alice")
        client.noop()
        client.quit()
        server.wait_for_sessions(1)
    assert len(seen) == 1
    assert "cannot be started or stopped from the fakepop3 loop's own thread" in str(seen[0])
    server.raise_errors()


def test_a_failing_start_leaves_the_host_free() -> None:
    async def fail() -> None:
        raise LookupError("start-up failed")

    async def nothing() -> None:
        return None

    host = LoopThread("fakepop3-test", fail, nothing)
    with pytest.raises(LookupError, match="start-up failed"):
        host.start()
    assert host.loop is None
    host.stop()  # nothing to stop


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_gets_its_own_loop() -> None:
    pytest.importorskip("trustme")
    with POP3Server(users=USERS, tls=True) as parent_server:
        parent_loop = parent_server._loop
        assert parent_server.tls is not None
        ca_path = parent_server.tls.ca_path  # a file of the parent's, which the child must keep
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork with threads
            pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                os.close(read_end)
                parent_server.stop()  # inherited: forgotten, the parent's thread is not here
                with POP3Server(users=USERS) as child_server:
                    child_server.mailbox("alice").add(HELLO)
                    ok = session(child_server) == (1, len(HELLO))
                    ok = ok and child_server._loop is not parent_loop
                code = 0 if ok else 3
            finally:
                os.write(write_end, str(code).encode())
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert answer == b"0"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert parent_server.running
        assert ca_path.exists()
        assert session(parent_server) == (0, 0)
    parent_server.raise_errors()


def test_servers_still_running_at_exit_are_stopped() -> None:
    program = """
import poplib
import socket
from fakepop3 import POP3Server
server = POP3Server(users={"alice": "secret"},
                    on_session_end=lambda s: print("ended", s.end_reason, flush=True))
server.start()
client = poplib.POP3(server.host, server.port, timeout=10)
client.user("alice")
client.pass_("secret")
print("open", flush=True)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["open", "ended server"]
    assert done.stderr == ""


# --- start() binds in the caller's thread and does not wait for the loop (issue 20) ---------


def block_the_loop() -> tuple[threading.Event, asyncio.AbstractEventLoop]:
    """Hold the shared loop in a callback until the returned event is set."""
    with POP3Server():  # make sure the default factory's loop exists
        pass
    loop = shared_loops()[asyncio.new_event_loop].loop
    assert loop is not None
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(30)

    loop.call_soon_threadsafe(hold)
    assert entered.wait(10)
    return release, loop


def test_start_returns_without_the_loop_and_a_client_that_connects_at_once_is_served() -> None:
    """With the loop busy elsewhere, start() still returns, bound (the real port); a client
    that connects then waits in the listen backlog and gets its greeting once the loop runs."""
    release, loop = block_the_loop()
    try:
        server = POP3Server(users=USERS)
        server.start()  # would hang here if start waited for the loop
        assert server.running and server.port != 0 and server._loop is loop
        client = socket.create_connection((server.host, server.port), timeout=10)
    finally:
        release.set()
    try:
        assert client.makefile("rb").readline().startswith(b"+OK fakepop3 ready.")
        client.sendall(b"QUIT\r\n")
    finally:
        client.close()
    server.stop()
    assert [s.end_reason for s in server.history.sessions] in (["quit"], ["server"])
    server.raise_errors()


def test_a_client_right_after_start_and_a_stop_right_after_it_see_a_complete_history() -> None:
    for round_ in range(50):
        server = POP3Server(users=USERS)
        server.start()
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client, "alice", "secret")
        assert client.stat() == (0, 0)
        client.quit()
        server.stop()  # no wait_for_sessions: the history is complete once stop returns
        assert [s.end_reason for s in server.history.sessions] == ["quit"], round_
        assert [c.command for c in server.history.commands] == ["USER", "PASS", "STAT", "QUIT"]
        server.raise_errors()


def test_nothing_listens_once_stop_returned_even_right_after_start() -> None:
    """stop() runs after the loop-side start it may overtake: the sockets never outlive it."""
    for _ in range(100):
        server = POP3Server(tls=True, tls_port=0) if _ == 0 else POP3Server()
        server.start()
        ports = [server.port] + ([server.tls_port] if server.tls_port else [])
        server.stop()
        for port in ports:
            with socket.socket() as probe:
                probe.bind((server.host, port))  # free again: nothing kept it bound
        server.raise_errors()


def test_a_bind_error_of_the_tls_port_is_raised_by_start_with_nothing_left_bound() -> None:
    pytest.importorskip("trustme")
    with taken_port() as busy:
        server = POP3Server(users=USERS, tls=True, tls_port=busy)
        with pytest.raises(OSError, match=f"fakepop3 cannot listen on 127.0.0.1:{busy}"):
            server.start()
        assert not server.running
        assert server.port == 0 and server.tls_port == busy  # the failed start changed neither
        assert all(h.name != f"fakepop3-{id(server):x}" for h in shared_loops_hosts())
    server.tls_port = 0
    with server:  # the plain port it bound was given back: it starts again
        assert session(server) == (0, 0)


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 that another socket listens on while the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def shared_loops_hosts() -> list[LoopThread]:
    return [host for shared in shared_loops().values() for host in shared.hosts]


def test_a_server_whose_start_fails_on_the_loop_reports_it_in_its_own_errors() -> None:
    """An error of the loop-side start comes after start() returned: it goes to the server's
    errors (the fixture fails its test on them), the server stops listening (clients are
    refused, not left waiting) and stop() returns quietly; other servers go on."""
    failed = threading.Event()

    async def broken(bound: list[socket.socket]) -> None:
        failed.set()
        raise LookupError("the loop-side start failed")

    with POP3Server(users=USERS) as other:
        server = POP3Server(users=USERS)
        server._serve = broken  # type: ignore[method-assign]
        server.start()  # returns: the error comes later, on the loop
        port = server.port
        assert failed.wait(10)
        server.stop()
        assert not server.running and server.port == 0  # the port as given, for a restart
        assert [type(e) for e in server.errors] == [LookupError]
        with pytest.raises(ServerError, match="the loop-side start failed"):
            server.raise_errors()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.host, port), timeout=10).close()
        assert session(other) == (0, 0)
    other.raise_errors()
    del server._serve  # type: ignore[method-assign]
    server.errors.clear()
    with server:  # and it can be started again
        assert session(server) == (0, 0)
    server.raise_errors()


def test_many_threads_start_connect_and_stop_at_once() -> None:
    """Thread-hosted start/stop from many threads, each talking to its own server at once."""
    workers, cycles = 8, 10

    def work(number: int) -> None:
        for cycle in range(cycles):
            server = POP3Server(users={"alice": f"pw{number}"})
            server.start()
            try:
                server.mailbox("alice").add(HELLO)
                raw = RawClient(server.host, server.port)
                assert raw.greeting.startswith(b"+OK")
                raw.send(b"QUIT\r\n")
                assert raw.read_line().startswith(b"+OK")
                raw.close()
            finally:
                server.stop()
            assert len(server.history.sessions) == 1, (number, cycle)
            server.raise_errors()

    assert at_once(workers, work) == []


def test_a_start_that_suspends_on_the_loop_is_waited_for_by_stop() -> None:
    """A loop-side start that awaits (uvloop's start_serving does) runs on as a task; stop()
    runs the service's stop only after it, and its own stop after that."""
    order: list[str] = []
    gate: asyncio.Future[None] | None = None
    suspended = threading.Event()

    async def start() -> None:
        nonlocal gate
        gate = asyncio.get_running_loop().create_future()
        order.append("start")
        suspended.set()
        await gate
        await asyncio.sleep(0)
        order.append("started")

    async def stop() -> None:
        order.append("stop")

    host = LoopThread("fakepop3-test", start, stop)
    host.start_soon()
    assert suspended.wait(10)
    loop = host.loop
    assert loop is not None and gate is not None
    stopper = threading.Thread(target=host.stop)
    stopper.start()
    loop.call_soon_threadsafe(gate.set_result, None)
    stopper.join(30)
    assert not stopper.is_alive()
    assert order == ["start", "started", "stop"]


def test_the_smtp_intake_binds_with_the_server_and_serves_a_client_that_comes_at_once() -> None:
    pytest.importorskip("aiosmtpd")
    import smtplib

    release, _ = block_the_loop()
    try:
        server = POP3Server(users=USERS, smtp=True)
        server.start()  # the loop is busy: start binds both listeners and returns
        assert server.smtp is not None and server.smtp.running and server.smtp_port
        pending = socket.create_connection((server.host, server.smtp_port), timeout=10)
    finally:
        release.set()
    try:
        assert pending.makefile("rb").readline().startswith(b"220 ")
    finally:
        pending.close()
    with smtplib.SMTP(server.host, server.smtp_port, timeout=10) as mail:
        mail.sendmail("app@example.com", ["alice@example.com"], HELLO)
    assert session(server) == (1, len(HELLO))
    server.stop()
    assert not server.smtp.running
    server.raise_errors()


def test_an_smtp_port_in_use_is_raised_by_start_with_nothing_left_bound() -> None:
    pytest.importorskip("aiosmtpd")
    with taken_port() as busy:
        server = POP3Server(users=USERS, smtp=busy)
        with pytest.raises(OSError, match=f"SMTP intake cannot listen on 127.0.0.1:{busy}"):
            server.start()
        assert not server.running and server.port == 0 and server.smtp is None
        assert all(h.name != f"fakepop3-{id(server):x}" for h in shared_loops_hosts())
    with server:  # the POP3 port it had bound was given back; the SMTP port is free now
        assert server.smtp_port == busy
        assert session(server) == (0, 0)
    server.raise_errors()
