"""The control API, driven over HTTP as a test in another language would drive it.

Every response is checked against the OpenAPI document the server serves (its status must be
one the document lists for the endpoint, and a JSON body must match the schema given there), so
the document cannot drift from what the server does.
"""

from __future__ import annotations

import base64
import json
import poplib
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from fakepop3 import POP3Server
from fakepop3.control import openapi_markdown
from fakepop3.control._openapi import openapi_document
from fakepop3.options import RUNTIME_OPTIONS, OptionError

RAW = b"Subject: Raw one\r\nFrom: Ann <ann@example.org>\r\nTo: bob@example.org\r\n\r\nHello.\r\n"


class Reply:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        data = self.json
        assert set(data) == {"error"}, data
        assert isinstance(data["error"], str) and "\n" not in data["error"]
        assert "Traceback" not in data["error"]
        return str(data["error"])


class Api:
    """An HTTP client of one control API that checks each reply against the OpenAPI document."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.doc = openapi_document()

    def __call__(
        self,
        method: str,
        template: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        token: str | None = None,
        query: dict[str, Any] | None = None,
        **params: str,
    ) -> Reply:
        path = template.format(**{k: urllib.parse.quote(v, safe="") for k, v in params.items()})
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = (
            body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        )
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        given = token if token is not None else self.token
        if given is not None:
            request.add_header("Authorization", f"Bearer {given}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = Reply(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            reply = Reply(error.code, error.read(), dict(error.headers))
        self._check(method, template, reply)
        return reply

    def _check(self, method: str, template: str, reply: Reply) -> None:
        item = self.doc["paths"].get(template)
        if item is None or method.lower() not in item:
            assert reply.status in (404, 405), f"{method} {template}: not in the document"
            reply.error  # noqa: B018 - the JSON error shape is checked
            return
        responses = item[method.lower()]["responses"]
        assert str(reply.status) in responses, (
            f"{method} {template} answered {reply.status}, not in the document: {sorted(responses)}"
        )
        content = responses[str(reply.status)].get("content", {})
        if "application/json" in content:
            assert reply.headers["Content-Type"].startswith("application/json")
            schema = {**content["application/json"]["schema"], "components": self.doc["components"]}
            Draft202012Validator(schema).validate(reply.json)


@pytest.fixture
def server() -> Iterator[POP3Server]:
    with POP3Server(users={"alice": "secret"}, control_port=0) as server:
        yield server
    server.raise_errors()


@pytest.fixture
def api(server: POP3Server) -> Api:
    assert server.control_url is not None
    return Api(server.control_url)


def login(server: POP3Server, user: str, password: str) -> poplib.POP3:
    client = poplib.POP3(server.host, server.port, timeout=10)
    client.user(user)
    client.pass_(password)
    return client


# --- the document ---------------------------------------------------------------------------
def test_the_openapi_document_is_valid_and_served(api: Api) -> None:
    reply = api("GET", "/api/v1/openapi.json")
    assert reply.status == 200
    validate_spec(reply.json)  # OpenAPI 3.1, by openapi-spec-validator
    assert reply.json == json.loads(json.dumps(openapi_document()))


def test_the_settings_schema_is_the_options_schema() -> None:
    settings = openapi_document()["components"]["schemas"]["Settings"]["properties"]
    assert set(settings) == set(RUNTIME_OPTIONS)
    for name, option in RUNTIME_OPTIONS.items():
        assert settings[name]["description"] == option.help


def test_the_reference_page_is_the_document() -> None:
    page = Path(__file__).parent.parent / "docs" / "reference" / "control-api.md"
    assert page.read_text("utf-8") == openapi_markdown(), (
        "docs/reference/control-api.md is out of date: python -m fakepop3.control --markdown "
        "> docs/reference/control-api.md"
    )


# --- health, users --------------------------------------------------------------------------
def test_health_says_where_every_listener_is(server: POP3Server, api: Api) -> None:
    data = api("GET", "/health").json
    assert data == {
        "status": "ok",
        "host": server.host,
        "port": server.port,
        "tls_port": None,
        "smtp_port": None,
        "control_port": server.control_port,
    }


def test_users_are_added_changed_listed_and_removed(server: POP3Server, api: Api) -> None:
    reply = api("PUT", "/api/v1/users/{name}", {"password": "pw", "tokens": ["tok"]}, name="bob")
    assert reply.status == 201
    assert reply.json["password"] is True and reply.json["tokens"] == 1
    assert "pw" not in reply.body.decode()  # never the secret
    client = login(server, "bob", "pw")
    client.quit()
    reply = api("PUT", "/api/v1/users/{name}", {"password": "new"}, name="bob")
    assert reply.status == 200
    assert server.mailbox("bob").password == "new"
    assert server.mailbox("bob").tokens == {"tok"}  # a field not given is kept
    assert [u["name"] for u in api("GET", "/api/v1/users").json] == ["alice", "bob"]
    assert api("DELETE", "/api/v1/users/{name}", name="bob").json == {"deleted": "bob"}
    assert "bob" not in server.store
    assert api("DELETE", "/api/v1/users/{name}", name="bob").status == 404


def test_an_apop_secret_apart_from_the_password(server: POP3Server, api: Api) -> None:
    api("PUT", "/api/v1/users/{name}", {"password": "pw", "apop_secret": "apop-only"}, name="carol")
    client = poplib.POP3(server.host, server.port, timeout=10)
    with pytest.raises(poplib.error_proto, match="AUTH"):
        client.apop("carol", "pw")
    client.close()
    client = poplib.POP3(server.host, server.port, timeout=10)
    assert client.apop("carol", "apop-only").startswith(b"+OK")
    client.quit()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({"pasword": "x"}, "unknown key(s) 'pasword'"),
        ({"password": ""}, "non-empty password"),
        ({"tokens": ["two words", 3]}, "list of OAuth tokens"),
        ({"apop_secret": 5}, "apop_secret must be a non-empty string"),
    ],
)
def test_a_bad_user_is_a_400(api: Api, body: Any, message: str) -> None:
    reply = api("PUT", "/api/v1/users/{name}", body, name="dave")
    assert reply.status == 400
    assert message in reply.error


def test_a_bad_user_name_is_a_400(api: Api) -> None:
    reply = api("PUT", "/api/v1/users/{name}", {"password": "x"}, name=" spaced ")
    assert reply.status == 400
    assert "user name" in reply.error


# --- messages -------------------------------------------------------------------------------
def test_a_raw_message_is_stored_byte_for_byte(server: POP3Server, api: Api) -> None:
    reply = api("POST", "/api/v1/users/{name}/messages", RAW, content_type="message/rfc822",
                name="alice")  # fmt: skip
    assert reply.status == 201
    [uid] = reply.json["uids"]
    got = api("GET", "/api/v1/users/{name}/messages/{uid}", name="alice", uid=uid)
    assert got.body == RAW
    assert got.headers["Content-Type"] == "message/rfc822"
    [info] = api("GET", "/api/v1/users/{name}/messages", name="alice").json
    assert info == {
        "number": 1,
        "uid": uid,
        "size": len(RAW),
        "subject": "Raw one",
        "from": "Ann <ann@example.org>",
        "to": "bob@example.org",
        "date": None,
    }
    client = login(server, "alice", "secret")
    assert b"\r\n".join(client.retr(1)[1]) + b"\r\n" == RAW
    client.quit()


def test_a_message_built_from_fields_with_an_attachment(server: POP3Server, api: Api) -> None:
    body = {
        "subject": "Invoice",
        "from": "Shop <shop@example.org>",
        "to": ["alice@example.org"],
        "text": "See the attachment.",
        "headers": {"X-Ticket": "42"},
        "attachments": [
            {"filename": "a.csv", "content_type": "text/csv",
             "content_base64": base64.b64encode(b"x,y\n1,2\n").decode()}
        ],
    }  # fmt: skip
    reply = api("POST", "/api/v1/users/{name}/messages", body, name="alice")
    assert reply.status == 201
    [message] = server.mailbox("alice").messages
    parsed = message.as_email()
    assert parsed["Subject"] == "Invoice" and parsed["X-Ticket"] == "42"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "a.csv"
    assert attachment.get_content() == "x,y\n1,2\n"
    text = api("GET", "/api/v1/users/{name}/messages/{uid}/text", name="alice",
               uid=message.uid).json  # fmt: skip
    assert text["text"].strip() == "See the attachment."
    assert ["Subject", "Invoice"] in text["headers"]


def test_generated_messages_are_those_of_the_python_api(server: POP3Server, api: Api) -> None:
    reply = api("POST", "/api/v1/users/{name}/messages", {"generate": 4, "seed": 7}, name="alice")
    assert reply.status == 201 and len(reply.json["uids"]) == 4
    with POP3Server(users={"x": "y"}) as other:
        other.mailbox("x").generate(4, seed=7)
        expected = [m.raw for m in other.mailbox("x")]
    assert [m.raw for m in server.mailbox("alice")] == expected


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"generate": 0}, 400, "generate must be a whole number from 1 to 100000"),
        ({"generate": 10**9}, 400, "from 1 to 100000"),
        ({"generate": 2, "sede": 1}, 400, "unknown knob 'sede' (did you mean 'seed'?)"),
        ({"subjct": "x"}, 400, "unknown key(s) 'subjct'"),
        ({"attachments": [{"filename": "a", "content_base64": "!!"}]}, 400, "not valid base64"),
        ({"attachments": "a.txt"}, 400, "attachments must be a list"),
        ({"to": 5}, 400, "cannot build the message"),
    ],
)
def test_a_bad_message_is_refused(api: Api, body: Any, status: int, message: str) -> None:
    reply = api("POST", "/api/v1/users/{name}/messages", body, name="alice")
    assert reply.status == status
    assert message in reply.error


def test_message_errors(api: Api) -> None:
    reply = api("POST", "/api/v1/users/{name}/messages", b"", content_type="message/rfc822",
                name="alice")  # fmt: skip
    assert reply.status == 400 and "empty" in reply.error
    reply = api("POST", "/api/v1/users/{name}/messages", b"x", content_type="image/png",
                name="alice")  # fmt: skip
    assert reply.status == 415 and "message/rfc822" in reply.error
    reply = api("POST", "/api/v1/users/{name}/messages", b"{not json", name="alice")
    assert reply.status == 400 and "not valid JSON" in reply.error
    assert api("GET", "/api/v1/users/{name}/messages", name="nobody").status == 404
    reply = api("GET", "/api/v1/users/{name}/messages/{uid}", name="alice", uid="nope")
    assert reply.status == 404 and "no message with uid 'nope'" in reply.error


def test_messages_are_deleted_one_or_all(server: POP3Server, api: Api) -> None:
    uids = api("POST", "/api/v1/users/{name}/messages", {"generate": 3}, name="alice").json["uids"]
    reply = api("DELETE", "/api/v1/users/{name}/messages/{uid}", name="alice", uid=uids[0])
    assert reply.json == {"deleted": [uids[0]]}
    assert server.mailbox("alice").uids == uids[1:]
    assert api("DELETE", "/api/v1/users/{name}/messages", name="alice").json == {
        "deleted": uids[1:]
    }
    assert len(server.mailbox("alice")) == 0
    reply = api("DELETE", "/api/v1/users/{name}/messages/{uid}", name="alice", uid=uids[0])
    assert reply.status == 404


# --- marks and history ----------------------------------------------------------------------
def test_history_since_a_mark_is_the_current_test_case(server: POP3Server, api: Api) -> None:
    client = login(server, "alice", "secret")
    client.stat()
    client.quit()
    mark = api("POST", "/api/v1/marks")
    assert mark.status == 201
    client = login(server, "alice", "secret")
    client.noop()
    client.quit()
    server.wait_for_sessions(2)
    events = api("GET", "/api/v1/history", query={"since": mark.json["mark"]}).json
    assert [(e["event"], e.get("command")) for e in events] == [
        ("command", "USER"),
        ("command", "PASS"),
        ("command", "NOOP"),
        ("command", "QUIT"),
        ("session_end", None),
    ]
    assert events[1]["args"] == ["***"]  # secrets masked
    assert events[-1]["reason"] == "quit"
    everything = api("GET", "/api/v1/history").json
    assert sum(e.get("command") == "STAT" for e in everything) == 1
    only = api("GET", "/api/v1/history", query={"since": 0, "command": "noop"}).json
    assert [e["command"] for e in only] == ["NOOP"]
    assert api("GET", "/api/v1/history", query={"user": "bob"}).json == []
    transcript = api("GET", "/api/v1/history/transcript", query={"since": mark.json["mark"]})
    text = transcript.body.decode()
    assert "C: NOOP" in text and "C: STAT" not in text and "C: PASS ***" in text
    [session] = api("GET", "/api/v1/sessions", query={"since": mark.json["mark"]}).json
    assert session["open"] is False and session["user"] == "alice"
    assert session["transcript"] in text


def test_the_history_endpoint_shows_each_lint_finding_beside_its_command() -> None:
    with POP3Server(users={"alice": "secret"}, control_port=0, lint=True) as server:
        server.mailbox("alice").extend([b"Subject: a\r\n\r\nA\r\n"])
        assert server.control_url is not None
        api = Api(server.control_url)
        client = poplib.POP3(server.host, server.port, timeout=10)
        with pytest.raises(poplib.error_proto, match="only valid after login"):
            client.stat()  # a mail command before login
        client.user("alice")
        client.pass_("secret")
        client.dele(1)
        client.close()  # no QUIT: the DELE is lost
        server.wait_for_sessions(1)
        events = api("GET", "/api/v1/history").json
        [session] = api("GET", "/api/v1/sessions").json
    by_command = {e.get("command"): e["lint"] for e in events}
    assert by_command["STAT"] == [
        {"rule": "wrong-state", "text": "a mail command before login (AUTHORIZATION state)"}
    ]
    assert by_command["USER"] == [] and by_command["DELE"] == []
    end = events[-1]
    assert end["event"] == "session_end"
    assert [f["rule"] for f in end["lint"]] == ["dropped-with-deletions"]
    assert session["lint"] == end["lint"]
    assert session["commands"][0]["lint"][0]["rule"] == "wrong-state"
    server.errors.clear()


def test_a_hold_is_made_listed_and_released_over_http(server: POP3Server, api: Api) -> None:
    server.mailbox("alice").extend([b"Subject: a\r\n\r\nA\r\n", b"Subject: b\r\n\r\nB\r\n"])
    made = api("POST", "/api/v1/holds", {"command": "RETR", "nth": 2})
    assert made.status == 201
    assert made.json == {
        "id": 1,
        "description": "hold the reply until released [rule 1: on RETR nth=2]",
        "held": 0,
        "waiting": 0,
        "released": False,
    }
    client = login(server, "alice", "secret")
    got: list[bytes] = []
    waiting = threading.Thread(target=lambda: got.extend(client.retr(n)[1][-1] for n in (1, 2)))
    waiting.start()
    [gate] = server.faults.holds
    gate.wait_held()  # the event: the 2nd RETR's reply waits at the gate
    assert api("GET", "/api/v1/holds").json == [{**made.json, "held": 1, "waiting": 1}]
    assert waiting.is_alive() and got == [b"A"]  # the client waits for its 2nd reply...
    released = api("POST", "/api/v1/holds/{id}/release", id="1")
    assert released.json == {**made.json, "held": 1, "waiting": 0, "released": True}
    waiting.join(10)
    assert got == [b"A", b"B"]  # ...and has it once released
    client.quit()
    assert api("GET", "/api/v1/faults").json[0]["fired"] == 1


def test_a_test_waits_over_http_for_a_client_to_reach_a_hold(server: POP3Server, api: Api) -> None:
    # What a test in another language does: start its client, then wait (no polling, no sleep)
    # until the client's command waits at the gate, act, release.
    server.mailbox("alice").add(b"Subject: a\r\n\r\nA\r\n")
    api("POST", "/api/v1/holds", {"command": "RETR"})
    assert api("GET", "/api/v1/holds/{id}", id="1").json["held"] == 0  # no held=: at once
    client = login(server, "alice", "secret")
    got: list[bytes] = []
    waiting = threading.Thread(target=lambda: got.extend(client.retr(1)[1]))
    waiting.start()
    reached = api("GET", "/api/v1/holds/{id}", id="1", query={"held": 1, "timeout": 30})
    assert reached.status == 200
    assert reached.json["held"] == 1 and reached.json["waiting"] == 1
    assert waiting.is_alive() and got == []
    server.mailbox("alice").add(b"Subject: later\r\n\r\nB\r\n")  # acting while it waits
    api("POST", "/api/v1/holds/{id}/release", id="1")
    waiting.join(10)
    assert got[-1] == b"A"
    client.quit()


def test_a_wait_for_a_hold_that_is_not_reached_times_out_clearly(api: Api) -> None:
    api("POST", "/api/v1/holds", {"command": "RETR"})
    reply = api("GET", "/api/v1/holds/{id}", id="1", query={"held": 1, "timeout": 0.05})
    assert reply.status == 504
    assert reply.error == "waited 0.05s for 1 held repl(ies); 0 held"
    for query, text in [
        ({"held": "x"}, "held must be a whole number, 0 or more, not 'x'"),
        ({"held": -1}, "held must be a whole number, 0 or more, not '-1'"),
        ({"held": 1, "timeout": 0}, "timeout must be seconds, more than 0 and at most 60, not '0'"),
        ({"held": 1, "timeout": 61}, "timeout must be seconds, more than 0 and at most 60"),
    ]:
        reply = api("GET", "/api/v1/holds/{id}", id="1", query=query)
        assert reply.status == 400 and text in reply.error, (query, reply.error)
    assert api("GET", "/api/v1/holds/{id}", id="9").status == 404


def test_bad_holds_are_refused(api: Api) -> None:
    assert api("POST", "/api/v1/holds/{id}/release", id="7").status == 404
    reply = api("POST", "/api/v1/holds", {"command": "RETR", "action": "error"})
    assert reply.status == 400 and "action is 'hold'" in reply.error
    reply = api("POST", "/api/v1/holds", {"command": "RETR", "seconds": 1})
    assert reply.status == 400 and "unknown key(s) 'seconds'" in reply.error
    assert api("POST", "/api/v1/holds", ["RETR"]).status == 400


def test_a_reset_releases_the_held_clients_and_closes_a_baseline_gate_again() -> None:
    from fakepop3 import Faults

    faults = Faults.from_config([{"command": "STAT", "action": "hold"}])  # the baseline's
    with POP3Server(users={"alice": "secret"}, control_port=0, faults=faults) as server:
        assert server.control_url is not None
        api = Api(server.control_url)
        api("POST", "/api/v1/holds", {"command": "NOOP"})  # this test case's own
        client = login(server, "alice", "secret")
        errors: list[BaseException] = []

        def stat() -> None:
            try:
                client.stat()
            except (poplib.error_proto, OSError) as error:
                errors.append(error)

        waiting = threading.Thread(target=stat)
        waiting.start()
        baseline_gate = faults.holds[0]
        baseline_gate.wait_held()
        case_gate = faults.holds[1]
        assert api("POST", "/api/v1/reset").status == 200
        waiting.join(10)
        assert not waiting.is_alive() and errors  # not left waiting: its session was ended
        assert case_gate.released  # released, and its rule gone with the test case
        assert [h["description"] for h in api("GET", "/api/v1/holds").json] == [
            "hold the reply until released [rule 1: on STAT]"
        ]
        assert not baseline_gate.released and baseline_gate.held == 0  # it holds again
        client.close()


@pytest.mark.parametrize("since", ["-1", "x", "1.5"])
def test_a_bad_mark_is_a_400(api: Api, since: str) -> None:
    reply = api("GET", "/api/v1/history", query={"since": since})
    assert reply.status == 400 and "since must be a mark" in reply.error


# --- faults ---------------------------------------------------------------------------------
def test_a_fault_armed_for_one_case_fires_and_is_listed(server: POP3Server, api: Api) -> None:
    server.mailbox("alice").add(RAW)
    rule = api("POST", "/api/v1/faults", {"command": "RETR", "action": "error", "text": "Later",
                                           "code": "SYS/TEMP"})  # fmt: skip
    assert rule.status == 201
    client = login(server, "alice", "secret")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[SYS/TEMP\] Later"):
        client.retr(1)
    client.quit()
    [listed] = api("GET", "/api/v1/faults").json
    assert listed["id"] == rule.json["id"] and listed["fired"] == 1 and listed["seen"] == 1
    assert api("DELETE", "/api/v1/faults/{id}", id=str(listed["id"])).json == {
        "deleted": [listed["id"]]
    }
    assert api("DELETE", "/api/v1/faults/{id}", id=str(listed["id"])).status == 404
    api("POST", "/api/v1/faults", {"on": "connect", "action": "refuse"})
    api("POST", "/api/v1/faults", {"command": "STAT", "action": "delay", "seconds": 0.01})
    assert len(api("DELETE", "/api/v1/faults").json["deleted"]) == 2
    assert len(server.faults) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"command": "RETR"}, "'action' is missing"),
        ({"command": "RETR", "action": "explode"}, "action"),
        ({"command": "RETR", "action": "error", "txt": "x"}, "unknown key(s) 'txt'"),
        ({"command": "RETR", "action": "delay"}, "'seconds' is missing"),
        ([{"command": "RETR", "action": "error"}], "must be a JSON object"),
    ],
)
def test_a_bad_fault_is_a_400(api: Api, body: Any, message: str) -> None:
    reply = api("POST", "/api/v1/faults", body)
    assert reply.status == 400
    assert message in reply.error


def test_faults_of_a_custom_hook_are_a_409() -> None:
    class Hook:
        armed = False

    with POP3Server(control_port=0, faults=Hook()) as server:  # type: ignore[arg-type]
        assert server.control_url is not None
        reply = Api(server.control_url)("GET", "/api/v1/faults")
        assert reply.status == 409 and "custom hook" in reply.error


# --- settings -------------------------------------------------------------------------------
def test_settings_changed_at_run_time_reach_the_next_session(server: POP3Server, api: Api) -> None:
    before = api("GET", "/api/v1/settings").json
    assert before == server.current_settings()
    assert set(before) == set(RUNTIME_OPTIONS)
    open_client = login(server, "alice", "secret")
    reply = api("PATCH", "/api/v1/settings", {"disable": ["uidl"], "greeting": "Dovecot ready."})
    assert reply.json["disable"] == ["UIDL"] and reply.json["greeting"] == "Dovecot ready."
    assert "UIDL" in open_client.capa()  # an open session keeps what it started with
    open_client.quit()
    client = poplib.POP3(server.host, server.port, timeout=10)
    assert client.getwelcome().startswith(b"+OK Dovecot ready.")
    assert "UIDL" not in client.capa()
    client.quit()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"disabel": ["UIDL"]},
            "'disabel' cannot be changed at run time (did you mean 'disable'?)",
        ),
        ({"port": 1}, "'port' cannot be changed at run time"),
        ({"disable": ["BOGUS"]}, "unknown capability to disable: BOGUS"),
        ({"greeting": "two\r\nlines"}, "greeting must be one line of text"),
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
        ({"require_tls": True}, "require_tls needs TLS"),
        ({}, "at least one option"),
        ([], "at least one option"),
    ],
)
def test_a_bad_setting_is_a_400_and_changes_nothing(
    server: POP3Server, api: Api, body: Any, message: str
) -> None:
    before = server.current_settings()
    reply = api("PATCH", "/api/v1/settings", body)
    assert reply.status == 400
    assert message in reply.error
    assert server.current_settings() == before


def test_configure_in_python_checks_like_the_constructor() -> None:
    with POP3Server(users={"alice": "secret"}) as server:
        with pytest.raises(OptionError, match="max_bad_commands must be"):
            server.configure(max_bad_commands=-1)
        server.configure(max_bad_commands=1, timeout=None)
        assert server.settings.max_bad_commands == 1 and server.timeout is None


# --- resets and snapshots -------------------------------------------------------------------
def test_reset_puts_back_users_mail_faults_and_settings(server: POP3Server, api: Api) -> None:
    server.mailbox("alice").add(RAW)  # before the first change: part of the baseline
    api("PUT", "/api/v1/users/{name}", {"password": "pw"}, name="bob")
    api("POST", "/api/v1/users/{name}/messages", {"generate": 2}, name="alice")
    api("POST", "/api/v1/faults", {"command": "STAT", "action": "error"})
    api("PATCH", "/api/v1/settings", {"disable": ["TOP"]})
    client = login(server, "alice", "secret")
    client.quit()
    server.wait_for_sessions(1)
    assert api("POST", "/api/v1/reset").json == {"resets": 1}
    assert [u["name"] for u in api("GET", "/api/v1/users").json] == ["alice"]
    assert [m.raw for m in server.mailbox("alice")] == [RAW]
    assert api("GET", "/api/v1/faults").json == []
    assert server.current_settings()["disable"] == []
    assert api("GET", "/api/v1/history").json == []


def test_reset_restarts_the_counts_of_fault_rules_given_at_start() -> None:
    with POP3Server(users={"alice": "secret"}, control_port=0) as server:
        server.faults.on("NOOP", nth=1).error("first NOOP")
        assert server.control_url is not None
        api = Api(server.control_url)
        for case in range(1, 3):  # two test cases: nth=1 fires in each
            client = login(server, "alice", "secret")
            with pytest.raises(poplib.error_proto, match="first NOOP"):
                client.noop()
            client.noop()
            client.quit()
            server.wait_for_sessions(case)
            assert server.faults.rules[0].fired == 1
            api("POST", "/api/v1/reset")
        [rule] = server.faults.rules
        assert rule.fired == 0  # counted again from nothing


def test_a_reset_ends_the_open_session_and_frees_its_maildrop(server: POP3Server, api: Api) -> None:
    server.mailbox("alice").add(RAW)
    old = login(server, "alice", "secret")
    old.dele(1)
    api("POST", "/api/v1/reset")
    with pytest.raises(poplib.error_proto, match=r"SYS/TEMP\] The server was reset"):
        old.quit()  # never told its deletion succeeded
    old.close()
    new = login(server, "alice", "secret")  # no -ERR [IN-USE]: the lock went with the session
    assert new.stat()[0] == 1
    new.quit()
    server.wait_for_sessions(2)
    assert [s.user for s in server.history.sessions] == ["alice"]  # the new case's only
    assert len(server.mailbox("alice")) == 1


def test_named_snapshots_are_saved_and_restored(server: POP3Server, api: Api) -> None:
    api("POST", "/api/v1/users/{name}/messages", {"generate": 2}, name="alice")
    assert api("POST", "/api/v1/snapshots/{name}", name="two-mails").status == 201
    api("DELETE", "/api/v1/users/{name}/messages", name="alice")
    assert api("GET", "/api/v1/snapshots").json == {"snapshots": ["two-mails"]}
    reply = api("POST", "/api/v1/snapshots/{name}/restore", name="two-mails")
    assert reply.json["restored"] == "two-mails"
    assert len(server.mailbox("alice")) == 2
    assert api("POST", "/api/v1/snapshots/{name}/restore", name="nope").status == 404
    reply = api("POST", "/api/v1/snapshots/{name}", name="../x")
    assert reply.status == 400 and "snapshot name" in reply.error


# --- the token and the address --------------------------------------------------------------
def test_the_token_is_required_on_the_api_but_not_on_health() -> None:
    with POP3Server(control_port=0, control_token="s3cret") as server:
        assert server.control_url is not None
        api = Api(server.control_url)
        reply = api("GET", "/api/v1/users")
        assert reply.status == 401 and "no token" in reply.error
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        reply = api("GET", "/api/v1/users", token="wrong")
        assert reply.status == 401 and "a wrong token" in reply.error
        assert api("GET", "/api/v1/users", token="s3cret").status == 200
        assert api("GET", "/health").status == 200


def test_a_control_api_off_loopback_needs_a_token() -> None:
    with pytest.raises(OptionError, match="not loopback, without a token"):
        POP3Server(control_port=0, control_host="0.0.0.0")
    with POP3Server(control_port=0, control_host="0.0.0.0", control_token="t") as server:
        assert server.control_port


def test_unknown_endpoints_and_methods_are_json_errors(api: Api) -> None:
    reply = api("GET", "/api/v1/nothing")
    assert reply.status == 404 and "no such endpoint: GET /api/v1/nothing" in reply.error
    reply = api("DELETE", "/api/v1/marks")
    assert reply.status == 405 and "DELETE is not allowed" in reply.error


def test_garbage_bodies_never_give_a_traceback(server: POP3Server, api: Api) -> None:
    for template in ("/api/v1/faults", "/api/v1/marks", "/api/v1/reset"):
        for body in (b"\xff\xfe\x00garbage", b"[1, 2", b"null"):
            reply = api("POST", template, body)
            assert reply.status < 500
    for body in (b"\xff", b"null", b"42", b'"s"'):
        assert api("PATCH", "/api/v1/settings", body).status == 400
        assert api("PUT", "/api/v1/users/{name}", body, name="eve").status == 400
    assert server.errors == []


def test_the_control_extra_is_missing_gives_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(RuntimeError, match=r"pip install 'fakepop3\[control\]'"):
        POP3Server(control_port=0).start()


# --- under load -----------------------------------------------------------------------------
def test_requests_while_poplib_sessions_run(server: POP3Server, api: Api) -> None:
    server.mailbox("alice").generate(5, seed=1)
    server.add_user("bob", "pw")
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def sessions() -> None:
        try:
            start.wait()
            for _ in range(20):
                client = login(server, "bob", "pw")
                client.stat()
                client.quit()
        except BaseException as error:
            errors.append(error)

    def requests() -> None:
        try:
            start.wait()
            for i in range(20):
                api("POST", "/api/v1/users/{name}/messages", RAW, content_type="message/rfc822",
                    name="bob")  # fmt: skip
                assert api("GET", "/api/v1/users/{name}/messages", name="alice").status == 200
                api("GET", "/api/v1/history", query={"since": i})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=sessions), threading.Thread(target=requests)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    assert errors == []
    server.wait_for_sessions(20)
    assert len(server.mailbox("bob")) == 20


def test_a_body_over_the_limit_is_a_413(monkeypatch: pytest.MonkeyPatch) -> None:
    from fakepop3.control import _http

    monkeypatch.setattr(_http, "MAX_BODY", 1024)
    with POP3Server(users={"alice": "secret"}, control_port=0) as server:
        assert server.control_url is not None
        reply = Api(server.control_url)(
            "POST", "/api/v1/users/{name}/messages", b"x" * 4096,
            content_type="message/rfc822", name="alice",
        )  # fmt: skip
        assert reply.status == 413 and "larger than 1024 bytes" in reply.error
        assert len(server.mailbox("alice")) == 0
