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
import inspect
import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ._plugin_config import (
    DEFAULT_MESSAGES,
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    DEFAULTS_KEY,
    FLAG_OPTIONS,
    INI_OPTIONS,
    SERVERS_KEY,
    Defaults,
    PerTestConfig,
    POP3User,
    build_server,
    check_errors,
    fail,
    marker_help,
    per_test_config,
    register,
    report_transcript,
    uvloop_loop_factory,
)

if TYPE_CHECKING:
    import poplib

    from .server import POP3Server
    from .store import Mailbox

# Importing this module imports pytest and the standard library only (pytest imports it in every
# project that has fakepop3 installed): the server, the generator, the email package and
# pytest-asyncio are imported when a fixture first runs (tests/test_plugin_import.py holds it).

__all__ = [
    "DEFAULT_MESSAGES",
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "MARKER_OPTIONS",
    "POP3User",
    "ServerFactory",
    "ServerWatch",
]


MARKER_OPTIONS: tuple[str, ...]  # declared only: the module __getattr__ gives the value


def __getattr__(name: str) -> Any:
    """``MARKER_OPTIONS``: every option the marker accepts (from the schema, on first use)."""
    if name == "MARKER_OPTIONS":
        from . import _plugin_config

        return _plugin_config.MARKER_OPTIONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    for name, help_text, more in FLAG_OPTIONS:
        group.addoption(
            f"--pop3-{name}",
            dest=f"pop3_{name}",
            action="store_true",
            default=False,
            help=f"{help_text} (ini: pop3_{name}{more})",
        )
        parser.addini(f"pop3_{name}", f"fakepop3: {help_text}", type="bool", default=False)


#: pytest-asyncio's ini key that it warns about in every run where a project left it unset.
LOOP_SCOPE_INI = "asyncio_default_fixture_loop_scope"


def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Give pytest-asyncio's ``asyncio_default_fixture_loop_scope`` the default ``"function"``.

    pytest-asyncio (a dependency of fakepop3, for ``async_pop3_server``) warns in every run of a
    project that never set the key, so installing fakepop3 would make a quiet ``-W error`` run
    fail.  ``"function"`` is the scope pytest-asyncio says it will default to; a value in the
    project's ini file or ``-o`` still wins (only the default is given here).  This hook runs
    once every plugin has added its options and before any of them reads its ini values.
    """
    if _pytest_asyncio_runs(early_config):
        parser.addini(
            LOOP_SCOPE_INI,
            "default event loop scope of asynchronous fixtures (pytest-asyncio; fakepop3 makes "
            "the default 'function', the scope pytest-asyncio will default to)",
            default="function",
        )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, check the run-wide options once, and, when pytest-asyncio runs,
    the real ``async_pop3_server`` (``fakepop3._plugin_async``, which imports it)."""
    config.addinivalue_line("markers", marker_help(bool(config.getoption("markers", False))))
    defaults = Defaults.from_config(config)
    config.stash[DEFAULTS_KEY] = defaults
    if defaults.uvloop and _uvloop_missing():
        raise pytest.UsageError(
            "--pop3-uvloop (ini pop3_uvloop): uvloop is not installed (it does not run on "
            "Windows): pip install 'fakepop3[speed]'"
        )
    if _pytest_asyncio_runs(config):
        from . import _plugin_async

        config.pluginmanager.register(_plugin_async, "fakepop3-async")


def _pytest_asyncio_runs(config: pytest.Config) -> bool:
    """pytest-asyncio is registered (by its entry point, ``asyncio``, or as ``-p pytest_asyncio``)."""
    if config.pluginmanager.has_plugin("asyncio"):
        return True
    return any(
        getattr(plugin, "__name__", "").startswith("pytest_asyncio")
        for plugin in config.pluginmanager.get_plugins()
    )


def _uvloop_missing() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("uvloop") is None
    except ValueError:  # a module without a spec in sys.modules
        return False


def pytest_report_header(config: pytest.Config) -> str:
    """Say which seed, locale and message count the default maildrops use."""
    d = config.stash[DEFAULTS_KEY]
    loop = " loop=uvloop" if d.uvloop else ""
    return (
        f"fakepop3: host={d.host} seed={d.seed} (unless faker_seed is defined) "
        f"locale={','.join(d.locale)} messages={d.messages}{loop}"
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

    It runs on the process's shared background event loop (not the test's), so
    blocking clients (``poplib``) and async tests can both use it.  It listens on a
    free port of ``--pop3-host`` (127.0.0.1): use ``pop3_server.host`` and
    ``pop3_server.port``.  With ``--pop3-uvloop`` (ini ``pop3_uvloop``, marker
    ``uvloop=True``) that loop is uvloop's.

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

    ``host`` defaults to ``--pop3-host``, and ``loop_factory`` to uvloop's under
    ``--pop3-uvloop`` (or the marker's ``uvloop=True``).  Every server it started is
    stopped at the end of the test, and errors inside them fail the test.
    """

    def __init__(self, request: pytest.FixtureRequest, host: str, loop_factory: Any = None) -> None:
        self._request = request
        self._host = host
        self._loop_factory = loop_factory
        self.servers: list[POP3Server] = []

    def __call__(self, users: Any = None, **kwargs: Any) -> POP3Server:
        """Start and return a new server configured with these ``POP3Server`` arguments."""
        from .server import POP3Server

        kwargs.setdefault("host", self._host)
        if self._loop_factory is not None:
            kwargs.setdefault("loop_factory", self._loop_factory)
        server = POP3Server(users, **kwargs)
        server.start()
        self.servers.append(server)
        register(self._request, server)
        return server

    def stop_all(self) -> None:
        """Stop every server started so far (the fixture does this at teardown)."""
        while self.servers:
            self.servers.pop().stop()


class ServerWatch:
    """Watches shared servers for one test; ``pop3_watch`` is one.

    ``pop3_watch(server)`` (a server of a module- or session-scoped fixture of yours) gives this
    test what ``pop3_server`` gives for free: the server's POP3 transcript in the report when
    the test fails, a failure at teardown when an error happened inside the server during the
    test (opt out: ``@pytest.mark.pop3(allow_server_errors=True)``), and, with ``reset=True``
    (the default), :meth:`fakepop3.POP3Server.reset` after the test, so the next one starts
    from the baseline: no session, users, mail, fault rules or history of this one.  Returns
    the server.
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.watched: list[tuple[POP3Server, int, bool]] = []

    def __call__(self, server: POP3Server, *, reset: bool = True) -> POP3Server:
        if not any(watched is server for watched, _, _ in self.watched):
            register(self._request, server)
            self.watched.append((server, len(server.errors), reset))
        return server

    def finish(self, allowed: bool) -> None:
        """At teardown: reset what asked for it, then fail on the errors of this test."""
        import traceback

        failures: list[str] = []
        for server, start, reset in self.watched:
            new = server.errors[start:]
            if new:
                del server.errors[start:]  # the next test starts with none
                first = "".join(
                    traceback.format_exception(type(new[0]), new[0], new[0].__traceback__)
                )
                failures.append(
                    f"{len(new)} error(s) inside the POP3 server at {server.host}:{server.port} "
                    f"while serving this test; the first:\n{first}"
                )
            if reset and server.running:
                server.reset()
        if failures and not allowed:
            pytest.fail(
                "\n".join(failures) + "If the test provokes it on purpose, mark it "
                "@pytest.mark.pop3(allow_server_errors=True).",
                pytrace=False,
            )


@pytest.fixture
def pop3_watch(
    request: pytest.FixtureRequest, _pop3_config: PerTestConfig
) -> Iterator[ServerWatch]:
    """Watch a shared (module- or session-scoped) server for this test: the transcript in the
    report of a failed test, the server's errors failing the test, a reset after it
    (:class:`ServerWatch`): ``server = pop3_watch(my_shared_server)``."""
    watch = ServerWatch(request)
    yield watch
    watch.finish(_pop3_config.allow_server_errors)


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
    node = request.node if isinstance(request.node, pytest.Item) else None
    factory = ServerFactory(
        request, _pop3_config.host, uvloop_loop_factory(node) if _pop3_config.uvloop else None
    )
    started = factory.servers
    try:
        yield factory
    finally:
        everything = list(started)
        factory.stop_all()
    check_errors(everything, _pop3_config.allow_server_errors)


@pytest.fixture
def async_pop3_server(request: pytest.FixtureRequest) -> None:
    """The ``pop3_server`` of an async test, served on the test's own event loop.

    Needs pytest-asyncio (a dependency of fakepop3); when it runs, the fixture of
    ``fakepop3._plugin_async`` takes this name (see its docstring).  When it is disabled
    (``-p no:asyncio``) or was uninstalled, this one fails the test saying so.
    """
    fail(
        request.node if isinstance(request.node, pytest.Item) else None,
        "async_pop3_server needs pytest-asyncio, which is not installed or not enabled "
        "(-p no:asyncio): pip install pytest-asyncio, or drop -p no:asyncio; a synchronous "
        "test uses pop3_server",
    )


def _async_test_server(request: pytest.FixtureRequest) -> bool:
    """True in an async test that uses ``async_pop3_server``: the test's one server."""
    if "async_pop3_server" not in request.fixturenames:
        return False
    func = getattr(request.node, "function", None)
    return func is not None and inspect.iscoroutinefunction(func)


@pytest.fixture
def pop3_user(_pop3_config: PerTestConfig) -> POP3User:
    """The default user of the test's server as ``(name, password)``; ``alice``/``secret`` by
    default (the same for ``pop3_server`` and ``async_pop3_server``)."""
    return _pop3_config.user


@pytest.fixture
def pop3_mailbox(request: pytest.FixtureRequest, pop3_user: POP3User) -> Mailbox:
    """The default user's :class:`fakepop3.Mailbox` on the test's server: add and inspect mail.

    The server is ``pop3_server``, or, in an async test that uses ``async_pop3_server``,
    that one (never a second server beside it).  Mail added during a session shows at the
    client's next login; deletions show after the client's QUIT.
    """
    name = "async_pop3_server" if _async_test_server(request) else "pop3_server"
    server: POP3Server = request.getfixturevalue(name)
    return server.mailbox(pop3_user.name)


@pytest.fixture
def pop3_client(
    request: pytest.FixtureRequest, pop3_user: POP3User, _pop3_config: PerTestConfig
) -> Iterator[poplib.POP3]:
    """A ``poplib.POP3`` connected to ``pop3_server`` and logged in as ``pop3_user``.

    With ``@pytest.mark.pop3(login=False)`` it is only connected.  When the
    server requires TLS (``require_tls=True``) the client upgrades with STLS
    (verifying the test certificate) before logging in.  The client is closed at
    teardown without QUIT (so nothing is deleted unless the test sent QUIT).

    It is a blocking client, so an async test that uses ``async_pop3_server`` (which
    serves on the test's loop) cannot have it: that fails at once, saying to connect
    with ``await asyncio.to_thread(async_pop3_server.client)``.
    """
    if _async_test_server(request):
        fail(
            request.node if isinstance(request.node, pytest.Item) else None,
            "pop3_client is a blocking poplib client, and async_pop3_server serves on this "
            "test's event loop, which a blocking client would freeze: connect in a thread, "
            "client = await asyncio.to_thread(async_pop3_server.client), and use pop3_user "
            "and pop3_mailbox (which refer to async_pop3_server)",
        )
    pop3_server: POP3Server = request.getfixturevalue("pop3_server")
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
    """Add the POP3 transcript of every server the test used to a failed test's report:
    each session with its greeting, its commands and replies, and the faults that fired."""
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
        report.sections.append((title, report_transcript(server)))


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    """Explain ``assert "RETR 1" in server.history`` (and ``not in``) with what was sent."""
    history = sys.modules.get("fakepop3.history")  # not imported: no History exists yet
    if history is None or op not in ("in", "not in"):
        return None
    if not isinstance(right, history.History) or not isinstance(left, str):
        return None
    import difflib

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
