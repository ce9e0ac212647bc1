"""Options of the standalone server, from the command line and a TOML file.

:func:`load_config` reads a TOML file into a dict of checked values, with paths
made relative to the file's folder; :class:`Options` merges it with the flags
(flags win).  Every problem raises :class:`ConfigError` with one line that
says what is wrong and how to fix it; the command line prints it and exits 2.

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

    [users]
    alice = "secret"

    [load]
    alice = "fixtures/alice.mbox"   # or a list of paths

    [generate]
    alice = 50

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

__all__ = ["ConfigError", "Options", "load_config", "parse_assignment", "parse_port", "parse_user"]


class ConfigError(ValueError):
    """A bad option or config value; its message is one line meant for the user."""


#: Keys a config file may have, and the type each value must have.
_SCALARS: dict[str, type | tuple[type, ...]] = {
    "host": str,
    "port": int,
    "tls_port": int,
    "tls": bool,
    "cert": str,
    "key": str,
    "ca_out": str,
    "any_login": bool,
    "seed": int,
    "locale": str,
    "history": str,
    "ready_file": str,
    "smtp_port": int,
    "smtp_host": str,
    "require_tls": bool,
    "hostname": str,
    "timeout": (int, float),
    "login_delay": int,
    "expire": (int, str),
    "uvloop": bool,
}
_PATH_KEYS = frozenset({"cert", "key", "ca_out", "history", "ready_file"})
_TABLES = ("users", "load", "generate")
_LISTS = ("disable", "mechanisms", "faults")
KNOWN_KEYS = frozenset((*_SCALARS, *_TABLES, *_LISTS))


@dataclass
class Options:
    """Everything the standalone server needs, after merging the config file and the flags."""

    host: str = "127.0.0.1"
    port: int = 1110
    tls_port: int | None = None
    tls: bool = False
    cert: Path | None = None
    key: Path | None = None
    ca_out: Path | None = None
    users: dict[str, str] = field(default_factory=dict)
    any_login: bool = False
    load: list[tuple[str, Path]] = field(default_factory=list)
    generate: list[tuple[str, int]] = field(default_factory=list)
    seed: int = 0
    locale: str = "en_US"
    history: Path | None = None
    ready_file: Path | None = None
    smtp_port: int | None = None
    smtp_host: str | None = None
    disable: list[str] = field(default_factory=list)
    mechanisms: list[str] | None = None
    faults: list[dict[str, Any]] | None = None
    require_tls: bool = False
    hostname: str = "localhost"
    timeout: float | None = 600.0
    login_delay: int | None = None
    expire: int | str | None = None
    uvloop: bool = False

    @property
    def tls_enabled(self) -> bool:
        """TLS is on (STLS on the plain port) when any TLS option was given."""
        return self.tls or self.tls_port is not None or self.cert is not None or self.require_tls

    def apply(self, values: Mapping[str, Any]) -> None:
        """Overwrite fields with ``values`` (checked values, as :func:`load_config` returns)."""
        for key, value in values.items():
            if key == "users":
                self.users.update(value)
            elif key in ("load", "generate"):
                getattr(self, key).extend(value)
            elif key == "disable":
                self.disable.extend(value)
            elif key in _PATH_KEYS:
                setattr(self, key, Path(value))
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
        for name, path in self.load:
            if not path.exists():
                raise ConfigError(f"--load {name}={path}: no such file or folder")
        wanted = [name for name, _ in self.load] + [name for name, _ in self.generate]
        for name in wanted:
            if name not in self.users and not self.any_login:
                raise ConfigError(
                    f"mail for {name!r} but no such user: add --user {name}:PASSWORD "
                    "(or [users] in the config), or --any-login"
                )
        for name, port in (
            ("port", self.port),
            ("tls_port", self.tls_port),
            ("smtp_port", self.smtp_port),
        ):
            if port is not None:
                _check_port(f"--{name.replace('_', '-')}", port)
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds, not {self.timeout}")


def _check_port(what: str, port: int) -> int:
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"{what} {port}: a port is a number from 0 to 65535 (0 picks a free port)"
        )
    return port


def parse_port(text: str, what: str = "--port") -> int:
    """``"1110"`` -> 1110; :class:`ConfigError` for anything but 0..65535."""
    try:
        port = int(text, 10)
    except ValueError:
        raise ConfigError(
            f"{what} {text!r}: a port is a number from 0 to 65535 (0 picks a free port)"
        ) from None
    return _check_port(what, port)


def parse_user(spec: str) -> tuple[str, str]:
    """``"alice:se:cret"`` -> ``("alice", "se:cret")``: the password may contain colons."""
    name, colon, password = spec.partition(":")
    if not colon or not name or not password:
        raise ConfigError(
            f"--user {spec!r}: expected NAME:PASSWORD with both parts non-empty, e.g. alice:secret"
        )
    _check_name(f"--user {spec!r}", name)
    return name, password


def parse_assignment(option: str, spec: str, value_name: str) -> tuple[str, str]:
    """``"alice=x"`` -> ``("alice", "x")`` for ``--load``/``--generate``."""
    name, eq, value = spec.partition("=")
    if not eq or not name or not value:
        raise ConfigError(
            f"{option} {spec!r}: expected NAME={value_name} with both parts non-empty"
        )
    _check_name(f"{option} {spec!r}", name)
    return name, value


def parse_count(option: str, spec: str, text: str) -> int:
    try:
        count = int(text, 10)
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(f"{option} {spec!r}: COUNT must be a whole number, 0 or more")
    return count


def _check_name(what: str, name: str) -> None:
    if any(c in name for c in "\r\n\0") or name != name.strip():
        raise ConfigError(f"{what}: a user name has no spaces at its ends and no CR, LF or NUL")


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
    return check_config(data, base=file.parent, where=where)


def check_config(data: Mapping[str, Any], *, base: Path, where: str) -> dict[str, Any]:
    """Check the keys and value types of a parsed config; return the values to apply."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(KNOWN_KEYS))
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; known keys: {known}")
        if key in _SCALARS:
            out[key] = _scalar(where, key, value, base)
        elif key == "users":
            table = _table(where, key, value)
            users = {}
            for name, password in table.items():
                if not isinstance(password, str) or not password:
                    raise ConfigError(f"{where}: users.{name} must be a non-empty password string")
                _check_name(f"{where}: users", name)
                users[name] = password
            out[key] = users
        elif key == "load":
            loads: list[tuple[str, Path]] = []
            for name, paths in _table(where, key, value).items():
                items = [paths] if isinstance(paths, str) else paths
                if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
                    raise ConfigError(f"{where}: load.{name} must be a path or a list of paths")
                loads += [(name, base / p) for p in items]
            out[key] = loads
        elif key == "generate":
            counts: list[tuple[str, int]] = []
            for name, count in _table(where, key, value).items():
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise ConfigError(f"{where}: generate.{name} must be a whole number, 0 or more")
                counts.append((name, count))
            out[key] = counts
        elif key in ("disable", "mechanisms"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f'{where}: {key} must be a list of strings, e.g. ["UIDL"]')
            out[key] = list(value)
        elif key == "faults":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{where}: faults must be an array of tables ([[faults]])")
            out[key] = list(value)
    return out


def _scalar(where: str, key: str, value: Any, base: Path) -> Any:
    wanted = _SCALARS[key]
    types = wanted if isinstance(wanted, tuple) else (wanted,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(_TYPE_NAMES[t] for t in types)
        raise ConfigError(f"{where}: {key} must be {names}, not {value!r}")
    if key.endswith("port"):
        _check_port(f"{where}: {key}", value)
    if key in _PATH_KEYS:
        return str(base / value)
    return value


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}


def _table(where: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table, e.g. [{key}]")
    return value
