"""The asyncio transport around the protocol core, and the server that hosts it.

``async with POP3Server(...)`` serves on the running loop.  ``with
POP3Server(...)`` runs the same server on the process's shared background loop
thread, so that blocking clients such as ``poplib`` never share a loop with it.
Either way the server binds before ``start`` returns: ``server.port`` is the
real port (also for port 0) and a bind error is raised in the caller.

This package's modules are private; this façade keeps the import path
``fakepop3.server`` (and its names) working:

* ``_pop3server``: :class:`POP3Server`, its options, listeners and helpers for tests;
* ``_transport``: the connection protocol (one client between asyncio and a ``Session``).
"""

from __future__ import annotations

# The public names (__all__) and, as before the package split, the module constants and the
# helpers tests use.
from ._pop3server import BACKLOG as BACKLOG
from ._pop3server import POP3Server, ServerError, uvloop_factory
from ._pop3server import _warn_if_exposed as _warn_if_exposed
from ._transport import CHUNK as CHUNK
from ._transport import HIGH_WATER as HIGH_WATER
from ._transport import LOW_WATER as LOW_WATER
from ._transport import MAX_PENDING_LINES as MAX_PENDING_LINES
from ._transport import RECV_BUFFER as RECV_BUFFER

__all__ = ["POP3Server", "ServerError", "uvloop_factory"]
