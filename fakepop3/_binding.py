"""Listening sockets: every address of a host name, all on one port.

asyncio's ``create_server(host, 0)`` binds each address the name resolves to (``localhost``
is ``::1`` and ``127.0.0.1`` on many machines) with a free port of its own, so the one port a
server reports reaches only one of them: a client that tries the other address first is
refused (aiosmtpd's Controller has this bug).  Here the first address picks the port and the
others take the same one, trying again with a new port if one of them has it taken.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["listen"]

#: New ports to try when another address of the host has the first one taken.
_ATTEMPTS = 20


async def listen(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.BaseProtocol],
    host: str | None,
    port: int,
    **kwargs: Any,
) -> list[asyncio.Server]:
    """``loop.create_server(factory, host, port, **kwargs)``, on one port for every address.

    Returns the servers made (one per address with port 0, else one); raises ``OSError``
    as ``create_server`` does.
    """
    if port != 0 or _is_address(host):  # nothing to resolve (no thread-pool call)
        return [await loop.create_server(factory, host, port, **kwargs)]
    infos = await loop.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(addresses) <= 1:
        return [await loop.create_server(factory, host, 0, **kwargs)]
    for attempt in range(_ATTEMPTS):
        servers: list[asyncio.Server] = []
        try:
            chosen = 0
            for address in addresses:
                server = await loop.create_server(factory, address, chosen, **kwargs)
                servers.append(server)
                chosen = servers[0].sockets[0].getsockname()[1]
            return servers
        except OSError as error:
            for server in servers:
                server.close()
            if error.errno != errno.EADDRINUSE or not servers or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _is_address(host: str | None) -> bool:
    """True for an IP address (one socket, no name to resolve)."""
    if not host:
        return False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False
