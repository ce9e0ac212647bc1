"""The OpenAPI 3.1 document of the control API (``GET /api/v1/openapi.json``).

The parts that the options schema and the fault dict form already declare are derived from
them, not written again: the settings object from the run-time options
(:data:`fakepop3.options.RUNTIME_OPTIONS`, with their help texts), the fault rule from
the dict form's tables of keys and actions.  ``docs/reference/control-api.md`` is generated from
this document (``python -m fakepop3.control --markdown``), and a test keeps both equal and
checks the document with ``openapi-spec-validator``.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import __version__
from ..faults._dictform import _ACTION_KEYS, _MATCH_KEYS
from ..options import RUNTIME_OPTIONS

__all__ = ["openapi_document"]

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any], kind: str = _JSON) -> dict[str, Any]:
    return {"content": {kind: {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, **_content(schema)}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "a bad body or value",
        401: "no token, or a wrong one",
        404: "an unknown user, message, fault rule or snapshot",
        409: "a conflict with the server's configuration",
        413: "a body over 64 MiB",
        415: "a Content-Type the endpoint does not take",
        504: "what the request waited for did not happen in time",
    }
    return {str(s): {"description": texts[s], **_content(_ref("Error"))} for s in (401, *statuses)}


_SCALAR = {
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
}


def _option_schema(type_text: str, help_text: str) -> dict[str, Any]:
    """A JSON schema for an option's Python type as the options schema writes it."""
    parts = [p.strip() for p in type_text.split("|")]
    schemas: list[dict[str, Any]] = []
    for part in parts:
        if part == "None":
            schemas.append({"type": "null"})
        elif part.startswith("Iterable[str]"):
            schemas.append({"type": "array", "items": {"type": "string"}})
        else:
            schemas.append(dict(_SCALAR[part]))
    schema: dict[str, Any] = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    return {**schema, "description": help_text}


def _settings_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The options that can change while the server runs; the next session "
        "sees them.",
        "additionalProperties": False,
        "properties": {name: _option_schema(o.type, o.help) for name, o in RUNTIME_OPTIONS.items()},
    }


def _fault_schema() -> dict[str, Any]:
    """A fault rule in the dict form of the TOML ``[[faults]]`` tables and the marker."""
    keys: dict[str, dict[str, Any]] = {}
    actions: set[str] = set()
    for on, table in _ACTION_KEYS.items():
        actions.update(table)
        for key in _MATCH_KEYS[on]:
            keys[key] = {}
        for params in table.values():
            for key in params:
                keys[key] = {}
    return {
        "type": "object",
        "description": "A fault rule as in the TOML [[faults]] tables (docs/faults.md): "
        "'on' is command (default), connect, mailbox or time (the default when 'after' is "
        "given: a timed delivery).",
        "required": ["action"],
        "properties": {
            "on": {"enum": sorted(_ACTION_KEYS)},
            "action": {"enum": sorted(actions)},
            **dict(sorted(keys.items())),
        },
        "additionalProperties": False,
    }


def _hold_schema() -> dict[str, Any]:
    """A hold: a command rule of the dict form whose action is hold (which may be left out)."""
    keys: dict[str, Any] = {k: {} for k in _MATCH_KEYS["command"]}
    return {
        "type": "object",
        "description": "A hold rule: the command it holds and the matching keys of a fault "
        "rule (docs/faults.md, Hold and release).",
        "required": ["command"],
        "properties": {"action": {"const": "hold"}, **keys},
        "additionalProperties": False,
    }


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "one line: what is wrong"}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "host", "port"],
        "properties": {
            "status": {"const": "ok"},
            "host": {"type": "string"},
            "port": {"type": "integer"},
            "tls_port": {"type": ["integer", "null"]},
            "smtp_port": {"type": ["integer", "null"]},
            "control_port": {"type": ["integer", "null"]},
        },
    },
    "User": {
        "type": "object",
        "required": ["name", "messages"],
        "properties": {
            "name": {"type": "string"},
            "messages": {"type": "integer"},
            "password": {"type": "boolean", "description": "whether a password is set"},
            "apop_secret": {"type": "boolean", "description": "whether an APOP secret is set"},
            "tokens": {"type": "integer", "description": "how many OAuth tokens"},
            "in_session": {"type": "boolean", "description": "a session holds the maildrop"},
        },
    },
    "UserChange": {
        "type": "object",
        "additionalProperties": False,
        "description": "The fields given are set; the others are kept.",
        "properties": {
            "password": {"type": ["string", "null"], "description": "null: token-only user"},
            "apop_secret": {"type": ["string", "null"], "description": "null: the password"},
            "tokens": {"type": "array", "items": {"type": "string"}},
        },
    },
    "MessageInfo": {
        "type": "object",
        "required": ["number", "uid", "size"],
        "properties": {
            "number": {"type": "integer", "description": "1-based, as a new session sees it"},
            "uid": {"type": "string"},
            "size": {"type": "integer", "description": "octets, as LIST reports"},
            "subject": {"type": ["string", "null"]},
            "from": {"type": ["string", "null"]},
            "to": {"type": ["string", "null"]},
            "date": {"type": ["string", "null"]},
        },
    },
    "MessageBuild": {
        "type": "object",
        "description": "Fields of fakepop3.builder.build_message ('from' is the sender), or "
        '{"generate": COUNT, "seed": SEED, ...generator knobs}.',
        "properties": {
            "subject": {"type": "string"},
            "from": {"type": "string"},
            "to": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "cc": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "text": {"type": "string"},
            "html": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["filename"],
                    "properties": {
                        "filename": {"type": "string"},
                        "content_type": {"type": "string"},
                        "content_base64": {"type": "string"},
                    },
                },
            },
            "generate": {"type": "integer", "minimum": 1, "maximum": 100000},
            "seed": {"type": "integer"},
        },
    },
    "MessageText": {
        "type": "object",
        "properties": {
            "uid": {"type": "string"},
            "headers": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
            "text": {"type": "string"},
        },
    },
    "Uids": {
        "type": "object",
        "required": ["uids"],
        "properties": {"uids": {"type": "array", "items": {"type": "string"}}},
    },
    "Deleted": {
        "type": "object",
        "required": ["deleted"],
        "properties": {"deleted": {}},
    },
    "Mark": {
        "type": "object",
        "required": ["mark"],
        "properties": {"mark": {"type": "integer", "description": "pass as since=MARK"}},
    },
    "Event": {
        "type": "object",
        "description": "A line of the JSONL history: a command (event 'command', the fields of "
        "CommandRecord.to_dict) or a session's end (event 'session_end'); secrets masked.",
        "required": ["event", "session"],
        "properties": {
            "event": {"enum": ["command", "session_end"]},
            "session": {"type": "integer"},
            "user": {"type": ["string", "null"]},
            "command": {},
            "args": {"type": "array", "items": {"type": "string"}},
            "reply": {"type": "string"},
            "fault": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
            "lint": {
                "type": "array",
                "description": "the lint findings (lint=True) on this command, or on the "
                "session's end",
                "items": {"$ref": "#/components/schemas/LintFinding"},
            },
        },
    },
    "LintFinding": {
        "type": "object",
        "required": ["rule", "text"],
        "properties": {
            "rule": {"type": "string", "description": "a name of fakepop3.faults.LINT_RULES"},
            "text": {"type": "string"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["session", "open", "commands", "transcript"],
        "properties": {
            "session": {"type": "integer"},
            "client": {"type": "string"},
            "user": {"type": ["string", "null"]},
            "tls": {"type": "boolean"},
            "open": {"type": "boolean"},
            "reason": {"type": ["string", "null"]},
            "lint": {"type": "array", "items": {"$ref": "#/components/schemas/LintFinding"}},
            "commands": {"type": "array", "items": {"type": "object"}},
            "transcript": {"type": "string"},
        },
    },
    "FaultRule": {
        "type": "object",
        "required": ["id", "description", "seen", "fired"],
        "properties": {
            "id": {"type": "integer"},
            "description": {"type": "string"},
            "seen": {"type": "integer", "description": "how often it matched"},
            "fired": {"type": "integer", "description": "how often it fired"},
        },
    },
    "Hold": {
        "type": "object",
        "required": ["id", "description", "held", "waiting", "released"],
        "properties": {
            "id": {"type": "integer", "description": "the hold rule's id (as in /api/v1/faults)"},
            "description": {"type": "string"},
            "held": {"type": "integer", "description": "replies held so far"},
            "waiting": {"type": "integer", "description": "replies waiting at the gate now"},
            "released": {"type": "boolean"},
        },
    },
    "Resets": {
        "type": "object",
        "required": ["resets"],
        "properties": {"resets": {"type": "integer"}, "restored": {"type": "string"}},
    },
    "Snapshots": {
        "type": "object",
        "properties": {"snapshots": {"type": "array", "items": {"type": "string"}}},
    },
}

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_UID = {"name": "uid", "in": "path", "required": True, "schema": {"type": "string"}}
_SINCE = {
    "name": "since",
    "in": "query",
    "schema": {"type": "integer", "minimum": 0},
    "description": "a mark from POST /api/v1/marks: only the sessions that started after it",
}


def array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _op(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **more}


def _body(schema: dict[str, Any], kind: str = _JSON) -> dict[str, Any]:
    return {"requestBody": {"required": True, **_content(schema, kind)}}


def _paths() -> dict[str, Any]:
    return {
        "/health": {
            "get": {
                **_op("Ready: every listener is up", _ok("the addresses", _ref("Health"))),
                "security": [],
            }
        },
        "/api/v1/users": {"get": _op("The users", {**_ok("users", array("User")), **_errors()})},
        "/api/v1/users/{name}": {
            "parameters": [_NAME],
            "put": _op(
                "Add a user, or change one",
                {
                    **_ok("changed", _ref("User")),
                    **_ok("added", _ref("User"), "201"),
                    **_errors(400),
                },
                **_body(_ref("UserChange")),
            ),
            "delete": _op("Remove a user", {**_ok("removed", _ref("Deleted")), **_errors(404)}),
        },
        "/api/v1/users/{name}/messages": {
            "parameters": [_NAME],
            "get": _op(
                "A user's messages", {**_ok("messages", array("MessageInfo")), **_errors(404)}
            ),
            "post": _op(
                "Add a message: raw, built from fields, or generated",
                {
                    **_ok("the new messages' uids", _ref("Uids"), "201"),
                    **_errors(400, 404, 413, 415),
                },
                requestBody={
                    "required": True,
                    "content": {
                        "message/rfc822": {"schema": {"type": "string"}},
                        _JSON: {"schema": _ref("MessageBuild")},
                    },
                },
            ),
            "delete": _op(
                "Remove every message", {**_ok("removed", _ref("Deleted")), **_errors(404)}
            ),
        },
        "/api/v1/users/{name}/messages/{uid}": {
            "parameters": [_NAME, _UID],
            "get": _op(
                "A message's bytes",
                {
                    "200": {
                        "description": "the message",
                        **_content({"type": "string"}, "message/rfc822"),
                    },
                    **_errors(404),
                },
            ),
            "delete": _op("Remove a message", {**_ok("removed", _ref("Deleted")), **_errors(404)}),
        },
        "/api/v1/users/{name}/messages/{uid}/text": {
            "parameters": [_NAME, _UID],
            "get": _op(
                "A message's headers and text part",
                {**_ok("headers and text", _ref("MessageText")), **_errors(404)},
            ),
        },
        "/api/v1/marks": {
            "post": _op(
                "Mark the start of a test case",
                {**_ok("the mark", _ref("Mark"), "201"), **_errors()},
            )
        },
        "/api/v1/history": {
            "get": _op(
                "The commands and session ends since a mark, as the JSONL history",
                {**_ok("events in order", array("Event")), **_errors(400)},
                parameters=[
                    _SINCE,
                    {"name": "user", "in": "query", "schema": {"type": "string"}},
                    {"name": "command", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/api/v1/history/transcript": {
            "get": _op(
                "The transcript since a mark, as a failed pytest test's report shows it",
                {
                    "200": {
                        "description": "plain text",
                        **_content({"type": "string"}, "text/plain"),
                    },
                    **_errors(400),
                },
                parameters=[_SINCE],
            )
        },
        "/api/v1/sessions": {
            "get": _op(
                "The sessions since a mark, open or ended, with transcripts",
                {**_ok("sessions", array("Session")), **_errors(400)},
                parameters=[_SINCE],
            )
        },
        "/api/v1/faults": {
            "get": _op(
                "The fault rules, with how often each fired",
                {**_ok("rules", array("FaultRule")), **_errors(409)},
            ),
            "post": _op(
                "Add a fault rule",
                {**_ok("the rule", _ref("FaultRule"), "201"), **_errors(400, 409)},
                **_body(_ref("FaultSpec")),
            ),
            "delete": _op(
                "Remove every fault rule", {**_ok("removed", _ref("Deleted")), **_errors(409)}
            ),
        },
        "/api/v1/faults/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "delete": _op(
                "Remove a fault rule", {**_ok("removed", _ref("Deleted")), **_errors(404, 409)}
            ),
        },
        "/api/v1/holds": {
            "get": _op(
                "The hold rules' gates: held or not, how many replies wait",
                {**_ok("holds", array("Hold")), **_errors(409)},
            ),
            "post": _op(
                "Hold the reply of a matching command until released (the fault dict form, "
                "action hold)",
                {**_ok("the hold", _ref("Hold"), "201"), **_errors(400, 409)},
                **_body(_ref("HoldSpec")),
            ),
        },
        "/api/v1/holds/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "held",
                    "in": "query",
                    "description": "wait until this many replies were held at the gate",
                    "schema": {"type": "integer", "minimum": 0},
                },
                {
                    "name": "timeout",
                    "in": "query",
                    "description": "seconds to wait (default 10, at most 60)",
                    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                },
            ],
            "get": _op(
                "A hold's gate; with held=N, once N replies were held (a client waits there)",
                {**_ok("the hold", _ref("Hold")), **_errors(400, 404, 409, 504)},
            ),
        },
        "/api/v1/holds/{id}/release": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "post": _op(
                "Release a hold: its held replies go, later ones pass",
                {**_ok("the hold", _ref("Hold")), **_errors(404, 409)},
            ),
        },
        "/api/v1/settings": {
            "get": _op(
                "The options that can change at run time",
                {**_ok("values", _ref("Settings")), **_errors()},
            ),
            "patch": _op(
                "Change options for the sessions that start later",
                {**_ok("values now", _ref("Settings")), **_errors(400)},
                **_body(_ref("Settings")),
            ),
        },
        "/api/v1/reset": {
            "post": _op(
                "Back to the baseline: open sessions ended, users, mail and fault rules put "
                "back (counts restarted), history cleared; as SIGHUP",
                {**_ok("how many resets so far", _ref("Resets")), **_errors()},
            )
        },
        "/api/v1/snapshots": {
            "get": _op("The named snapshots", {**_ok("names", _ref("Snapshots")), **_errors()})
        },
        "/api/v1/snapshots/{name}": {
            "parameters": [_NAME],
            "post": _op(
                "Save the users, mail and fault rules under a name",
                {**_ok("saved", {"type": "object"}, "201"), **_errors(400)},
            ),
        },
        "/api/v1/snapshots/{name}/restore": {
            "parameters": [_NAME],
            "post": _op(
                "Put a snapshot back (as a reset does)",
                {**_ok("restored", _ref("Resets")), **_errors(400, 404)},
            ),
        },
        "/api/v1/openapi.json": {
            "get": _op(
                "This document",
                {"200": {"description": "OpenAPI 3.1", **_content({"type": "object"})}},
            )
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the control API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fakepop3 control API",
            "version": __version__,
            "description": "Drive a running fakepop3 server from a test in any language: users, "
            "mail, fault rules, settings, marks and history, resets and snapshots. Errors are "
            '{"error": "one line"}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "only when the server was started with a control token",
                }
            },
            "schemas": {
                **_SCHEMAS,
                "Settings": _settings_schema(),
                "FaultSpec": _fault_schema(),
                "HoldSpec": _hold_schema(),
            },
        },
    }
