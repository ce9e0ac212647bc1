"""The strict client lint (issue 18): a client's protocol mistakes, found and reported."""

from __future__ import annotations

import poplib
import socket

import pytest

from fakepop3 import POP3Server
from fakepop3.faults import LINT_RULES, LintError
from fakepop3.server import ServerError

from .conftest import USERS, RawClient, login

MESSAGE = b"Subject: hi\r\n\r\nHello\r\n"


def lint_server(**options: object) -> POP3Server:
    server = POP3Server(users=USERS, lint=True, **options)  # type: ignore[arg-type]
    server.mailbox("alice").extend([MESSAGE, MESSAGE])
    return server


def rules(server: POP3Server) -> list[str]:
    assert server.linter is not None
    return [f.rule for f in server.linter.findings]


def test_a_careful_client_has_no_findings() -> None:
    with lint_server() as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        client.stat()
        client.dele(1)
        client.quit()
        server.history.wait_for_sessions(1)
    assert rules(server) == []
    server.raise_errors()


def test_each_mistake_is_a_finding_with_its_rule() -> None:
    with lint_server(disable=["TOP"], mechanisms=["PLAIN"]) as server:
        with RawClient(server.host, server.port) as raw:
            raw.command(b"STAT")  # before login
            raw.command(b"AUTH CRAM-MD5")  # not offered
            raw.login()
            raw.command(b"USER alice")  # after login
            raw.command(b"TOP 1 0")  # disabled
            raw.command(b"DELE 1")
            raw.command(b"RETR 1")  # deleted
        # dropped without QUIT, a DELE pending
        server.history.wait_for_sessions(1)
    assert rules(server) == [
        "wrong-state",
        "unadvertised-mechanism",
        "wrong-state",
        "disabled-capability",
        "deleted-message",
        "dropped-with-deletions",
    ]
    with pytest.raises(ServerError) as failure:
        server.raise_errors()
    text = str(failure.value)
    assert "the client broke 6 POP3 rule(s)" in text
    assert "[deleted-message] session " in text and ", RETR 1: message 1 was deleted" in text
    assert isinstance(server.errors[0], LintError) and len(server.errors) == 1


def test_rset_undoes_the_deletions_and_rules_can_be_ignored() -> None:
    with lint_server(lint_ignore=["wrong-state"]) as server:
        with RawClient(server.host, server.port) as raw:
            raw.command(b"STAT")
            raw.login()
            raw.command(b"DELE 1")
            raw.command(b"RSET")
            raw.command(b"RETR 1")
        server.history.wait_for_sessions(1)
    assert rules(server) == []
    server.raise_errors()


def test_login_in_the_clear_and_within_the_login_delay() -> None:
    with lint_server(tls=True, require_tls=True, login_delay=3600) as server:
        assert server.tls is not None
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.stls(server.tls.client_context())
        login(client)
        client.quit()
        client = poplib.POP3(server.host, server.port, timeout=10)
        try:
            client.stls(server.tls.client_context())
            with pytest.raises(poplib.error_proto, match="LOGIN-DELAY"):
                login(client)  # again, within the delay: the server refuses, the lint notes it
        finally:
            client.close()
        with RawClient(server.host, server.port) as raw:
            raw.command(b"USER alice")  # refused, but sent in the clear
        server.history.wait_for_sessions(3)
    assert rules(server) == ["login-delay", "login-in-clear"]
    server.errors.clear()


def test_every_rule_is_documented_and_unknown_ones_are_refused() -> None:
    assert all("RFC" in text for text in LINT_RULES.values())
    with pytest.raises(ValueError, match="unknown lint rule"):
        POP3Server(lint=True, lint_ignore=["no-such-rule"])
    with pytest.raises(ValueError, match="lint=True reads the history"):
        POP3Server(lint=True, history=False)


@pytest.mark.pop3(lint=True, allow_server_errors=True)
def test_the_marker_turns_the_lint_on(pop3_server: POP3Server) -> None:
    assert pop3_server.linter is not None


# --- the raw command line: pipelining, bare LF, long lines -----------------------------------
def findings_of(server: POP3Server) -> list[tuple[str, str]]:
    """(command line, rule) of every finding, as the history keeps them beside the commands."""
    return [(c.line, f.rule) for c in server.history.commands for f in c.lint]


def test_poplib_sends_clean_lines_and_waits_for_each_reply() -> None:
    with lint_server(disable=["PIPELINING"]) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        client.stat()
        client.list()
        client.uidl()
        client.retr(1)
        client.top(2, 0)
        client.quit()
        server.history.wait_for_sessions(1)
    assert rules(server) == []
    assert [c.lint for c in server.history.commands] == [()] * 8
    server.raise_errors()


def test_pipelining_is_a_finding_only_when_capa_does_not_list_it() -> None:
    burst = b"USER alice\r\nPASS secret\r\nSTAT\r\n"  # one write: no reply waited for
    for options, expected in (
        ({"disable": ["PIPELINING"]}, [("PASS ***", "pipelining"), ("STAT", "pipelining")]),
        ({}, []),  # PIPELINING advertised (the default): fine
        ({"persona": "gmail"}, [("PASS ***", "pipelining"), ("STAT", "pipelining")]),
    ):
        with lint_server(**options) as server:
            with RawClient(server.host, server.port) as raw:
                raw.send(burst)
                replies = [raw.read_line() for _ in range(3)]
                assert all(r.startswith(b"+OK") for r in replies), replies  # answered in order
                assert raw.command(b"QUIT").startswith(b"+OK")
            server.history.wait_for_sessions(1)
        assert findings_of(server) == expected, options
        assert rules(server) == [rule for _, rule in expected]
        server.errors.clear()


class _Transport:
    """Just enough of an asyncio transport to drive a server's connection protocol."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += bytes(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close


@pytest.mark.asyncio
async def test_a_line_that_comes_while_a_reply_is_still_held_is_pipelined() -> None:
    import asyncio

    server = POP3Server(users=USERS, lint=True, disable=["PIPELINING"])
    gate = server.faults.hold("STAT")
    conn = server.connection_protocol()
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]

    async def until(condition: object) -> None:  # yields to the loop: no timing involved
        for _ in range(1000):
            if condition():  # type: ignore[operator]
                return
            await asyncio.sleep(0)
        raise AssertionError("the loop never got there")

    for line in (b"USER alice\r\n", b"PASS secret\r\n", b"STAT\r\n"):
        conn.data_received(line)  # each one after the reply to the one before
    await until(lambda: gate.held == 1)  # STAT's reply is held...
    conn.data_received(b"NOOP\r\n")  # ...when NOOP comes: the client did not wait for it
    gate.release()
    await until(lambda: transport.written.endswith(b"+OK\r\n") and b"+OK 0 0" in transport.written)
    conn.connection_lost(None)
    assert findings_of(server) == [("NOOP", "pipelining")]


def test_a_bare_lf_line_is_answered_and_is_a_finding() -> None:
    with lint_server() as server:
        with RawClient(server.host, server.port) as raw:
            raw.send(b"USER alice\n")  # LF alone: answered as Dovecot does
            assert raw.read_line().startswith(b"+OK")
            assert raw.command(b"PASS secret").startswith(b"+OK")
            raw.send(b"STAT\n")
            assert raw.read_line() == b"+OK 2 %d\r\n" % (2 * len(MESSAGE))
            assert raw.command(b"QUIT").startswith(b"+OK")
        server.history.wait_for_sessions(1)
    assert findings_of(server) == [("USER alice", "bare-lf"), ("STAT", "bare-lf")]
    assert server.linter is not None
    assert "LF alone" in server.linter.findings[0].text
    server.errors.clear()


def test_a_line_over_255_octets_is_refused_and_is_a_finding() -> None:
    name = b"a" * 248  # "USER " + 248 + CRLF: 255 octets, the longest allowed
    with lint_server() as server:
        with RawClient(server.host, server.port) as raw:
            assert raw.command(b"USER " + name).startswith(b"+OK")
            reply = raw.command(b"USER " + name + b"a")  # 256 octets
            assert reply == b"-ERR Command line too long (at most 255 octets).\r\n"
            raw.send(b"NOOP " + b"x" * 3000)  # cut at the limit: the rest discarded...
            raw.send(b"y" * 100 + b"\r\n")  # ...until its line end
            assert raw.read_line().startswith(b"-ERR Command line too long")
            raw.login()
            assert raw.command(b"QUIT").startswith(b"+OK")
        server.history.wait_for_sessions(1)
    assert server.linter is not None
    found = server.linter.findings
    assert [f.rule for f in found] == ["line-too-long", "line-too-long"]
    assert [f.text for f in found] == [
        "256 octets with its line end; at most 255",
        "3107 octets with its line end; at most 255",
    ]
    assert found[0].command == "(not a command line)"  # the server did not read it as one
    server.errors.clear()


def test_raw_line_rules_can_be_ignored() -> None:
    with lint_server(disable=["PIPELINING"], lint_ignore=["pipelining", "bare-lf"]) as server:
        with RawClient(server.host, server.port) as raw:
            raw.send(b"USER alice\nPASS secret\n")
            assert raw.read_line().startswith(b"+OK") and raw.read_line().startswith(b"+OK")
            assert raw.command(b"QUIT").startswith(b"+OK")
        server.history.wait_for_sessions(1)
    assert rules(server) == [] and findings_of(server) == []
    server.raise_errors()


# --- the findings in the history ------------------------------------------------------------
def test_each_finding_is_in_the_history_beside_its_command() -> None:
    with lint_server() as server:
        with RawClient(server.host, server.port) as raw:
            raw.command(b"STAT")  # before login
            raw.login()
            raw.command(b"DELE 1")
            raw.command(b"RETR 1")  # deleted
        server.history.wait_for_sessions(1)
        [session] = server.history.sessions
    stat, _, _, dele, retr = session.commands
    assert [f.rule for f in stat.lint] == ["wrong-state"] and dele.lint == ()
    assert retr.lint[0].text == "message 1 was deleted" and retr.lint[0].command == "RETR 1"
    assert "(lint: deleted-message)" in str(retr)
    # The end of the session (no QUIT, a DELE pending) is on the session's record.
    assert [f.rule for f in session.lint] == ["dropped-with-deletions"]
    assert session.to_dict()["lint"] == [
        {"rule": "dropped-with-deletions", "text": "1 DELE(s) pending and no QUIT (ended: drop)"}
    ]
    assert retr.to_dict()["lint"] == [{"rule": "deleted-message", "text": "message 1 was deleted"}]
    assert server.history.filter("RETR")[0].lint == retr.lint  # every view of the history
    assert session.transcript().splitlines()[-3:] == [
        "  S: -ERR Message is deleted.",
        "  lint: [deleted-message] message 1 was deleted",
        "  lint: [dropped-with-deletions] 1 DELE(s) pending and no QUIT (ended: drop)",
    ]
    assert server.linter is not None
    assert server.linter.findings == [*stat.lint, *retr.lint, *session.lint]
    server.errors.clear()


def test_the_findings_reach_every_listener_and_a_kept_session() -> None:
    seen: list[object] = []
    ended: list[object] = []
    server = POP3Server(users=USERS, lint=True, on_session_end=lambda s: ended.append(s.lint))
    server.mailbox("alice").extend([MESSAGE])
    server.history.add_listener(lambda c: seen.append(c.lint))
    server.history.keep_sessions(1)
    with server:
        for count in (1, 2):
            with RawClient(server.host, server.port) as raw:
                raw.login()
                raw.command(b"DELE 1")
            server.history.wait_for_sessions(count)
    assert [len(x) for x in seen] == [0, 0, 0] * 2  # no finding on USER, PASS, DELE
    assert [[f.rule for f in x] for x in ended] == [["dropped-with-deletions"]] * 2  # type: ignore[attr-defined]
    last = server.history.sessions[-1]
    assert [f.rule for f in last.lint] == ["dropped-with-deletions"]
    server.errors.clear()


# --- hold and release (the poller scenarios) ------------------------------------------------
def test_a_held_reply_waits_for_the_release_while_the_server_serves_others() -> None:
    from fakepop3.faults import Gate

    with lint_server() as server:
        gate = server.faults.hold("RETR", nth=2)
        assert isinstance(gate, Gate) and not gate.released
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        assert client.retr(1)[0].startswith(b"+OK")  # the first RETR is not held
        client.sock.sendall(b"RETR 2\r\n")
        gate.wait_held()  # the event: the reply is held now
        # While the client waits: add mail and serve a second client.
        server.mailbox("bob").extend([MESSAGE])
        other = poplib.POP3(server.host, server.port, timeout=10)
        login(other, "bob", "hunter2")
        assert other.stat() == (1, len(MESSAGE))
        other.quit()
        gate.release()
        status, lines, _ = client._getlongresp()  # the held reply, now sent
        assert status.startswith(b"+OK") and lines[-1] == b"Hello"
        client.quit()
        server.history.wait_for_sessions(2)
        held = [c for c in server.history.commands if c.command == "RETR"][-1]
        assert held.fault is not None and held.fault.startswith("hold the reply until released")
    server.raise_errors()


def test_a_gate_as_a_context_manager_releases_and_removes_its_rule() -> None:
    with POP3Server(users=USERS) as server:
        server.mailbox("alice").extend([MESSAGE])
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        with server.faults.on("STAT").hold() as gate:
            client.sock.sendall(b"STAT\r\n")
            gate.wait_held()
            assert len(server.faults) == 1
        assert client._getresp() == b"+OK 1 %d" % len(MESSAGE)
        assert len(server.faults) == 0 and gate.released
        assert "released, 1 held" in repr(gate)
        with pytest.raises(TimeoutError, match="waited 0s for 2 held"):
            gate.wait_held(2, timeout=0)
        client.quit()


def test_a_server_that_stops_ends_a_held_session() -> None:
    with POP3Server(users=USERS) as server:
        server.mailbox("alice").extend([MESSAGE])
        gate = server.faults.hold("NOOP")
        raw = RawClient(server.host, server.port)
        raw.login()
        raw.send(b"NOOP\r\n")
        gate.wait_held()
    assert raw.read_to_eof() == b""  # never released: the stop closed it
    raw.close()
    assert [s.end_reason for s in server.history.sessions] == ["server"]
    assert gate.released and gate.waiting == 0  # the stop released it
    # A released gate lets later replies pass at once.
    gate.release()
    assert gate.released


def test_a_hold_in_the_dict_form_is_a_rule_with_its_gate() -> None:
    from fakepop3.faults import Faults

    faults = Faults.from_config([{"command": "RETR", "nth": 2, "action": "hold"}])
    [gate] = faults.holds
    assert gate.rule is faults.rules[0] and not gate.released
    with POP3Server(users=USERS, faults=faults) as server:
        server.mailbox("alice").extend([MESSAGE, MESSAGE])
        with RawClient(server.host, server.port) as raw:
            raw.login()
            assert raw.command(b"RETR 1").startswith(b"+OK")
            raw.read_until(b"\r\n.\r\n")
            raw.send(b"RETR 2\r\n")
            gate.wait_held()
            assert gate.waiting == 1
            faults.release_holds()
            assert raw.read_line().startswith(b"+OK")
    server.raise_errors()


# --- scheduled delivery ---------------------------------------------------------------------
def test_a_message_appears_at_the_third_login_and_only_once() -> None:
    with POP3Server(users=USERS) as server:
        rule = server.faults.on("PASS", user="alice", nth=3).deliver(MESSAGE)
        counts = []
        for _ in range(5):
            client = poplib.POP3(server.host, server.port, timeout=10)
            login(client)
            counts.append(client.stat()[0])
            client.quit()
        assert counts == [0, 0, 1, 1, 1]  # the poller must pick it up at the 3rd poll, once
        assert rule.fired == 1
        server.history.wait_for_sessions(5)
        faults = [c.fault for c in server.history.commands if c.command == "PASS"]
        assert (
            faults[2]
            == f"deliver a message of {len(MESSAGE)} octets first [rule 1: on PASS user='alice' nth=3]"
        )
    server.raise_errors()


def test_delivery_in_the_dict_form_and_to_an_unknown_user() -> None:
    from fakepop3.faults import Faults

    with POP3Server(
        users=USERS,
        faults=Faults.from_config(
            [{"command": "USER", "action": "deliver", "data": "Subject: x\r\n\r\ny\r\n"}]
        ),
    ) as server:
        with RawClient(server.host, server.port) as raw:
            assert raw.command(b"USER nobody").startswith(b"+OK")  # no such maildrop: nothing
            raw.login()
            assert raw.command(b"STAT").startswith(b"+OK 1 ")  # the 2nd USER delivered
        assert server.faults.rules[0].fired == 2


def poll(server: POP3Server) -> int:
    """One poll of alice's maildrop: how many messages it holds."""
    client = poplib.POP3(server.host, server.port, timeout=10)
    login(client)
    count = client.stat()[0]
    client.quit()
    return count


def test_a_message_delivered_after_a_delay_is_picked_up_once() -> None:
    with POP3Server(users=USERS) as server:
        rule = server.faults.deliver_after(0.05, MESSAGE, user="alice")
        assert rule.description == (
            f"deliver a message of {len(MESSAGE)} octets after 0.05s "
            "[rule 1: after 0.05s user='alice']"
        )
        before = poll(server)
        rule.wait_fired()  # the event: the timer delivered it
        assert [before, poll(server), poll(server)] == [0, 1, 1]  # there, and only once
        assert rule.fired == 1
    server.raise_errors()


def test_a_timed_delivery_in_the_dict_form_and_over_the_control_api() -> None:
    import json
    import urllib.request

    from fakepop3.faults import FaultConfigError, Faults

    rule = {"action": "deliver", "after": 0, "user": "bob", "data": "Subject: x\r\n\r\ny\r\n"}
    faults = Faults.from_config([rule])
    assert faults.rules[0].kind == "time"
    with pytest.raises(FaultConfigError, match="'user' is missing"):
        Faults.from_config([{"action": "deliver", "after": 1, "data": "x"}])
    with pytest.raises(FaultConfigError, match="after must be a number of seconds"):
        Faults.from_config([{**rule, "after": -1}])
    with pytest.raises(FaultConfigError, match="action 'error' does not apply on time"):
        Faults.from_config([{"action": "error", "after": 1, "user": "bob"}])
    with POP3Server(users=USERS, control_port=0) as server:
        assert server.control_url is not None
        request = urllib.request.Request(
            server.control_url + "/api/v1/faults",
            data=json.dumps({**rule, "user": "alice"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            made = json.loads(response.read())
        assert "after 0s user='alice'" in made["description"]
        server.faults.rules[0].wait_fired()
        assert poll(server) == 1
    server.raise_errors()


def test_a_timed_delivery_to_an_unknown_user_is_a_server_error() -> None:
    with POP3Server(users=USERS) as server:
        rule = server.faults.deliver_after(0, MESSAGE, user="nobody")
        rule.wait_fired()
    with pytest.raises(ServerError, match="there is no user 'nobody' on this server"):
        server.raise_errors()


def test_stop_and_reset_cancel_the_pending_timers() -> None:
    server = POP3Server(users=USERS)
    kept = server.faults.deliver_after(3600, MESSAGE, user="alice")  # in the baseline
    with server:
        [first] = server._on_loop(lambda: list(server._timers.values()))
        assert poll(server) == 0  # the first client: the baseline, with the rule in it
        later = server.faults.deliver_after(3600, MESSAGE, user="bob")  # this test case's
        timers = server._on_loop(lambda: dict(server._timers))
        assert set(timers) == {kept, later}
        server.reset()
        assert all(handle.cancelled() for handle in timers.values())
        assert server.faults.rules == [kept]  # the case's rule is gone; the baseline's...
        [again] = server._on_loop(lambda: list(server._timers.values()))
        assert again is not first and not again.cancelled()  # ...counts again from the reset
    assert again.cancelled() and server._timers == {}  # stop cancelled it
    assert kept.fired == 0 and len(server.mailbox("alice")) == 0


# --- named server states --------------------------------------------------------------------
def test_from_the_third_login_the_server_is_down_until_the_test_says_so() -> None:
    with POP3Server(users=USERS) as server:
        faults = server.faults
        switch = faults.on("PASS", nth=3).switch("down")
        faults.on("PASS", state="down").error("Busy, try later", code="SYS/TEMP")
        faults.on_connect(state="maintenance").error("Closed for maintenance")

        def attempt() -> str:
            client = poplib.POP3(server.host, server.port, timeout=10)
            try:
                login(client)
            except poplib.error_proto as error:
                client.close()
                return str(error.args[0], "ascii")
            client.quit()
            return "ok"

        assert [attempt() for _ in range(4)] == ["ok", "ok"] + [
            "-ERR [SYS/TEMP] Busy, try later"
        ] * 2
        assert faults.state == "down" and switch.fired == 1
        faults.set_state(None)
        assert attempt() == "ok"
        faults.set_state("maintenance")
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            assert sock.recv(200).startswith(b"-ERR Closed for maintenance")
        faults.restart()
        assert faults.state is None
        assert attempt() == "ok"
        assert switch.description == "enter state 'down' [rule 1: on PASS nth=3]"
        assert faults.rules[1].description.endswith("[rule 2: on PASS state='down']")


def test_states_in_the_dict_form_and_their_checks() -> None:
    from fakepop3.faults import FaultConfigError, Faults

    faults = Faults.from_config(
        [
            {"command": "STAT", "action": "switch", "to": "slow"},
            {"command": "STAT", "state": "slow", "action": "delay", "seconds": 0},
            {"on": "connect", "action": "switch", "to": None},
        ]
    )
    assert [r.effect.describe() for r in faults] == [
        "enter state 'slow'",
        "delay 0s",
        "leave every state",
    ]
    with pytest.raises(FaultConfigError, match="state must be a state name"):
        Faults().on("STAT", state="")
    with pytest.raises(FaultConfigError, match="'to' is missing"):
        Faults.from_config([{"command": "STAT", "action": "switch"}])
    with pytest.raises(FaultConfigError, match="state must be a state name"):
        Faults().set_state(" x")


# --- malformed-line (issue 21: a line strict syntax refuses is a finding too) ---------------
MALFORMED = [
    (b"NOOP \r\n", "Noise after the last argument"),
    (b" NOOP\r\n", "the line starts with a space"),
    (b"LIST  1\r\n", "separated by a single space"),
    (b"LIST\t1\r\n", "not a TAB"),
    (b"NOOP\r\r\n", "bare CR"),
]


@pytest.mark.parametrize("lenient", [False, True])
def test_a_malformed_line_is_a_finding_whatever_the_syntax_the_server_answers_by(
    lenient: bool,
) -> None:
    with lint_server(lenient_syntax=lenient) as server:
        with RawClient(server.host, server.port) as raw:
            raw.login()
            replies = []
            for line, _ in MALFORMED:
                raw.send(line)
                replies.append(raw.read_line())
            raw.command(b"QUIT")
        server.history.wait_for_sessions(1)
    assert server.linter is not None
    found = server.linter.findings
    assert [f.rule for f in found] == ["malformed-line"] * len(MALFORMED)
    for finding, (_, problem) in zip(found, MALFORMED, strict=True):
        assert problem in finding.text
    if lenient:  # the server took every line; the lint still names each one
        assert all(r.startswith(b"+OK") for r in replies), replies
    else:  # strict: each was refused with the same text the finding gives
        assert all(r.startswith(b"-ERR ") for r in replies)
        assert [r[5:].decode().rstrip() for r in replies] == [f.text for f in found]
    with pytest.raises(ServerError, match="malformed-line"):
        server.raise_errors()


def test_well_formed_lines_and_sasl_responses_are_not_malformed() -> None:
    with lint_server() as server:
        with RawClient(server.host, server.port) as raw:
            raw.command(b"AUTH PLAIN")
            raw.command(b"AGFsaWNlAHNlY3JldA==")  # a SASL response is not a command line
            raw.command(b"LIST 1")
            raw.command(b"QUIT")
        server.history.wait_for_sessions(1)
    assert rules(server) == []
