"""The plugin's ``async_pop3_server``, registered by ``fakepop3.plugin`` when pytest-asyncio runs.

This module imports pytest-asyncio, so ``fakepop3.plugin`` imports it only from
``pytest_configure``, once it knows pytest-asyncio is active (a run may disable it with
``-p no:asyncio``), and importing the plugin stays cheap.  Registered after the plugin, this fixture takes the name
``async_pop3_server`` from the plugin's stand-in, which fails the test saying what to install.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from ._plugin_config import PerTestConfig, build_server, check_errors, fail, register

if TYPE_CHECKING:
    from .server import POP3Server

__all__ = ["async_pop3_server"]


@pytest_asyncio.fixture
async def async_pop3_server(
    request: pytest.FixtureRequest, _pop3_config: PerTestConfig
) -> AsyncIterator[POP3Server]:
    """The ``pop3_server`` of an async test, served on the test's own event loop.

    For pytest-asyncio tests (strict mode: ``@pytest.mark.asyncio``; auto mode:
    any ``async def`` test).  Same configuration as ``pop3_server`` (marker,
    options, seed).  Because the server shares the test's loop, a blocking client
    would freeze it: run ``poplib`` through ``asyncio.to_thread``::

        async def test_fetch(async_pop3_server, pop3_user):
            count, _ = await asyncio.to_thread(fetch_stat, async_pop3_server, pop3_user)
            await async_pop3_server.wait_for_sessions_async(1)

    ``pop3_mailbox`` and ``pop3_user`` of the same test refer to this server;
    ``pop3_client`` (blocking) fails at once saying how to connect instead.
    The fixture runs on the function-scoped loop (pytest-asyncio's default); a
    test with another ``loop_scope`` should start its own ``POP3Server`` with
    ``async with``.  ``uvloop=True`` does not apply: the loop is pytest-asyncio's.
    """
    func = getattr(request.node, "function", None)
    if func is not None and not inspect.iscoroutinefunction(func):
        fail(
            request.node,
            "async_pop3_server serves on the test's event loop, so it only works in async tests "
            "(async def, run by pytest-asyncio); use pop3_server in a synchronous test",
        )
    server = build_server(request, _pop3_config)
    await server.start_async()
    register(request, server)
    try:
        yield server
    finally:
        await server.stop_async()
        if server.tls is not None:
            server.tls.cleanup()
    check_errors([server], _pop3_config.allow_server_errors)
