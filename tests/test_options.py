"""The options schema (fakepop3.options), walked: every option reaches every surface it is
declared for, is refused on the others, and a bad value reads the same everywhere."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from fakepop3 import generate, protocol
from fakepop3._knobs import KNOBS
from fakepop3._validate import OptionError
from fakepop3.cli import build_parser, options_from
from fakepop3.config import KNOWN_KEYS, ConfigError, Options, env_values, load_config
from fakepop3.options import (
    GENERATOR_OPTIONS,
    OPTIONS,
    SERVER_OPTIONS,
    Surface,
    check_marker,
    markdown_table,
    marker_options,
    marker_server_options,
    python_options,
    text_options,
    toml_options,
)
from fakepop3.server import POP3Server

#: A good value of each Python option, and how the server shows it took it.
PYTHON_SAMPLES: dict[str, tuple[Any, Any]] = {
    "host": ("localhost", lambda s: s.host == "localhost"),
    "port": (1234, lambda s: s.port == 1234),
    "tls_port": (0, lambda s: s.tls_port == 0 and s.tls is not None),
    "tls": (True, lambda s: s.tls is not None),
    "tls_cert": ("expired", lambda s: s.tls is not None and s.tls.mode == "expired"),
    "tls_version": ("1.3", lambda s: s.tls is not None and s.tls.version == "1.3"),
    "smtp": (0, lambda s: s._smtp_port == 0),
    "smtp_host": ("127.0.0.2", lambda s: s.smtp_host == "127.0.0.2"),
    "users": ({"bob": "pw"}, lambda s: s.store.mailbox("bob").password == "pw"),
    "tokens": ({"bob": ["tk"]}, lambda s: "tk" in s.store.mailbox("bob").tokens),
    "any_login": (True, lambda s: s.settings.any_login),
    "disable": (["uidl"], lambda s: s.settings.disabled == {"UIDL"}),
    "mechanisms": (["plain"], lambda s: s.settings.mechanisms == ("PLAIN",)),
    "require_tls": (True, lambda s: s.settings.require_tls),
    "hostname": ("pop.test", lambda s: s.settings.hostname == "pop.test"),
    "login_delay": (5, lambda s: s.settings.login_delay == 5),
    "expire": ("NEVER", lambda s: s.settings.expire == "NEVER"),
    "timeout": (30.0, lambda s: s.timeout == 30.0),
    "command_timeout": (7, lambda s: s.command_timeout == 7),
    "max_connections": (4, lambda s: s.max_connections == 4),
    "max_bad_commands": (2, lambda s: s.settings.max_bad_commands == 2),
    "lenient_syntax": (True, lambda s: s.settings.lenient_syntax is True),
    "maildrop_lock": (False, lambda s: s.settings.maildrop_lock is False),
    "utf8": (True, lambda s: s.settings.utf8 is True and s.settings.enabled("UTF8")),
    "greeting": ("Dovecot ready.", lambda s: s.settings.greeting == "Dovecot ready."),
    "persona": ("dovecot", lambda s: s.persona.name == "dovecot"),
    "persona_file": (
        Path(__file__).parent.parent / "fakepop3" / "personas" / "qmail.toml",
        lambda s: s.persona.name == "qmail",
    ),
    "control_port": (0, lambda s: s._control_port == 0),
    "control_host": ("127.0.0.2", lambda s: s._control_host == "127.0.0.2"),
    "control_token": ("s3cret", lambda s: s._control_token == "s3cret"),
    "lint": (True, lambda s: s.linter is not None),
    "lint_ignore": (["login-delay"], lambda s: s.linter.ignore == {"login-delay"}),
    "faults": (None, lambda s: s.faults is not None),
    "history": (False, lambda s: not s.history.enabled),
    "store": (None, lambda s: s.store is not None),
    "on_session_end": (print, lambda s: True),
    "settings": (protocol.Settings(hostname="x"), lambda s: s.settings.hostname == "x"),
    "loop_factory": (None, lambda s: True),
}

#: What a sample needs beside it.
NEEDS: dict[str, dict[str, Any]] = {"require_tls": {"tls": True}, "lint_ignore": {"lint": True}}

#: A good value of each text option: (TOML literal, CLI/env text, the value in config.Options).
TEXT_SAMPLES: dict[str, tuple[str, str, Any]] = {
    "host": ('"localhost"', "localhost", "localhost"),
    "port": ("1234", "1234", 1234),
    "tls_port": ("0", "0", 0),
    "tls": ("true", "true", True),
    "tls_cert": ('"wrong-host"', "wrong-host", "wrong-host"),
    "tls_version": ('"1.2"', "1.2", "1.2"),
    "cert": ('"c.pem"', "c.pem", "c.pem"),
    "key": ('"k.pem"', "k.pem", "k.pem"),
    "ca_out": ('"ca.pem"', "ca.pem", "ca.pem"),
    "smtp": ("0", "0", 0),
    "smtp_host": ('"127.0.0.2"', "127.0.0.2", "127.0.0.2"),
    "users": ('{bob = "pw"}', "bob:pw", {"bob": "pw"}),
    "tokens": ('{bob = ["tk"]}', "bob=tk", {"bob": ["tk"]}),
    "any_login": ("true", "yes", True),
    "load": ('{bob = "m.mbox"}', "bob=m.mbox", [("bob", "m.mbox")]),
    "generate_mail": ("{bob = 3}", "bob=3", [("bob", 3)]),
    "disable": ('["uidl"]', "uidl", ["UIDL"]),
    "mechanisms": ('["plain"]', "plain", ["PLAIN"]),
    "require_tls": ("true", "on", True),
    "hostname": ('"pop.test"', "pop.test", "pop.test"),
    "login_delay": ("5", "5", 5),
    "expire": ('"never"', "never", "never"),
    "timeout": ("30.5", "30.5", 30.5),
    "command_timeout": ("7", "7", 7),
    "max_connections": ("4", "4", 4),
    "max_bad_commands": ("2", "2", 2),
    "lenient_syntax": ("true", "on", True),
    "maildrop_lock": ("false", "off", False),
    "utf8": ("true", "on", True),
    "greeting": ('"Dovecot ready."', "Dovecot ready.", "Dovecot ready."),
    "persona": ('"gmail"', "gmail", "gmail"),
    "persona_file": ('"p.toml"', "p.toml", "p.toml"),
    "control_port": ("0", "0", 0),
    "control_host": ('"127.0.0.2"', "127.0.0.2", "127.0.0.2"),
    "control_token": ('"s3cret"', "s3cret", "s3cret"),
    "faults": (
        '[{command = "RETR", action = "error"}]',
        "",
        [{"command": "RETR", "action": "error"}],
    ),
    "history_file": ('"h.jsonl"', "h.jsonl", "h.jsonl"),
    "history_limit": ("50", "50", 50),
    "ready_file": ('"r.json"', "r.json", "r.json"),
    "uvloop": ("true", "1", True),
    "lint": ("true", "on", True),
    "lint_ignore": ('["bare-lf"]', "bare-lf", ["bare-lf"]),
    "seed": ("42", "42", 42),
    "locale": ('"de_DE,fr_FR"', "de_DE,fr_FR", ("de_DE", "fr_FR")),
}

#: Bad values that every surface of the option can spell: (Python/TOML value, text).
BAD: dict[str, tuple[Any, str]] = {
    "port": (99999, "99999"),
    "tls_port": (-1, "-1"),
    "tls_cert": ("bogus", "bogus"),
    "tls_version": ("2.0", "2.0"),
    "smtp": (70000, "70000"),
    "timeout": (0, "0"),
    "command_timeout": (-1, "-1"),
    "max_connections": (0, "0"),
    "max_bad_commands": (-1, "-1"),
    "login_delay": (-3, "-3"),
    "expire": (-1, "-1"),
    "hostname": ("a\r\nb", "a\r\nb"),
    "host": ("a\nb", "a\nb"),
    "smtp_host": ("a\0b", "a\0b"),
    "seed": ("x", "x"),
    "greeting": ("two\nlines", "two\nlines"),
    "persona": ("nope", "nope"),
    "control_port": (-1, "-1"),
    "control_token": ("with space", "with space"),
}


def _field(option_key: str, opts: Options) -> Any:
    value = getattr(opts, option_key)
    if option_key == "load":
        return [(name, str(path)) for name, path in value]
    return str(value) if isinstance(value, Path) else value


def test_the_signature_of_pop3server_is_the_schema() -> None:
    params = list(inspect.signature(POP3Server.__init__).parameters.values())[1:]
    assert {p.name for p in params} == {o.name for o in python_options()}
    assert all(p.kind is p.KEYWORD_ONLY for p in params[1:]), "all keyword-only but users"
    defaults = {p.name: p.default for p in params}
    for option in python_options():
        assert defaults[option.name] == option.default, option.name


def test_every_python_option_reaches_the_server() -> None:
    assert set(PYTHON_SAMPLES) == {o.name for o in python_options()}
    for name, (value, shows) in PYTHON_SAMPLES.items():
        server = POP3Server(**{name: value}, **NEEDS.get(name, {}))
        assert shows(server), name


def test_text_only_options_are_refused_in_python() -> None:
    for option in OPTIONS.values():
        if Surface.PYTHON not in option.surfaces and option in SERVER_OPTIONS:
            with pytest.raises(TypeError):
                POP3Server(**{option.name: "x"})


@pytest.mark.parametrize("option", list(toml_options().values()), ids=lambda o: o.name)
def test_every_toml_key_reaches_the_options(option: Any, tmp_path: Path) -> None:
    literal, _, expected = TEXT_SAMPLES[option.name]
    config = tmp_path / "c.toml"
    config.write_text(f"{option.text_key} = {literal}\n", "utf-8")
    values = load_config(config)
    opts = Options()
    opts.apply(values)
    got = _field(option.text_key, opts)
    if option.text_key in ("cert", "key", "ca_out", "history", "ready_file", "persona_file"):
        expected = str(tmp_path / expected)
    if option.name == "load":
        expected = [("bob", str(tmp_path / "m.mbox"))]
    assert got == expected


def test_toml_keys_are_the_schema() -> None:
    assert {*toml_options(), "generate_options"} == KNOWN_KEYS
    assert set(TEXT_SAMPLES) == {o.name for o in toml_options().values()}


@pytest.mark.parametrize(
    "option",
    [o for o in text_options() if Surface.CLI in o.surfaces],
    ids=lambda o: o.name,
)
def test_every_cli_flag_and_env_var_reaches_the_options(option: Any) -> None:
    _, raw, expected = TEXT_SAMPLES[option.name]
    argv = [option.cli_flag] if option.is_flag else [option.cli_flag, raw]
    if option.is_flag and not expected:
        argv = [f"--no-{option.cli_flag[2:]}"]
    args = build_parser().parse_args(argv)
    raw_value = getattr(args, option.text_key)
    value = raw_value if option.is_flag else option.from_text(raw_value, Surface.CLI)
    env = env_values({option.env_var: raw})
    opts_cli, opts_env = Options(), Options()
    opts_cli.apply({option.text_key: value})
    opts_env.apply(env)
    assert _field(option.text_key, opts_cli) == expected
    assert _field(option.text_key, opts_env) == expected


def test_cli_and_env_refuse_what_they_do_not_declare() -> None:
    flags = {o.cli_flag for o in OPTIONS.values() if Surface.CLI in o.surfaces}
    for option in OPTIONS.values():
        flag = f"--{option.name.replace('_', '-')}"
        if flag in flags:  # Python's history= is not the program's --history FILE
            continue
        if Surface.CLI not in option.surfaces:
            with pytest.raises(ConfigError, match="unrecognized arguments"):
                build_parser().parse_args([flag, "x"])
        if Surface.ENV not in option.surfaces:
            assert env_values({f"FAKEPOP3_{option.name.upper()}": "x"}) == {}


def test_marker_options_are_todays_and_checked() -> None:
    from fakepop3 import _plugin_config, plugin

    assert plugin.MARKER_OPTIONS == marker_options()
    assert _plugin_config.SERVER_OPTIONS == marker_server_options()
    for name in marker_server_options():
        assert Surface.MARKER in OPTIONS[name].surfaces and Surface.PYTHON in OPTIONS[name].surfaces
    assert check_marker({"timeout": 5, "generate": {"html": 0.0}}) == {
        "timeout": 5,
        "generate": {"html": 0.0},
    }
    with pytest.raises(OptionError, match=r"unknown option 'timout' \(did you mean 'timeout'\?\)"):
        check_marker({"timout": 5})
    with pytest.raises(OptionError, match="unknown option 'port'"):
        check_marker({"port": 5})  # the fixtures pick the ports
    with pytest.raises(OptionError, match="^generate html is a share between 0 and 1, got 2"):
        check_marker({"generate": {"html": 2}})


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_reads_the_same_on_every_surface(name: str, tmp_path: Path) -> None:
    option = OPTIONS[name]
    value, raw = BAD[name]
    messages: dict[Surface, str] = {}
    if Surface.PYTHON in option.surfaces and option in SERVER_OPTIONS:
        with pytest.raises(ValueError) as python:
            POP3Server(**{name: value})
        messages[Surface.PYTHON] = str(python.value)
    if Surface.MARKER in option.surfaces:
        with pytest.raises(OptionError) as marker:
            check_marker({name: value})
        messages[Surface.MARKER] = str(marker.value)
    with pytest.raises(OptionError) as cli:
        options_from([option.cli_flag, raw], environ={})
    messages[Surface.CLI] = str(cli.value)
    with pytest.raises(OptionError) as env:
        options_from([], environ={option.env_var: raw})
    messages[Surface.ENV] = str(env.value)
    config = tmp_path / "c.toml"
    config.write_text(f"{option.text_key} = {json.dumps(value)}\n", "utf-8")
    with pytest.raises(OptionError) as toml:
        load_config(config)
    messages[Surface.TOML] = str(toml.value).removeprefix(f"config {config}: ")
    plain = {s: m.replace(option.spelled(s), "NAME", 1) for s, m in messages.items()}
    assert len(set(plain.values())) == 1, messages
    for surface, message in messages.items():
        assert message.startswith(option.spelled(surface) + " "), message
        assert "\n" not in message


def test_precedence_flags_then_env_then_file_then_default(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("max_connections = 1\n", "utf-8")
    env = {"FAKEPOP3_CONFIG": str(config), "FAKEPOP3_MAX_CONNECTIONS": "2"}
    assert options_from(["--max-connections", "3"], environ=env).max_connections == 3
    assert options_from([], environ=env).max_connections == 2
    assert options_from([], environ={"FAKEPOP3_CONFIG": str(config)}).max_connections == 1
    assert options_from([], environ={}).max_connections is None
    assert options_from([], environ={}).port == 1110


def test_options_dataclass_fields_are_the_text_keys() -> None:
    keys = {o.text_key for o in toml_options().values()}
    fields = set(Options.__dataclass_fields__) - {"generate_options"}
    assert fields == keys


def test_generator_knobs_are_generate_messages_keywords() -> None:
    params = inspect.signature(generate.generate_messages).parameters
    assert [o.name for o in GENERATOR_OPTIONS] == [p for p in params if p != "count"]
    for option in GENERATOR_OPTIONS:
        assert params[option.name].default == option.default, option.name
    # Declared once (fakepop3._knobs): the options are the knobs, checks included.
    assert [(o.name, o.default, o.check, o.help) for o in GENERATOR_OPTIONS] == [
        (k.name, k.default, k.check, k.help) for k in KNOBS
    ]
    assert generate.MIN_SIZE_FLOOR == 1024 and generate.DEFAULT_START is OPTIONS["start"].default
    with pytest.raises(OptionError, match="min_size must be at least 1024 octets, got 10"):
        check_marker({"generate": {"min_size": 10}})


def test_capability_and_mechanism_names_are_checked_by_the_protocols_own_checks() -> None:
    from fakepop3.protocol._settings import check_disabled

    assert OPTIONS["disable"].check is check_disabled
    with pytest.raises(OptionError, match="unknown SASL mechanism: NOPE; known: CRAM-MD5, "):
        OPTIONS["mechanisms"].validate(["plain", "nope"], Surface.PYTHON)
    with pytest.raises(OptionError, match="unknown capability to disable: BOGUS; known: APOP"):
        protocol.Settings(disabled=frozenset({"bogus"}))


def test_the_options_table_in_the_docs_is_the_schema() -> None:
    page = (Path(__file__).parent.parent / "docs" / "server.md").read_text("utf-8")
    begin, end = "<!-- options table: begin -->\n", "<!-- options table: end -->"
    assert begin in page and end in page, "docs/server.md lost its options table markers"
    shown = page.split(begin)[1].split(end)[0]
    assert shown == markdown_table(), (
        "docs/server.md's options table is out of date: paste the output of "
        "python -m fakepop3.options --markdown between its markers"
    )


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("timeout", float("nan"), "timeout must be a positive number of seconds, not nan"),
        ("command_timeout", float("inf"), "command_timeout must be a positive number of seconds"),
        (
            "max_connections",
            True,
            "max_connections must be at least 1 \\(a whole number\\), not True",
        ),
        ("login_delay", -1, "login_delay must be at least 0 \\(a whole number\\), not -1"),
        ("hostname", "pop\r\n+OK", "hostname must be a host name without CR, LF or NUL"),
        ("users", {" alice": "pw"}, "users name must be a user name with no spaces at its ends"),
        ("tokens", {"alice": ["a\r\nb"]}, r"tokens\['alice'\] must be a list of OAuth tokens"),
        ("users", "alice", "users must be a mapping of user name to password, or a list of names"),
    ],
)
def test_python_values_that_used_to_slip_through(keyword: str, value: Any, message: str) -> None:
    """NaN and infinite timeouts, True as a count, negative LOGIN-DELAY (advertised in CAPA
    before), a hostname with CRLF (it split the greeting) are refused at construction."""
    with pytest.raises(OptionError, match=f"^{message}"):
        POP3Server(**{keyword: value})


def test_every_default_passes_its_own_check() -> None:
    # POP3Server(...) skips the check of a keyword left at its default (check_python_options).
    for option in (*SERVER_OPTIONS, *GENERATOR_OPTIONS):
        if option.check is not None and option.default is not None:
            option.validate(option.default, Surface.PYTHON)
    assert OPTIONS["users"].validate(None, Surface.PYTHON) is None  # users: none given
    with pytest.raises(OptionError, match="port must be an integer from 0 to 65535"):
        POP3Server(port=70000)  # a value that is not the default is still checked
