"""Real servers' personalities: what a client can observe of Gmail, Outlook, Dovecot ...

A persona is a TOML file (this folder holds the shipped ones, one per server; a user may
write their own and pass ``persona_file=``).  It sets the greeting, the CAPA reply before and
after login, the SASL mechanisms, the texts of the usual replies and errors, the UIDL format,
LOGIN-DELAY, EXPIRE and the idle timeout, and a few behaviours that differ from server to
server (Gmail's "messages already downloaded are not offered again", a server that takes no
password, one that wants TLS first).  docs/personas.md describes the keys and the sources.

Rules a maintainer must keep:

* Every value of a shipped persona cites where it was seen (a comment beside it and an entry
  of its ``[sources]`` table); a value without evidence is left out, so the server keeps its
  RFC default.  ``tests/test_personas.py`` checks that each key set has a source.
* This package is data and its loader: it imports only :mod:`fakepop3._validate`; the
  protocol core reads a :class:`Persona`'s fields once, when its ``Settings`` are made.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _validate as v
from .._validate import OptionError

__all__ = ["ERROR_KEYS", "REPLY_KEYS", "Persona", "load", "load_file", "names", "resolve"]

HERE = Path(__file__).resolve().parent

#: The error texts a persona may set (the whole text after ``-ERR ``, response code included).
ERROR_KEYS = (
    "wrong_password",
    "unknown_user",
    "basic_auth_disabled",
    "mailbox_locked",
    "login_too_soon",
    "tls_required",
    "unknown_command",
    "wrong_state",
    "no_user",
    "sasl_failed",
)
#: The ``+OK`` texts a persona may set.
REPLY_KEYS = ("user", "logged_in", "quit")

_TOP_KEYS = (
    "name",
    "description",
    "greeting",
    "apop",
    "implementation",
    "mechanisms",
    "disable",
    "login_delay",
    "enforce_login_delay",
    "expire",
    "timeout",
    "uidl",
    "require_tls",
    "basic_auth",
    "pop_once",
    "recent_prefix",
    "capa",
    "errors",
    "replies",
    "sources",
)
_CAPA_KEYS = ("supported", "status", "before_login", "after_login")
#: Fields a UIDL template may use (see docs/personas.md).
UIDL_FIELDS = ("uid", "hash", "num", "validity")


@dataclass(frozen=True)
class Persona:
    """One server's personality, as read from its TOML file (every field optional)."""

    name: str
    description: str = ""
    greeting: str | None = None
    #: The greeting carries an APOP timestamp (and APOP works).
    apop: bool = False
    implementation: str | None = None
    mechanisms: tuple[str, ...] | None = None
    disable: tuple[str, ...] | None = None
    login_delay: int | None = None
    enforce_login_delay: bool = False
    expire: int | str | None = None
    timeout: float | None = None
    #: A ``str.format`` template of the UIDL of a message (fields: UIDL_FIELDS).
    uidl: str | None = None
    require_tls: bool = False
    #: False: USER/PASS, APOP and SASL mechanisms other than the OAuth ones are refused.
    basic_auth: bool = True
    #: Gmail's normal mode: a message retrieved in a session that ended with QUIT is not
    #: offered again.
    pop_once: bool = False
    #: A user-name prefix that turns pop_once off for the session (Gmail's "recent:").
    recent_prefix: str | None = None
    capa_supported: bool = True
    capa_status: str | None = None
    capa_before: tuple[str, ...] | None = None
    capa_after: tuple[str, ...] | None = None
    errors: tuple[tuple[str, str], ...] = ()
    replies: tuple[tuple[str, str], ...] = ()
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    path: str | None = field(default=None, compare=False)

    def error(self, key: str) -> str | None:
        return dict(self.errors).get(key)

    def reply(self, key: str) -> str | None:
        return dict(self.replies).get(key)

    def capa_lines(self) -> tuple[str, ...]:
        """Every CAPA line the persona shows, in either state."""
        return (*(self.capa_before or ()), *(self.capa_after or ()))

    def sasl_mechanisms(self) -> tuple[str, ...] | None:
        """``mechanisms``, else the names on the SASL line of its CAPA, else None."""
        if self.mechanisms is not None:
            return self.mechanisms
        for line in self.capa_lines():
            words = line.split()
            if words and words[0].upper() == "SASL":
                return tuple(w.upper() for w in words[1:])
        return None


def names() -> tuple[str, ...]:
    """The shipped personas, by name."""
    return v.persona_names()


def resolve(name: str | None, path: str | os.PathLike[str] | None) -> Persona | None:
    """The persona of the ``persona=`` / ``persona_file=`` options (None when neither)."""
    if name is not None and path is not None:
        raise OptionError("persona and persona_file go alone: give one of them, not both")
    if path is not None:
        return load_file(path)
    if name is not None:
        return load(name)
    return None


def load(name: str) -> Persona:
    """A shipped persona, by name (OptionError naming the known ones); read once."""
    v.persona(name, "persona")
    return _load_shipped(name)


@functools.cache
def _load_shipped(name: str) -> Persona:
    return load_file(HERE / f"{name}.toml")


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - depends on the Python version
        import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except FileNotFoundError:
        raise OptionError(f"persona file {path}: no such file") from None
    except OSError as error:
        raise OptionError(f"persona file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise OptionError(f"persona file {path}: not valid TOML: {error}") from None
    return data


def load_file(path: str | os.PathLike[str]) -> Persona:
    """A persona from a TOML file; every problem is an OptionError of one line."""
    file = Path(path)
    data = _read_toml(file)
    where = f"persona file {file}"
    return parse(data, where, default_name=file.stem, path=str(file))


def _unknown(where: str, key: str, known: tuple[str, ...], table: str = "") -> OptionError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return OptionError(f"{where}: unknown key {table}{key!r}{hint}; known keys: {', '.join(known)}")


def _text(where: str, key: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty) or any(c in value for c in "\r\n\0"):
        raise OptionError(f"{where}: {key} must be one line of text, not {value!r}")
    return value


def _texts(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise OptionError(f"{where}: {key} must be a list of strings, not {value!r}")
    return tuple(_text(where, f"{key}[{i}]", item) for i, item in enumerate(value))


def _flag(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _table(where: str, key: str, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise OptionError(f"{where}: {key} must be a table, e.g. [{key}]")
    for name in value:
        if known and name not in known:
            raise _unknown(where, name, known, f"{key}.")
    return dict(value)


def _uidl(where: str, value: Any) -> str:
    template = _text(where, "uidl", value)
    sample = {"uid": "1.abc", "hash": "0" * 32, "num": 1, "validity": 1}
    try:
        made = template.format(**sample)
    except (KeyError, IndexError, ValueError) as error:
        raise OptionError(
            f"{where}: uidl {template!r} is not a template of the fields "
            f"{', '.join(UIDL_FIELDS)}: {error}"
        ) from None
    if not made or any(not 0x21 <= ord(c) <= 0x7E for c in made):
        raise OptionError(
            f"{where}: uidl {template!r} makes {made!r}, not 1-70 visible ASCII characters"
        )
    return template


def parse(
    data: Mapping[str, Any], where: str, *, default_name: str, path: str | None = None
) -> Persona:
    """A :class:`Persona` from a TOML document's data."""
    for key in data:
        if key not in _TOP_KEYS:
            raise _unknown(where, key, _TOP_KEYS)
    out: dict[str, Any] = {
        "name": _text(where, "name", data.get("name", default_name)),
        "path": path,
    }
    if "description" in data:
        out["description"] = _text(where, "description", data["description"], empty=True)
    if "greeting" in data:
        out["greeting"] = _text(where, "greeting", data["greeting"], empty=True)
    if "implementation" in data:
        out["implementation"] = _text(where, "implementation", data["implementation"])
    for key in ("apop", "enforce_login_delay", "require_tls", "basic_auth", "pop_once"):
        if key in data:
            out[key] = _flag(where, key, data[key])
    if "mechanisms" in data:
        out["mechanisms"] = tuple(
            m.upper() for m in _texts(where, "mechanisms", data["mechanisms"])
        )
    if "disable" in data:
        out["disable"] = tuple(c.upper() for c in _texts(where, "disable", data["disable"]))
    if "login_delay" in data:
        out["login_delay"] = v.non_negative(data["login_delay"], f"{where}: login_delay")
    if "expire" in data:
        out["expire"] = v.expire(data["expire"], f"{where}: expire")
    if "timeout" in data:
        out["timeout"] = v.duration(data["timeout"], f"{where}: timeout")
    if "uidl" in data:
        out["uidl"] = _uidl(where, data["uidl"])
    if "recent_prefix" in data:
        out["recent_prefix"] = _text(where, "recent_prefix", data["recent_prefix"])
    if "capa" in data:
        capa = _table(where, "capa", data["capa"], _CAPA_KEYS)
        if "supported" in capa:
            out["capa_supported"] = _flag(where, "capa.supported", capa["supported"])
        if "status" in capa:
            out["capa_status"] = _text(where, "capa.status", capa["status"], empty=True)
        if "before_login" in capa:
            out["capa_before"] = _texts(where, "capa.before_login", capa["before_login"])
        if "after_login" in capa:
            out["capa_after"] = _texts(where, "capa.after_login", capa["after_login"])
    for key, known in (("errors", ERROR_KEYS), ("replies", REPLY_KEYS)):
        if key in data:
            table = _table(where, key, data[key], known)
            out[key] = tuple(
                (name, _text(where, f"{key}.{name}", text, empty=key == "replies"))
                for name, text in table.items()
            )
    if "sources" in data:
        table = _table(where, "sources", data["sources"], ())
        out["sources"] = tuple(
            (name, _text(where, f"sources.{name}", url)) for name, url in table.items()
        )
    return Persona(**out)


#: The capabilities a persona's CAPA lines switch off when it does not list them.
_LISTED_OR_OFF = (
    "TOP",
    "UIDL",
    "USER",
    "SASL",
    "STLS",
    "RESP-CODES",
    "AUTH-RESP-CODE",
    "PIPELINING",
    "UTF8",
    "LANG",
)


def disabled(persona: Persona) -> tuple[str, ...]:
    """The capabilities the persona switches off: ``disable`` when given, else those its
    CAPA lines do not list; APOP unless ``apop``; CAPA itself when ``capa.supported`` is
    false."""
    if persona.disable is not None:
        off = set(persona.disable)
    else:
        off = set()
        if persona.capa_before is not None or persona.capa_after is not None:
            listed = {line.split()[0].upper() for line in persona.capa_lines() if line.split()}
            off.update(cap for cap in _LISTED_OR_OFF if cap not in listed)
    if not persona.apop:
        off.add("APOP")
    if not persona.capa_supported:
        off.add("CAPA")
    return tuple(sorted(off))
