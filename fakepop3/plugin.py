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
import hashlib
import inspect
import poplib
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

import pytest
import pytest_asyncio

from .faults import Faults
from .history import History
from .server import POP3Server, ServerError
from .store import Mailbox, MessageInput

__all__ = [
    "DEFAULT_MESSAGES",
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "MARKER_OPTIONS",
    "POP3User",
    "ServerFactory",
]

#: The default user of ``pop3_server`` (unless the marker gives ``users=``).
DEFAULT_USER = "alice"
#: The default user's password.
DEFAULT_PASSWORD = "secret"
#: How many generated messages the default user's maildrop holds (``--pop3-messages``).
DEFAULT_MESSAGES = 3
#: Faker's own default seed (``faker.contrib.pytest.plugin.DEFAULT_SEED``).
DEFAULT_SEED = 0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_LOCALE = "en_US"

#: Marker options handled by the plugin itself, with what they do.
PLUGIN_OPTIONS: dict[str, str] = {
    "users": "mapping of user name to password (or a list of names); the first is the default user",
    "messages": "number of generated messages for the default user, or a list of messages to store",
    "seed": "seed of the generated mail (default: the faker_seed fixture, else --pop3-seed)",
    "locale": "Faker locale(s) of the generated mail (default: faker_locale, else --pop3-locale)",
    "generate": "dict of extra keyword arguments for fakepop3.generate.generate_messages",
    "faults": "list of fault dicts (fakepop3.faults.Faults.from_config) or a Faults object",
    "host": "address to listen on (default: --pop3-host)",
    "login": "False: pop3_client connects without logging in",
    "allow_server_errors": "True: errors inside the server do not fail the test",
}
#: Marker options passed straight to :class:`fakepop3.POP3Server`.
SERVER_OPTIONS: tuple[str, ...] = (
    "tls",
    "tls_port",
    "timeout",
    "disable",
    "mechanisms",
    "require_tls",
    "any_login",
    "login_delay",
    "expire",
    "hostname",
    "max_connections",
    "max_bad_commands",
    "command_timeout",
    "smtp",
)
#: Every option ``@pytest.mark.pop3(...)`` accepts.
MARKER_OPTIONS: tuple[str, ...] = (*PLUGIN_OPTIONS, *SERVER_OPTIONS)

_MARKER_HELP = (
    "pop3(**options): configure the fakepop3 servers of this test; options: "
    + ", ".join(MARKER_OPTIONS)
)


class POP3User(NamedTuple):
    """The name and password of the default user of ``pop3_server``."""

    name: str
    password: str | None

    def __repr__(self) -> str:
        return f"POP3User(name={self.name!r}, password=***)"


# --- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--pop3-*`` options and their ini equivalents."""
    group = parser.getgroup("fakepop3", "fakepop3 (fake POP3 server fixtures)")
    specs = [
        ("host", "address the POP3 fixtures listen on", DEFAULT_HOST),
        ("seed", "seed of the generated mail when no faker_seed fixture is defined", "0"),
        ("locale", "Faker locale(s) of the generated mail, comma-separated", DEFAULT_LOCALE),
        ("messages", "generated messages in the default maildrop", str(DEFAULT_MESSAGES)),
    ]
    for name, help_text, default in specs:
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
    config.addinivalue_line("markers", _MARKER_HELP)
    config.stash[_defaults_key] = _Defaults.from_config(config)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which seed, locale and message count the default maildrops use."""
    d = config.stash[_defaults_key]
    return (
        f"fakepop3: host={d.host} seed={d.seed} (unless faker_seed is defined) "
        f"locale={','.join(d.locale)} messages={d.messages}"
    )


@dataclass(frozen=True)
class _Defaults:
    host: str
    seed: int
    locale: tuple[str, ...]
    messages: int

    @classmethod
    def from_config(cls, config: pytest.Config) -> _Defaults:
        def value(name: str) -> str:
            given = config.getoption(f"pop3_{name}")
            if given is not None:
                return str(given)
            return str(config.getini(f"pop3_{name}")).strip()

        def number(name: str, minimum: int | None) -> int:
            text = value(name)
            try:
                result = int(text)
            except ValueError:
                raise pytest.UsageError(
                    f"--pop3-{name} (ini pop3_{name}) must be an integer, not {text!r}"
                ) from None
            if minimum is not None and result < minimum:
                raise pytest.UsageError(
                    f"--pop3-{name} (ini pop3_{name}) must be at least {minimum}, not {result}"
                )
            return result

        locale = tuple(part.strip() for part in value("locale").split(",") if part.strip())
        if not locale:
            raise pytest.UsageError("--pop3-locale (ini pop3_locale) must name a Faker locale")
        host = value("host")
        if not host:
            raise pytest.UsageError("--pop3-host (ini pop3_host) must not be empty")
        return cls(host, number("seed", None), locale, number("messages", 0))


_defaults_key = pytest.StashKey[_Defaults]()
_servers_key = pytest.StashKey[list[POP3Server]]()


# --- per-test configuration ---------------------------------------------------------------


@dataclass
class _TestConfig:
    """The options of one test: run-wide defaults, Faker's seed, then the marker."""

    users: dict[str, str | None]
    messages: int | Sequence[MessageInput]
    seed: int
    locale: tuple[str, ...]
    generate: dict[str, Any]
    host: str
    login: bool
    allow_server_errors: bool
    faults: Any
    server: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> POP3User:
        name = next(iter(self.users))
        return POP3User(name, self.users[name])


def _marker_options(node: pytest.Item) -> dict[str, Any]:
    """Merge every ``pop3`` marker from the farthest (module) to the closest (function)."""
    merged: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("pop3"))):
        if marker.args:
            _fail(
                node,
                f"@pytest.mark.pop3 takes keyword arguments only, got positional {marker.args!r}; "
                f"known options: {', '.join(MARKER_OPTIONS)}",
            )
        for name in marker.kwargs:
            if name not in MARKER_OPTIONS:
                close = difflib.get_close_matches(name, MARKER_OPTIONS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                _fail(
                    node,
                    f"unknown option {name!r} in @pytest.mark.pop3{hint}; "
                    f"known options: {', '.join(MARKER_OPTIONS)}",
                )
        merged.update(marker.kwargs)
    return merged


def _fail(node: pytest.Item | None, message: str) -> NoReturn:
    where = f"{node.nodeid}: " if node is not None else ""
    pytest.fail(f"fakepop3: {where}{message}", pytrace=False)


def _seed_as_int(value: object) -> int:
    """Faker accepts any hashable seed; the generator wants an integer."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    digest = hashlib.sha256(repr(value).encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big")


def _locales(value: object, node: pytest.Item) -> tuple[str, ...]:
    if isinstance(value, str):
        result = tuple(part.strip() for part in value.split(",") if part.strip())
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        result = tuple(value)
    else:
        result = ()
    if not result:
        _fail(node, f"locale must be a Faker locale or a list of them, not {value!r}")
    return result


def _faker_fixture(request: pytest.FixtureRequest, name: str) -> tuple[bool, object]:
    """The value of Faker's ``faker_seed``/``faker_locale`` fixture, if the project defines one."""
    try:
        return True, request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return False, None


def _test_config(request: pytest.FixtureRequest) -> _TestConfig:
    node = request.node
    assert isinstance(node, pytest.Item)
    defaults = request.config.stash[_defaults_key]
    options = _marker_options(node)

    users_option = options.get("users", {DEFAULT_USER: DEFAULT_PASSWORD})
    if isinstance(users_option, Mapping):
        users: dict[str, str | None] = dict(users_option)
    elif isinstance(users_option, Sequence) and not isinstance(users_option, (str, bytes)):
        users = dict.fromkeys(users_option)
    else:
        users = {}
    if not users or not all(isinstance(u, str) for u in users):
        _fail(
            node,
            "users must be a non-empty mapping of user name to password (or a list of names), "
            f"not {users_option!r}",
        )

    if "seed" in options:
        seed = _seed_as_int(options["seed"])
    else:
        found, value = _faker_fixture(request, "faker_seed")
        seed = _seed_as_int(value) if found else defaults.seed

    if "locale" in options:
        locale = _locales(options["locale"], node)
    else:
        found, value = _faker_fixture(request, "faker_locale")
        locale = _locales(value, node) if found else defaults.locale

    messages = options.get("messages", defaults.messages)
    if isinstance(messages, bool) or not (
        (isinstance(messages, int) and messages >= 0)
        or (isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)))
    ):
        _fail(
            node,
            "messages must be a number of messages to generate (0 or more) or a list of "
            f"messages (bytes, str or email.message.Message), not {messages!r}",
        )

    generate = options.get("generate", {})
    if not isinstance(generate, Mapping):
        _fail(node, f"generate must be a dict of generate_messages() arguments, not {generate!r}")

    return _TestConfig(
        users=users,
        messages=messages,
        seed=seed,
        locale=locale,
        generate=dict(generate),
        host=str(options.get("host", defaults.host)),
        login=bool(options.get("login", True)),
        allow_server_errors=bool(options.get("allow_server_errors", False)),
        faults=options.get("faults"),
        server={name: options[name] for name in SERVER_OPTIONS if name in options},
    )


# --- building and checking servers --------------------------------------------------------


def _faults(value: object, node: pytest.Item) -> Faults | None:
    """The marker's ``faults=``: a list of fault dicts (``Faults.from_config``) or a ``Faults``."""
    if value is None or isinstance(value, Faults):
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
        _fail(
            node, f"faults must be a list of fault dicts or a fakepop3.faults.Faults, not {value!r}"
        )
    try:
        return Faults.from_config(list(value))
    except (TypeError, ValueError) as error:  # FaultConfigError is a ValueError
        _fail(node, f"faults={value!r} is not a valid fault list: {error}")


def _build_server(request: pytest.FixtureRequest, config: _TestConfig) -> POP3Server:
    node = request.node
    assert isinstance(node, pytest.Item)
    kwargs = dict(config.server)
    faults = _faults(config.faults, node)
    if faults is not None:
        kwargs["faults"] = faults
    try:
        server = POP3Server(config.users, host=config.host, **kwargs)
    except (TypeError, ValueError) as error:
        _fail(node, f"@pytest.mark.pop3 options are not valid: {error}")
    user = config.user.name
    if isinstance(config.messages, int):
        if config.messages:
            try:
                # Lazy: sizes now, bytes at the first RETR/TOP (or when the test reads them).
                server.mailbox(user).generate(
                    config.messages, seed=config.seed, locale=list(config.locale), **config.generate
                )
            except (TypeError, ValueError) as error:
                _fail(node, f"cannot generate the default maildrop: {error}")
    else:
        try:
            server.mailbox(user).extend(config.messages)
        except TypeError as error:
            _fail(node, f"messages=[...] holds something that is not a message: {error}")
    return server


def _register(request: pytest.FixtureRequest, server: POP3Server) -> None:
    """Remember the server for the transcript section of this test's report."""
    request.node.stash.setdefault(_servers_key, []).append(server)


def _check_errors(servers: Sequence[POP3Server], allowed: bool) -> None:
    """Fail the test (at teardown) with the first server-side traceback, unless allowed."""
    if allowed:
        return
    for server in servers:
        if server.errors:
            try:
                server.raise_errors()
            except ServerError as error:
                pytest.fail(
                    f"{error}\nThe POP3 server at {server.host}:{server.port} hit an error "
                    "while serving this test (see the traceback above). If the test provokes it "
                    "on purpose, mark it @pytest.mark.pop3(allow_server_errors=True).",
                    pytrace=False,
                )


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def _pop3_config(request: pytest.FixtureRequest) -> _TestConfig:
    """The fakepop3 options of this test (internal)."""
    return _test_config(request)


@pytest.fixture
def pop3_server(request: pytest.FixtureRequest, _pop3_config: _TestConfig) -> Iterator[POP3Server]:
    """A running :class:`fakepop3.POP3Server`, fresh for each test.

    It runs on its own event loop in a background thread, so blocking clients
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
    server = _build_server(request, _pop3_config)
    server.start()
    _register(request, server)
    try:
        yield server
    finally:
        server.stop()
    _check_errors([server], _pop3_config.allow_server_errors)


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
        _register(self._request, server)
        return server

    def stop_all(self) -> None:
        """Stop every server started so far (the fixture does this at teardown)."""
        while self.servers:
            self.servers.pop().stop()


@pytest.fixture
def pop3_server_factory(
    request: pytest.FixtureRequest, _pop3_config: _TestConfig
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
    _check_errors(everything, _pop3_config.allow_server_errors)


@pytest_asyncio.fixture
async def async_pop3_server(
    request: pytest.FixtureRequest, _pop3_config: _TestConfig
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
        _fail(
            request.node,
            "async_pop3_server serves on the test's event loop, so it only works in async tests "
            "(async def, run by pytest-asyncio); use pop3_server in a synchronous test",
        )
    server = _build_server(request, _pop3_config)
    await server.start_async()
    _register(request, server)
    try:
        yield server
    finally:
        await server.stop_async()
        if server.tls is not None:
            server.tls.cleanup()
    _check_errors([server], _pop3_config.allow_server_errors)


@pytest.fixture
def pop3_user(_pop3_config: _TestConfig) -> POP3User:
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
    pop3_server: POP3Server, pop3_user: POP3User, _pop3_config: _TestConfig
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
    servers = item.stash.get(_servers_key, None)
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
