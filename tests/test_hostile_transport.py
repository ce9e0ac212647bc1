"""Transport faults (issue 18): resets, hangs, a slicer, a slow close, jittered delays.

Every test drives the server over real sockets (poplib, or a bare socket where poplib would
hide what the wire carried) and waits on events: a reply, an EOF, a reset, a client-side
timeout that *is* the event under test (a hang), never a sleep.
"""

from __future__ import annotations

import json
import math
import poplib
import random
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakepop3 import POP3Server
from fakepop3.faults import FaultConfigError, Faults

from .conftest import USERS, RawClient, login

MESSAGE = b"Subject: one\r\n\r\n" + b"".join(b"line %03d\r\n" % i for i in range(50))
#: A client-side timeout for the tests where the server, on purpose, never answers: the
#: timeout is the event the test waits for, not a synchronisation.
HANG = 0.3


@pytest.fixture
def server() -> Iterator[POP3Server]:
    with POP3Server(users=USERS) as server:
        server.mailbox("alice").extend([MESSAGE, MESSAGE])
        yield server
    server.raise_errors()


class POP3(poplib.POP3):
    """``poplib.POP3`` that closes its socket when the greeting fails (poplib leaves it open)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        try:
            super().__init__(host, port, timeout)
        except BaseException:
            if getattr(self, "sock", None) is not None:
                self.close()
            raise


def pop(server: POP3Server) -> poplib.POP3:
    client = POP3(server.host, server.port, timeout=10)
    login(client)
    return client


def last_record(server: POP3Server, command: str) -> object:
    server.history.wait_for_sessions(1)
    return [c for c in server.history.commands if c.command == command][-1]


# --- reset ---------------------------------------------------------------------------------
def test_a_reset_before_the_reply_is_a_connection_reset_not_an_eof(server: POP3Server) -> None:
    rule = server.faults.on("RETR").reset()
    client = pop(server)
    with pytest.raises(ConnectionResetError):
        client.retr(1)
    client.close()
    server.history.wait_for_sessions(1)
    [session] = server.history.sessions
    assert session.end_reason == "server"
    record = next(c for c in session.commands if c.command == "RETR")
    assert record.fault == f"reset the connection (RST) [rule {rule.id}: on RETR]"
    assert rule.fired == 1
    assert len(server.mailbox("alice")) == 2  # nothing deleted, and the server goes on
    client = pop(server)
    assert client.stat() == (2, 2 * len(MESSAGE))
    client.quit()


def test_a_reset_after_some_octets_delivers_them_then_resets(server: POP3Server) -> None:
    server.faults.on("RETR").reset(after_bytes=20)
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"RETR 1\r\n")
        with pytest.raises(ConnectionResetError):
            while raw._fill():
                pass
        # What came before the RST is the start of the reply, at most 20 octets of it.
        expected = b"+OK %d octets\r\n" % len(MESSAGE) + MESSAGE
        assert expected.startswith(raw.buffer) and len(raw.buffer) <= 20
    assert "after 20 octets" in str(last_record(server, "RETR").fault)  # type: ignore[attr-defined]


def test_a_connection_reset_before_the_greeting(server: POP3Server) -> None:
    server.faults.on_connect(nth=1).reset()
    with pytest.raises(ConnectionResetError):
        POP3(server.host, server.port, timeout=10)
    client = pop(server)  # the second connection is served
    client.quit()


# --- hang ----------------------------------------------------------------------------------
def test_a_server_that_accepts_and_never_greets(server: POP3Server) -> None:
    rule = server.faults.on_connect(nth=1).hang()
    with pytest.raises(TimeoutError):
        POP3(server.host, server.port, timeout=HANG)
    assert rule.fired == 1
    client = pop(server)  # hanging one session does not block the others
    client.quit()
    server.history.wait_for_sessions(2)  # the hung one ended when its client hung up
    assert sorted(s.end_reason for s in server.history.sessions) == ["drop", "quit"]


def test_a_hang_mid_reply_keeps_the_socket_open(server: POP3Server) -> None:
    rule = server.faults.on("RETR").hang(after_bytes=10)
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"RETR 1\r\n")
        while len(raw.buffer) < 10:
            assert raw._fill()
        raw.sock.settimeout(HANG)
        with pytest.raises(TimeoutError):  # neither more octets nor an EOF
            raw._fill()
        assert raw.buffer == (b"+OK %d octets\r\n" % len(MESSAGE))[:10]
    record = last_record(server, "RETR")
    assert record.fault == (  # type: ignore[attr-defined]
        f"hang after 10 octets of the reply, the connection kept open [rule {rule.id}: on RETR]"
    )
    assert len(server.mailbox("alice")) == 2


def test_a_hang_before_the_reply_with_poplib(server: POP3Server) -> None:
    server.faults.on("STAT").hang()
    client = pop(server)
    client.sock.settimeout(HANG)
    with pytest.raises(TimeoutError):
        client.stat()
    client.close()


def test_a_server_that_stops_ends_a_hung_session() -> None:
    with POP3Server(users=USERS) as server:
        server.faults.on("NOOP").hang()
        raw = RawClient(server.host, server.port)
        raw.login()
        raw.send(b"NOOP\r\n")
        raw.sock.settimeout(HANG)
        with pytest.raises(TimeoutError):  # the NOOP hangs
            raw._fill()
        raw.sock.settimeout(10)
    # The server stopped: its side of the hung connection closed.
    assert raw.read_to_eof() == b""
    raw.close()
    assert [s.end_reason for s in server.history.sessions] == ["server"]


# --- slicer --------------------------------------------------------------------------------
def test_the_slicer_writes_segments_of_n_octets(server: POP3Server) -> None:
    # The next segment is an hour away: the first read gets exactly one segment.
    server.faults.on_connect(nth=1).slice(5, seconds=3600)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        data = b""
        while len(data) < 5:
            chunk = sock.recv(100)
            assert chunk
            data += chunk
        assert data == b"+OK f"
        sock.settimeout(HANG)
        with pytest.raises(TimeoutError):
            sock.recv(100)


def test_a_sliced_session_is_whole_for_poplib(server: POP3Server) -> None:
    rule = server.faults.on("*").slice(3)
    server.faults.on_connect().slice(1)
    client = pop(server)
    assert client.stat() == (2, 2 * len(MESSAGE))
    _, lines, _ = client.retr(2)
    assert b"\r\n".join(lines) + b"\r\n" == MESSAGE
    assert client.quit().startswith(b"+OK")
    record = last_record(server, "RETR")
    assert record.fault == (  # type: ignore[attr-defined]
        f"slice the reply into 3-octet segments, 0s apart [rule {rule.id}: on *]"
    )


# --- slow close ----------------------------------------------------------------------------
def test_a_slow_close_answers_quit_then_holds_the_fin(server: POP3Server) -> None:
    rule = server.faults.on("QUIT").slow_close(3600)
    with RawClient(server.host, server.port) as raw:
        raw.login()
        assert raw.command(b"DELE 1").startswith(b"+OK")
        assert raw.command(b"QUIT").startswith(b"+OK")
        assert len(server.mailbox("alice")) == 1  # UPDATE ran before the reply
        raw.sock.settimeout(HANG)
        with pytest.raises(TimeoutError):  # no FIN: recv would return b""
            raw._fill()
    assert last_record(server, "QUIT").fault == (  # type: ignore[attr-defined]
        f"slow close: the FIN 3600s after the reply [rule {rule.id}: on QUIT]"
    )


def test_a_slow_close_of_zero_closes_after_the_reply(server: POP3Server) -> None:
    server.faults.on("QUIT").slow_close(0)
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"QUIT\r\n")
        assert raw.read_to_eof().startswith(b"+OK")  # the reply, then the FIN


# --- jitter --------------------------------------------------------------------------------
def drawn_delays(seed: int, distribution: str, count: int = 5) -> list[float]:
    with POP3Server(users=USERS, faults=Faults(seed=seed)) as server:
        server.faults.on("NOOP").delay(0.002, jitter=0.001, distribution=distribution)  # type: ignore[arg-type]
        client = pop(server)
        for _ in range(count):
            client.noop()
        client.quit()
        server.history.wait_for_sessions(1)
        faults = [c.fault for c in server.history.commands if c.command == "NOOP"]
    values = []
    for fault in faults:
        assert fault is not None and fault.startswith("delay ")
        assert f"(drawn: 0.002s, {distribution} jitter 0.001)" in fault
        values.append(float(fault.split()[1].rstrip("s")))
    return values


@pytest.mark.parametrize("distribution", ["uniform", "lognormal"])
def test_jittered_delays_are_drawn_from_the_seed(distribution: str) -> None:
    values = drawn_delays(7, distribution)
    rng = random.Random(7)
    if distribution == "uniform":
        expected = [rng.uniform(0.001, 0.003) for _ in values]
    else:
        expected = [0.002 * math.exp(rng.gauss(0.0, 0.001)) for _ in values]
    assert values == pytest.approx(expected, abs=1e-6)
    assert drawn_delays(7, distribution) == values  # the same seed, the same delays
    assert drawn_delays(8, distribution) != values


def test_a_jittered_delay_is_described_on_the_rule() -> None:
    faults = Faults()
    rule = faults.on("RETR").delay(1, jitter=0.5, distribution="lognormal")
    assert rule.description == "delay 1s (lognormal jitter 0.5) [rule 1: on RETR]"
    assert faults.on_connect().delay(2).description == "delay 2s [rule 2: on connect]"


# --- checks and the other surfaces ---------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"command": "RETR", "action": "delay", "seconds": 1, "jitter": -1}, "jitter must be"),
        (
            {"command": "RETR", "action": "delay", "seconds": 1, "distribution": "normal"},
            "unknown distribution 'normal'; use one of uniform, lognormal",
        ),
        ({"command": "RETR", "action": "slow_close", "seconds": 1}, "use it on QUIT, not RETR"),
        ({"command": "RETR", "action": "slice"}, "'size' is missing"),
        (
            {"command": "RETR", "action": "slice", "size": 0},
            "size must be an integer of at least 1",
        ),
        ({"command": "RETR", "action": "reset", "after_bytes": -1}, "after_bytes must be"),
        ({"command": "RETR", "action": "hang", "after_bytes": "x"}, "after_bytes must be"),
        ({"on": "connect", "action": "reset", "after_bytes": 1}, "unknown key(s) 'after_bytes'"),
        ({"on": "connect", "action": "hang", "after_bytes": -2}, "after_bytes must be"),
        ({"on": "connect", "action": "slow_close"}, "does not apply on connect"),
    ],
)
def test_bad_transport_faults_are_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(FaultConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Faults.from_config([entry])


def test_every_transport_fault_in_the_dict_form() -> None:
    faults = Faults.from_config(
        [
            {"command": "RETR", "action": "reset"},
            {"command": "RETR", "action": "reset", "after_bytes": 5},
            {"command": "RETR", "action": "hang"},
            {"command": "RETR", "action": "hang", "after_bytes": 5},
            {"command": "*", "action": "slice", "size": 2, "seconds": 0.5},
            {"command": "QUIT", "action": "slow_close", "seconds": 2},
            {"command": "NOOP", "action": "delay", "seconds": 1, "jitter": 0.2},
            {"on": "connect", "action": "reset"},
            {"on": "connect", "action": "hang", "after_bytes": 3},
            {"on": "connect", "action": "slice", "size": 1},
            {
                "on": "connect",
                "action": "delay",
                "seconds": 1,
                "jitter": 1,
                "distribution": "lognormal",
            },
        ]
    )
    assert [r.effect.describe() for r in faults] == [
        "reset the connection (RST)",
        "reset the connection (RST) after 5 octets of the reply",
        "hang: no reply, the connection kept open",
        "hang after 5 octets of the reply, the connection kept open",
        "slice the reply into 2-octet segments, 0.5s apart",
        "slow close: the FIN 2s after the reply",
        "delay 1s (uniform jitter 0.2)",
        "reset the connection (RST)",
        "hang after 3 octets of the reply, the connection kept open",
        "slice the reply into 1-octet segments, 0s apart",
        "delay 1s (lognormal jitter 1)",
    ]


@pytest.mark.pop3(faults=[{"command": "RETR", "action": "reset"}])
def test_the_marker_takes_a_reset(pop3_client: poplib.POP3, pop3_server: POP3Server) -> None:
    with pytest.raises(ConnectionResetError):
        pop3_client.retr(1)
    pop3_server.faults.assert_all_fired()


def test_the_control_api_arms_a_slicer() -> None:
    with POP3Server(users=USERS, control_port=0) as server:
        server.mailbox("alice").extend([MESSAGE])
        body = json.dumps({"command": "RETR", "action": "slice", "size": 4}).encode()
        request = urllib.request.Request(
            f"{server.control_url}/api/v1/faults",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 201
        client = pop(server)
        assert client.retr(1)[2] >= len(MESSAGE)
        client.quit()
        assert "4-octet segments" in str(last_record(server, "RETR").fault)  # type: ignore[attr-defined]
    server.raise_errors()


def test_the_toml_config_takes_a_reset(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    ready = tmp_path / "ready.json"
    config.write_text(
        'users = {alice = "secret"}\n'
        f'ready_file = "{ready.name}"\n'
        '[[faults]]\ncommand = "STAT"\naction = "reset"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakepop3", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            [sys.executable, "-m", "fakepop3", "wait", "--ready-file", str(ready)],
            check=True,
            timeout=30,
        )
        port = json.loads(ready.read_text())["port"]
        client = poplib.POP3("127.0.0.1", port, timeout=10)
        login(client)
        with pytest.raises(ConnectionResetError):
            client.stat()
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
