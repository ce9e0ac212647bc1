"""SMTP intake in Python: ``fakepop3.smtp.SMTPIntake`` beside a ``POP3Server``.

Mail goes in with ``smtplib`` and comes out with ``poplib``, both over real
sockets on free ports.  (The standalone server's ``--smtp-port`` is tested in
``test_cli.py``.)
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fakepop3 import MailStore, POP3Server, ServerError
from fakepop3.smtp import Delivery, SMTPIntake

DEADLINE = 10.0
MESSAGE = (
    b"From: app@example.com\r\nTo: alice@example.org\r\nSubject: order 42\r\n\r\n"
    b"Thanks for your order.\r\n.a line that starts with a dot\r\n..and two dots\r\n"
)


@pytest.fixture
def pair() -> Iterator[tuple[POP3Server, SMTPIntake]]:
    """A thread-hosted POP3 server (alice, bob) with a thread-hosted SMTP intake."""
    with (
        POP3Server(users={"alice": "secret", "bob": "hunter2"}) as server,
        SMTPIntake(server.store, errors=server.errors) as intake,
    ):
        yield server, intake
    server.raise_errors()


def retr_all(server: POP3Server, user: str, password: str) -> list[bytes]:
    client = server.client(user, password)
    try:
        count, _ = client.stat()
        return [b"\r\n".join(client.retr(n)[1]) + b"\r\n" for n in range(1, count + 1)]
    finally:
        client.quit()


def send(intake: SMTPIntake, to: list[str], message: bytes = MESSAGE) -> dict[str, object]:
    with smtplib.SMTP(intake.host, intake.port, timeout=DEADLINE) as client:
        refused = client.sendmail("app@example.com", to, message)
    return dict(refused)


def test_send_then_fetch_gives_the_same_bytes(pair: tuple[POP3Server, SMTPIntake]) -> None:
    server, intake = pair
    assert intake.port > 0 and intake.host == server.host
    assert send(intake, ["alice@example.org"]) == {}
    assert retr_all(server, "alice", "secret") == [MESSAGE]
    assert server.mailbox("bob").messages == []


def test_unknown_recipient_is_rejected_with_550(pair: tuple[POP3Server, SMTPIntake]) -> None:
    server, intake = pair
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(intake, ["mallory@example.org"])
    code, text = info.value.recipients["mallory@example.org"]
    assert code == 550 and b"No such user here: mallory@example.org" in text
    assert "mallory" not in server.store
    assert intake.deliveries == []


def test_known_and_unknown_recipients_together(pair: tuple[POP3Server, SMTPIntake]) -> None:
    server, intake = pair
    refused = send(intake, ["bob@a.example", "nobody@a.example", "alice@b.example"])
    assert list(refused) == ["nobody@a.example"]
    assert retr_all(server, "alice", "secret") == [MESSAGE]
    assert retr_all(server, "bob", "hunter2") == [MESSAGE]
    (delivery,) = intake.deliveries
    assert delivery.users == ("bob", "alice")
    assert delivery.recipients == ("bob@a.example", "alice@b.example")
    assert delivery.mail_from == "app@example.com" and delivery.size == len(MESSAGE)


def test_one_copy_per_user_and_case_insensitive_local_part(
    pair: tuple[POP3Server, SMTPIntake],
) -> None:
    server, intake = pair
    send(intake, ["Alice@example.org", "alice@other.example"])
    assert len(server.mailbox("alice")) == 1


def test_new_mail_shows_at_the_next_login(pair: tuple[POP3Server, SMTPIntake]) -> None:
    server, intake = pair
    client = server.client("alice", "secret")
    assert client.stat()[0] == 0
    send(intake, ["alice@example.org"])
    assert client.stat()[0] == 0  # the maildrop was snapshotted at login
    client.quit()
    assert len(retr_all(server, "alice", "secret")) == 1


def test_reset_removes_mail_taken_in_over_smtp(pair: tuple[POP3Server, SMTPIntake]) -> None:
    server, intake = pair
    send(intake, ["alice@example.org"])
    assert len(server.mailbox("alice")) == 1
    server.reset()
    assert len(server.mailbox("alice")) == 0


def test_listener_sees_each_delivery(pair: tuple[POP3Server, SMTPIntake]) -> None:
    _, intake = pair
    seen: list[Delivery] = []
    intake.add_listener(seen.append)
    send(intake, ["bob@example.org"])
    assert [d.users for d in seen] == [("bob",)]
    assert seen[0].to_dict()["recipients"] == ["bob@example.org"]


def test_any_login_makes_a_maildrop_for_a_new_recipient() -> None:
    with POP3Server(any_login=True) as server, server.smtp_intake() as intake:
        send(intake, ["newcomer@example.org"])
        assert retr_all(server, "newcomer", "any password") == [MESSAGE]
    server.raise_errors()


def test_any_login_can_be_set_on_the_intake_alone() -> None:
    with POP3Server(users={"alice": "pw"}) as server:
        intake = SMTPIntake(server.store, any_login=True)
        with intake:
            send(intake, ["zed@example.org"])
        assert len(server.mailbox("zed")) == 1


@pytest.mark.asyncio
async def test_async_with_on_the_running_loop() -> None:
    async with (
        POP3Server(users={"alice": "secret"}) as server,
        SMTPIntake(server.store, errors=server.errors) as intake,
    ):
        assert intake.running
        refused = await asyncio.to_thread(send, intake, ["alice@example.org"])
        assert refused == {}
        messages = await asyncio.to_thread(retr_all, server, "alice", "secret")
        assert messages == [MESSAGE]
    assert not intake.running
    server.raise_errors()


def test_stop_closes_an_idle_smtp_connection(pair: tuple[POP3Server, SMTPIntake]) -> None:
    _, intake = pair
    client = smtplib.SMTP(intake.host, intake.port, timeout=DEADLINE)
    try:
        assert client.ehlo()[0] == 250
        intake.stop()  # returns although a client is connected
        assert not intake.running
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()


def test_port_in_use_is_raised_in_the_caller() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = POP3Server()
        with pytest.raises(OSError, match=f"SMTP intake cannot listen on 127.0.0.1:{port}"):
            SMTPIntake(server.store, port=port).start()


@pytest.mark.parametrize("port", [-1, 65536, "25", True])
def test_bad_port_is_refused(port: object) -> None:
    with pytest.raises(ValueError, match="SMTP port must be an integer from 0 to 65535"):
        SMTPIntake(MailStore(), port=port)  # type: ignore[arg-type]


def test_missing_aiosmtpd_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiosmtpd", None)  # makes "import aiosmtpd" fail
    with pytest.raises(RuntimeError, match=r"pip install 'fakepop3\[smtp\]'"):
        SMTPIntake(MailStore())


def test_starting_twice_is_an_error(pair: tuple[POP3Server, SMTPIntake]) -> None:
    _, intake = pair
    with pytest.raises(RuntimeError, match="already running"):
        intake.start()


def test_pop3_and_smtp_clients_can_take_turns_many_times(
    pair: tuple[POP3Server, SMTPIntake],
) -> None:
    server, intake = pair
    for n in range(1, 6):
        send(intake, ["bob@example.org"], MESSAGE.replace(b"order 42", f"order {n}".encode()))
        client = server.client("bob", "hunter2")
        assert client.stat()[0] == n
        assert f"Subject: order {n}".encode() in client.retr(n)[1]
        client.quit()
    assert len(intake.deliveries) == 5


def test_pop3server_smtp_true_takes_mail_for_its_users() -> None:
    """POP3Server(smtp=True): "send, then fetch" without a separate intake object."""
    import poplib
    import smtplib

    from fakepop3 import POP3Server

    with POP3Server(users={"alice": "pw"}, smtp=True) as server:
        assert server.smtp_port is not None and server.smtp_port > 0
        with smtplib.SMTP(server.host, server.smtp_port, timeout=10) as client:
            client.sendmail(
                "bob@example.com", ["alice@example.com"], b"Subject: hi\r\n\r\nbody\r\n"
            )
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("bob@example.com", ["nobody@example.com"], b"Subject: x\r\n\r\n")
        pop = poplib.POP3(server.host, server.port, timeout=10)
        pop.user("alice")
        pop.pass_("pw")
        assert pop.retr(1)[1] == [b"Subject: hi", b"", b"body"]
        pop.quit()
        port = server.smtp_port
    with pytest.raises(ConnectionRefusedError):  # stopped together with the POP3 server
        smtplib.SMTP(server.host, port, timeout=10)


def test_the_old_form_smtpintake_of_a_server_still_works_with_a_warning() -> None:
    """SMTPIntake(server), deprecated for a release: the server's store, host, any_login,
    hostname and errors list, read from the object without the intake knowing its type."""
    server = POP3Server(host="localhost", any_login=True, hostname="mail.test")
    with pytest.warns(DeprecationWarning, match=r"SMTPIntake\(server\) is deprecated"):
        intake = SMTPIntake(server)  # type: ignore[arg-type]
    assert intake.store is server.store and intake.host == "localhost"
    assert intake.any_login and intake.hostname == "mail.test"
    assert intake.errors is server.errors
    with pytest.warns(DeprecationWarning):
        assert not SMTPIntake(POP3Server(), any_login=False).any_login  # type: ignore[arg-type]


def test_the_intake_alone_has_defaults_and_its_own_errors() -> None:
    store = MailStore()
    store.add_user("alice")
    intake = SMTPIntake(store)
    assert (intake.host, intake.port, intake.any_login, intake.hostname) == (
        "127.0.0.1",
        0,
        False,
        "localhost",
    )
    intake.raise_errors()  # nothing yet
    intake._report(ValueError("boom"))
    with pytest.raises(ServerError, match=r"1 error\(s\) inside the SMTP intake"):
        intake.raise_errors()


def test_the_server_makes_its_intake_one_way() -> None:
    server = POP3Server(host="localhost", any_login=True, hostname="mail.test")
    intake = server.smtp_intake(port=0)
    assert intake.store is server.store and intake.host == "localhost"
    assert intake.any_login and intake.hostname == "mail.test"
    assert intake.errors is server.errors
    assert server.smtp_intake("127.0.0.1").host == "127.0.0.1"


def test_importing_the_smtp_module_does_not_import_the_server() -> None:
    code = "import sys, fakepop3.smtp; print(sorted(m for m in sys.modules if m.startswith('fakepop3.server')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
