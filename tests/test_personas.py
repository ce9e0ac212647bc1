"""Personas: a poplib client sees exactly the greeting, CAPA and error texts each shipped
persona's file gives (and the file cites a source for each), Gmail's recent: mode, an OAuth-only
server, a user's own persona file, and the persona option on every surface."""

from __future__ import annotations

import base64
import poplib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from fakepop3 import POP3Server, personas
from fakepop3.cli import main as cli_main
from fakepop3.cli import make_server, options_from
from fakepop3.options import OptionError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FOLDER = Path(personas.__file__).parent
SHIPPED = personas.names()


def _file(name: str) -> dict[str, Any]:
    with (FOLDER / f"{name}.toml").open("rb") as f:
        return tomllib.load(f)


def _status(text: str | None, default: str) -> bytes:
    text = default if text is None else text
    return f"+OK {text}".rstrip().encode() if text else b"+OK"


def _err(text: str) -> bytes:
    return f"-ERR {text}".encode()


def test_the_shipped_personas() -> None:
    assert SHIPPED == (
        "courier",
        "dovecot",
        "exchange",
        "gmail",
        "hmailserver",
        "outlook",
        "qmail",
    )


@pytest.mark.parametrize("name", SHIPPED)
def test_every_value_has_a_source(name: str) -> None:
    data = _file(name)
    sources = data.get("sources", {})
    text = (FOLDER / f"{name}.toml").read_text()
    assert sources, f"{name}: no [sources] table"
    assert text.startswith("#") and "Source" in text.split("\n\n")[0]
    for key, value in data.items():
        if key in ("name", "description", "sources"):
            continue
        if isinstance(value, dict):
            for sub in value:
                assert key in sources or f"{key}.{sub}" in sources, f"{name}: {key}.{sub}"
        else:
            assert key in sources, f"{name}: {key} has no source"


@pytest.mark.parametrize("name", SHIPPED)
def test_a_client_sees_the_persona(name: str) -> None:
    data = _file(name)
    capa = data.get("capa", {})
    errors = data.get("errors", {})
    replies = data.get("replies", {})
    with POP3Server({"alice@example.com": "secret"}, persona=name) as server:
        server.mailbox("alice@example.com").add(b"Subject: hi\r\n\r\nhello\r\n")
        client = poplib.POP3(server.host, server.port)
        welcome = client.getwelcome()
        if data.get("apop"):
            text = data["greeting"]
            assert welcome.startswith(f"+OK {text} <".replace("  ", " ").encode())
            assert welcome.endswith(b"@localhost>")
        else:
            assert welcome == f"+OK {data['greeting']}".encode()
        if capa.get("supported", True):
            status, lines, _ = client._longcmd("CAPA")
            assert status == _status(capa.get("status"), "Capability list follows")
            # STLS shows only where it can be used (this server has no certificate)
            assert [line.decode() for line in lines] == [
                line for line in capa["before_login"] if line != "STLS"
            ]
        else:
            with pytest.raises(poplib.error_proto) as refused:
                client._longcmd("CAPA")
            assert refused.value.args[0] == _err(errors["unknown_command"])
        if "wrong_state" in errors:
            with pytest.raises(poplib.error_proto) as refused:
                client.stat()
            assert refused.value.args[0] == _err(errors["wrong_state"])
        if "no_user" in errors:
            with pytest.raises(poplib.error_proto) as refused:
                client.pass_("secret")
            assert refused.value.args[0] == _err(errors["no_user"])
        assert client.user("alice@example.com") == _status(replies.get("user"), "")
        wrong = errors.get("basic_auth_disabled") or errors.get("wrong_password")
        with pytest.raises(poplib.error_proto) as refused:
            client.pass_("wrong")
        if wrong is not None:
            assert refused.value.args[0] == _err(wrong)
        if data.get("basic_auth", True):
            client.user("alice@example.com")
            assert client.pass_("secret") == _status(replies.get("logged_in"), "Logged in.")
            if capa.get("supported", True):
                _, lines, _ = client._longcmd("CAPA")
                assert [line.decode() for line in lines] == [
                    line for line in capa.get("after_login", capa["before_login"]) if line != "STLS"
                ]
            if "unknown_command" in errors:
                with pytest.raises(poplib.error_proto) as refused:
                    client._shortcmd("XYZZY")
                assert refused.value.args[0] == _err(errors["unknown_command"])
            if "uidl" in data:
                uid = client.uidl(1).split()[-1].decode()
                assert uid.isdigit()  # hMailServer's numeric message ids
        assert client.quit() == _status(replies.get("quit"), "Logging out.")


def test_gmail_exactly() -> None:
    """The values of the evidence written out, so that a changed file fails too."""
    with POP3Server({"alice": "secret"}, persona="gmail") as server:
        client = poplib.POP3(server.host, server.port)
        assert client.getwelcome() == b"+OK Gpop ready for requests from 192.168.1.1 a1b2c3d4e5"
        assert client.capa() == {
            "USER": [],
            "RESP-CODES": [],
            "EXPIRE": ["0"],
            "LOGIN-DELAY": ["300"],
            "TOP": [],
            "UIDL": [],
            "X-GOOGLE-RICO": [],
            "SASL": ["PLAIN", "XOAUTH2", "OAUTHBEARER"],
        }
        assert client.user("alice") == b"+OK send PASS"
        assert client.pass_("secret") == b"+OK Welcome."
        assert client.quit() == b"+OK Farewell."


def _retrieve_all(server: POP3Server, user: str) -> list[bytes]:
    client = poplib.POP3(server.host, server.port)
    try:
        client.user(user)
        client.pass_("secret")
        count = client.stat()[0]
        subjects = [client.retr(n)[1][0] for n in range(1, count + 1)]
        client.quit()
    finally:
        client.close()
    return subjects


def test_gmail_offers_a_message_once_unless_recent() -> None:
    with POP3Server({"alice": "secret"}, persona="gmail") as server:
        box = server.mailbox("alice")
        box.add(b"Subject: one\r\n\r\n1\r\n")
        box.add(b"Subject: two\r\n\r\n2\r\n")
        assert _retrieve_all(server, "alice") == [b"Subject: one", b"Subject: two"]
        # popped: normal mode offers only what came since
        box.add(b"Subject: three\r\n\r\n3\r\n")
        assert _retrieve_all(server, "alice") == [b"Subject: three"]
        assert _retrieve_all(server, "alice") == []
        # recent mode offers everything, popped or not
        assert _retrieve_all(server, "recent:alice") == [
            b"Subject: one",
            b"Subject: two",
            b"Subject: three",
        ]
        # nothing is deleted: the maildrop still holds the three
        assert len(box) == 3


def test_gmail_forgets_what_was_popped_at_a_reset() -> None:
    with POP3Server({"alice": "secret"}, persona="gmail") as server:
        server.mailbox("alice").add(b"Subject: one\r\n\r\n1\r\n")
        server.snapshot()
        assert _retrieve_all(server, "alice") == [b"Subject: one"]
        assert _retrieve_all(server, "alice") == []
        server.reset()  # the next test case starts afresh
        assert _retrieve_all(server, "alice") == [b"Subject: one"]


def test_gmail_a_session_without_quit_pops_nothing() -> None:
    with POP3Server({"alice": "secret"}, persona="gmail") as server:
        server.mailbox("alice").add(b"Subject: one\r\n\r\n1\r\n")
        client = poplib.POP3(server.host, server.port)
        client.user("alice")
        client.pass_("secret")
        client.retr(1)
        client.close()  # dropped: no QUIT
        server.wait_for_sessions(1)  # its end seen, the maildrop released
        assert _retrieve_all(server, "alice") == [b"Subject: one"]


def test_without_a_persona_every_login_sees_every_message() -> None:
    with POP3Server({"alice": "secret"}) as server:
        server.mailbox("alice").add(b"Subject: one\r\n\r\n1\r\n")
        assert _retrieve_all(server, "alice") == [b"Subject: one"]
        assert _retrieve_all(server, "alice") == [b"Subject: one"]
        with pytest.raises(poplib.error_proto):
            _retrieve_all(server, "recent:alice")  # no such user without the persona


def test_outlook_takes_oauth_only() -> None:
    with POP3Server(tokens={"alice@example.com": ["tok"]}, persona="outlook") as server:
        server.add_user("alice@example.com", "secret")
        server.mailbox("alice@example.com").add(b"Subject: hi\r\n\r\nhello\r\n")
        client = poplib.POP3(server.host, server.port)
        client.user("alice@example.com")
        with pytest.raises(poplib.error_proto) as refused:
            client.pass_("secret")  # the right password, refused all the same
        assert refused.value.args[0] == b"-ERR Logon failure: unknown user name or bad password."
        plain = base64.b64encode(b"\0alice@example.com\0secret").decode()
        with pytest.raises(poplib.error_proto) as refused:
            client._shortcmd(f"AUTH PLAIN {plain}")
        assert refused.value.args[0] == b"-ERR Logon failure: unknown user name or bad password."
        bad = base64.b64encode(b"user=alice@example.com\x01auth=Bearer nope\x01\x01").decode()
        assert client._shortcmd("AUTH XOAUTH2").startswith(b"+")
        # XOAUTH2 answers a bad token with an error challenge; the client's empty line ends it
        assert client._shortcmd(bad).startswith(b"+ ")
        with pytest.raises(poplib.error_proto) as refused:
            client._shortcmd("")
        assert refused.value.args[0] == (
            b"-ERR Authentication failure: unknown user name or bad password."
        )
        # Microsoft's two-line exchange: AUTH XOAUTH2, then the token
        good = base64.b64encode(b"user=alice@example.com\x01auth=Bearer tok\x01\x01").decode()
        assert client._shortcmd("AUTH XOAUTH2").startswith(b"+")
        assert client._shortcmd(good).startswith(b"+OK")
        assert client.stat() == (1, len(b"Subject: hi\r\n\r\nhello\r\n"))
        client.quit()


TLS_FIRST = """\
# A server of my own: TLS before any login.
name = "tls-first"
greeting = "mail.example.com POP3 ready"
require_tls = true
timeout = 30

[capa]
before_login = ["TOP", "UIDL", "STLS"]
after_login = ["TOP", "UIDL", "USER", "IMPLEMENTATION Example"]

[errors]
tls_required = "[AUTH] Use STLS first."
unknown_user = "[AUTH] No such user."
wrong_password = "[AUTH] Wrong password."
"""


def test_a_persona_file_of_ones_own(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(TLS_FIRST)
    with POP3Server({"alice": "secret"}, persona_file=path) as server:
        assert server.timeout == 30
        assert server.persona is not None and server.persona.name == "tls-first"
        client = poplib.POP3(server.host, server.port)
        assert client.getwelcome() == b"+OK mail.example.com POP3 ready"
        assert client._longcmd("CAPA")[1] == [b"TOP", b"UIDL", b"STLS"]
        with pytest.raises(poplib.error_proto) as refused:
            client.user("alice")
        assert refused.value.args[0] == b"-ERR [AUTH] Use STLS first."
        client.stls(server.tls.client_context())  # type: ignore[union-attr]
        # after TLS: STLS is gone from the list the file gives
        assert client._longcmd("CAPA")[1] == [b"TOP", b"UIDL"]
        client.user("bob")
        with pytest.raises(poplib.error_proto) as refused:
            client.pass_("secret")
        assert refused.value.args[0] == b"-ERR [AUTH] No such user."
        client.user("alice")
        with pytest.raises(poplib.error_proto) as refused:
            client.pass_("wrong")
        assert refused.value.args[0] == b"-ERR [AUTH] Wrong password."
        client.user("alice")
        client.pass_("secret")
        assert client._longcmd("CAPA")[1] == [b"TOP", b"UIDL", b"USER", b"IMPLEMENTATION Example"]
        client.quit()


def test_the_persona_texts_of_a_locked_maildrop_and_login_delay(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        "login_delay = 60\nenforce_login_delay = true\n[errors]\n"
        'mailbox_locked = "[IN-USE] Busy."\nlogin_too_soon = "[LOGIN-DELAY] Wait."\n'
    )
    with POP3Server({"alice": "secret", "bob": "pw"}, persona_file=path) as server:
        first = poplib.POP3(server.host, server.port)
        first.user("bob")
        first.pass_("pw")
        again = poplib.POP3(server.host, server.port)
        again.user("alice")
        again.pass_("secret")
        other = poplib.POP3(server.host, server.port)
        other.user("alice")
        with pytest.raises(poplib.error_proto) as refused:
            other.pass_("secret")
        assert refused.value.args[0] == b"-ERR [LOGIN-DELAY] Wait."
        other.close()
        again.quit()
        first.quit()
    path.write_text('[errors]\nmailbox_locked = "[IN-USE] Busy."\n')
    with POP3Server({"alice": "secret"}, persona_file=path) as server:
        first = poplib.POP3(server.host, server.port)
        first.user("alice")
        first.pass_("secret")
        second = poplib.POP3(server.host, server.port)
        second.user("alice")
        with pytest.raises(poplib.error_proto) as refused:
            second.pass_("secret")
        assert refused.value.args[0] == b"-ERR [IN-USE] Busy."
        second.close()
        first.quit()


def test_options_given_win_over_the_persona() -> None:
    with POP3Server({"alice": "secret"}, persona="gmail", greeting="mine", disable=["TOP"]) as s:
        client = poplib.POP3(s.host, s.port)
        assert client.getwelcome() == b"+OK mine"
        client.user("alice")
        client.pass_("secret")
        with pytest.raises(poplib.error_proto):
            client.top(1, 0)
        client.quit()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"persona": "gmial"},
            "persona must be the name of a shipped persona, not 'gmial' (did you mean 'gmail'?)",
        ),
        ({"persona": "gmail", "persona_file": "x.toml"}, "persona and persona_file go alone"),
        ({"persona_file": "/nonexistent/p.toml"}, "no such file"),
    ],
)
def test_bad_persona_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=re.escape(message)):
        POP3Server(**kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gretting = 'x'\n", "unknown key 'gretting' (did you mean 'greeting'?)"),
        ("[errors]\nwrong_pass = 'x'\n", "unknown key errors.'wrong_pass'"),
        ("greeting = 3\n", "greeting must be one line of text"),
        ("pop_once = 'yes'\n", "pop_once must be true or false"),
        ("uidl = '{nope}'\n", "is not a template of the fields"),
        ("uidl = '{uid} x'\n", "not 1-70 visible ASCII characters"),
        ("[capa]\nbefore_login = 'TOP'\n", "capa.before_login must be a list of strings"),
        ("capa = 1\n", "capa must be a table"),
        ("greeting = \n", "not valid TOML"),
        ("login_delay = -1\n", "login_delay"),
    ],
)
def test_bad_persona_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(OptionError) as error:
        personas.load_file(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_cli_takes_persona_and_persona_file(tmp_path: Path) -> None:
    server = make_server(options_from(["--persona", "dovecot", "--port", "0"], environ={}))
    assert server.persona is not None and server.persona.name == "dovecot"
    path = tmp_path / "p.toml"
    path.write_text(TLS_FIRST)
    server = make_server(options_from(["--persona-file", str(path), "--port", "0"], environ={}))
    assert server.persona is not None and server.persona.name == "tls-first"
    server = make_server(options_from(["--port", "0"], environ={"FAKEPOP3_PERSONA": "qmail"}))
    assert server.persona is not None and server.persona.name == "qmail"


def test_the_cli_refuses_a_bad_persona(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--persona", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fakepop3: error: --persona must be the name of a shipped persona")
    assert err.count("\n") == 1
    assert cli_main(["--persona-file", "/nonexistent/p.toml"]) == 2
    assert "--persona-file /nonexistent/p.toml: no such file" in capsys.readouterr().err


def test_a_config_file_takes_a_persona_file_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(TLS_FIRST)
    config = tmp_path / "fakepop3.toml"
    config.write_text('persona_file = "p.toml"\nport = 0\n')
    server = make_server(options_from(["--config", str(config)], environ={}))
    assert server.persona is not None and server.persona.name == "tls-first"


@pytest.mark.pop3(persona="hmailserver")
def test_the_marker_takes_a_persona(pop3_client: poplib.POP3) -> None:
    assert pop3_client.getwelcome() == b"+OK POP3"
    assert pop3_client._longcmd("CAPA")[1] == [b"USER", b"UIDL", b"TOP"]
