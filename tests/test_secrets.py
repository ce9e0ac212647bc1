"""Secrets never leak, and the server is not exposed by accident.

Every way a client can send a password or a token (USER/PASS, APOP, SASL PLAIN, LOGIN,
CRAM-MD5, XOAUTH2, OAUTHBEARER, initial response or continuation, right or wrong) is driven over a
real socket; then every place a secret could surface is searched for it: the history (records,
transcripts, JSON lines), the ``fakepop3`` log, reprs of the public objects, and the failure
messages of the history assertions and of the pytest plugin's ``assert ... in history`` hook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import socket
from collections.abc import Iterator

import pytest

from fakepop3 import POP3Server
from fakepop3.plugin import pytest_assertrepr_compare
from fakepop3.server import _warn_if_exposed

from .conftest import RawClient

PASSWORD = "Pa55 w0rd-Zq8"  # with a space: PASS keeps the whole rest of the line
WRONG = "Wr0ng-Gu3ss-Kx7"
TOKEN = "ya29.T0ken-Vb6Nq"
OTHER_TOKEN = "ya29.Expired-Hm4"


def encodings(secret: str) -> list[str]:
    """The forms in which a secret could show: as is, upper case, in base64 (alone or in a blob)."""
    raw = secret.encode()
    forms = [secret, secret.upper(), secret.lower()]
    blobs = [base64.b64encode(raw).decode(), base64.b64encode(b"\0alice\0" + raw).decode()]
    return forms + blobs + [blob.upper() for blob in blobs]  # an unknown keyword is upper-cased


SECRETS = [form for s in (PASSWORD, WRONG, TOKEN, OTHER_TOKEN) for form in encodings(s)]


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def xoauth2(user: str, token: str) -> bytes:
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


def oauthbearer(user: str, token: str) -> bytes:
    return b64(f"n,a={user},\x01host=localhost\x01port=110\x01auth=Bearer {token}\x01\x01".encode())


def every_login(client_factory: type[RawClient], server: POP3Server) -> None:
    """Log in (and fail to) in every way a client can, each in its own session."""

    def session(*lines: bytes) -> list[bytes]:
        with client_factory(server.host, server.port) as client:
            replies = [client.command(line) for line in lines]
            client.command(b"QUIT")
        return replies

    pw, wrong = PASSWORD.encode(), WRONG.encode()
    assert session(b"USER alice", b"PASS " + wrong)[1].startswith(b"-ERR")
    assert session(b"USER alice", b"PASS " + pw)[1] == b"+OK Logged in.\r\n"
    with client_factory(server.host, server.port) as client:
        stamp = re.search(rb"<[^>]+>", client.greeting)
        assert stamp is not None
        digest = hashlib.md5(stamp.group() + pw).hexdigest().encode()
        assert client.command(b"APOP alice " + digest) == b"+OK Logged in.\r\n"
    assert session(b"APOP alice " + b"0" * 32)[0].startswith(b"-ERR")
    plain = b64(b"\0alice\0" + pw)
    assert session(b"AUTH PLAIN " + plain)[0] == b"+OK Logged in.\r\n"
    assert session(b"AUTH PLAIN", plain)[1] == b"+OK Logged in.\r\n"
    assert session(b"AUTH PLAIN " + b64(b"\0alice\0" + wrong))[0].startswith(b"-ERR")
    assert session(b"AUTH LOGIN", b64(b"alice"), b64(pw))[2] == b"+OK Logged in.\r\n"
    assert session(b"AUTH LOGIN " + b64(b"alice"), b64(wrong))[1].startswith(b"-ERR")
    with client_factory(server.host, server.port) as client:
        challenge = client.command(b"AUTH CRAM-MD5")
        assert challenge.startswith(b"+ ")
        nonce = base64.b64decode(challenge[2:].strip())
        answer = hmac.new(pw, nonce, hashlib.md5).hexdigest().encode()
        assert client.command(b64(b"alice " + answer)) == b"+OK Logged in.\r\n"
    assert session(b"AUTH XOAUTH2 " + xoauth2("alice", TOKEN))[0] == b"+OK Logged in.\r\n"
    assert session(b"AUTH XOAUTH2", xoauth2("alice", TOKEN))[1] == b"+OK Logged in.\r\n"
    bad = session(b"AUTH XOAUTH2 " + xoauth2("alice", OTHER_TOKEN), b"")
    assert bad[0].startswith(b"+ ") and bad[1].startswith(b"-ERR")
    assert session(b"AUTH OAUTHBEARER " + oauthbearer("alice", TOKEN))[0] == b"+OK Logged in.\r\n"
    bad = session(b"AUTH OAUTHBEARER " + oauthbearer("alice", OTHER_TOKEN), b"AQ==")
    assert bad[0].startswith(b"+ ") and bad[1].startswith(b"-ERR")
    assert session(b"AUTH PLAIN", b"*")[1].startswith(b"-ERR")
    # Secrets in the wrong place of a malformed line: masked whatever the shape of the line.
    assert session(b"APOP alice " + pw)[0].startswith(b"-ERR")  # three arguments
    assert session(b"USER alice " + pw)[0].startswith(b"-ERR")  # a password after the name
    assert session(b"AUTH PLAIN " + plain + b" extra")[0].startswith(b"-ERR")


@pytest.fixture
def used_server(caplog: pytest.LogCaptureFixture) -> Iterator[POP3Server]:
    """A server every login path has been through, with the fakepop3 log captured."""
    caplog.set_level(logging.DEBUG, logger="fakepop3")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    with POP3Server(users={"alice": PASSWORD}) as server:
        server.store.add_user("alice", tokens=[TOKEN])
        server.mailbox("alice").add(b"Subject: hi\r\n\r\nhello\r\n")
        every_login(RawClient, server)
        server.wait_for_sessions(18)
        yield server
    server.raise_errors()


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret ({secret[:3]}...) appears in {where}"


def test_every_login_path_was_recorded(used_server: POP3Server) -> None:
    history = used_server.history
    # The logins happened and are recorded, with their secrets masked.
    assert history.count("PASS") == 2
    assert history.filter("PASS")[0].args == ("***",)
    assert [r.args[1:] for r in history.filter("APOP")] == [("***",)] * 3
    assert [r.args for r in history.filter("USER") if len(r.args) > 1] == [("alice", "***")]
    assert all(r.args[1:] in ((), ("***",)) for r in history.filter("AUTH"))
    assert all(r.args == ("***",) or r.args == ("*",) for r in history.filter("SASL"))
    assert len(history.filter(ok=True)) > 20


def test_secrets_never_in_history(used_server: POP3Server) -> None:
    history = used_server.history
    assert_clean(history.transcript(), "the transcript")
    assert_clean(history.to_jsonl(), "the JSON lines history")
    for record in history.commands:
        assert_clean(str(record), "a command record")
        assert_clean(repr(record), "a command record's repr")
        assert_clean(repr(record.to_dict()), "a command record's dict")
    for session in history.sessions:
        assert_clean(repr(session), "a session record's repr")


def test_secrets_never_in_logs(used_server: POP3Server, caplog: pytest.LogCaptureFixture) -> None:
    assert_clean(caplog.text, "the log")
    for record in caplog.records:
        assert_clean(record.getMessage(), "a log record")


def test_secrets_never_in_reprs(used_server: POP3Server) -> None:
    mailbox = used_server.mailbox("alice")
    for obj in (used_server, used_server.store, mailbox, used_server.history, mailbox.messages):
        assert_clean(repr(obj), f"repr({type(obj).__name__})")
    assert mailbox.password == PASSWORD  # (the secret is there to leak)
    assert "alice" in repr(mailbox)


def test_secrets_never_in_failure_messages(used_server: POP3Server) -> None:
    history = used_server.history
    failures: list[str] = []
    for check in (
        lambda: history.assert_sent("PASS", times=7),
        lambda: history.assert_sent("AUTH", "PLAIN", user="alice", times=5),
        lambda: history.assert_sent("RETR", "1"),
        lambda: history.assert_not_sent("PASS"),
        lambda: history.assert_not_sent("AUTH"),
        lambda: history.assert_sequence("USER alice", "QUIT", "STAT"),
        lambda: used_server.wait_for_sessions(1000, timeout=0.01),
    ):
        with pytest.raises((AssertionError, TimeoutError)) as info:
            check()
        failures.append(str(info.value))
    assert any("PASS ***" in f for f in failures)  # the failures do show the (masked) commands
    for text in failures:
        assert_clean(text, "a failure message")
    # A test that looks for its own password sees it quoted in what it wanted; the list
    # of what was sent instead stays masked.
    for check in (
        lambda: history.assert_sent("PASS", PASSWORD),
        lambda: history.assert_sequence("USER alice", "PASS " + PASSWORD),
    ):
        with pytest.raises(AssertionError) as info:
            check()
        text = str(info.value)
        assert PASSWORD in text
        assert_clean(text.replace(PASSWORD, "<wanted>"), "a failure message")
    explanation = pytest_assertrepr_compare(None, "in", "PASS " + WRONG, history)  # type: ignore[arg-type]
    assert explanation is not None
    assert_clean("\n".join(explanation[1:]), "the plugin's assertion explanation")
    explanation = pytest_assertrepr_compare(None, "not in", "USER alice", history)  # type: ignore[arg-type]
    assert explanation is not None and any("PASS ***" in line for line in explanation)
    assert_clean("\n".join(explanation), "the plugin's assertion explanation")


def test_any_command_but_pass_forgets_a_pending_user() -> None:
    # RFC 1939 s7: PASS is valid only right after USER; a failed AUTH (or anything else) in
    # between must not let the next PASS log in.
    with POP3Server(users={"alice": PASSWORD}) as server:
        for between in (b"AUTH PLAIN " + b64(b"\0alice\0" + WRONG.encode()), b"NOOP", b"XYZZY"):
            with RawClient(server.host, server.port) as client:
                assert client.command(b"USER alice") == b"+OK\r\n"
                assert client.command(between).startswith(b"-ERR")  # NOOP: wrong state
                reply = client.command(b"PASS " + PASSWORD.encode())
                assert reply.startswith(b"-ERR") and b"USER" in reply, (between, reply)
        with RawClient(server.host, server.port) as client:  # and right after USER it works
            assert client.command(b"USER alice") == b"+OK\r\n"
            assert client.command(b"PASS " + PASSWORD.encode()) == b"+OK Logged in.\r\n"


def test_wrong_password_is_not_echoed() -> None:
    with (
        POP3Server(users={"alice": PASSWORD}) as server,
        RawClient(server.host, server.port) as client,
    ):
        assert client.command(b"USER alice") == b"+OK\r\n"
        reply = client.command(b"PASS " + WRONG.encode())
        assert reply.startswith(b"-ERR")
        assert WRONG.encode() not in reply
        reply = client.command(b"AUTH PLAIN " + b64(b"\0alice\0" + WRONG.encode()))
        assert reply.startswith(b"-ERR") and WRONG.encode() not in reply


def test_secret_sent_where_a_command_was_expected_is_not_recorded() -> None:
    """A SASL response or password pipelined after a refused AUTH/PASS arrives as a "command"."""
    with POP3Server(users={"alice": PASSWORD}, mechanisms=["LOGIN"]) as server:
        with RawClient(server.host, server.port) as client:
            # AUTH PLAIN is refused (not offered), so the pipelined credentials are a command line.
            client.send(b"AUTH PLAIN\r\n" + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n")
            assert client.read_line().startswith(b"-ERR")
            assert client.read_line() == b"-ERR Unknown command.\r\n"
            client.send(b"USER alice\r\nPASS x\r\n" + PASSWORD.encode() + b" and more\r\n")
            for _ in range(3):
                assert client.read_line().startswith((b"+OK", b"-ERR"))
            client.send(b"QUIT\r\n")
            assert client.read_line().startswith(b"+OK")
        server.wait_for_sessions(1)
        dump = server.history.to_jsonl() + server.history.transcript()
        assert_clean(dump, "the history of commands the server did not know")
        assert server.history.command_lines()[1] == "***"


# --- where the server listens -----------------------------------------------------------------
def test_binds_to_loopback_by_default_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    with POP3Server(users={"alice": PASSWORD}) as server:
        assert server.host == "127.0.0.1"
        (listener,) = server._sockets  # bound by start(), before the loop serves them
        assert listener.getsockname()[0] == "127.0.0.1"
        client = server.client("alice")
        assert client.stat() == (0, 0)
        client.quit()
    assert [r for r in caplog.records if r.name == "fakepop3"] == []


def test_warns_loudly_when_bound_beyond_loopback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    with POP3Server(users={"alice": PASSWORD}, host="0.0.0.0") as server:
        (listener,) = server._sockets  # bound by start(), before the loop serves them
        assert listener.getsockname()[0] == "0.0.0.0"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            assert sock.recv(100).startswith(b"+OK")
    warnings = [r for r in caplog.records if r.name == "fakepop3" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "0.0.0.0" in message and "not on loopback" in message
    assert_clean(message, "the exposure warning")


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("::1", False),
        ("localhost", False),
        ("0.0.0.0", True),
        ("::", True),
        ("", True),
        ("192.0.2.10", True),
        ("example.com", True),
    ],
)
def test_exposure_warning_for_each_kind_of_host(
    caplog: pytest.LogCaptureFixture, host: str, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    _warn_if_exposed(host)
    records = [r for r in caplog.records if r.name == "fakepop3"]
    assert bool(records) is warned
    if host == "":
        assert "every address" in records[0].getMessage()
