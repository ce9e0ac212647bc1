"""User stories 1 and 5 (USER-STORIES.md), written the way those users write them: with the fixtures.

Story 1: a helpdesk app polls a support inbox; each message becomes a ticket.
Story 5: an asyncio application, tested with ``async_pop3_server``.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import poplib
from dataclasses import dataclass, field

import pytest

from fakepop3 import Mailbox, POP3Server
from fakepop3.plugin import POP3User

# --- story 1: the app under test --------------------------------------------------------------


@dataclass
class Ticket:
    message_id: str
    subject: str
    sender: str


@dataclass
class Helpdesk:
    """A tiny helpdesk: polls a POP3 inbox, files each new message as a ticket, deletes it."""

    host: str
    port: int
    user: str
    password: str
    tickets: dict[str, Ticket] = field(default_factory=dict)

    def poll(self) -> int:
        """Fetch every message; file the new ones; delete what was filed. Returns new tickets."""
        client = poplib.POP3(self.host, self.port, timeout=10)
        try:
            client.user(self.user)
            client.pass_(self.password)
            count, _ = client.stat()
            new = 0
            for number in range(1, count + 1):
                try:
                    _, lines, _ = client.retr(number)
                except poplib.error_proto as error:
                    detail = error.args[0]  # bytes from a reply, str for poplib's own errors
                    if isinstance(detail, bytes) and b"[SYS/TEMP]" in detail:
                        continue  # try again at the next poll; do not delete
                    raise
                message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                    b"\r\n".join(lines)
                )
                message_id = str(message["Message-ID"])
                if message_id not in self.tickets:
                    self.tickets[message_id] = Ticket(
                        message_id, str(message["Subject"]), str(message["From"])
                    )
                    new += 1
                client.dele(number)
            client.quit()
        finally:
            client.close()
        return new


@pytest.fixture
def helpdesk(pop3_server: POP3Server, pop3_user: POP3User) -> Helpdesk:
    assert pop3_user.password is not None
    return Helpdesk(pop3_server.host, pop3_server.port, pop3_user.name, pop3_user.password)


# --- story 1: its tests -----------------------------------------------------------------------


@pytest.mark.pop3(messages=3)
def test_helpdesk_files_each_message_once_and_deletes_it(
    helpdesk: Helpdesk, pop3_server: POP3Server, pop3_mailbox: Mailbox, pop3_user: POP3User
) -> None:
    subjects = sorted(str(m.as_email()["Subject"]) for m in pop3_mailbox)

    assert helpdesk.poll() == 3
    pop3_server.wait_for_sessions(1)

    assert sorted(t.subject for t in helpdesk.tickets.values()) == subjects
    history = pop3_server.history
    for number in ("1", "2", "3"):
        history.assert_sent("RETR", number, user=pop3_user.name, times=1)
        history.assert_sent("DELE", number, user=pop3_user.name, times=1)
    assert history.command_lines()[-1] == "QUIT"
    [session] = history.sessions
    assert session.end_reason == "quit"
    assert len(pop3_mailbox) == 0  # the deletions took effect at QUIT


@pytest.mark.pop3(
    messages=3,
    faults=[
        {
            "command": "RETR",
            "args": "2",
            "nth": 1,
            "action": "error",
            "text": "Busy",
            "code": "SYS/TEMP",
        }
    ],
)
def test_helpdesk_retries_a_message_that_failed_once(
    helpdesk: Helpdesk, pop3_server: POP3Server, pop3_mailbox: Mailbox
) -> None:
    assert helpdesk.poll() == 2
    pop3_server.wait_for_sessions(1)
    pop3_server.history.assert_not_sent("DELE", "2")
    assert len(pop3_mailbox) == 1  # the message that failed is still there

    assert helpdesk.poll() == 1
    pop3_server.wait_for_sessions(2)
    assert len(helpdesk.tickets) == 3
    assert len(pop3_mailbox) == 0


@pytest.mark.pop3(
    messages=3,
    faults=[{"command": "RETR", "args": "2", "action": "disconnect", "after_bytes": 100}],
)
def test_helpdesk_loses_nothing_when_the_connection_drops_mid_retr(
    helpdesk: Helpdesk, pop3_server: POP3Server, pop3_mailbox: Mailbox
) -> None:
    before = pop3_mailbox.uids
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        helpdesk.poll()
    pop3_server.wait_for_sessions(1)
    assert pop3_mailbox.uids == before  # no QUIT: DELE 1 was never committed
    pop3_server.history.assert_not_sent("QUIT")

    pop3_server.faults.clear()
    assert helpdesk.poll() == 2  # message 1 was already filed: no duplicate ticket
    pop3_server.wait_for_sessions(2)
    assert len(helpdesk.tickets) == 3
    assert len(pop3_mailbox) == 0


# --- story 5: an asyncio application ----------------------------------------------------------


async def capabilities(host: str, port: int) -> list[str]:
    """The app's own async code: read the greeting and CAPA with asyncio streams."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        greeting = await reader.readline()
        assert greeting.startswith(b"+OK")
        writer.write(b"CAPA\r\n")
        await writer.drain()
        status = await reader.readline()
        assert status.startswith(b"+OK"), status
        caps = []
        while (line := await reader.readline()) != b".\r\n":
            caps.append(line.decode().strip())
        writer.write(b"QUIT\r\n")
        await writer.drain()
        await reader.readline()
        return caps
    finally:
        writer.close()
        await writer.wait_closed()


def fetch_subjects(host: str, port: int, user: str, password: str) -> list[str]:
    """The app's blocking part (poplib): must run in a thread under asyncio."""
    client = poplib.POP3(host, port, timeout=10)
    try:
        client.user(user)
        client.pass_(password)
        subjects = []
        for number in range(1, client.stat()[0] + 1):
            _, lines, _ = client.top(number, 0)
            headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
                b"\r\n".join(lines)
            )
            subjects.append(str(headers["Subject"]))
        client.quit()
        return subjects
    finally:
        client.close()


@pytest.mark.asyncio
async def test_asyncio_app_against_the_async_server(
    async_pop3_server: POP3Server, pop3_user: POP3User
) -> None:
    server = async_pop3_server
    assert pop3_user.password is not None
    caps, subjects = await asyncio.gather(
        capabilities(server.host, server.port),
        asyncio.to_thread(
            fetch_subjects, server.host, server.port, pop3_user.name, pop3_user.password
        ),
    )
    await server.wait_for_sessions_async(2)

    assert "TOP" in caps and "UIDL" in caps
    mailbox = server.mailbox(pop3_user.name)
    assert subjects == [str(m.as_email()["Subject"]) for m in mailbox]
    server.history.assert_sent("CAPA", times=1)
    server.history.assert_sent("TOP", "3", "0", user=pop3_user.name, times=1)
    assert [s.end_reason for s in server.history.sessions] == ["quit", "quit"]


@pytest.mark.pop3(smtp=True, messages=0)
def test_send_then_fetch_through_the_marker(
    pop3_server: POP3Server, pop3_client: poplib.POP3
) -> None:
    """issue 7: SMTP intake from the pytest marker ("send, then fetch" end to end)."""
    import smtplib

    assert pop3_server.smtp_port is not None
    with smtplib.SMTP(pop3_server.host, pop3_server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("bob@example.com", ["alice@example.com"], b"Subject: sent\r\n\r\nhi\r\n")
    pop3_client.quit()
    client = pop3_server.client("alice")
    assert client.retr(1)[1] == [b"Subject: sent", b"", b"hi"]
    client.quit()
