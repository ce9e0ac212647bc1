"""Options changed while the server runs: :meth:`POP3Server.configure` and the control API.

Which options can change is declared once, in the options schema: those with the ``CONTROL``
surface (:data:`fakepop3.options.RUNTIME_OPTIONS`), but the users, tokens and faults, which
have their own methods and endpoints.  Each value is checked by its option's check, as in ``POP3Server(...)``;
a change is all or nothing (every value checked before any is applied).  A session reads the
server's settings when it starts, so sessions that start later see the change and open ones
keep what they started with.

Rules a maintainer must keep: a new run-time option is marked ``CONTROL`` in
:mod:`fakepop3.options` and handled in :func:`configure` and :func:`current` (a test walks the
schema); everything here runs on the server's loop.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._validate import is_loopback
from ..auth import Authenticator
from ..options import RUNTIME_OPTIONS, OptionError, Surface

if TYPE_CHECKING:
    from ._pop3server import POP3Server

__all__ = ["check_control_exposure", "configure", "current"]

#: Options kept on the server object rather than in its protocol Settings.
_ON_SERVER = ("timeout", "command_timeout", "max_connections")
#: Option name -> Settings field, where they differ.
_FIELD = {"disable": "disabled"}


def configure(server: POP3Server, changes: Mapping[str, Any]) -> None:
    """Check every change, then apply them all (see the module docs)."""
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        option = RUNTIME_OPTIONS.get(name)
        if option is None:
            known = list(RUNTIME_OPTIONS)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionError(
                f"{name!r} cannot be changed at run time{hint}; these can: {', '.join(known)}"
            )
        checked[name] = option.validate(value, Surface.CONTROL)
    if checked.get("require_tls") and server.tls is None:
        raise OptionError("require_tls needs TLS: start the server with tls (--tls) to use it")
    fields: dict[str, Any] = {}
    for name, value in checked.items():
        if name in _ON_SERVER:
            continue
        if name == "disable":
            value = frozenset(value)
        elif name == "mechanisms":
            value = tuple(value) if value is not None else type(server.settings).mechanisms
        fields[_FIELD.get(name, name)] = value
    settings = dataclasses.replace(server.settings, **fields) if fields else server.settings
    server.settings = settings
    if "any_login" in checked:
        server._auth = Authenticator(server.store, any_login=settings.any_login)
    if "command_timeout" in checked:
        server.command_timeout = checked["command_timeout"]
    if "max_connections" in checked:
        server.max_connections = checked["max_connections"]
    if "timeout" in checked:
        server.timeout = checked["timeout"]
        if server._sweeper is not None:
            server._sweeper.cancel()
            server._sweeper = None
        if server.timeout is not None and server.running and server._loop is not None:
            server._sweeper = server._loop.call_later(server._sweep_interval(), server._sweep)


def current(server: POP3Server) -> dict[str, Any]:
    """Every run-time option with its value now (JSON types: lists, not sets)."""
    settings = server.settings
    out: dict[str, Any] = {}
    for name in RUNTIME_OPTIONS:
        if name in _ON_SERVER:
            out[name] = getattr(server, name)
        elif name == "disable":
            out[name] = sorted(settings.disabled)
        elif name == "mechanisms":
            out[name] = list(settings.mechanisms)
        else:
            out[name] = getattr(settings, _FIELD.get(name, name))
    return out


def check_control_exposure(host: str, token: str | None) -> None:
    """Refuse a control API reachable from other machines without a token."""
    if token is None and not is_loopback(host):
        raise OptionError(
            f"the control API would listen on {host or 'every address'}, which is not "
            "loopback, without a token: anyone who reaches it could read the test mail and "
            "change the server; give a control token (control_token=, --control-token or "
            "FAKEPOP3_CONTROL_TOKEN) or a loopback control host (--control-host 127.0.0.1)"
        )
