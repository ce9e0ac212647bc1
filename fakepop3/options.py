"""Every option of fakepop3, declared once: name, type, default, check, help, surfaces.

The surfaces (:class:`Surface`) are where an option can be given:

* ``PYTHON``: a keyword of :class:`fakepop3.POP3Server` (server options) or of
  :func:`fakepop3.generate.generate_messages` (generator knobs);
* ``MARKER``: ``@pytest.mark.pop3(name=...)`` (generator knobs: inside ``generate=``);
* ``TOML``: a key of the standalone server's config file (generator knobs: in the
  ``[generate_options]`` table);
* ``CLI``: a flag of the ``fakepop3`` program, derived from the name (``--command-timeout``);
* ``ENV``: an environment variable of that program (``FAKEPOP3_COMMAND_TIMEOUT``);
* ``CONTROL``: changeable at run time through the control API: users, tokens and faults by
  their own endpoints, the others by ``PATCH /api/v1/settings`` (:meth:`POP3Server.configure`
  in Python); the next session sees the change.

``python -m fakepop3.options --markdown`` prints the table of docs/server.md.

Rules a maintainer must keep:

* A new option is added here, and only here; POP3Server's keywords, config.py's
  keys, cli.py's flags and the marker's keys follow, and tests/test_options.py
  walks this table to prove that every surface takes what it declares.
* Each value check lives in :mod:`fakepop3._validate` and runs with the option's
  spelling on the surface the value came from (:meth:`Option.spelled`).
* Callables and objects are ``PYTHON`` (and ``MARKER``) only; file paths are
  text surfaces only.
* The generator's knobs are declared in :mod:`fakepop3._knobs` (name, type, default,
  check, help); this module adds where each can be given.
* This module imports only :mod:`fakepop3._validate`, :mod:`fakepop3._knobs` and the
  protocol core's name checks (no server, no asyncio, no Faker).
"""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _validate as v
from ._knobs import KNOBS
from ._validate import OptionError
from .protocol import check_disabled, check_mechanisms

__all__ = [
    "GENERATOR_OPTIONS",
    "OPTIONS",
    "RUNTIME_OPTIONS",
    "SERVER_OPTIONS",
    "Option",
    "OptionError",
    "Surface",
    "check_marker",
    "check_python_options",
    "markdown_table",
    "marker_options",
    "python_options",
]


class Surface(enum.Flag):
    """Where an option can be given."""

    PYTHON = enum.auto()
    MARKER = enum.auto()
    TOML = enum.auto()
    CLI = enum.auto()
    ENV = enum.auto()
    CONTROL = enum.auto()


P, M, T, C, E, K = (
    Surface.PYTHON,
    Surface.MARKER,
    Surface.TOML,
    Surface.CLI,
    Surface.ENV,
    Surface.CONTROL,
)
#: The surfaces whose values arrive as text (CLI, environment) or as TOML values.
TEXT = T | C | E
_ALL = P | M | TEXT

#: CLI help groups, in the order ``fakepop3 --help`` shows them.
GROUPS = (
    "where it listens",
    "users and mail",
    "capabilities",
    "limits and timing",
    "for the CI script",
    "control API",
)

#: The marker's own options: handled by the pytest plugin, not passed to POP3Server.
PLUGIN_HANDLED = frozenset(
    {
        "users",
        "messages",
        "seed",
        "locale",
        "generate",
        "faults",
        "host",
        "login",
        "allow_server_errors",
        "uvloop",
    }
)


@dataclass(frozen=True)
class Option:
    """One option.  ``key`` is its spelling on text surfaces when not ``name``."""

    name: str
    type: str
    default: Any
    check: Callable[[Any, str], Any] | None
    help: str
    surfaces: Surface
    metavar: str | None = None
    #: text (CLI, environment) -> value, or the text itself for ``check`` to refuse.
    parse: Callable[[str, str], Any] | None = None
    group: str = "where it listens"
    key: str | None = None
    #: the CLI flag, when not ``--`` + key with ``-`` for ``_`` (``--user`` for ``users``).
    flag: str | None = None
    #: on the CLI: may be given more than once; in the environment: comma-separated.
    repeat: bool = False
    #: what "not given" means on the text surfaces, when not ``default``.
    text_default: Any = None

    @property
    def text_key(self) -> str:
        return self.key or self.name

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.text_key.replace("_", "-")

    @property
    def env_var(self) -> str:
        return "FAKEPOP3_" + self.text_key.upper()

    @property
    def is_flag(self) -> bool:
        """A switch on the CLI (``--tls`` / ``--no-tls``)."""
        return self.parse is _parse_bool

    def spelled(self, surface: Surface) -> str:
        """How the option is named on ``surface`` (the start of its error messages)."""
        if surface is Surface.CLI:
            return self.cli_flag
        if surface is Surface.ENV:
            return self.env_var
        if surface is Surface.TOML:
            return self.text_key
        return self.name

    def validate(self, value: Any, surface: Surface, prefix: str = "") -> Any:
        """``value`` checked and normalised, errors spelled for ``surface``."""
        if self.check is None:
            return value
        return self.check(value, prefix + self.spelled(surface))

    def from_text(self, raw: str | Sequence[str], surface: Surface) -> Any:
        """A CLI or environment value (text; a list of texts for a repeated CLI flag), checked."""
        name = self.spelled(surface)
        if isinstance(raw, str):
            items = [s.strip() for s in raw.split(",") if s.strip()] if self.repeat else [raw]
        else:
            items = list(raw)
        parse = self.parse or _parse_text
        parsed = [parse(item, name) for item in items]
        value = _combine(self.name, parsed) if self.repeat else parsed[0]
        return self.validate(value, surface)


# --- parsers of text values ---------------------------------------------------------------
def _parse_text(raw: str, name: str) -> str:
    return raw


def _parse_int(raw: str, name: str) -> int | str:
    return v.parse_int(raw)


def _parse_optional_int(raw: str, name: str) -> int | str | None:
    return None if raw.strip().lower() in ("none", "off") else v.parse_int(raw)


def _parse_seconds(raw: str, name: str) -> float | str | None:
    return None if raw.strip().lower() in ("none", "off") else v.parse_number(raw)


def _parse_bool(raw: str, name: str) -> bool | str:
    return v.parse_bool(raw)


def _parse_user(raw: str, name: str) -> tuple[str, str]:
    """``alice:se:cret`` -> ``("alice", "se:cret")``: the password may contain colons."""
    user, colon, password = raw.partition(":")
    if not colon or not user or not password:
        raise OptionError(
            f"{name} {raw!r}: expected NAME:PASSWORD with both parts non-empty, e.g. alice:secret"
        )
    return user, password


def _assignment(value_name: str) -> Callable[[str, str], tuple[str, str]]:
    def parse(raw: str, name: str) -> tuple[str, str]:
        user, eq, value = raw.partition("=")
        if not eq or not user or not value:
            raise OptionError(
                f"{name} {raw!r}: expected NAME={value_name} with both parts non-empty"
            )
        v.user_name(user, f"{name} {raw!r}: NAME")
        return user, value

    return parse


def _parse_count(raw: str, name: str) -> tuple[str, int]:
    user, count = _assignment("COUNT")(raw, name)
    number = v.parse_int(count)
    if not isinstance(number, int) or number < 0:
        raise OptionError(f"{name} {raw!r}: COUNT must be a whole number, 0 or more")
    return user, number


def _combine(name: str, items: list[Any]) -> Any:
    """The parsed items of a repeated option, as its value."""
    if name == "users":
        return dict(items)
    if name == "tokens":
        tokens: dict[str, list[str]] = {}
        for user, token in items:
            tokens.setdefault(user, []).append(token)
        return tokens
    if name in ("disable", "mechanisms"):
        return [part for item in items for part in str(item).split(",") if part.strip()]
    return items


# --- checks that know about fakepop3 types --------------------------------------------------
def _users(value: Any, name: str) -> dict[str, str | None]:
    """``{name: password}`` (a password may be None: a token-only user) or a list of names."""
    if isinstance(value, Mapping):
        users: dict[str, str | None] = {}
        for user, password in value.items():
            v.user_name(user, f"{name} name")
            if password is not None and (not isinstance(password, str) or not password):
                raise OptionError(
                    f"{name}[{user!r}] must be a non-empty password string or None, "
                    f"not {password!r}"
                )
            users[user] = password
        return users
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise OptionError(
            f"{name} must be a mapping of user name to password, or a list of names, not {value!r}"
        )
    return dict.fromkeys(v.user_name(user, f"{name} name") for user in value)


def _tokens(value: Any, name: str) -> dict[str, tuple[str, ...]]:
    """``{name: [token, ...]}`` (one token may be given as a string)."""
    if not isinstance(value, Mapping):
        raise OptionError(f"{name} must be a mapping of user name to OAuth tokens, not {value!r}")
    out: dict[str, tuple[str, ...]] = {}
    for user, tokens in value.items():
        v.user_name(user, f"{name} name")
        items = [tokens] if isinstance(tokens, str) else tokens
        if (
            not isinstance(items, Iterable)
            or not (items := list(items))
            or not all(isinstance(t, str) and t and t == t.strip() for t in items)
            or any(c in t for t in items for c in "\r\n\0")
        ):
            raise OptionError(
                f"{name}[{user!r}] must be a list of OAuth tokens (non-empty strings, one line, "
                f"no spaces at their ends), not {tokens!r}"
            )
        out[user] = tuple(items)
    return out


def _tls(value: Any, name: str) -> Any:
    """True, False, or a :class:`fakepop3.tls.TLSCertificates`."""
    if isinstance(value, bool) or type(value).__name__ == "TLSCertificates":
        return value
    raise OptionError(f"{name} must be true, false or a TLSCertificates, not {value!r}")


#: fakepop3.tls.CERT_MODES and TLS_VERSIONS (this module imports no tls; a test holds them equal).
CERT_MODES = (
    "valid",
    "expired",
    "not-yet-valid",
    "wrong-host",
    "self-signed",
    "untrusted-ca",
    "missing-intermediate",
)
TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")


def _choice(allowed: Sequence[str]) -> Callable[[Any, str], str]:
    def check(value: Any, name: str) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise OptionError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    return check


def _smtp(value: Any, name: str) -> bool | int:
    """True (a free port), False (no SMTP intake), or a port."""
    if isinstance(value, bool):
        return value
    return v.port(value, name)


def _path(value: Any, name: str) -> str:
    """A file path (relative paths in a config file are relative to its folder)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise OptionError(f"{name} must be a file path, not {value!r}")
    return value


def _callable(value: Any, name: str) -> Any:
    """A callable, or None."""
    if value is not None and not callable(value):
        raise OptionError(f"{name} must be callable or None, not {value!r}")
    return value


def _loads(value: Any, name: str) -> list[tuple[str, Any]]:
    """``[(user, path), ...]``, the paths as given (str or Path)."""
    out = []
    for user, path in value:
        _path(path, name)
        out.append((v.user_name(user, f"{name} name"), path))
    return out


def _counts(value: Any, name: str) -> list[tuple[str, int]]:
    return [(v.user_name(user, f"{name} name"), v.non_negative(n, name)) for user, n in value]


_opt_port = v.optional(v.port)
_opt_duration = v.optional(v.duration)
_opt_positive = v.optional(v.positive)
_opt_non_negative = v.optional(v.non_negative)
_opt_expire = v.optional(v.expire)
_opt_host = v.optional(v.host)
_opt_mechanisms = v.optional(check_mechanisms)


def _opt(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return v.optional(check)


_G1, _G2, _G3, _G4, _G5, _G6 = GROUPS

#: The options of the server (POP3Server's keywords) and of the standalone program.
SERVER_OPTIONS: tuple[Option, ...] = (
    Option("host", "str", "127.0.0.1", v.host, "address to listen on", _ALL, "HOST"),
    Option("port", "int", 0, v.port, "POP3 port (0 picks a free port; the program's default "
           "is 1110)", P | TEXT, "PORT", _parse_int, text_default=1110),
    Option("tls_port", "int | None", None, _opt_port, "also listen with implicit TLS "
           "(0 picks a free port)", _ALL, "PORT", _parse_optional_int),
    Option("tls", "bool | TLSCertificates", False, _tls,
           "offer STLS on the plain port (on whenever another TLS option is given)",
           _ALL, None, _parse_bool),
    Option("tls_cert", "str", "valid", _choice(CERT_MODES), "the certificate TLS presents: "
           "valid, or a bad one to test a client's verification: " + ", ".join(CERT_MODES[1:]),
           _ALL, "MODE"),
    Option("tls_version", "str | None", None, v.optional(_choice(TLS_VERSIONS)),
           "pin TLS to one version: 1.0, 1.1 (where OpenSSL allows them), 1.2 or 1.3 "
           "(default: 1.2 and up)", _ALL, "VERSION"),
    Option("cert", "path", None, _opt(_path), "server certificate (PEM), with --key", TEXT,
           "FILE"),
    Option("key", "path", None, _opt(_path), "private key (PEM) of --cert", TEXT, "FILE"),
    Option("ca_out", "path", None, _opt(_path),
           "write the generated test CA (PEM) here, for clients", TEXT, "FILE"),
    Option("smtp", "bool | int", False, _smtp, "SMTP intake port (0 picks a free port; "
           "needs aiosmtpd; Python: True for a free port)", P | M | TEXT, "PORT", _parse_int, key="smtp_port"),
    Option("smtp_host", "str | None", None, _opt_host, "SMTP intake address (default: host)",
           P | TEXT, "HOST"),
    Option("users", "Mapping[str, str | None] | Iterable[str] | None", None, _opt(_users),
           "a user (repeatable; the password may contain colons, and is the APOP secret too)", _ALL | K, "NAME:PASSWORD", _parse_user, _G2, flag="--user",
           repeat=True),
    Option("tokens", "Mapping[str, Iterable[str]] | None", None, _opt(_tokens),
           "an OAuth bearer token of user NAME, for an "
           "XOAUTH2/OAUTHBEARER login (repeatable)", _ALL | K, "NAME=TOKEN", _assignment("TOKEN"), _G2, flag="--token",
           repeat=True),
    Option("any_login", "bool", False, v.boolean, "accept any user name and password "
           "(a maildrop is made for a new name)", _ALL | K, None, _parse_bool, _G2),
    Option("load", "NAME=PATH", None, _opt(_loads), "put mail from an .eml file, a folder of "
           ".eml files, an mbox or a Maildir into NAME's maildrop (repeatable)", TEXT,
           "NAME=PATH", _assignment("PATH"), _G2, repeat=True),
    Option("generate_mail", "NAME=COUNT", None, _opt(_counts), "put COUNT generated messages "
           "into NAME's maildrop (repeatable)", TEXT, "NAME=COUNT", _parse_count, _G2,
           key="generate", repeat=True),
    Option("disable", "Iterable[str]", (), check_disabled, "switch a capability off, e.g. UIDL "
           "(repeatable)", _ALL | K, "CAPA", _parse_text, _G3, repeat=True),
    Option("mechanisms", "Iterable[str] | None", None, _opt_mechanisms,
           "SASL mechanisms offered, comma-separated", _ALL | K, "LIST", _parse_text, _G3,
           repeat=True),
    Option("require_tls", "bool", False, v.boolean, "refuse USER/PASS/APOP/AUTH until STLS",
           _ALL | K, None, _parse_bool, _G3),
    Option("utf8", "bool", False, v.boolean, "offer UTF8 (RFC 6856): UTF-8 user names, and "
           "mail with UTF-8 headers only to a client that sent UTF8 (-ERR [UTF8] before); off "
           "by default, as on Dovecot, Gmail and Outlook", _ALL | K, None, _parse_bool, _G3),
    Option("lenient_syntax", "bool", False, v.boolean, "accept extra spaces and TABs in "
           "command lines (default: as strict as Dovecot)", _ALL | K, None, _parse_bool, _G3),
    Option("maildrop_lock", "bool", True, v.boolean, "lock the maildrop from login to the "
           "session's end, so a second login gets -ERR [IN-USE] (RFC 1939 s4); false lets it "
           "in, as Dovecot's default does", _ALL | K, None, _parse_bool, _G3),
    Option("hostname", "str", "localhost", v.host,
           "the name in the APOP timestamp and CRAM-MD5 challenges", _ALL | K, "NAME", None, _G3),
    Option("login_delay", "int | None", None, _opt_non_negative,
           "advertise (and enforce) LOGIN-DELAY of this many seconds", _ALL | K, "SECONDS",
           _parse_optional_int, _G3),
    Option("expire", "int | str | None", None, _opt_expire,
           "advertise EXPIRE: days, or NEVER", _ALL | K, "DAYS", _parse_optional_int, _G3),
    Option("greeting", "str", "fakepop3 ready.", v.one_line, "the text of the greeting after "
           "+OK (the APOP timestamp follows it)", _ALL | K, "TEXT", None, _G3),
    Option("persona", "str | None", None, _opt(v.persona), "behave like a real server: "
           + ", ".join(v.persona_names()) + " (see docs/personas.md)", _ALL, "NAME", None, _G3),
    Option("persona_file", "path", None, _opt(_path), "a persona of your own: a TOML file "
           "(docs/personas.md; 'fakepop3 record' writes one)", P | M | TEXT, "FILE", None, _G3),
    Option("timeout", "float | None", 600.0, _opt_duration, "autologout timer in seconds "
           "(none: off)", _ALL | K, "SECONDS", _parse_seconds, _G4),
    Option("command_timeout", "float | None", 60.0, _opt_duration, "seconds one command line "
           "may take to arrive (none: off)", _ALL | K, "SECONDS", _parse_seconds, _G4),
    Option("max_connections", "int | None", None, _opt_positive, "past it a new connection "
           "gets -ERR [SYS/TEMP]", _ALL | K, "N", _parse_optional_int, _G4),
    Option("max_bad_commands", "int", 10, v.non_negative, "unknown or malformed commands "
           "before login that close the session", _ALL | K, "N", _parse_int, _G4),
    Option("faults", "Faults | list[dict] | None", None, None, "fault rules "
           "(Faults, or [[faults]] tables of Faults.from_config)", P | M | T | K),
    Option("history", "bool | History", True, None, "False turns recording off, or a History",
           P),
    Option("history_file", "path", None, _opt(_path), "write every command here as JSON lines",
           TEXT, "FILE", None, _G5, key="history"),
    Option("history_limit", "int | None", 1000, _opt_non_negative, "ended sessions the "
           "server keeps in memory, the last ones (the --history file keeps every one; "
           "none: no bound)", TEXT, "N", _parse_optional_int, _G5),
    Option("ready_file", "path", None, _opt(_path),
           "write host, ports, CA path and pid here once ready", TEXT, "FILE", None, _G5),
    Option("uvloop", "bool", False, v.boolean, "serve on uvloop, a faster event loop "
           "(pip install 'fakepop3[speed]')", M | TEXT, None, _parse_bool, _G5),
    Option("control_port", "int | None", None, _opt_port, "serve the HTTP control API and "
           "the live page on this port (0 picks a free port; needs the control extra)",
           P | TEXT, "PORT", _parse_optional_int, _G6),
    Option("control_host", "str | None", None, _opt_host, "where the control API listens "
           "(default: host); not loopback only with a control token", P | TEXT, "HOST", None,
           _G6),
    Option("control_token", "str | None", None, _opt(v.token), "require 'Authorization: "
           "Bearer TOKEN' on every control request", P | TEXT, "TOKEN", None, _G6),
    Option("lint", "bool", False, v.boolean, "record the client's protocol mistakes (each with "
           "its RFC, in the history) and fail the test at teardown", P | M | TEXT, None,
           _parse_bool, _G5),
    Option("lint_ignore", "Iterable[str]", (), None, "lint rules not to check "
           "(fakepop3.faults.LINT_RULES; repeatable)", P | M | TEXT, "RULE", _parse_text, _G5,
           repeat=True),
    Option("store", "MailStore | None", None, None, "a MailStore to share between servers", P),
    Option("on_session_end", "Callable[[SessionRecord], None] | None", None, _callable,
           "called with each SessionRecord as it ends", P),
    Option("settings", "Settings | None", None, None, "a ready protocol Settings (overrides "
           "the protocol options)", P),
    Option("loop_factory", "Callable[[], AbstractEventLoop] | None", None, _callable,
           "makes the event loop of the thread-hosted server", P),
)  # fmt: skip

#: Where each generator knob can be given, when not the usual Python, marker and TOML
#: (``[generate_options]``): the seed and the locale are top-level on the text surfaces.
_KNOB_SURFACES: dict[str, tuple[Surface, str | None, Callable[[str, str], Any] | None]] = {
    "seed": (P | M | TEXT, "N", _parse_int),
    "locale": (P | M | TEXT, "LOCALE", None),
    "hook": (P | M, None, None),
}

#: The generator's knobs (fakepop3._knobs.KNOBS) as options; on the CLI only the seed and
#: locale.
GENERATOR_OPTIONS: tuple[Option, ...] = tuple(
    Option(
        knob.name,
        knob.type,
        knob.default,
        knob.check,
        knob.help,
        *_KNOB_SURFACES.get(knob.name, (P | M | T, None, None)),
        group=_G2,
    )
    for knob in KNOBS
)

#: The pytest plugin's own marker options.
PLUGIN_OPTIONS: tuple[Option, ...] = (
    Option("messages", "int | list", 3, None, "number of generated messages for the default "
           "user, or a list of messages to store", M),
    Option("generate", "dict", None, None, "dict of extra keyword arguments for "
           "fakepop3.generate.generate_messages", M),
    Option("login", "bool", True, None, "False: pop3_client connects without logging in", M),
    Option("allow_server_errors", "bool", False, None,
           "True: errors inside the server do not fail the test", M),
)  # fmt: skip

OPTIONS: dict[str, Option] = {o.name: o for o in (*SERVER_OPTIONS, *GENERATOR_OPTIONS)}
_BY_NAME: dict[str, Option] = {**OPTIONS, **{o.name: o for o in PLUGIN_OPTIONS}}


#: The options that can change while the server runs (``POP3Server.configure``, ``PATCH
#: /api/v1/settings``): those with the CONTROL surface but the users, tokens and faults,
#: which have their own methods and endpoints.
RUNTIME_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in SERVER_OPTIONS
    if Surface.CONTROL in o.surfaces and o.name not in ("users", "tokens", "faults")
}


def python_options() -> tuple[Option, ...]:
    """POP3Server's keywords, in the order of its signature's schema."""
    return tuple(o for o in SERVER_OPTIONS if Surface.PYTHON in o.surfaces)


def check_python_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """POP3Server's keyword values (``values`` may hold more, e.g. ``self``), each checked.

    It runs on every ``POP3Server(...)`` (so on every fixture): the (name, check) pairs are
    made once, since an ``enum.Flag`` test per option per call cost ~100 µs on CPython 3.11.
    """
    out = {}
    for name, check, default in _PYTHON_CHECKS:
        value = values[name]
        # A default is valid (tests/test_options.py checks each one): most keywords of most
        # calls are their defaults, and skipping their checks halves the cost of a fixture's
        # POP3Server(...).
        out[name] = value if check is None or value is default else check(value, name)
    return out


_PYTHON_CHECKS: tuple[tuple[str, Callable[[Any, str], Any] | None, Any], ...] = tuple(
    (o.name, o.check, o.default) for o in python_options()
)


def text_options() -> tuple[Option, ...]:
    """The standalone program's options (CLI, environment and TOML), generator ones included."""
    return tuple(o for o in OPTIONS.values() if o.surfaces & (Surface.CLI | Surface.ENV))


def toml_options() -> dict[str, Option]:
    """Top-level TOML keys -> option (the generator knobs but seed/locale live in a table)."""
    top = [o for o in SERVER_OPTIONS if Surface.TOML in o.surfaces]
    top += [o for o in GENERATOR_OPTIONS if Surface.CLI in o.surfaces]
    return {o.text_key: o for o in top}


def generator_toml_options() -> dict[str, Option]:
    """The keys of ``[generate_options]``."""
    return {
        o.name: o
        for o in GENERATOR_OPTIONS
        if Surface.TOML in o.surfaces and Surface.CLI not in o.surfaces
    }


def marker_options() -> tuple[str, ...]:
    """Every key ``@pytest.mark.pop3(...)`` accepts: the plugin's own, the generator's seed
    and locale, then POP3Server's (the other generator knobs go inside ``generate=``)."""
    names = ["users", *(o.name for o in PLUGIN_OPTIONS)]  # the default user's name comes first
    names += [o.name for o in GENERATOR_OPTIONS if o.surfaces & Surface.CLI]
    names += [o.name for o in SERVER_OPTIONS if Surface.MARKER in o.surfaces]
    return tuple(dict.fromkeys(names))


def marker_server_options() -> tuple[str, ...]:
    """The marker keys passed straight to POP3Server."""
    return tuple(name for name in marker_options() if name not in PLUGIN_HANDLED)


def check_marker(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The marker's keyword arguments, names and values checked (OptionError, one line).

    Values of the plugin's own options (``messages``, ``login``, ...) are the plugin's to
    check; ``generate=`` is a dict of generator knobs, each checked here.
    """
    out: dict[str, Any] = {}
    known = marker_options()
    for name, value in kwargs.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionError(f"unknown option {name!r}{hint}; known options: {', '.join(known)}")
        if name == "generate" and isinstance(value, Mapping):
            out[name] = check_knobs(value, prefix="generate ")
        else:
            out[name] = _BY_NAME[name].validate(value, Surface.MARKER)
    return out


def check_knobs(knobs: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Generator knobs checked one by one (pairs such as min/max_size: generate.check_knobs)."""
    out: dict[str, Any] = {}
    gen = {o.name: o for o in GENERATOR_OPTIONS}
    for name, value in knobs.items():
        option = gen.get(name)
        if option is None:
            close = difflib.get_close_matches(name, list(gen), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionError(f"{prefix}unknown knob {name!r}{hint}; known: {', '.join(gen)}")
        out[name] = option.validate(value, Surface.MARKER, prefix)
    return out


# --- the docs table -----------------------------------------------------------------------
_SURFACE_NAMES = (
    (Surface.PYTHON, "Python"),
    (Surface.MARKER, "marker"),
    (Surface.TOML, "TOML"),
    (Surface.CLI, "CLI"),
    (Surface.ENV, "env"),
    (Surface.CONTROL, "control"),
)


def markdown_table() -> str:
    """The options as the Markdown tables of docs/server.md."""
    lines: list[str] = []
    for title, options in (
        ("Server options", SERVER_OPTIONS),
        ("Generator knobs (TOML: `[generate_options]`; marker: `generate=`)", GENERATOR_OPTIONS),
    ):
        lines += [f"#### {title}", ""]
        lines += ["| option | default | CLI / env / TOML | surfaces | what it does |"]
        lines += ["|---|---|---|---|---|"]
        for o in options:
            spell = []
            if Surface.CLI in o.surfaces:
                spell.append(f"`{o.cli_flag}{' ' + o.metavar if o.metavar else ''}`")
            if Surface.ENV in o.surfaces:
                spell.append(f"`{o.env_var}`")
            if Surface.TOML in o.surfaces and o.text_key != o.name:
                spell.append(f"`{o.text_key}`")
            shown = o.default.isoformat() if hasattr(o.default, "isoformat") else repr(o.default)
            default = f"`{shown}`"
            if o.text_default is not None:
                default += f" (program: `{o.text_default!r}`)"
            surfaces = ", ".join(label for s, label in _SURFACE_NAMES if s in o.surfaces)
            help_text = o.help.replace("|", "\\|")
            lines.append(
                f"| `{o.name}` | {default} | {' '.join(spell) or '—'} | {surfaces} | {help_text} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _main(argv: Sequence[str] | None = None) -> int:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--markdown"]:
        print("usage: python -m fakepop3.options --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a program
    raise SystemExit(_main())
