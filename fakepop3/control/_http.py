"""The control API's HTTP side: routes, the token, JSON bodies and one-line errors (aiohttp).

Every route calls one method of :class:`~fakepop3.control._ops.Operations`; this module only
turns requests into its arguments and its results or :class:`~fakepop3.control._ops.ApiError`
into responses.  The contract (also in the OpenAPI document, ``_openapi.py``):

* JSON bodies; an error is ``{"error": "one line"}`` with 400 (bad body or value), 401 (no or
  wrong token), 404 (unknown user, message, fault, hold, snapshot or endpoint), 405, 409, 413 or 415;
  never a traceback, and a 500 only for a bug in fakepop3 (also put in ``server.errors``, so the
  test that caused it fails).
* With a token, every ``/api/`` request needs ``Authorization: Bearer TOKEN``; ``/health`` and
  the live page's files (which hold no data) do not.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from ._openapi import openapi_document
from ._ops import ApiError, Operations

__all__ = ["MAX_BODY", "make_app"]

#: The largest request body (a raw message with its attachments).
MAX_BODY = 64 * 1024 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STATIC = {
    "live.js": "text/javascript",
    "live.css": "text/css",
}
_RAW_TYPES = ("message/rfc822", "text/plain", "application/octet-stream")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


def _error(status: int, message: str, **headers: str) -> web.Response:
    response = _json({"error": message}, status)
    response.headers.update(headers)
    return response


async def _body(request: web.Request) -> Any:
    """The request's JSON body (400 when it is not JSON)."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "the body is empty: send a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the body is not valid JSON: {error}") from None


def make_app(ops: Operations, token: str | None) -> web.Application:
    """The aiohttp application of the control API of ``ops.server``."""
    server = ops.server
    expected = f"Bearer {token}".encode() if token is not None else None

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if expected is not None and request.path.startswith("/api/"):
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                reason = "a wrong token" if given else "no token"
                return _error(
                    401,
                    f"this control API needs 'Authorization: Bearer TOKEN' (the request had "
                    f"{reason})",
                    **{"WWW-Authenticate": 'Bearer realm="fakepop3"'},
                )
        try:
            return await handler(request)
        except ApiError as error:
            return _error(error.status, error.message)
        except web.HTTPException as error:  # no such route, wrong method, body too large
            if error.status == 404:
                text = f"no such endpoint: {request.method} {request.path}"
            elif error.status == 405:
                allowed = error.headers.get("Allow", "")
                text = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
            elif error.status == 413:
                text = f"the body is larger than {MAX_BODY} bytes"
            else:
                text = error.reason
            headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else {}
            return _error(error.status, text, **headers)
        except Exception as error:  # a bug in fakepop3: the test that caused it fails
            server._report(error)
            return _error(500, f"internal error in fakepop3 (a bug): {type(error).__name__}")

    routes = web.RouteTableDef()

    def name_of(request: web.Request) -> str:
        return request.match_info["name"]

    # --- the live page and health -------------------------------------------------------------
    @routes.get("/")
    async def page(request: web.Request) -> web.StreamResponse:
        html = (
            resources.files(__package__)
            .joinpath("static")
            .joinpath("index.html")
            .read_text("utf-8")
        )
        return web.Response(text=html, content_type="text/html")

    @routes.get("/static/{file}")
    async def static(request: web.Request) -> web.StreamResponse:
        file = request.match_info["file"]
        if file not in _STATIC:
            raise ApiError(404, f"no such file: {file}")
        text = resources.files(__package__).joinpath("static").joinpath(file).read_text("utf-8")
        return web.Response(text=text, content_type=_STATIC[file])

    @routes.get("/health")
    async def health(request: web.Request) -> web.StreamResponse:
        return _json(ops.health())

    @routes.get("/api/v1/openapi.json")
    async def openapi(request: web.Request) -> web.StreamResponse:
        return _json(openapi_document())

    # --- users and messages ---------------------------------------------------------------
    @routes.get("/api/v1/users")
    async def users(request: web.Request) -> web.StreamResponse:
        return _json(ops.users())

    @routes.put("/api/v1/users/{name}")
    async def put_user(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = await _body(request) if raw.strip() else {}
        status, data = ops.put_user(name_of(request), body)
        return _json(data, status)

    @routes.delete("/api/v1/users/{name}")
    async def delete_user(request: web.Request) -> web.StreamResponse:
        return _json(ops.delete_user(name_of(request)))

    @routes.get("/api/v1/users/{name}/messages")
    async def messages(request: web.Request) -> web.StreamResponse:
        return _json(ops.messages(name_of(request)))

    @routes.post("/api/v1/users/{name}/messages")
    async def add_message(request: web.Request) -> web.StreamResponse:
        kind = request.content_type
        if kind == "application/json":
            status, data = ops.add_json(name_of(request), await _body(request))
        elif kind in _RAW_TYPES:
            status, data = ops.add_raw(name_of(request), await request.read())
        else:
            raise ApiError(
                415,
                f"Content-Type {kind!r}: send message/rfc822 (the raw message) or "
                'application/json (fields to build it, or {"generate": COUNT})',
            )
        return _json(data, status)

    @routes.delete("/api/v1/users/{name}/messages")
    async def delete_messages(request: web.Request) -> web.StreamResponse:
        return _json(ops.delete_messages(name_of(request)))

    @routes.get("/api/v1/users/{name}/messages/{uid}")
    async def message(request: web.Request) -> web.StreamResponse:
        raw = ops.message_raw(name_of(request), request.match_info["uid"])
        return web.Response(body=raw, content_type="message/rfc822")

    @routes.get("/api/v1/users/{name}/messages/{uid}/text")
    async def message_text(request: web.Request) -> web.StreamResponse:
        return _json(ops.message_text(name_of(request), request.match_info["uid"]))

    @routes.delete("/api/v1/users/{name}/messages/{uid}")
    async def delete_message(request: web.Request) -> web.StreamResponse:
        return _json(ops.delete_message(name_of(request), request.match_info["uid"]))

    # --- marks and history ----------------------------------------------------------------
    @routes.post("/api/v1/marks")
    async def mark(request: web.Request) -> web.StreamResponse:
        return _json(ops.mark(), 201)

    @routes.get("/api/v1/history")
    async def history(request: web.Request) -> web.StreamResponse:
        query = request.query
        since = ops.since(query.get("since"))
        return _json(ops.history(since, query.get("user"), query.get("command")))

    @routes.get("/api/v1/history/transcript")
    async def transcript(request: web.Request) -> web.StreamResponse:
        text = ops.transcript(ops.since(request.query.get("since")))
        return web.Response(text=text + "\n", content_type="text/plain")

    @routes.get("/api/v1/sessions")
    async def sessions(request: web.Request) -> web.StreamResponse:
        return _json(ops.sessions(ops.since(request.query.get("since"))))

    # --- faults ---------------------------------------------------------------------------
    @routes.get("/api/v1/faults")
    async def faults(request: web.Request) -> web.StreamResponse:
        return _json(ops.faults())

    @routes.post("/api/v1/faults")
    async def add_fault(request: web.Request) -> web.StreamResponse:
        status, data = ops.add_fault(await _body(request))
        return _json(data, status)

    @routes.delete("/api/v1/faults")
    async def delete_faults(request: web.Request) -> web.StreamResponse:
        return _json(ops.delete_faults())

    @routes.delete("/api/v1/faults/{id}")
    async def delete_fault(request: web.Request) -> web.StreamResponse:
        return _json(ops.delete_fault(request.match_info["id"]))

    # --- holds ----------------------------------------------------------------------------
    @routes.get("/api/v1/holds")
    async def holds(request: web.Request) -> web.StreamResponse:
        return _json(ops.holds())

    @routes.post("/api/v1/holds")
    async def add_hold(request: web.Request) -> web.StreamResponse:
        status, data = ops.add_hold(await _body(request))
        return _json(data, status)

    @routes.get("/api/v1/holds/{id}")
    async def hold(request: web.Request) -> web.StreamResponse:
        query = request.query
        gate, count, seconds = ops.hold_wait(
            request.match_info["id"], query.get("held"), query.get("timeout")
        )
        if count:
            try:
                await gate.wait_held_async(count, seconds)
            except TimeoutError as error:
                raise ApiError(504, str(error)) from None
        return _json(ops.hold(gate))

    @routes.post("/api/v1/holds/{id}/release")
    async def release_hold(request: web.Request) -> web.StreamResponse:
        return _json(ops.release_hold(request.match_info["id"]))

    # --- settings, resets, snapshots ------------------------------------------------------
    @routes.get("/api/v1/settings")
    async def settings(request: web.Request) -> web.StreamResponse:
        return _json(ops.settings())

    @routes.patch("/api/v1/settings")
    async def patch_settings(request: web.Request) -> web.StreamResponse:
        return _json(ops.patch_settings(await _body(request)))

    @routes.post("/api/v1/reset")
    async def reset(request: web.Request) -> web.StreamResponse:
        return _json(ops.reset())

    @routes.get("/api/v1/snapshots")
    async def snapshots(request: web.Request) -> web.StreamResponse:
        return _json(ops.snapshots())

    @routes.post("/api/v1/snapshots/{name}")
    async def save_snapshot(request: web.Request) -> web.StreamResponse:
        status, data = ops.save_snapshot(name_of(request))
        return _json(data, status)

    @routes.post("/api/v1/snapshots/{name}/restore")
    async def restore_snapshot(request: web.Request) -> web.StreamResponse:
        return _json(ops.restore_snapshot(name_of(request)))

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app.add_routes(routes)
    return app
