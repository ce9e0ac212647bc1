"""A command line too long is a command other than PASS: it forgets a pending USER (RFC 1939 s7),
as every other command does (found by tests/test_stateful.py)."""

from __future__ import annotations

import socket

from fakepop3 import POP3Server


def test_a_line_too_long_between_user_and_pass_forgets_the_user() -> None:
    with POP3Server(users={"alice": "secret"}) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"+OK")
            sock.sendall(b"USER alice\r\n")
            assert reader.readline() == b"+OK\r\n"
            sock.sendall(b"A" * 400 + b"\r\n")
            assert reader.readline().startswith(b"-ERR Command line too long")
            sock.sendall(b"PASS secret\r\n")
            assert reader.readline() == b"-ERR No username given; send USER first.\r\n"
