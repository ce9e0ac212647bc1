"""The dict form of fault rules (the pytest marker, the standalone server's TOML).

Each dict is checked for its keys here, then built through the Python API, so a value is
checked in one place whichever way the rule was given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._checks import FaultConfigError, _one_of
from ._hold import Gate

if TYPE_CHECKING:
    from ._builders import Faults
    from ._rules import FaultRule

# --- parsing the dict form -------------------------------------------------------------------
_MATCH_KEYS = {
    "command": ("command", "args", "user", "nth", "times", "probability", "state"),
    "connect": ("nth", "times", "probability", "state"),
    "mailbox": ("message", "user", "nth", "times", "probability"),
    "time": ("after", "user"),
}
_ACTION_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "command": {
        "error": ("text", "code"),
        "delay": ("seconds", "jitter", "distribution"),
        "disconnect": ("after_bytes",),
        "truncate": (),
        "malformed": ("kind", "length", "delta"),
        "reply": ("data",),
        "reset": ("after_bytes",),
        "hang": ("after_bytes",),
        "slice": ("size", "seconds"),
        "slow_close": ("seconds",),
        "inject": ("data",),
        "hide": ("capability",),
        "deliver": ("data",),
        "switch": ("to",),
        "hold": (),
    },
    "connect": {
        "refuse": (),
        "delay": ("seconds", "jitter", "distribution"),
        "error": ("text", "code"),
        "throttle": ("bytes_per_second",),
        "reset": (),
        "hang": ("after_bytes",),
        "slice": ("size", "seconds"),
        "switch": ("to",),
    },
    "mailbox": {"vanish": (), "size_mismatch": ("delta",)},
    "time": {"deliver": ("data",)},
}
_REQUIRED = {
    ("command", "delay"): ("seconds",),
    ("connect", "delay"): ("seconds",),
    ("command", "malformed"): ("kind",),
    ("command", "reply"): ("data",),
    ("connect", "throttle"): ("bytes_per_second",),
    ("command", "slice"): ("size",),
    ("connect", "slice"): ("size",),
    ("command", "slow_close"): ("seconds",),
    ("command", "inject"): ("data",),
    ("command", "hide"): ("capability",),
    ("command", "deliver"): ("data",),
    ("time", "deliver"): ("data",),
    ("command", "switch"): ("to",),
    ("connect", "switch"): ("to",),
}


def _add_entry(faults: Faults, entry: Mapping[str, Any], where: str) -> FaultRule:
    """Add the rule ``entry`` describes; a bad entry is named (``where`` and the entry) in
    the error."""
    try:
        return _build(faults, entry)
    except FaultConfigError as error:
        raise FaultConfigError(f"{where} {_show(entry)}: {error}") from None


def _show(entry: object) -> str:
    text = repr(entry)
    return text if len(text) <= 200 else text[:197] + "..."


def _build(faults: Faults, entry: Mapping[str, Any]) -> FaultRule:
    if not isinstance(entry, Mapping):
        raise FaultConfigError(f"a fault rule must be a dict, not {type(entry).__name__}")
    bad = [k for k in entry if not isinstance(k, str)]
    if bad:
        raise FaultConfigError(f"keys must be strings, not {bad!r}")
    action = entry.get("action")
    every_action = sorted({a for table in _ACTION_KEYS.values() for a in table})
    if action is None:
        raise FaultConfigError(f"'action' is missing; one of {', '.join(every_action)}")
    action = _one_of("action", action, every_action)
    default = "mailbox" if action in _ACTION_KEYS["mailbox"] else "command"
    on = entry.get("on", "time" if "after" in entry else default)
    if on not in _ACTION_KEYS:
        raise FaultConfigError(
            f"unknown 'on' value {on!r}; use 'command', 'connect', 'mailbox' or 'time'"
        )
    actions = _ACTION_KEYS[on]
    if action not in actions:
        raise FaultConfigError(
            f"action {action!r} does not apply on {on}; actions on {on}: {', '.join(actions)}"
        )
    allowed = {"on", "action", *_MATCH_KEYS[on], *actions[action]}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise FaultConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} for action {action!r} on {on}; "
            f"allowed keys: {', '.join(sorted(allowed))}"
        )
    required: tuple[str, ...] = {
        "command": ("command",),
        "mailbox": ("message",),
        "time": ("after", "user"),
    }.get(on, ())
    required += _REQUIRED.get((on, action), ())
    missing = [k for k in required if k not in entry]
    if missing:
        raise FaultConfigError(f"{', '.join(map(repr, missing))} is missing for action {action!r}")
    match = {k: entry[k] for k in _MATCH_KEYS[on] if k in entry}
    params = {k: entry[k] for k in actions[action] if k in entry}
    if on == "time":
        return faults.deliver_after(match["after"], params["data"], user=match["user"])
    if on == "mailbox":
        message = match.pop("message")
        method: Callable[..., FaultRule] = getattr(faults, action)
        return method(message, **match, **params)
    if on == "connect":
        return getattr(faults.on_connect(**match), action)(**params)  # type: ignore[no-any-return]
    command = match.pop("command")
    made = getattr(faults.on(command, **match), action)(**params)
    if isinstance(made, Gate):  # hold: the rule, its gate at faults.holds / gate_of(rule)
        assert made.rule is not None
        return made.rule
    return made  # type: ignore[no-any-return]
