"""Every way to log in: USER/PASS, APOP, SASL (PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER).

Python 3.11's poplib has no ``auth()``, so SASL is driven with poplib's
``_putcmd``/``_getline`` (exactly the bytes a SASL client sends); the client
messages of each mechanism are computed here, independently of fakepop3.auth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import poplib
from collections.abc import Callable, Iterator, Sequence

import pytest

from fakepop3 import MailStore, POP3Server, Session, Settings
from fakepop3.protocol import Send

PASSWORD = "s3cret pass"  # a space on purpose: PASS keeps the whole rest of the line
TOKEN = "ya29.alice-token"
BOB_TOKEN = "ya29.bob-token"

Response = bytes | Callable[[bytes], bytes]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def plain(user: str, password: str, authzid: str = "") -> bytes:
    return f"{authzid}\0{user}\0{password}".encode()


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str, port: int = 110) -> bytes:
    return f"n,a={user},\x01host=localhost\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def cram(user: str, password: str) -> Callable[[bytes], bytes]:
    def answer(challenge: bytes) -> bytes:
        digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
        return f"{user} {digest}".encode()

    return answer


def sasl(
    client: poplib.POP3,
    mechanism: str,
    initial: bytes | None = None,
    responses: Sequence[Response] = (),
    *,
    raw_initial: str | None = None,
) -> tuple[list[bytes], bytes]:
    """Run one AUTH exchange; return the decoded challenges and the final status line.

    Each response answers one ``+ `` challenge (a callable gets the decoded challenge).
    """
    line = f"AUTH {mechanism}"
    if raw_initial is not None:
        line += f" {raw_initial}"
    elif initial is not None:
        line += f" {b64(initial) if initial else '='}"
    client._putcmd(line)
    challenges: list[bytes] = []
    pending: Iterator[Response] = iter(responses)
    while True:
        reply, _ = client._getline()
        if not reply.startswith(b"+ "):
            return challenges, reply
        challenge = base64.b64decode(reply[2:], validate=True)
        challenges.append(challenge)
        answer = next(pending, None)
        if answer is None:
            raise AssertionError(f"unexpected challenge {challenge!r} after {challenges[:-1]!r}")
        data = answer(challenge) if callable(answer) else answer
        client._putcmd(b64(data))


def logged_in(client: poplib.POP3) -> bool:
    """True if the session is in TRANSACTION (STAT answers +OK)."""
    try:
        client.stat()
    except poplib.error_proto:
        return False
    return True


@pytest.fixture
def server() -> Iterator[POP3Server]:
    with POP3Server(users={"alice": PASSWORD}) as server:
        server.add_user("alice", tokens=[TOKEN], messages=[b"Subject: one\r\n\r\nbody\r\n"])
        server.add_user("bob", "bobpw", tokens=[BOB_TOKEN])
        yield server
        server.raise_errors()


@pytest.fixture
def client(server: POP3Server) -> Iterator[poplib.POP3]:
    client = poplib.POP3(server.host, server.port, timeout=10)
    yield client
    client.close()


# --- USER/PASS and APOP ------------------------------------------------------------------
def test_user_pass_keeps_spaces_in_the_password(server: POP3Server, client: poplib.POP3) -> None:
    client.user("alice")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat()[0] == 1
    client.quit()
    server.wait_for_sessions(1)
    server.history.assert_sequence("USER alice", "PASS ***", "STAT", "QUIT")


def test_wrong_password_fails_with_auth_code_and_stays_in_authorization(
    client: poplib.POP3,
) -> None:
    client.user("alice")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Authentication failed"):
        client.pass_("wrong")
    assert not logged_in(client)
    client.user("alice")
    assert client.pass_(PASSWORD).startswith(b"+OK")


def test_pass_without_user_is_refused(client: poplib.POP3) -> None:
    with pytest.raises(poplib.error_proto, match="USER first"):
        client.pass_(PASSWORD)


def test_apop_with_poplib(server: POP3Server, client: poplib.POP3) -> None:
    assert client.apop("alice", PASSWORD).startswith(b"+OK")
    assert client.stat()[0] == 1
    client.quit()
    server.wait_for_sessions(1)
    [record] = server.history.filter("APOP")
    assert record.args == ("alice", "***")


def test_apop_wrong_secret_and_malformed_digest(client: poplib.POP3) -> None:
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.apop("alice", "wrong")
    with pytest.raises(poplib.error_proto, match="32 hexadecimal digits"):
        client._shortcmd("APOP alice 1234")
    with pytest.raises(poplib.error_proto, match="needs a user name and a digest"):
        client._shortcmd("APOP alice")
    assert not logged_in(client)


def test_apop_timestamp_differs_per_greeting(server: POP3Server) -> None:
    welcomes = []
    for _ in range(2):
        client = poplib.POP3(server.host, server.port, timeout=10)
        welcomes.append(client.getwelcome())
        client.quit()
    assert b"<" in welcomes[0] and welcomes[0] != welcomes[1]


# --- SASL: each mechanism, both forms ----------------------------------------------------
MECHANISMS: dict[str, tuple[bytes | None, list[Response]]] = {
    # name: (initial response or None, responses to challenges)
    "PLAIN ir": (plain("alice", PASSWORD), []),
    "PLAIN cont": (None, [plain("alice", PASSWORD)]),
    "PLAIN authzid": (plain("alice", PASSWORD, authzid="alice"), []),
    "LOGIN ir": (b"alice", [PASSWORD.encode()]),
    "LOGIN cont": (None, [b"alice", PASSWORD.encode()]),
    "CRAM-MD5 cont": (None, [cram("alice", PASSWORD)]),
    "XOAUTH2 ir": (xoauth2("alice", TOKEN), []),
    "XOAUTH2 cont": (None, [xoauth2("alice", TOKEN)]),
    "OAUTHBEARER ir": (oauthbearer("alice", TOKEN), []),
    "OAUTHBEARER cont": (None, [oauthbearer("alice", TOKEN)]),
}


@pytest.mark.parametrize("case", sorted(MECHANISMS))
def test_sasl_mechanism_logs_in(server: POP3Server, client: poplib.POP3, case: str) -> None:
    mechanism = case.split()[0]
    initial, responses = MECHANISMS[case]
    challenges, final = sasl(client, mechanism, initial, responses)
    assert final == b"+OK Logged in."
    assert len(challenges) == len(responses)
    assert client.stat()[0] == 1
    client.quit()
    server.wait_for_sessions(1)
    [auth] = server.history.filter("AUTH")
    assert auth.args[0] == mechanism
    assert server.history.filter("STAT")[0].user == "alice"


@pytest.mark.parametrize(
    ("mechanism", "initial", "responses"),
    [
        ("PLAIN", plain("bob", "bobpw"), []),
        ("LOGIN", None, [b"bob", b"bobpw"]),
        ("CRAM-MD5", None, [cram("bob", "bobpw")]),
        ("XOAUTH2", xoauth2("bob", BOB_TOKEN), []),
        ("OAUTHBEARER", oauthbearer("bob", BOB_TOKEN), []),
    ],
)
def test_sasl_logs_in_a_user_with_an_empty_maildrop(
    client: poplib.POP3, mechanism: str, initial: bytes | None, responses: list[Response]
) -> None:
    assert sasl(client, mechanism, initial, responses)[1] == b"+OK Logged in."
    assert client.stat() == (0, 0)


def test_sasl_challenges_are_what_clients_expect(client: poplib.POP3) -> None:
    challenges, _ = sasl(client, "LOGIN", None, [b"alice", PASSWORD.encode()])
    assert challenges == [b"Username:", b"Password:"]  # what LOGIN clients look for


@pytest.mark.parametrize("mechanism", ["PLAIN", "XOAUTH2", "OAUTHBEARER"])
def test_empty_challenge_is_a_bare_plus_space(client: poplib.POP3, mechanism: str) -> None:
    # RFC 5034 s4: an empty challenge is "+ " followed by nothing.
    client._putcmd(f"AUTH {mechanism}")
    assert client._getline()[0] == b"+ "
    client._putcmd("*")
    assert client._getline()[0].startswith(b"-ERR")


def test_cram_md5_challenge_is_a_fresh_msg_id(server: POP3Server) -> None:
    seen = []
    for _ in range(2):
        client = poplib.POP3(server.host, server.port, timeout=10)
        challenges, final = sasl(client, "CRAM-MD5", None, [cram("alice", PASSWORD)])
        assert final.startswith(b"+OK")
        seen.append(challenges[0])
        client.quit()
    assert all(c.startswith(b"<") and c.endswith(b">") and b"@" in c for c in seen)
    assert seen[0] != seen[1]


def test_cram_md5_wrong_password(client: poplib.POP3) -> None:
    _, final = sasl(client, "CRAM-MD5", None, [cram("alice", "wrong")])
    assert final == b"-ERR [AUTH] Authentication failed."
    assert not logged_in(client)


def test_bare_auth_lists_the_mechanisms(client: poplib.POP3) -> None:
    resp, lines, _ = client._longcmd("AUTH")
    assert resp.startswith(b"+OK")
    assert lines == [b"CRAM-MD5", b"OAUTHBEARER", b"XOAUTH2", b"PLAIN", b"LOGIN"]


def test_mechanisms_setting_limits_auth_and_capa(server: POP3Server) -> None:
    with POP3Server(users={"alice": PASSWORD}, mechanisms=["plain", "XOAUTH2"]) as limited:
        client = poplib.POP3(limited.host, limited.port, timeout=10)
        assert client.capa()["SASL"] == ["PLAIN", "XOAUTH2"]
        assert client._longcmd("AUTH")[1] == [b"PLAIN", b"XOAUTH2"]
        _, final = sasl(client, "CRAM-MD5", None, [cram("alice", PASSWORD)])
        assert final.startswith(b"-ERR Unsupported authentication mechanism")
        _, final = sasl(client, "PLAIN", plain("alice", PASSWORD))
        assert final.startswith(b"+OK")
        client.quit()


def test_no_mechanisms_means_no_auth(server: POP3Server) -> None:
    with POP3Server(users={"alice": PASSWORD}, mechanisms=[]) as bare:
        client = poplib.POP3(bare.host, bare.port, timeout=10)
        assert "SASL" not in client.capa()
        with pytest.raises(poplib.error_proto, match="Unknown command"):
            client._shortcmd(f"AUTH PLAIN {b64(plain('alice', PASSWORD))}")
        client.quit()


def test_unknown_mechanism_names_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown SASL mechanism: SCRAM-SHA-1"):
        POP3Server(mechanisms=["PLAIN", "SCRAM-SHA-1"])


# --- SASL: bad input ---------------------------------------------------------------------
BAD_INITIAL = {
    "bad base64": ("PLAIN", "not*base64!", "Invalid base64"),
    "missing padding": ("PLAIN", "AGFsaWNlAHB3ZDE", "Invalid base64"),  # \0alice\0pwd1
    "PLAIN two fields": ("PLAIN", b64(b"alice\0" + PASSWORD.encode()), "Malformed"),
    "PLAIN four fields": ("PLAIN", b64(plain("alice", PASSWORD) + b"\0x"), "Malformed"),
    "PLAIN empty user": ("PLAIN", b64(plain("", PASSWORD)), "Malformed"),
    "PLAIN CR in password": ("PLAIN", b64(plain("alice", "a\rb")), "Malformed"),
    "PLAIN LF in user": ("PLAIN", b64(plain("ali\nce", PASSWORD)), "Malformed"),
    "PLAIN not UTF-8": ("PLAIN", b64(b"\0alice\0\xff\xfe"), "Malformed"),
    "PLAIN authzid mismatch": ("PLAIN", b64(plain("alice", PASSWORD, "bob")), "Authorization"),
    "PLAIN empty initial": ("PLAIN", "=", "Malformed"),
    "LOGIN NUL in user": ("LOGIN", b64(b"ali\0ce"), "Malformed"),
    "LOGIN LF in user": ("LOGIN", b64(b"ali\nce"), "Malformed"),
    "CRAM-MD5 with initial": ("CRAM-MD5", b64(b"alice 0123"), "no initial response"),
    "XOAUTH2 no trailer": (
        "XOAUTH2",
        b64(b"user=alice\x01auth=Bearer " + TOKEN.encode()),
        "Malformed",
    ),
    "XOAUTH2 no bearer": ("XOAUTH2", b64(b"user=alice\x01auth=Basic x\x01\x01"), "Malformed"),
    "XOAUTH2 no user": ("XOAUTH2", b64(f"auth=Bearer {TOKEN}\x01\x01".encode()), "Malformed"),
    "XOAUTH2 NUL in user": ("XOAUTH2", b64(xoauth2("ali\0ce", TOKEN)), "Malformed"),
    "XOAUTH2 LF in token": ("XOAUTH2", b64(xoauth2("alice", "to\nken")), "Malformed"),
    "OAUTHBEARER bad gs2": (
        "OAUTHBEARER",
        b64(b"x,a=alice,\x01auth=Bearer t\x01\x01"),
        "Malformed",
    ),
    "OAUTHBEARER channel binding": (
        "OAUTHBEARER",
        b64(b"p=tls-unique,a=alice,\x01auth=Bearer t\x01\x01"),
        "Malformed",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INITIAL))
def test_bad_sasl_initial_response_is_refused(
    server: POP3Server, client: poplib.POP3, case: str
) -> None:
    mechanism, raw, text = BAD_INITIAL[case]
    _, final = sasl(client, mechanism, raw_initial=raw)
    assert final.startswith(b"-ERR"), final
    assert text.encode() in final
    assert not logged_in(client)
    # The session is still usable: a correct login works right after.
    _, final = sasl(client, "PLAIN", plain("alice", PASSWORD))
    assert final == b"+OK Logged in."


BAD_CONTINUATION = {
    "bad base64": ("PLAIN", "%%%", "Invalid base64"),
    "PLAIN wrong field count": ("PLAIN", b64(b"alice"), "Malformed"),
    "PLAIN CRLF inside": ("PLAIN", b64(plain("alice", "pw\r\nSTAT")), "Malformed"),
    "CRAM-MD5 short digest": ("CRAM-MD5", b64(b"alice 0123abcd"), "Malformed"),
    "CRAM-MD5 no user": ("CRAM-MD5", b64(b"0" * 32), "Malformed"),
    "LOGIN empty user": ("LOGIN", "", "Malformed"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTINUATION))
def test_bad_sasl_continuation_is_refused(client: poplib.POP3, case: str) -> None:
    mechanism, line, text = BAD_CONTINUATION[case]
    client._putcmd(f"AUTH {mechanism}")
    assert client._getline()[0].startswith(b"+ ")
    client._putcmd(line)
    final = client._getline()[0]
    assert final.startswith(b"-ERR") and text.encode() in final, final
    # The exchange is over: the next line is a command again, not a SASL response.
    assert client.capa()["USER"] == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"])
def test_star_cancels_the_exchange(server: POP3Server, client: poplib.POP3, mechanism: str) -> None:
    client._putcmd(f"AUTH {mechanism}")
    assert client._getline()[0].startswith(b"+ ")
    with pytest.raises(poplib.error_proto, match="-ERR Authentication cancelled"):
        client._shortcmd("*")
    assert not logged_in(client)
    client.user("alice")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()
    server.wait_for_sessions(1)
    assert [c.line for c in server.history.filter("SASL")] == ["SASL *"]


def test_star_cancels_login_after_the_user_name(client: poplib.POP3) -> None:
    client._putcmd("AUTH LOGIN")
    client._getline()
    client._putcmd(b64(b"alice"))
    assert client._getline()[0] == b"+ " + base64.b64encode(b"Password:")
    with pytest.raises(poplib.error_proto, match="cancelled"):
        client._shortcmd("*")


def test_unknown_mechanism(client: poplib.POP3) -> None:
    with pytest.raises(poplib.error_proto, match="Unsupported authentication mechanism: GSSAPI"):
        client._shortcmd("AUTH GSSAPI")
    with pytest.raises(poplib.error_proto, match="Too many arguments for AUTH"):
        client._shortcmd("AUTH PLAIN AAAA BBBB")


def test_auth_after_login_is_refused(client: poplib.POP3) -> None:
    _, final = sasl(client, "PLAIN", plain("alice", PASSWORD))
    assert final.startswith(b"+OK")
    for line in (f"AUTH PLAIN {b64(plain('bob', 'bobpw'))}", "AUTH XOAUTH2", "AUTH"):
        with pytest.raises(poplib.error_proto, match="only valid before login"):
            client._shortcmd(line)
    for call in (lambda: client.user("bob"), lambda: client.apop("bob", "bobpw")):
        with pytest.raises(poplib.error_proto, match="only valid before login"):
            call()
    assert client.stat()[0] == 1  # still alice's session


def test_long_sasl_continuation_is_accepted(server: POP3Server, client: poplib.POP3) -> None:
    # Real OAuth access tokens (Microsoft's in particular) are often over 1 KB.  RFC 5034
    # forbids an initial response that pushes the AUTH line past 255 octets, so clients send
    # such tokens as a continuation line, which the 255-octet command limit must not cut.
    token = "eyJ" + "x" * 2000
    server.add_user("carol", tokens=[token])
    initial = xoauth2("carol", token)
    assert len(b64(initial)) > 255
    challenges, final = sasl(client, "XOAUTH2", None, [initial])
    assert (challenges, final) == ([b""], b"+OK Logged in.")


def test_overlong_sasl_continuation_ends_the_exchange(client: poplib.POP3) -> None:
    client._putcmd("AUTH PLAIN")
    client._getline()
    client._putcmd("A" * 100_000)
    final = client._getline()[0]
    assert final.startswith(b"-ERR") and b"too long" in final
    # Not still waiting for a SASL response: CAPA is answered as a command.
    assert "USER" in client.capa()


def test_overlong_initial_response_is_refused(client: poplib.POP3) -> None:
    with pytest.raises(poplib.error_proto, match="too long"):
        client._shortcmd("AUTH PLAIN " + "A" * 300)
    assert "USER" in client.capa()


# --- OAuth tokens per user ---------------------------------------------------------------
def test_user_with_password_and_tokens_can_use_either(server: POP3Server) -> None:
    for login in (
        lambda c: c.user("bob") and c.pass_("bobpw"),
        lambda c: sasl(c, "XOAUTH2", xoauth2("bob", BOB_TOKEN))[1],
        lambda c: sasl(c, "OAUTHBEARER", oauthbearer("bob", BOB_TOKEN))[1],
    ):
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        assert logged_in(client)
        client.quit()


def test_a_token_only_opens_its_own_users_maildrop(client: poplib.POP3) -> None:
    challenges, final = sasl(client, "XOAUTH2", xoauth2("alice", BOB_TOKEN), [b""])
    assert json.loads(challenges[0])["status"] == "401"
    assert final.startswith(b"-ERR [AUTH]")


def test_a_token_is_not_a_password(client: poplib.POP3) -> None:
    _, final = sasl(client, "PLAIN", plain("alice", TOKEN))
    assert final.startswith(b"-ERR [AUTH]")
    _, final = sasl(client, "XOAUTH2", xoauth2("alice", PASSWORD), [b""])
    assert final.startswith(b"-ERR [AUTH]")


def test_token_only_user_has_no_password(server: POP3Server, client: poplib.POP3) -> None:
    server.add_user("svc", tokens=["svc-token"])
    client.user("svc")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.pass_("svc-token")
    _, final = sasl(client, "XOAUTH2", xoauth2("svc", "svc-token"))
    assert final == b"+OK Logged in."


def test_oauthbearer_without_authzid_finds_the_user_by_token(
    server: POP3Server, client: poplib.POP3
) -> None:
    # RFC 7628 s3.1: the authzid in the GS2 header is optional.
    message = f"n,,\x01host=localhost\x01port=110\x01auth=Bearer {BOB_TOKEN}\x01\x01".encode()
    _, final = sasl(client, "OAUTHBEARER", message)
    assert final == b"+OK Logged in."
    client.quit()
    server.wait_for_sessions(1)
    assert server.history.filter("QUIT")[0].user == "bob"


def test_oauthbearer_escaped_authzid(server: POP3Server, client: poplib.POP3) -> None:
    server.add_user("a,b=c", tokens=["odd"])
    message = b"n,a=a=2Cb=3Dc,\x01auth=Bearer odd\x01\x01"
    assert sasl(client, "OAUTHBEARER", message)[1] == b"+OK Logged in."


# --- user story 3: a client that must use OAuth ------------------------------------------
class OAuthClient:
    """A tiny client that logs in with an OAuth token the way Gmail/Outlook clients do."""

    def __init__(self, host: str, port: int, mechanism: str) -> None:
        self.host, self.port, self.mechanism = host, port, mechanism
        self.error: dict[str, str] | None = None

    def fetch(self, user: str, token: str) -> list[bytes]:
        client = poplib.POP3(self.host, self.port, timeout=10)
        try:
            if self.mechanism not in client.capa().get("SASL", []):
                raise RuntimeError(f"server does not offer {self.mechanism}")
            if self.mechanism == "XOAUTH2":
                message, ack = xoauth2(user, token), b""
            else:
                message, ack = oauthbearer(user, token, self.port), b"\x01"
            client._putcmd(f"AUTH {self.mechanism} {b64(message)}")
            reply, _ = client._getline()
            if reply.startswith(b"+ "):
                # RFC 7628 s3.2.3: the error challenge; the client answers and the server fails.
                self.error = json.loads(base64.b64decode(reply[2:]))
                client._putcmd(b64(ack))
                reply, _ = client._getline()
            if not reply.startswith(b"+OK"):
                raise PermissionError(reply.decode())
            count, _ = client.stat()
            return [b"\r\n".join(client.retr(n)[1]) for n in range(1, count + 1)]
        finally:
            client.quit()


@pytest.mark.parametrize(
    ("mechanism", "status"), [("XOAUTH2", "401"), ("OAUTHBEARER", "invalid_token")]
)
def test_story_3_client_must_use_oauth(server: POP3Server, mechanism: str, status: str) -> None:
    app = OAuthClient(server.host, server.port, mechanism)
    assert app.fetch("alice", TOKEN) == [b"Subject: one\r\n\r\nbody"]
    server.wait_for_sessions(1)
    server.history.assert_sent("AUTH", mechanism, "***", times=1)
    server.history.assert_not_sent("USER")
    server.history.assert_not_sent("PASS")

    # The token expires (the provider revokes it): the next poll fails cleanly.
    server.mailbox("alice").tokens.discard(TOKEN)
    with pytest.raises(PermissionError, match=r"-ERR \[AUTH\] Authentication failed"):
        app.fetch("alice", TOKEN)
    assert app.error == {"status": status, "schemes": "bearer", "scope": "mail"}
    server.wait_for_sessions(2)
    second = server.history.sessions[-1]
    assert [c.line for c in second.commands] == [
        "CAPA",
        f"AUTH {mechanism} ***",
        "SASL ***",
        "QUIT",
    ]
    assert second.commands[1].reply.startswith("+ ")
    assert second.user is None
    assert TOKEN not in server.history.to_jsonl()

    # A new token works again, and the old one stays refused.
    server.add_user("alice", tokens=["ya29.fresh"])
    assert len(app.fetch("alice", "ya29.fresh")) == 1


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_bearer_error_challenge_in_continuation_form(client: poplib.POP3, mechanism: str) -> None:
    message = (xoauth2 if mechanism == "XOAUTH2" else oauthbearer)("alice", "expired")
    challenges, final = sasl(client, mechanism, None, [message, b"\x01"])
    assert challenges[0] == b""
    assert json.loads(challenges[1])["schemes"] == "bearer"
    assert final == b"-ERR [AUTH] Authentication failed."
    assert not logged_in(client)


# --- any login ---------------------------------------------------------------------------
def test_any_login_creates_a_maildrop() -> None:
    with POP3Server(any_login=True) as server:
        assert "newbie" not in server.store
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.user("newbie")
        client.pass_("whatever")
        assert client.stat() == (0, 0)
        client.quit()
        assert "newbie" in server.store
        server.mailbox("newbie").add(b"Subject: hi\r\n\r\nx\r\n")
        for login in (
            lambda c: c.apop("newbie", "anything"),
            lambda c: sasl(c, "CRAM-MD5", None, [cram("newbie", "other")]),
            lambda c: sasl(c, "XOAUTH2", xoauth2("newbie", "any-token")),
            lambda c: sasl(c, "PLAIN", plain("second", "x")),
        ):
            client = poplib.POP3(server.host, server.port, timeout=10)
            login(client)
            assert client.stat()[0] in (0, 1)
            client.quit()
        assert server.mailbox("newbie").messages[0].raw.startswith(b"Subject: hi")
        assert "second" in server.store


def test_any_login_still_rejects_malformed_names() -> None:
    with POP3Server(any_login=True) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        _, final = sasl(client, "XOAUTH2", xoauth2("", "t"))
        assert final.startswith(b"-ERR")
        client.quit()
        assert server.store.users == []


def test_without_any_login_unknown_users_fail(client: poplib.POP3, server: POP3Server) -> None:
    client.user("mallory")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.pass_("x")
    assert "mallory" not in server.store


# --- failed logins in the history, secrets masked ----------------------------------------
def test_failed_logins_are_recorded_with_secrets_masked(server: POP3Server) -> None:
    client = poplib.POP3(server.host, server.port, timeout=10)
    client.user("alice")
    with pytest.raises(poplib.error_proto):
        client.pass_("wrong password")
    with pytest.raises(poplib.error_proto):
        client.apop("alice", "wrong password")
    sasl(client, "PLAIN", plain("alice", "wrong password"))
    sasl(client, "PLAIN", None, [plain("alice", "wrong password")])
    sasl(client, "LOGIN", None, [b"alice", b"wrong password"])
    sasl(client, "XOAUTH2", xoauth2("alice", "wrong-token"), [b""])
    with pytest.raises(poplib.error_proto):
        client._shortcmd(f"AUTH PLAIN {b64(plain('alice', 'wrong password'))} extra")
    sasl(client, "PLAIN", plain("alice", PASSWORD))
    client.quit()
    server.wait_for_sessions(1)

    history = server.history
    failed = [c for c in history if not c.ok]
    assert [c.command for c in failed] == ["PASS", "APOP", "AUTH", "SASL", "SASL", "SASL", "AUTH"]
    assert all(c.reply.startswith("-ERR") for c in failed)
    assert history.filter("AUTH", "PLAIN", "***", ok=True)  # the good one, masked too

    secrets = [PASSWORD, "wrong password", "wrong-token"]
    secrets += [b64(plain("alice", s)) for s in ("wrong password", PASSWORD)]
    secrets += [b64(b"wrong password"), b64(xoauth2("alice", "wrong-token"))]
    session = history.sessions[0]
    dumps = [
        history.to_jsonl(),
        history.transcript(),
        repr(history.commands),
        repr(history.sessions),
        "\n".join(str(c) for c in history),
        repr(server),
        repr(server.mailbox("alice")),
        repr(session),
    ]
    for text in dumps:
        for secret in secrets:
            assert secret not in text, (secret, text)


# --- LOGIN-DELAY and EXPIRE (RFC 2449) ---------------------------------------------------
def _run(session: Session, line: str) -> bytes:
    session.receive_data(line.encode() + b"\r\n")
    actions = session.next_actions()
    assert actions is not None
    return b"".join(bytes(b) for a in actions if isinstance(a, Send) for b in a.buffers)


def test_login_delay_is_enforced_with_a_fake_clock() -> None:
    store = MailStore()
    store.add_user("alice", PASSWORD)
    now = [1000.0]
    settings = Settings(login_delay=60)

    def login(line: str = f"AUTH PLAIN {b64(plain('alice', PASSWORD))}") -> bytes:
        session = Session(store, settings, clock=lambda: now[0])
        session.greeting()
        reply = _run(session, line)
        if reply.startswith(b"+OK"):
            assert _run(session, "QUIT").startswith(b"+OK")
        return reply

    assert login() == b"+OK Logged in.\r\n"
    now[0] += 59.5
    assert login() == b"-ERR [LOGIN-DELAY] Minimum time between logins is 60 seconds.\r\n"
    now[0] += 0.5
    assert login() == b"+OK Logged in.\r\n"
    now[0] += 1
    # USER/PASS gets the same answer on PASS (RFC 2449 s8.1.1).
    session = Session(store, settings, clock=lambda: now[0])
    assert _run(session, "USER alice") == b"+OK\r\n"
    assert _run(session, f"PASS {PASSWORD}").startswith(b"-ERR [LOGIN-DELAY]")
    # A wrong password is an AUTH failure, not a delay: the delay reveals nothing new.
    assert _run(session, "USER alice") == b"+OK\r\n"
    assert _run(session, "PASS nope").startswith(b"-ERR [AUTH]")


def test_login_delay_not_enforced_when_switched_off() -> None:
    store = MailStore()
    store.add_user("alice", PASSWORD)
    settings = Settings(login_delay=60, enforce_login_delay=False)
    for _ in range(2):
        session = Session(store, settings, clock=lambda: 5.0)
        assert (
            _run(
                session,
                f"APOP alice {hashlib.md5((session.timestamp + PASSWORD).encode()).hexdigest()}",
            )
            == b"+OK Logged in.\r\n"
        )
        _run(session, "QUIT")
    assert "LOGIN-DELAY 60" in session.capabilities()


def test_login_delay_over_the_wire() -> None:
    with POP3Server(users={"alice": PASSWORD}, login_delay=3600, expire=0) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        caps = client.capa()
        assert caps["LOGIN-DELAY"] == ["3600"]
        assert caps["EXPIRE"] == ["0"]
        client.user("alice")
        client.pass_(PASSWORD)
        client.quit()
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.user("alice")
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[LOGIN-DELAY\]"):
            client.pass_(PASSWORD)
        client.quit()


@pytest.mark.parametrize(("expire", "shown"), [(0, "0"), (30, "30"), ("never", "NEVER")])
def test_expire_is_advertised(expire: int | str, shown: str) -> None:
    with POP3Server(users={"alice": PASSWORD}, expire=expire) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert client.capa()["EXPIRE"] == [shown]
        client.user("alice")
        client.pass_(PASSWORD)
        assert client.capa()["EXPIRE"] == [shown]  # RFC 2449: in both states
        client.quit()


def test_bad_expire_is_refused() -> None:
    with pytest.raises(ValueError, match="number of days or 'NEVER'"):
        POP3Server(expire="sometimes")


# --- UTF8 and LANG (RFC 6856) ------------------------------------------------------------
def test_utf8_user_names_and_passwords() -> None:
    with POP3Server(users={"jürgen": "pässwörd ✓"}, utf8=True) as server:
        server.mailbox("jürgen").add("Subject: Grüße\r\n\r\nHallo\r\n")
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert client.capa()["UTF8"] == ["USER"]
        assert client.utf8().startswith(b"+OK")
        client.user("jürgen")
        client.pass_("pässwörd ✓")
        assert client.retr(1)[1][0] == "Subject: Grüße".encode()
        with pytest.raises(poplib.error_proto, match="only valid before login"):
            client.utf8()
        client.quit()
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.utf8()
        _, final = sasl(client, "PLAIN", plain("jürgen", "pässwörd ✓"))
        assert final == b"+OK Logged in."
        client.quit()


INTERNATIONAL = "From: Jürgen <j@example.org>\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
EIGHT_BIT_BODY = b"Subject: plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
UTF8_REFUSED = "-ERR [UTF8] This message has UTF-8 headers: send UTF8 first (RFC 6856 s2.1)."


def test_utf8_headers_go_only_to_a_session_in_utf8_mode() -> None:
    # RFC 6856 s2.1: "When UTF-8 mode has not been enabled, character strings outside the ASCII
    # repertoire MUST NOT be sent to the client as is"; s5: the -ERR carries [UTF8], and "the
    # client MAY reissue the command after entering UTF-8 mode".
    with POP3Server(users={"alice": PASSWORD}, utf8=True) as server:
        server.mailbox("alice").extend([INTERNATIONAL, EIGHT_BIT_BODY])
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.user("alice")
        client.pass_(PASSWORD)
        assert client.list(1) == f"+OK 1 {len(INTERNATIONAL)}".encode()  # sizes are not content
        for command in (lambda: client.retr(1), lambda: client.top(1, 0)):
            with pytest.raises(poplib.error_proto) as refused:
                command()
            assert refused.value.args[0] == UTF8_REFUSED.encode()
        # An 8-bit body under ASCII headers is not a UTF-8 message (RFC 6856 s2.1 is about
        # messages that need UTF-8 mode, RFC 6532): it goes out as stored, as on every server.
        assert b"\r\n".join(client.retr(2)[1]) + b"\r\n" == EIGHT_BIT_BODY
        client.quit()
        # Nothing was lost: the next session, in UTF-8 mode, gets the message byte for byte.
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert client.utf8() == b"+OK UTF8 enabled"
        client.user("alice")
        client.pass_(PASSWORD)
        assert b"\r\n".join(client.retr(1)[1]) + b"\r\n" == INTERNATIONAL
        assert client.top(1, 0)[1][1] == "Subject: Grüße".encode()
        client.quit()
        server.raise_errors()


def test_without_utf8_mail_is_sent_as_stored_as_dovecot_does() -> None:
    # UTF8 off (the default, and every persona of a real server): RFC 6856 does not apply, and
    # the message goes out as stored, as Dovecot 2.3 sends it (it offers no UTF8).
    for options in ({}, {"utf8": True, "disable": ["UTF8"]}, {"persona": "dovecot"}):
        with POP3Server(users={"alice": PASSWORD}, **options) as server:  # type: ignore[arg-type]
            server.mailbox("alice").add(INTERNATIONAL)
            client = poplib.POP3(server.host, server.port, timeout=10)
            assert "UTF8" not in client.capa()
            client.user("alice")
            client.pass_(PASSWORD)
            assert b"\r\n".join(client.retr(1)[1]) + b"\r\n" == INTERNATIONAL, options
            client.quit()


def test_lang_lists_and_switches() -> None:
    with POP3Server(users={"alice": PASSWORD}) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert "LANG" in client.capa()
        resp, lines, _ = client._longcmd("LANG")
        assert resp.startswith(b"+OK") and lines == [b"en English"]
        assert client._shortcmd("LANG EN") == b"+OK en Language changed"
        assert client._shortcmd("LANG *").startswith(b"+OK en ")
        with pytest.raises(poplib.error_proto, match="Unsupported language: tlh"):
            client._shortcmd("LANG tlh")
        client.user("alice")
        client.pass_(PASSWORD)
        assert client._shortcmd("LANG en").startswith(b"+OK")  # valid in TRANSACTION too
        client.quit()


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER", "oauthbearer"])
def test_the_client_helper_logs_in_with_a_token(mechanism: str) -> None:
    with POP3Server(tokens={"ann": ["ya29.ok"]}) as server:
        server.mailbox("ann").add(b"Subject: hi\r\n\r\nhello\r\n")
        client = server.client("ann", token="ya29.ok", mechanism=mechanism)
        assert client.stat()[0] == 1
        client.quit()
        server.wait_for_sessions(1)
        [auth, *_] = server.history.commands
        assert (auth.command, auth.args, auth.ok) == ("AUTH", (mechanism.upper(), "***"), True)


def test_the_client_helper_raises_the_err_of_a_refused_token_and_closes() -> None:
    import gc

    with POP3Server(tokens={"ann": ["ya29.ok"]}) as server:
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
            server.client("ann", token="expired")
        gc.collect()  # a leaked socket would be a ResourceWarning, an error in this suite
        with pytest.raises(ValueError, match="mechanism must be 'XOAUTH2' or 'OAUTHBEARER'"):
            server.client("ann", token="ya29.ok", mechanism="PLAIN")
        server.wait_for_sessions(2)
        assert [s.user for s in server.history.sessions] == [None, None]
