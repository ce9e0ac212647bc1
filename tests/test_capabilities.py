"""CAPA (RFC 2449) and switching each capability off, as a test drives a client's fallbacks."""

from __future__ import annotations

import base64
import hashlib
import poplib
from collections.abc import Callable, Iterator

import pytest

from fakepop3 import POP3Server
from fakepop3.protocol import CAPABILITIES

PASSWORD = "secret"


def open_client(server: POP3Server) -> poplib.POP3:
    return poplib.POP3(server.host, server.port, timeout=10)


def login(client: poplib.POP3) -> None:
    client.user("alice")
    client.pass_(PASSWORD)


@pytest.fixture
def server() -> Iterator[POP3Server]:
    with POP3Server(users={"alice": PASSWORD}, tls=True) as server:
        server.mailbox("alice").add(b"Subject: x\r\n\r\nbody\r\n")
        yield server
        server.raise_errors()


def test_default_capabilities_before_and_after_login(server: POP3Server) -> None:
    client = open_client(server)
    before = client.capa()
    assert before == {
        "TOP": [],
        "UIDL": [],
        "RESP-CODES": [],
        "PIPELINING": [],
        "AUTH-RESP-CODE": [],
        "USER": [],
        "SASL": ["CRAM-MD5", "OAUTHBEARER", "XOAUTH2", "PLAIN", "LOGIN"],
        "STLS": [],
        "LANG": [],
    }
    login(client)
    after = client.capa()
    # RFC 2449 s5: what AUTHORIZATION offered is announced in TRANSACTION too;
    # IMPLEMENTATION may appear only there.
    assert after == {**before, "IMPLEMENTATION": ["fakepop3"]}
    client.quit()


def test_utf8_is_offered_only_when_asked_for() -> None:
    # Off by default, as on Dovecot, Gmail and Outlook: no UTF8 in CAPA, no UTF8 command.
    with POP3Server(users={"alice": PASSWORD}) as server:
        client = open_client(server)
        assert "UTF8" not in client.capa()
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR Unknown command"):
            client.utf8()
        client.quit()
    with POP3Server(users={"alice": PASSWORD}, utf8=True) as server:
        client = open_client(server)
        assert client.capa()["UTF8"] == ["USER"]
        login(client)
        assert client.capa()["UTF8"] == ["USER"]  # RFC 6856 s2: announced in both states
        client.quit()


def _apop(client: poplib.POP3) -> bytes:
    return client._shortcmd("APOP alice " + hashlib.md5(b"x").hexdigest())


# capability -> (needs login, the command it stands for)
COMMANDS: dict[str, tuple[bool, Callable[[poplib.POP3], object]]] = {
    "TOP": (True, lambda c: c.top(1, 0)),
    "UIDL": (True, lambda c: c.uidl()),
    "USER": (False, lambda c: c.user("alice")),
    "SASL": (False, lambda c: c._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0a\0b").decode())),
    "APOP": (False, _apop),
    "STLS": (False, lambda c: c._shortcmd("STLS")),
    "UTF8": (False, lambda c: c.utf8()),
    "LANG": (False, lambda c: c._shortcmd("LANG en")),
    "CAPA": (False, lambda c: c._shortcmd("CAPA")),
}


@pytest.mark.parametrize("capability", sorted(CAPABILITIES))
def test_each_capability_can_be_switched_off(capability: str) -> None:
    # utf8=True: UTF8 is off by default, and switching off what is on is what is tested.
    with POP3Server(
        users={"alice": PASSWORD}, tls=True, utf8=True, disable={capability.lower()}
    ) as server:
        server.mailbox("alice").add(b"Subject: x\r\n\r\nbody\r\n")
        client = open_client(server)
        if capability == "CAPA":
            with pytest.raises(poplib.error_proto, match="CAPA not supported"):
                client.capa()
        else:
            caps = client.capa()
            assert capability not in caps
            if capability != "USER":
                login(client)
            else:
                client.apop("alice", PASSWORD)
            assert capability not in client.capa()
            client.quit()
            client = open_client(server)
        if capability in COMMANDS:
            needs_login, command = COMMANDS[capability]
            if needs_login:
                login(client)
            with pytest.raises(poplib.error_proto, match=r"^b'-ERR Unknown command"):
                command(client)
        client.quit()
        server.wait_for_sessions(2 if capability != "CAPA" else 1)
        server.raise_errors()


def test_apop_off_leaves_the_timestamp_out_of_the_greeting() -> None:
    with POP3Server(users={"alice": PASSWORD}, disable={"APOP"}) as server:
        client = open_client(server)
        assert b"<" not in client.getwelcome()
        with pytest.raises(poplib.error_proto, match="APOP not supported"):
            client.apop("alice", PASSWORD)
        client.quit()


def test_resp_codes_off_strips_codes_and_auth_resp_code() -> None:
    with POP3Server(users={"alice": PASSWORD}, disable={"RESP-CODES"}) as server:
        client = open_client(server)
        caps = client.capa()
        assert "RESP-CODES" not in caps and "AUTH-RESP-CODE" not in caps
        client.user("alice")
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR Authentication failed"):
            client.pass_("wrong")
        client.quit()


def test_auth_resp_code_off_keeps_other_codes() -> None:
    with POP3Server(users={"alice": PASSWORD}, disable={"AUTH-RESP-CODE"}) as server:
        first = open_client(server)
        login(first)
        second = open_client(server)
        assert "RESP-CODES" in second.capa() and "AUTH-RESP-CODE" not in second.capa()
        second.user("alice")
        with pytest.raises(poplib.error_proto, match=r"^b'-ERR Authentication failed"):
            second.pass_("wrong")
        second.user("alice")
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            second.pass_(PASSWORD)
        second.quit()
        first.quit()


def test_user_off_still_allows_sasl_and_apop() -> None:
    with POP3Server(users={"alice": PASSWORD}, disable={"USER"}) as server:
        client = open_client(server)
        with pytest.raises(poplib.error_proto, match="Unknown command"):
            client.pass_(PASSWORD)
        plain = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        assert client._shortcmd(f"AUTH PLAIN {plain}").startswith(b"+OK")
        client.quit()


def test_unknown_capability_to_disable_is_named() -> None:
    with pytest.raises(ValueError, match="unknown capability to disable: XYZZY; known: APOP"):
        POP3Server(disable={"XYZZY"})


def test_capa_with_arguments_is_refused(server: POP3Server) -> None:
    client = open_client(server)
    with pytest.raises(poplib.error_proto, match="Too many arguments for CAPA"):
        client._shortcmd("CAPA now")
    client.quit()


def test_login_delay_and_expire_in_capa() -> None:
    with POP3Server(users={"alice": PASSWORD}, login_delay=900, expire="NEVER") as server:
        client = open_client(server)
        caps = client.capa()
        assert caps["LOGIN-DELAY"] == ["900"] and caps["EXPIRE"] == ["NEVER"]
        login(client)
        caps = client.capa()
        assert caps["LOGIN-DELAY"] == ["900"] and caps["EXPIRE"] == ["NEVER"]
        client.quit()
