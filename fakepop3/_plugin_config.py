"""The pytest plugin's configuration: run-wide options, the ``pop3`` marker, building servers.

Everything the fixtures of :mod:`fakepop3.plugin` need to turn pytest's options, Faker's seed
fixtures and the ``@pytest.mark.pop3(...)`` marker into a configured :class:`POP3Server`, and
to check it at teardown.  ``plugin.py`` holds the hooks and fixtures only and calls in here.

Rules: a bad marker or option fails the test (or the run, for ``--pop3-*``) with one line that
names the option and says what it accepts, never a traceback; nothing here starts a server.

Importing this module (pytest imports the plugin in every project that has fakepop3 installed)
imports pytest and the standard library only: the options schema, the faults, the server, the
store and the generator are imported by the functions that need them, when a fixture first runs.
``tests/test_plugin_import.py`` holds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import pytest

if TYPE_CHECKING:
    from .faults import Faults
    from .server import POP3Server
    from .store import MessageInput

__all__ = [
    "DEFAULT_MESSAGES",
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "FLAG_OPTIONS",
    "INI_OPTIONS",
    "MARKER_OPTIONS",
    "POP3User",
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

#: ``SERVER_OPTIONS``: the marker options passed straight to :class:`fakepop3.POP3Server`, and
#: ``MARKER_OPTIONS``: every option ``@pytest.mark.pop3(...)`` accepts.  Both are derived from
#: the options schema (fakepop3.options, where each is declared once with its check and help),
#: on first use (module ``__getattr__``), so that importing the plugin does not import it.
_LAZY: dict[str, tuple[str, ...]] = {}
MARKER_OPTIONS: tuple[str, ...]  # declared only: the module __getattr__ gives the value
SERVER_OPTIONS: tuple[str, ...]


def _marker_names(which: str) -> tuple[str, ...]:
    if not _LAZY:
        from .options import marker_options, marker_server_options

        _LAZY["MARKER_OPTIONS"] = marker_options()
        _LAZY["SERVER_OPTIONS"] = marker_server_options()
    return _LAZY[which]


def __getattr__(name: str) -> tuple[str, ...]:
    if name in ("MARKER_OPTIONS", "SERVER_OPTIONS"):
        return _marker_names(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The marker's line in ``pytest --markers`` (and what ``--strict-markers`` knows).
MARKER_HELP = "pop3(**options): configure the fakepop3 servers of this test"


def marker_help(with_options: bool) -> str:
    """The marker's help; its option list (from the schema) only when ``--markers`` shows it."""
    if not with_options:
        return MARKER_HELP + " (options: pytest --markers, docs/pytest.md)"
    return MARKER_HELP + "; options: " + ", ".join(_marker_names("MARKER_OPTIONS"))


class POP3User(NamedTuple):
    """The name and password of the default user of ``pop3_server``."""

    name: str
    password: str | None

    def __repr__(self) -> str:
        return f"POP3User(name={self.name!r}, password=***)"


#: The ``--pop3-NAME`` flags (and ``pop3_NAME`` ini keys): name, help, default.
INI_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("host", "address the POP3 fixtures listen on", DEFAULT_HOST),
    ("seed", "seed of the generated mail when no faker_seed fixture is defined", "0"),
    ("locale", "Faker locale(s) of the generated mail, comma-separated", DEFAULT_LOCALE),
    ("messages", "generated messages in the default maildrop", str(DEFAULT_MESSAGES)),
    ("user", "the default user of the fixtures, NAME:PASSWORD (the password may contain colons)",
     f"{DEFAULT_USER}:{DEFAULT_PASSWORD}"),
)  # fmt: skip

#: The run-wide switches: ``--pop3-NAME`` (ini ``pop3_NAME``), each a default of the marker's
#: ``NAME=`` for every fixture server: (name, help, what the help adds).
FLAG_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("uvloop", "serve the thread-hosted fixture servers on uvloop (pip install 'fakepop3[speed]')",
     "; marker: uvloop=True"),
    ("tls", "the fixture servers offer STLS with test certificates (the tls extra; marker "
     "tls=False: not)", ""),
    ("lint", "every fixture server checks its clients against the RFCs and fails the test on a "
     "finding (marker lint=False: not)", ""),
)  # fmt: skip


class Defaults:
    """The run-wide options (``--pop3-*`` and ini keys), checked once at configure time.

    (Plain classes here rather than dataclasses: a dataclass costs about a millisecond to
    define, and this module is imported by every pytest run of a project with fakepop3.)
    """

    __slots__ = ("host", "lint", "locale", "messages", "seed", "tls", "user", "uvloop")

    def __init__(
        self,
        host: str,
        seed: int,
        locale: tuple[str, ...],
        messages: int,
        uvloop: bool = False,
        user: tuple[str, str] = (DEFAULT_USER, DEFAULT_PASSWORD),
        tls: bool = False,
        lint: bool = False,
    ) -> None:
        self.lint = lint
        self.host = host
        self.seed = seed
        self.locale = locale
        self.messages = messages
        self.uvloop = uvloop
        self.user = user
        self.tls = tls

    @classmethod
    def from_config(cls, config: pytest.Config) -> Defaults:
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

        def flag(name: str) -> bool:
            return bool(config.getoption(f"pop3_{name}")) or _ini_bool(config, f"pop3_{name}")

        uvloop = flag("uvloop")
        name, colon, password = value("user").partition(":")
        if not colon or not name or not password or name != name.strip() or "\n" in name:
            raise pytest.UsageError(
                f"--pop3-user (ini pop3_user) must be NAME:PASSWORD with both parts non-empty, "
                f"e.g. alice:secret, not {value('user')!r}"
            )
        return cls(
            host,
            number("seed", None),
            locale,
            number("messages", 0),
            uvloop,
            (name, password),
            flag("tls"),
            flag("lint"),
        )


def _ini_bool(config: pytest.Config, name: str) -> bool:
    value = config.getini(name)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise pytest.UsageError(f"ini {name} must be true or false, not {value!r}")


DEFAULTS_KEY = pytest.StashKey[Defaults]()
SERVERS_KEY = pytest.StashKey[list["POP3Server"]]()


# --- per-test configuration ---------------------------------------------------------------


class PerTestConfig:
    """The options of one test: run-wide defaults, Faker's seed, then the marker."""

    __slots__ = (
        "allow_server_errors",
        "faults",
        "generate",
        "host",
        "locale",
        "login",
        "messages",
        "seed",
        "server",
        "users",
        "uvloop",
    )

    def __init__(
        self,
        *,
        users: dict[str, str | None],
        messages: int | Sequence[MessageInput],
        seed: int,
        locale: tuple[str, ...],
        generate: dict[str, Any],
        host: str,
        login: bool,
        allow_server_errors: bool,
        faults: Any,
        uvloop: bool = False,
        server: dict[str, Any] | None = None,
    ) -> None:
        self.users = users
        self.messages = messages
        self.seed = seed
        self.locale = locale
        self.generate = generate
        self.host = host
        self.login = login
        self.allow_server_errors = allow_server_errors
        self.faults = faults
        self.uvloop = uvloop
        self.server = server if server is not None else {}

    @property
    def user(self) -> POP3User:
        name = next(iter(self.users))
        return POP3User(name, self.users[name])


def _marker_options(node: pytest.Item) -> dict[str, Any]:
    """Merge every ``pop3`` marker from the farthest (module) to the closest (function)."""
    merged: dict[str, Any] = {}
    known = _marker_names("MARKER_OPTIONS")
    for marker in reversed(list(node.iter_markers("pop3"))):
        if marker.args:
            fail(
                node,
                f"@pytest.mark.pop3 takes keyword arguments only, got positional {marker.args!r}; "
                f"known options: {', '.join(known)}",
            )
        for name in marker.kwargs:
            if name not in known:
                import difflib

                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                fail(
                    node,
                    f"unknown option {name!r} in @pytest.mark.pop3{hint}; "
                    f"known options: {', '.join(known)}",
                )
        merged.update(marker.kwargs)
    return merged


def fail(node: pytest.Item | None, message: str) -> NoReturn:
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
    import hashlib

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
        fail(node, f"locale must be a Faker locale or a list of them, not {value!r}")
    return result


def _faker_fixture(request: pytest.FixtureRequest, name: str) -> tuple[bool, object]:
    """The value of Faker's ``faker_seed``/``faker_locale`` fixture, if the project defines one."""
    try:
        return True, request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return False, None


def per_test_config(request: pytest.FixtureRequest) -> PerTestConfig:
    node = request.node
    assert isinstance(node, pytest.Item)
    defaults = request.config.stash[DEFAULTS_KEY]
    options = _marker_options(node)

    users_option = options.get("users", dict([defaults.user]))
    if isinstance(users_option, Mapping):
        users: dict[str, str | None] = dict(users_option)
    elif isinstance(users_option, Sequence) and not isinstance(users_option, (str, bytes)):
        users = dict.fromkeys(users_option)
    else:
        users = {}
    if not users or not all(isinstance(u, str) for u in users):
        fail(
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
        fail(
            node,
            "messages must be a number of messages to generate (0 or more) or a list of "
            f"messages (bytes, str or email.message.Message), not {messages!r}",
        )

    generate = options.get("generate", {})
    if not isinstance(generate, Mapping):
        fail(node, f"generate must be a dict of generate_messages() arguments, not {generate!r}")

    return PerTestConfig(
        users=users,
        messages=messages,
        seed=seed,
        locale=locale,
        generate=dict(generate),
        host=str(options.get("host", defaults.host)),
        login=bool(options.get("login", True)),
        allow_server_errors=bool(options.get("allow_server_errors", False)),
        faults=options.get("faults"),
        uvloop=bool(options.get("uvloop", defaults.uvloop)),
        server={
            **({"tls": True} if defaults.tls else {}),
            **({"lint": True} if defaults.lint else {}),
            **{name: options[name] for name in _marker_names("SERVER_OPTIONS") if name in options},
        },
    )


# --- building and checking servers --------------------------------------------------------


def _faults(value: object, node: pytest.Item) -> Faults | None:
    """The marker's ``faults=``: a list of fault dicts (``Faults.from_config``) or a ``Faults``."""
    from .faults import Faults

    if value is None or isinstance(value, Faults):
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
        fail(
            node, f"faults must be a list of fault dicts or a fakepop3.faults.Faults, not {value!r}"
        )
    try:
        return Faults.from_config(list(value))
    except (TypeError, ValueError) as error:  # FaultConfigError is a ValueError
        fail(node, f"faults={value!r} is not a valid fault list: {error}")


def build_server(request: pytest.FixtureRequest, config: PerTestConfig) -> POP3Server:
    from .server import POP3Server

    node = request.node
    assert isinstance(node, pytest.Item)
    kwargs = dict(config.server)
    faults = _faults(config.faults, node)
    if faults is not None:
        kwargs["faults"] = faults
    if config.uvloop and kwargs.get("loop_factory") is None:
        kwargs["loop_factory"] = uvloop_loop_factory(node)
    try:
        server = POP3Server(config.users, host=config.host, **kwargs)
    except (TypeError, ValueError) as error:
        fail(node, f"@pytest.mark.pop3 options are not valid: {error}")
    user = config.user.name
    if isinstance(config.messages, int):
        if config.messages:
            try:
                # Lazy: sizes now, bytes at the first RETR/TOP (or when the test reads them).
                server.mailbox(user).generate(
                    config.messages, seed=config.seed, locale=list(config.locale), **config.generate
                )
            except (TypeError, ValueError) as error:
                fail(node, f"cannot generate the default maildrop: {error}")
    else:
        try:
            server.mailbox(user).extend(config.messages)
        except TypeError as error:
            fail(node, f"messages=[...] holds something that is not a message: {error}")
    return server


def uvloop_loop_factory(node: pytest.Item | None) -> Any:
    """``uvloop.new_event_loop`` for ``uvloop=True``, or a one-line failure saying how to get it."""
    from .server import uvloop_factory

    try:
        return uvloop_factory()
    except RuntimeError as error:
        fail(node, f"uvloop=True (--pop3-uvloop, ini pop3_uvloop): {error}")


def register(request: pytest.FixtureRequest, server: POP3Server) -> None:
    """Remember the server for the transcript section of this test's report."""
    request.node.stash.setdefault(SERVERS_KEY, []).append(server)


def check_errors(servers: Sequence[POP3Server], allowed: bool) -> None:
    """Fail the test (at teardown) with the first server-side traceback, unless allowed."""
    if allowed:
        return
    from .server import ServerError

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


def report_transcript(server: POP3Server) -> str:
    """The transcript of a failed test's report: each session with its greeting (``S:``
    first), every command and reply with the fault that fired on it, then the fault rules
    that fired, with how often (connect faults such as a delayed greeting are among them), and
    the lint findings of ``lint=True``."""
    settings = server.settings
    greeting = f"+OK {settings.greeting}"
    if settings.enabled("APOP"):
        greeting += " <APOP timestamp>"
    blocks = []
    for record in server.history.sessions:
        end = f"ended by {record.end_reason}" if record.end_reason else "still open"
        lines = [f"session #{record.id} from {record.client[0]}:{record.client[1]} ({end})"]
        lines.append(f"  S: {greeting}")
        for command in record.commands:
            fault = f"  [fault: {command.fault}]" if command.fault else ""
            lines.append(f"  C: {command.line}{' [TLS]' if command.tls else ''}")
            lines.append(f"  S: {command.reply}{fault}")
        blocks.append("\n".join(lines))
    fired = [rule for rule in server.faults.rules if rule.fired]
    if fired:
        blocks.append(
            "faults that fired:\n"
            + "\n".join(f"  {rule.description}: {rule.fired} time(s)" for rule in fired)
        )
    linter = getattr(server, "linter", None)
    if linter is not None and linter.findings:  # lint=True: what the client did wrong
        blocks.append("lint findings:\n" + "\n".join(f"  {f}" for f in linter.findings))
    return "\n".join(blocks) or "(no POP3 sessions)"
