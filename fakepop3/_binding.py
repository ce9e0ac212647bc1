"""Listening sockets: every address of a host name, all on one port.

asyncio's ``create_server(host, 0)`` binds each address the name resolves to (``localhost``
is ``::1`` and ``127.0.0.1`` on many machines) with a free port of its own, so the one port a
server reports reaches only one of them: a client that tries the other address first is
refused (aiosmtpd's Controller has this bug).  Here the first address picks the port and the
others take the same one, trying again with a new port if one of them has it taken.

:func:`bind` makes the sockets with no event loop (a thread-hosted server binds in the
caller's thread, so that ``start()`` raises a bind error and returns without waiting for the
loop); :func:`listen` binds and serves on a running loop.  Both set the socket options
``create_server`` sets (``SO_REUSEADDR`` on POSIX, ``IPV6_V6ONLY``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["bind", "listen", "needs_resolving", "off_the_loop", "serve"]

#: New ports to try when another address of the host has the first one taken.
_ATTEMPTS = 20
#: asyncio's default listen backlog (create_server's), for listeners that do not pass one.
_BACKLOG = 100
_REUSE_ADDRESS = os.name == "posix" and sys.platform != "cygwin"

_Address = tuple[int, Any]  # (family, sockaddr)
_T = TypeVar("_T")
# What tests replace to make binds fail (tests/test_binding.py).
_socket = socket.socket


async def listen(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.BaseProtocol],
    host: str | None,
    port: int,
    *,
    backlog: int = _BACKLOG,
    **kwargs: Any,
) -> list[asyncio.Server]:
    """``loop.create_server(factory, host, port, **kwargs)``, on one port for every address.

    Returns the servers made (one per socket); raises ``OSError`` (``strerror``: the system's,
    e.g. "Address already in use").  A host name is resolved in the loop's executor.
    """
    sockets = await off_the_loop(loop, host, lambda: bind(host, port, backlog))
    return await serve(loop, factory, sockets, backlog=backlog, **kwargs)


async def off_the_loop(
    loop: asyncio.AbstractEventLoop, host: str | None, binding: Callable[[], _T]
) -> _T:
    """``binding()``, a bind on ``host``, from a running loop: in the loop's executor when
    ``host`` is a name (its lookup blocks), at once for an IP address (no lookup)."""
    if needs_resolving(host):
        return await loop.run_in_executor(None, binding)
    return binding()


async def serve(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.BaseProtocol],
    sockets: list[socket.socket],
    **kwargs: Any,
) -> list[asyncio.Server]:
    """``create_server(factory, sock=...)`` for each of ``sockets`` (from :func:`bind`); on a
    failure every socket is closed, those already served included, and the error raised."""
    servers: list[asyncio.Server] = []
    try:
        for sock in sockets:
            server = await loop.create_server(factory, sock=sock, start_serving=False, **kwargs)
            servers.append(server)
            # speed: no turn of the loop per listener (bench/README.md, "serve-now")
            begin = getattr(server, "_start_serving", None)
            if begin is not None:
                begin()
            else:  # uvloop's servers have no _start_serving
                await server.start_serving()
    except BaseException:
        for server in servers:
            server.close()
        for sock in sockets:
            sock.close()
        raise
    return servers


def bind(
    host: str | None, port: int, backlog: int = _BACKLOG, *, who: str | None = None
) -> list[socket.socket]:
    """Listening sockets (non-blocking) on every address of ``host`` (``""``/None: every
    address of the machine), all on ``port`` (0: one free port for all of them).

    Blocks while a host name is resolved (an IP address is not: no lookup).  Raises ``OSError``
    with the system's ``strerror`` (``who``: "{who} cannot listen on {host}:{port}: " before
    it); nothing is left bound then.
    """
    try:
        return _bind(host, port, backlog)
    except OSError as error:
        if who is None:
            raise
        raise OSError(
            error.errno, f"{who} cannot listen on {host}:{port}: {error.strerror}"
        ) from error


def _bind(host: str | None, port: int, backlog: int) -> list[socket.socket]:
    addresses = _addresses(host, port)
    if port != 0 or len(addresses) <= 1:
        return _bind_all(addresses, port, backlog)
    for attempt in range(_ATTEMPTS):
        try:
            return _bind_all(addresses, 0, backlog)
        except _TakenByAnother:
            if attempt == _ATTEMPTS - 1:
                raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)) from None
    raise AssertionError("unreachable")  # pragma: no cover


class _TakenByAnother(OSError):
    """The port the first address picked is taken on another address: pick another one."""


def _bind_all(addresses: list[_Address], port: int, backlog: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for family, sockaddr in addresses:
            # IPPROTO_TCP, as create_server's own sockets have: asyncio sets TCP_NODELAY on
            # an accepted connection only when its proto says TCP (no Nagle delay on replies).
            sock = _socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            if _REUSE_ADDRESS:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            chosen = port if len(sockets) == 1 else sockets[0].getsockname()[1]
            try:
                sock.bind((sockaddr[0], chosen, *sockaddr[2:]))
            except OSError as error:
                if port == 0 and len(sockets) > 1 and error.errno == errno.EADDRINUSE:
                    raise _TakenByAnother(error.errno, error.strerror) from None
                raise
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _addresses(host: str | None, port: int) -> list[_Address]:
    """The (family, sockaddr) of each address of ``host``, in order, without duplicates."""
    if host and not needs_resolving(host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [(family, (host, port, 0, 0) if family == socket.AF_INET6 else (host, port))]
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    found: dict[tuple[int, str], _Address] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found.setdefault((family, str(sockaddr[0])), (family, sockaddr))
    return list(found.values())


def needs_resolving(host: str | None) -> bool:
    """False for an IP address (one socket, no name to look up); True for a name or ``""``."""
    if not host:
        return True
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return False
    return True
