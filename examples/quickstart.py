"""Start a fake POP3 server, put mail in it, and read it back with poplib.

Run it with ``python examples/quickstart.py``.
"""

import poplib

from fakepop3 import POP3Server


def main() -> None:
    with POP3Server(users={"alice": "secret"}) as server:
        inbox = server.mailbox("alice")
        inbox.add(b"From: bob@example.com\r\nSubject: Hello\r\n\r\nHi Alice!\r\n")
        inbox.add(b"From: carol@example.com\r\nSubject: Lunch?\r\n\r\n.12:30 works\r\n")

        client = poplib.POP3(server.host, server.port, timeout=10)
        client.user("alice")
        client.pass_("secret")
        count, size = client.stat()
        print(f"fakepop3 listening on {server.host}:{server.port}: {count} messages, {size} octets")
        for number in range(1, count + 1):
            _, lines, _ = client.retr(number)
            subject = next(line for line in lines if line.startswith(b"Subject:"))
            print(f"  message {number}: {subject.decode()}")
            client.dele(number)
        client.quit()
        server.wait_for_sessions(1)

        print("commands the server received:")
        for record in server.history:
            print(f"  {record.line:<12} -> {record.reply}")
        print(f"messages left in alice's maildrop: {len(inbox)}")


if __name__ == "__main__":
    main()
