"""Options of the standalone server, from the command line and a TOML file.

:func:`load_config` reads a TOML file into a dict of checked values, with paths
made relative to the file's folder; :class:`Options` merges it with the flags
(flags win).  Every problem raises :class:`ConfigError` with one line that
says what is wrong and how to fix it; the command line prints it and exits 2.

Every key, flag and environment variable comes from :mod:`fakepop3.options`
(``python -m fakepop3.options --markdown`` lists them).  Precedence: flags, then
``FAKEPOP3_*`` environment variables, then the config file, then the defaults.

A config file says the same as the flags, plus faults and capabilities::

    host = "127.0.0.1"
    port = 1110                 # 0 picks a free port
    tls_port = 1995
    ca_out = "ca.pem"
    any_login = false
    seed = 42
    locale = "en_US"
    history = "pop3-history.jsonl"
    ready_file = "pop3-ready.json"
    smtp_port = 2525
    disable = ["UIDL"]          # capabilities to switch off
    mechanisms = ["PLAIN", "XOAUTH2"]

    command_timeout = 60        # seconds a command line may take to arrive
    max_connections = 50

    [users]
    alice = "secret"            # or a table: [users.alice] password = "..." tokens = [...]

    [tokens]                    # OAuth bearer tokens (XOAUTH2, OAUTHBEARER)
    alice = ["alice-token"]

    [load]
    alice = "fixtures/alice.mbox"   # or a list of paths

    [generate]
    alice = 50

    [generate_options]          # knobs of fakepop3.generate.generate_messages
    min_size = 4000
    html = 0.0

    [[faults]]                  # rules of fakepop3.faults.Faults.from_config
    command = "RETR"
    nth = 2
    action = "error"
    text = "Try again later"
    code = "SYS/TEMP"
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._validate import OptionError
from .options import Option, Surface, check_knobs, generator_toml_options, toml_options

__all__ = [
    "ConfigError",
    "Options",
    "env_values",
    "load_config",
    "parse_assignment",
    "parse_port",
    "parse_user",
]

#: A bad option or config value; its message is one line meant for the user.  The same
#: class as :class:`fakepop3.options.OptionError` (a ``ValueError``).
ConfigError = OptionError

_OPTIONS: dict[str, Option] = toml_options()
_PATH_KEYS = frozenset({"cert", "key", "ca_out", "history", "ready_file", "persona_file"})
#: The files the server writes.
_OUTPUT_FLAGS = frozenset({"--ca-out", "--history", "--ready-file"})
#: The most messages ``--generate`` makes in all (a generated maildrop of 10,000 or more takes
#: under 20 bytes a message while the server runs, a smaller one about 300: sizes now, bytes on
#: RETR; docs/mail.md, "Large maildrops").
MAX_GENERATED = 1_000_000
#: Keys a config file may have.
KNOWN_KEYS = frozenset((*_OPTIONS, "generate_options"))


@dataclass
class Options:
    """Everything the standalone server needs, after merging defaults, file, environment, flags.

    Its fields are the text keys of :mod:`fakepop3.options` (tests/test_options.py
    keeps them equal).
    """

    host: str = "127.0.0.1"
    port: int = 1110
    tls_port: int | None = None
    tls: bool = False
    tls_cert: str = "valid"
    tls_version: str | None = None
    cert: Path | None = None
    key: Path | None = None
    ca_out: Path | None = None
    users: dict[str, str | None] = field(default_factory=dict)
    tokens: dict[str, list[str]] = field(default_factory=dict)
    any_login: bool = False
    load: list[tuple[str, Path]] = field(default_factory=list)
    generate: list[tuple[str, int]] = field(default_factory=list)
    generate_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    locale: str | tuple[str, ...] = "en_US"
    history: Path | None = None
    history_limit: int | None = 1000
    ready_file: Path | None = None
    smtp_port: int | None = None
    smtp_host: str | None = None
    disable: list[str] = field(default_factory=list)
    mechanisms: list[str] | None = None
    faults: list[dict[str, Any]] | None = None
    require_tls: bool = False
    hostname: str = "localhost"
    timeout: float | None = 600.0
    command_timeout: float | None = 60.0
    login_delay: int | None = None
    expire: int | str | None = None
    max_connections: int | None = None
    max_bad_commands: int = 10
    lenient_syntax: bool = False
    maildrop_lock: bool = True
    utf8: bool = False
    greeting: str = "fakepop3 ready."
    persona: str | None = None
    persona_file: Path | None = None
    uvloop: bool = False
    control_port: int | None = None
    control_host: str | None = None
    control_token: str | None = None
    lint: bool = False
    lint_ignore: list[str] = field(default_factory=list)

    @property
    def tls_enabled(self) -> bool:
        """TLS is on (STLS on the plain port) when any TLS option was given."""
        return (
            self.tls
            or self.tls_port is not None
            or self.cert is not None
            or self.require_tls
            or self.tls_cert != "valid"
            or self.tls_version is not None
        )

    def apply(self, values: Mapping[str, Any]) -> None:
        """Overwrite fields with ``values`` (checked values, as :func:`load_config` returns);
        users, tokens, mail and disabled capabilities add up instead."""
        for key, value in values.items():
            if key == "users":
                self.users.update(value)
            elif key == "tokens":
                for name, tokens in value.items():
                    self.tokens.setdefault(name, []).extend(tokens)
            elif key in ("load", "generate", "disable"):
                getattr(self, key).extend(
                    [(n, Path(p)) for n, p in value] if key == "load" else value
                )
            elif key == "generate_options":
                self.generate_options.update(value)
            elif key == "mechanisms":
                self.mechanisms = list(value) if value is not None else None
            elif key in _PATH_KEYS:
                setattr(self, key, Path(value) if value is not None else None)
            else:
                setattr(self, key, value)

    def check(self) -> None:
        """Check what can only be checked on the whole: pairs of options, files, users."""
        if (self.cert is None) != (self.key is None):
            raise ConfigError("--cert and --key go together: give both, or neither for a test CA")
        if self.cert is not None and self.ca_out is not None:
            raise ConfigError(
                "--ca-out writes the generated test CA; with --cert/--key your clients "
                "trust your own CA, so leave --ca-out out"
            )
        for what, path in (("--cert", self.cert), ("--key", self.key)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{what} {path}: no such file")
        for what, path in (
            ("--ca-out", self.ca_out),
            ("--history", self.history),
            ("--ready-file", self.ready_file),
        ):
            if path is not None and not path.parent.is_dir():
                raise ConfigError(f"{what} {path}: the folder {path.parent} does not exist")
            if path is not None and path.is_dir():
                raise ConfigError(f"{what} {path}: is a folder; give a file path in it")
        self._check_one_path_each()
        generated = sum(count for _, count in self.generate)
        if generated > MAX_GENERATED:
            raise ConfigError(
                f"--generate: {generated:,} messages in all is more than the {MAX_GENERATED:,} "
                "a server generates (each takes memory while it serves); use fewer, or --load"
            )
        if self.persona_file is not None and not self.persona_file.is_file():
            raise ConfigError(f"--persona-file {self.persona_file}: no such file")
        for name, path in self.load:
            if not path.exists():
                raise ConfigError(f"--load {name}={path}: no such file or folder")
        wanted = [name for name, _ in self.load] + [name for name, _ in self.generate]
        for name in wanted:
            if name not in self.users and name not in self.tokens and not self.any_login:
                raise ConfigError(
                    f"mail for {name!r} but no such user: add --user {name}:PASSWORD "
                    "(or [users] in the config), or --any-login"
                )

    def _check_one_path_each(self) -> None:
        """No two of the files the server writes, nor one it writes and one it reads, are the
        same file (``--ready-file X --history X`` would destroy the history)."""
        named: list[tuple[str, Path]] = [
            (what, path)
            for what, path in (
                ("--ca-out", self.ca_out),
                ("--history", self.history),
                ("--ready-file", self.ready_file),
                ("--cert", self.cert),
                ("--key", self.key),
            )
            if path is not None
        ]
        named += [(f"--load {name}", path) for name, path in self.load]
        seen: dict[str, str] = {}
        for what, path in named:
            real = os.path.realpath(path)
            first = seen.setdefault(real, what)
            if first != what and (what in _OUTPUT_FLAGS or first in _OUTPUT_FLAGS):
                raise ConfigError(
                    f"{first} and {what} name the same file {path}: give each its own"
                )


def parse_port(text: str, what: str = "--port") -> int:
    """``"1110"`` -> 1110; :class:`ConfigError` for anything but 0..65535."""
    option = _OPTIONS["port"]
    value: Any = option.from_text(text, Surface.CLI)
    if what != "--port":
        from ._validate import port

        value = port(value, what)
    return int(value)


def parse_user(spec: str) -> tuple[str, str]:
    """``"alice:se:cret"`` -> ``("alice", "se:cret")``: the password may contain colons."""
    [(name, password)] = _OPTIONS["users"].from_text([spec], Surface.CLI).items()
    assert password is not None
    return name, password


def parse_assignment(option: str, spec: str, value_name: str) -> tuple[str, str]:
    """``"alice=x"`` -> ``("alice", "x")`` for ``--load``/``--generate``."""
    from .options import _assignment

    return _assignment(value_name)(spec, option)


def env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The checked values of the ``FAKEPOP3_*`` variables set (non-empty) in ``environ``."""
    out: dict[str, Any] = {}
    for key, option in _OPTIONS.items():
        if Surface.ENV in option.surfaces and environ.get(option.env_var, ""):
            out[key] = option.from_text(environ[option.env_var], Surface.ENV)
    return out


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a TOML config file; relative paths in it are relative to its folder."""
    file = Path(path)
    where = f"config {file}"
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - depends on the Python version
        try:
            import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]
        except ImportError:
            raise ConfigError(
                "--config needs Python 3.11 or later (tomllib), or 'pip install tomli' on 3.10"
            ) from None
    try:
        with file.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {file}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"--config {file}: is a folder, not a TOML file") from None
    except OSError as error:
        raise ConfigError(f"--config {file}: cannot read it: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{where}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
            f"{error.start}); TOML files are UTF-8"
        ) from None
    return check_config(data, base=file.parent, where=where)


def check_config(data: Mapping[str, Any], *, base: Path, where: str) -> dict[str, Any]:
    """Check the keys and values of a parsed config; return the values to apply."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(KNOWN_KEYS))
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; known keys: {known}")
        if key == "users":
            users, tokens = _users(where, _table(where, key, value))
            out["users"] = users
            if tokens:
                out.setdefault("tokens", {}).update(tokens)
        elif key == "tokens":
            checked = _OPTIONS[key].validate(_table(where, key, value), Surface.TOML, f"{where}: ")
            for name, items in checked.items():
                out.setdefault("tokens", {}).setdefault(name, []).extend(items)
        elif key == "load":
            loads: list[tuple[str, Path]] = []
            for name, paths in _table(where, key, value).items():
                items = [paths] if isinstance(paths, str) else paths
                if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
                    raise ConfigError(f"{where}: load.{name} must be a path or a list of paths")
                loads += [(name, base / p) for p in items]
            out[key] = _OPTIONS[key].validate(loads, Surface.TOML, f"{where}: ")
        elif key == "generate":
            counts: list[tuple[str, int]] = []
            for name, count in _table(where, key, value).items():
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise ConfigError(f"{where}: generate.{name} must be a whole number, 0 or more")
                counts.append((name, count))
            out[key] = _OPTIONS[key].validate(counts, Surface.TOML, f"{where}: ")
        elif key == "generate_options":
            knobs = _table(where, key, value)
            known_knobs = generator_toml_options()
            for name in knobs:
                if name not in known_knobs:
                    close = difflib.get_close_matches(name, list(known_knobs), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(
                        f"{where}: unknown key 'generate_options.{name}'{hint}; "
                        f"known keys: {', '.join(known_knobs)}"
                    )
            out[key] = check_knobs(knobs, f"{where}: generate_options.")
        elif key == "faults":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{where}: faults must be an array of tables ([[faults]])")
            out[key] = list(value)
        else:
            if key in ("disable", "mechanisms") and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise ConfigError(f'{where}: {key} must be a list of strings, e.g. ["UIDL"]')
            checked = _OPTIONS[key].validate(value, Surface.TOML, f"{where}: ")
            if key in ("disable", "mechanisms"):
                checked = list(checked)
            out[key] = str(base / checked) if key in _PATH_KEYS else checked
    return out


def _users(where: str, table: dict[str, Any]) -> tuple[dict[str, str | None], dict[str, list[str]]]:
    """``[users]``: ``alice = "secret"``, or a table ``[users.bob] password = .. tokens = [..]``."""
    users: dict[str, str | None] = {}
    tokens: dict[str, list[str]] = {}
    for name, entry in table.items():
        if isinstance(entry, dict):
            extra = set(entry) - {"password", "tokens"}
            if extra:
                raise ConfigError(
                    f"{where}: users.{name} has unknown key {sorted(extra)[0]!r}; "
                    "known keys: password, tokens"
                )
            password = entry.get("password")
            if "tokens" in entry:
                checked = _OPTIONS["tokens"].validate(
                    {name: entry["tokens"]}, Surface.TOML, f"{where}: users.{name}."
                )
                tokens[name] = list(checked[name])
        else:
            password = entry
        if password is not None and (not isinstance(password, str) or not password):
            raise ConfigError(f"{where}: users.{name} must be a non-empty password string")
        users[name] = password
    checked_users = _OPTIONS["users"].validate(users, Surface.TOML, f"{where}: ")
    return checked_users, tokens


def _table(where: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table, e.g. [{key}]")
    return value
