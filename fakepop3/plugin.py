"""The fakepop3 pytest plugin: fixtures, the ``pop3`` marker, options and report sections.

Installing fakepop3 registers this module through the ``pytest11`` entry point,
so the fixtures are there in every test::

    def test_poller(pop3_server, pop3_user):
        poll(pop3_server.host, pop3_server.port, pop3_user.name, pop3_user.password)
        pop3_server.wait_for_sessions(1)
        pop3_server.history.assert_sent("QUIT", user=pop3_user.name, times=1)

Fixtures
    ``pop3_server``, ``pop3_server_factory``, ``async_pop3_server``,
    ``pop3_client``, ``pop3_mailbox`` and ``pop3_user`` (see each docstring).

Marker
    ``@pytest.mark.pop3(**options)`` configures the servers of one test (on a
    module, class or function; the closest marker wins per option).  See
    :data:`MARKER_OPTIONS` for the options.

Options (command line, or the ini key with the same name without ``--`` and with ``_``)
    ``--pop3-host``, ``--pop3-seed``, ``--pop3-locale``, ``--pop3-messages``.

Seeds
    The default maildrop is generated from the seed Faker's own pytest plugin
    uses for the ``faker`` fixture: the ``faker_seed`` fixture when the project
    defines one, else ``--pop3-seed`` (default 0, Faker's default).  The same
    seed gives the same bytes; another seed gives other mail.  This plugin never
    defines ``faker``, ``faker_seed`` or ``faker_locale``.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import poplib
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from ._plugin_config import (
    DEFAULT_MESSAGES,
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    DEFAULTS_KEY,
    INI_OPTIONS,
    MARKER_HELP,
    MARKER_OPTIONS,
    SERVERS_KEY,
    Defaults,
    PerTestConfig,
    POP3User,
    build_server,
    check_errors,
    fail,
    per_test_config,
    register,
)
from .history import History
from .server import POP3Server
from .store import Mailbox

__all__ = [
    "DEFAULT_MESSAGES",
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "MARKER_OPTIONS",
    "POP3User",
    "ServerFactory",
]


# --- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--pop3-*`` options and their ini equivalents."""
    group = parser.getgroup("fakepop3", "fakepop3 (fake POP3 server fixtures)")
    for name, help_text, default in INI_OPTIONS:
        group.addoption(
            f"--pop3-{name}",
            dest=f"pop3_{name}",
            default=None,
            metavar=name.upper(),
            help=f"{help_text} (default: {default}; ini: pop3_{name})",
        )
        parser.addini(f"pop3_{name}", f"fakepop3: {help_text}", default=default)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and check the run-wide options once."""
    config.addinivalue_line("markers", MARKER_HELP)
    config.stash[DEFAULTS_KEY] = Defaults.from_config(config)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which seed, locale and message count the default maildrops use."""
    d = config.stash[DEFAULTS_KEY]
    return (
        f"fakepop3: host={d.host} seed={d.seed} (unless faker_seed is defined) "
        f"locale={','.join(d.locale)} messages={d.messages}"
    )


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def _pop3_config(request: pytest.FixtureRequest) -> PerTestConfig:
    """The fakepop3 options of this test (internal)."""
    return per_test_config(request)


@pytest.fixture
def pop3_server(
    request: pytest.FixtureRequest, _pop3_config: PerTestConfig
) -> Iterator[POP3Server]:
    """A running :class:`fakepop3.POP3Server`, fresh for each test.

    It runs on the shared background event loop (not the test's), so blocking clients
    (``poplib``) and async tests can both use it.  It listens on a free port of
    ``--pop3-host`` (127.0.0.1): use ``pop3_server.host`` and ``pop3_server.port``.

    The default user (``pop3_user``: ``alice``/``secret`` unless the marker gives
    ``users=``) has a maildrop of ``--pop3-messages`` (3) messages generated
    with Faker from the ``faker_seed`` fixture when the project defines one (else
    ``--pop3-seed``, default 0), so the mail is the same on every run.  The
    history is empty.  Configure it with ``@pytest.mark.pop3(...)``.

    At teardown the server stops; an error inside the server fails the test with
    the server-side traceback (opt out: ``@pytest.mark.pop3(allow_server_errors=True)``).
    """
    server = build_server(request, _pop3_config)
    server.start()
    register(request, server)
    try:
        yield server
    finally:
        server.stop()
    check_errors([server], _pop3_config.allow_server_errors)


class ServerFactory:
    """Starts further thread-hosted servers for one test; ``pop3_server_factory`` is one.

    Call it with any :class:`fakepop3.POP3Server` keyword arguments::

        other = pop3_server_factory(users={"bob": "pw"}, disable=["UIDL"])

    ``host`` defaults to ``--pop3-host``.  Every server it started is stopped at
    the end of the test, and errors inside them fail the test.
    """

    def __init__(self, request: pytest.FixtureRequest, host: str) -> None:
        self._request = request
        self._host = host
        self.servers: list[POP3Server] = []

    def __call__(self, users: Any = None, **kwargs: Any) -> POP3Server:
        """Start and return a new server configured with these ``POP3Server`` arguments."""
        kwargs.setdefault("host", self._host)
        server = POP3Server(users, **kwargs)
        server.start()
        self.servers.append(server)
        register(self._request, server)
        return server

    def stop_all(self) -> None:
        """Stop every server started so far (the fixture does this at teardown)."""
        while self.servers:
            self.servers.pop().stop()


@pytest.fixture
def pop3_server_factory(
    request: pytest.FixtureRequest, _pop3_config: PerTestConfig
) -> Iterator[ServerFactory]:
    """A callable starting more servers: ``pop3_server_factory(users=..., **POP3Server_kwargs)``.

    Each call starts a thread-hosted :class:`fakepop3.POP3Server` on a free port
    (host ``--pop3-host`` unless given) and returns it, with the users you pass
    and no mail (add it with ``server.mailbox(name).add(...)``).  All of them are
    stopped at the end of the test; an error inside any of them fails the test
    (opt out: ``@pytest.mark.pop3(allow_server_errors=True)``).
    """
    factory = ServerFactory(request, _pop3_config.host)
    started = factory.servers
    try:
        yield factory
    finally:
        everything = list(started)
        factory.stop_all()
    check_errors(everything, _pop3_config.allow_server_errors)


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

    The fixture runs on the function-scoped loop (pytest-asyncio's default); a
    test with another ``loop_scope`` should start its own ``POP3Server`` with
    ``async with``.
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


@pytest.fixture
def pop3_user(_pop3_config: PerTestConfig) -> POP3User:
    """The default user of ``pop3_server`` as ``(name, password)``; ``alice``/``secret`` by default."""
    return _pop3_config.user


@pytest.fixture
def pop3_mailbox(pop3_server: POP3Server, pop3_user: POP3User) -> Mailbox:
    """The default user's :class:`fakepop3.Mailbox` on ``pop3_server``: add and inspect mail.

    Mail added during a session shows at the client's next login; deletions show
    after the client's QUIT.
    """
    return pop3_server.mailbox(pop3_user.name)


@pytest.fixture
def pop3_client(
    pop3_server: POP3Server, pop3_user: POP3User, _pop3_config: PerTestConfig
) -> Iterator[poplib.POP3]:
    """A ``poplib.POP3`` connected to ``pop3_server`` and logged in as ``pop3_user``.

    With ``@pytest.mark.pop3(login=False)`` it is only connected.  When the
    server requires TLS (``require_tls=True``) the client upgrades with STLS
    (verifying the test certificate) before logging in.  The client is closed at
    teardown without QUIT (so nothing is deleted unless the test sent QUIT).
    """
    client = pop3_server.client(timeout=10.0)
    try:
        if pop3_server.settings.require_tls and pop3_server.tls is not None:
            client.stls(context=pop3_server.tls.client_context())
        if _pop3_config.login:
            client.user(pop3_user.name)
            client.pass_(pop3_user.password or "")
        yield client
    finally:
        with contextlib.suppress(OSError):  # the server may have closed it already
            client.close()


# --- report section -----------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Add the POP3 transcript of every server the test used to a failed test's report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    servers = item.stash.get(SERVERS_KEY, None)
    if not servers:
        return
    for number, server in enumerate(servers, 1):
        title = "POP3 transcript"
        if len(servers) > 1:
            title += f" (server {number} of {len(servers)}, port {server.port})"
        report.sections.append((title, server.history.transcript()))


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    """Explain ``assert "RETR 1" in server.history`` (and ``not in``) with what was sent."""
    if op not in ("in", "not in") or not isinstance(right, History) or not isinstance(left, str):
        return None
    sent = right.command_lines()
    if op == "in":
        head = f"{left!r} was not sent; {len(sent)} command(s) were:"
        similar = difflib.get_close_matches(left, sent, n=3, cutoff=0.5)
    else:
        head = f"{left!r} was sent, but should not have been; the commands were:"
        similar = []
    lines = [head, *(f"  {line}" for line in sent[:50])]
    if len(sent) > 50:
        lines.append(f"  ... and {len(sent) - 50} more")
    if similar:
        lines.append("Most similar: " + ", ".join(repr(s) for s in similar))
    return lines
