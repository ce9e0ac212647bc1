"""curl against fakepop3: pop3:// and pop3s://, STLS with --ssl-reqd, LIST, RETR, UIDL, TOP, DELE.

curl prints a listing or a message on stdout exactly as it read it (without the stuffing
dots and the final ``.`` line), so every retrieval is compared byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fakepop3 import POP3Server

from .conftest import MESSAGES, PASSWORD, USER, Golden, StartServer, assert_all_ok, run


def curl_args(
    curl: str, server: POP3Server, path: str = "/", *extra: str, scheme: str = "pop3"
) -> list[str]:
    """A curl command line for ``path`` on ``server`` (``pop3s`` uses the implicit-TLS port)."""
    if scheme == "pop3s":
        assert server.tls is not None and server.tls_port is not None
        url = f"pop3s://localhost:{server.tls_port}{path}"
    else:
        url = f"pop3://{'localhost' if server.tls else server.host}:{server.port}{path}"
    args = [curl, "--silent", "--show-error", "--max-time", "20", "--user", f"{USER}:{PASSWORD}"]
    if server.tls is not None:
        args += ["--cacert", str(server.tls.ca_path)]
    return [*args, *extra, url]


def test_list_shows_every_message_and_its_size(
    curl: str, start_server: StartServer, golden: Golden
) -> None:
    server = start_server()
    result = run(curl_args(curl, server), server)
    messages = server.mailbox(USER).messages
    assert result.stdout == b"".join(b"%d %d\r\n" % (i, m.size) for i, m in enumerate(messages, 1))
    assert_all_ok(server)
    golden.check("curl_list", server, "curl pop3://HOST/ (LIST)")


@pytest.mark.parametrize("number", range(1, len(MESSAGES) + 1))
def test_retr_is_byte_exact(curl: str, start_server: StartServer, number: int) -> None:
    server = start_server()
    result = run(curl_args(curl, server, f"/{number}"), server)
    # What RETR sends, unstuffed: the stored bytes with CRLF line ends.
    assert result.stdout == server.mailbox(USER)[number - 1].crlf
    assert_all_ok(server)


def test_retr_sequence(curl: str, start_server: StartServer, golden: Golden) -> None:
    server = start_server()
    run(curl_args(curl, server, "/1"), server)
    golden.check("curl_retr", server, "curl pop3://HOST/1 (RETR 1)")


def test_uidl_lists_the_stored_uids(curl: str, start_server: StartServer, golden: Golden) -> None:
    server = start_server()
    result = run(curl_args(curl, server, "/", "--request", "UIDL"), server)
    uids = server.mailbox(USER).uids
    assert result.stdout == b"".join(b"%d %s\r\n" % (i, u.encode()) for i, u in enumerate(uids, 1))
    golden.check("curl_uidl", server, "curl -X UIDL pop3://HOST/")


def test_top_sends_the_header_block(curl: str, start_server: StartServer, golden: Golden) -> None:
    server = start_server()
    result = run(curl_args(curl, server, "/", "--request", "TOP 3 0"), server)
    message = server.mailbox(USER)[2]
    assert result.stdout == message.headers + b"\r\n"
    result = run(curl_args(curl, server, "/", "--request", "TOP 1 1"), server)
    assert result.stdout == server.mailbox(USER)[0].headers + b"\r\n.dot at the start\r\n"
    golden.check("curl_top", server, "curl -X 'TOP 3 0' pop3://HOST/, then -X 'TOP 1 1'")


def test_dele_takes_effect_at_quit_and_shows_at_the_next_login(
    curl: str, start_server: StartServer, golden: Golden
) -> None:
    server = start_server()
    before = server.mailbox(USER).messages
    result = run(curl_args(curl, server, "/1", "-X", "DELE", "-I"), server)
    assert result.stdout == b""
    assert server.mailbox(USER).messages == before[1:]
    # The next login (another curl) sees the rest, renumbered from 1.
    listing = run(curl_args(curl, server), server)
    assert listing.stdout == b"".join(
        b"%d %d\r\n" % (i, m.size) for i, m in enumerate(before[1:], 1)
    )
    assert_all_ok(server)
    golden.check("curl_dele", server, "curl -X DELE -I pop3://HOST/1, then a listing")


def test_stls_with_ssl_reqd(curl: str, start_server: StartServer, golden: Golden) -> None:
    server = start_server(tls=True)
    result = run(curl_args(curl, server, "/3", "--ssl-reqd"), server)
    assert result.stdout == server.mailbox(USER)[2].crlf
    session = server.history.sessions[0]
    assert [c.command for c in session.commands if not c.tls] == ["CAPA", "STLS"]
    golden.check("curl_stls", server, "curl --ssl-reqd --cacert CA pop3://localhost/3 (STLS)")


def test_ssl_reqd_fails_without_stls(curl: str, start_server: StartServer) -> None:
    # With STLS switched off, curl must refuse to log in rather than send the password.
    server = start_server(tls=True, disable=["STLS"])
    run(curl_args(curl, server, "/1", "--ssl-reqd"), server, expect=(64,))  # CURLE_USE_SSL_FAILED
    assert server.history.count("AUTH") == server.history.count("USER") == 0


def test_implicit_tls(curl: str, start_server: StartServer, golden: Golden) -> None:
    server = start_server(tls=True)
    result = run(curl_args(curl, server, "/4", scheme="pop3s"), server)
    assert result.stdout == server.mailbox(USER)[3].crlf
    assert all(c.tls for c in server.history.commands)
    golden.check("curl_pop3s", server, "curl --cacert CA pop3s://localhost/4 (implicit TLS)")


def test_implicit_tls_refuses_an_unknown_ca(curl: str, start_server: StartServer) -> None:
    server = start_server(tls=True)
    args = [a for a in curl_args(curl, server, "/1", scheme="pop3s")]
    i = args.index("--cacert")
    del args[i : i + 2]
    run(args, server, expect=(60,))  # CURLE_PEER_FAILED_VERIFICATION: the CA is really checked
    assert server.mailbox(USER).messages  # nothing happened to the maildrop


@pytest.mark.parametrize(
    ("name", "options", "disable", "first"),
    [
        ("curl_auth_apop", ("--login-options", "AUTH=+APOP"), (), "APOP alice ***"),
        ("curl_auth_plain", ("--login-options", "AUTH=PLAIN", "--sasl-ir"), (), "AUTH PLAIN ***"),
        ("curl_auth_login", ("--login-options", "AUTH=LOGIN"), (), "AUTH LOGIN"),
        # Without SASL and APOP on offer, curl falls back to USER/PASS.
        ("curl_auth_user", (), ("SASL", "APOP"), "USER alice"),
    ],
)
def test_login_methods(
    curl: str,
    start_server: StartServer,
    golden: Golden,
    name: str,
    options: Sequence[str],
    disable: Sequence[str],
    first: str,
) -> None:
    server = start_server(disable=disable)
    result = run(curl_args(curl, server, "/2", *options), server)
    assert result.stdout == server.mailbox(USER)[1].crlf
    assert server.history.command_lines()[1] == first
    assert_all_ok(server)
    offered = f" (server without {', '.join(disable)})" if disable else ""
    golden.check(
        name, server, f"curl {' '.join(options)} pop3://HOST/2{offered}".replace("  ", " ")
    )
