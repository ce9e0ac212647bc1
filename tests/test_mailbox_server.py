"""Generated, built and loaded mail served over POP3 byte-exactly (issue 3, through poplib)."""

from __future__ import annotations

import mailbox
import poplib
from pathlib import Path

from fakepop3 import POP3Server
from fakepop3.generate import generate_messages


def _retr_bytes(client: poplib.POP3, number: int) -> bytes:
    _, lines, octets = client.retr(number)
    data = b"".join(line + b"\r\n" for line in lines)
    assert len(data) == octets
    return data


def test_generated_mail_is_served_byte_exactly() -> None:
    expected = list(generate_messages(25, seed=7))
    with POP3Server(users={"alice": "pw"}) as server:
        stored = server.mailbox("alice").generate(25, seed=7)
        client = server.client("alice")
        count, total = client.stat()
        assert count == 25
        assert total == sum(len(m) for m in expected)
        sizes = [int(line.split()[1]) for line in client.list()[1]]
        for number, raw in enumerate(expected, 1):
            assert sizes[number - 1] == len(raw) == stored[number - 1].size
            assert _retr_bytes(client, number) == raw
        uids = [line.split()[1].decode() for line in client.uidl()[1]]
        assert uids == [m.uid for m in stored]
        assert len(set(uids)) == 25
        client.quit()


def test_same_seed_gives_same_uids_and_bytes_in_a_new_server() -> None:
    seen = []
    for _ in range(2):
        with POP3Server(users={"alice": "pw"}) as server:
            server.mailbox("alice").generate(5, seed=99)
            client = server.client("alice")
            seen.append(([_retr_bytes(client, n) for n in range(1, 6)], client.uidl()[1]))
            client.quit()
    assert seen[0] == seen[1]


def test_loaded_mbox_and_maildir_are_served_as_stored(tmp_path: Path) -> None:
    originals = [
        b"From: a@example.com\nSubject: one\n\n.starts with a dot\nbody\n",
        b"From: b@example.com\nSubject: two\n\n\xe9t\xe9 8-bit\n",
    ]
    box = mailbox.mbox(str(tmp_path / "inbox.mbox"))
    maildir = mailbox.Maildir(str(tmp_path / "Maildir"))
    for raw in originals:
        box.add(raw)
        maildir.add(raw)
    box.flush()
    box.close()
    with POP3Server(users={"alice": "pw", "bob": "pw"}) as server:
        server.mailbox("alice").load(tmp_path / "inbox.mbox")
        server.mailbox("bob").load(tmp_path / "Maildir")
        for user in ("alice", "bob"):
            client = server.client(user)
            got = sorted(_retr_bytes(client, n) for n in (1, 2))
            assert got == sorted(raw.replace(b"\n", b"\r\n") for raw in originals)
            client.quit()


def test_built_message_is_returned_with_uid_and_size() -> None:
    with POP3Server(users={"alice": "pw"}) as server:
        message = server.mailbox("alice").add_message(
            subject="Invoice 42", text="Please pay.", attachments={"invoice.csv": b"a,b\r\n1,2\r\n"}
        )
        client = server.client("alice")
        assert client.uidl(1).split()[2].decode() == message.uid
        assert client.list(1).split()[2] == str(message.size).encode()
        body = _retr_bytes(client, 1)
        assert body == message.crlf
        assert b"Subject: Invoice 42" in body
        assert b'filename="invoice.csv"' in body
        client.quit()
