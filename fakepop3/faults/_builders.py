"""The user's API: :class:`Faults` (the rule set of a server) and the rule builders.

``Faults.on(...)`` and ``Faults.on_connect(...)`` return a builder whose action methods add
the rule; ``vanish`` and ``size_mismatch`` add mailbox rules directly.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from ._checks import (
    _MAX_STATUS,
    FaultConfigError,
    _args,
    _command_name,
    _delta,
    _optional_int,
    _positive_int,
    _probability,
    _seconds,
    _status_line,
    _user,
)
from ._dictform import _build, _show
from ._effects import (
    _Cut,
    _Delay,
    _Disconnect,
    _Effect,
    _Error,
    _Malformed,
    _Refuse,
    _Replace,
    _SizeMismatch,
    _Throttle,
    _Truncate,
    _Vanish,
)
from ._hook import FaultsHook
from ._rules import FaultRule, _label

MalformedKind = Literal["no-status", "bare-lf", "long-line", "wrong-size"]

#: The kinds of :meth:`OnCommand.malformed`.
MALFORMED_KINDS: tuple[str, ...] = ("no-status", "bare-lf", "long-line", "wrong-size")
_SIZED = frozenset({"LIST", "STAT", "RETR"})
_MESSAGE_COMMANDS = frozenset({"RETR", "TOP", "DELE", "LIST", "UIDL"})


class OnCommand:
    """The match part of a command rule; call one of its actions to add the rule.

    Made by :meth:`Faults.on`.  Each action adds the rule and returns it.
    """

    def __init__(
        self,
        faults: Faults,
        command: str,
        *,
        args: str | tuple[str, ...] | list[str] | None = None,
        nth: int | None = None,
        times: int | None = None,
        user: str | None = None,
        probability: float | None = None,
    ) -> None:
        self._faults = faults
        self.command = _command_name(command)
        self.args = _args(args)
        self.nth = _optional_int("nth", nth)
        self.times = _optional_int("times", times)
        self.user = _user(user)
        self.probability = _probability(probability)

    def _add(self, effect: _Effect) -> FaultRule:
        label = _label(
            f"on {self.command}",
            args=self.args,
            user=self.user,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
        )
        rule = FaultRule(
            self._faults,
            kind="command",
            effect=effect,
            commands=None if self.command == "*" else frozenset({self.command}),
            args=self.args,
            user=self.user,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
            label=label,
        )
        return self._faults.add(rule)

    def error(
        self, text: str = "Fault injected by fakepop3.", code: str | None = None
    ) -> FaultRule:
        """Reply ``-ERR [code] text`` instead of running the command.

        ``code`` is an RFC 2449 response code without brackets: ``"SYS/TEMP"``,
        ``"SYS/PERM"``, ``"IN-USE"``, ``"LOGIN-DELAY"``, ``"AUTH"``...
        """
        return self._add(_Error(_status_line(text, code)))

    def delay(self, seconds: float) -> FaultRule:
        """Run the command, then wait ``seconds`` before replying."""
        return self._add(_Delay(_seconds("seconds", seconds)))

    def disconnect(self, after_bytes: int | None = None) -> FaultRule:
        """Close the connection before the reply (the command does not run).

        With ``after_bytes``, the command runs and the first ``after_bytes``
        octets of its reply are sent before the close.
        """
        if after_bytes is None:
            return self._add(_Disconnect())
        return self._add(_Cut(_positive_int("after_bytes", after_bytes, low=0)))

    def truncate(self) -> FaultRule:
        """Send the reply without its last line end (a multi-line reply loses its ``.`` line), close."""
        return self._add(_Truncate())

    def malformed(self, kind: MalformedKind, *, length: int = 4096, delta: int = 100) -> FaultRule:
        """Send a spoiled reply: ``"no-status"``, ``"bare-lf"``, ``"long-line"`` or ``"wrong-size"``.

        ``length`` is the status line's size for ``"long-line"`` (over 512);
        ``delta`` is how far the octet counts are off for ``"wrong-size"``.
        """
        if kind not in MALFORMED_KINDS:
            raise FaultConfigError(
                f"unknown malformed kind {kind!r}; use one of {', '.join(MALFORMED_KINDS)}"
            )
        length = _positive_int("length", length, low=_MAX_STATUS + 1)
        delta = _delta(delta)
        if kind == "wrong-size" and self.command not in _SIZED | {"*"}:
            raise FaultConfigError(
                f"malformed('wrong-size') changes the octet counts of LIST, STAT and RETR; "
                f"{self.command} has none"
            )
        return self._add(_Malformed(kind, length, delta))

    def reply(self, data: bytes | str) -> FaultRule:
        """Send ``data`` (any bytes; a str is UTF-8 encoded) instead of running the command."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise FaultConfigError(f"data must be bytes or str, not {data!r}")
        return self._add(_Replace(bytes(data)))


class OnConnect:
    """The match part of a connect rule; call one of its actions to add the rule.

    Made by ``Faults.on_connect()``.  ``nth`` counts connections to the server
    since the rule was added.
    """

    def __init__(
        self,
        faults: Faults,
        *,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> None:
        self._faults = faults
        self.nth = _optional_int("nth", nth)
        self.times = _optional_int("times", times)
        self.probability = _probability(probability)

    def _add(self, effect: _Effect) -> FaultRule:
        label = _label("on connect", nth=self.nth, times=self.times, probability=self.probability)
        rule = FaultRule(
            self._faults,
            kind="connect",
            effect=effect,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
            label=label,
        )
        return self._faults.add(rule)

    def refuse(self) -> FaultRule:
        """Close the connection at once, before any greeting."""
        return self._add(_Refuse())

    def delay(self, seconds: float) -> FaultRule:
        """Send the greeting ``seconds`` late."""
        return self._add(_Delay(_seconds("seconds", seconds)))

    def error(
        self, text: str = "Service not available, try again later.", code: str | None = None
    ) -> FaultRule:
        """Greet with ``-ERR [code] text`` and close."""
        return self._add(_Error(_status_line(text, code), close=True))

    def throttle(self, bytes_per_second: float) -> FaultRule:
        """Send everything in this session (greeting included) at this rate."""
        if (
            not isinstance(bytes_per_second, (int, float))
            or isinstance(bytes_per_second, bool)
            or not bytes_per_second > 0
        ):
            raise FaultConfigError(
                f"bytes_per_second must be a positive number, not {bytes_per_second!r}"
            )
        return self._add(_Throttle(float(bytes_per_second)))


# --- the rule set ----------------------------------------------------------------------------
class Faults:
    """The fault rules of one server (``server.faults``); none by default.  Thread-safe.

    ``seed`` seeds the random generator that rules with a ``probability`` draw
    from (None: seeded from the system).  ``rules`` are dicts as described in
    the module documentation.  ``hook`` is the object the protocol core calls.
    """

    def __init__(self, rules: Iterable[Mapping[str, Any]] = (), *, seed: int | None = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        #: The object the protocol core calls (a :class:`fakepop3.protocol.FaultHook`); the
        #: server gives it to every session.  Its ``armed`` follows the rules (see ``add``).
        self.hook = FaultsHook(self._fire)
        self._ids = itertools.count(1)
        self.random = random.Random(seed)
        for i, entry in enumerate(rules, 1):
            self._add_entry(entry, f"fault #{i}")

    # --- building rules --------------------------------------------------------------------
    def on(
        self,
        command: str,
        *,
        args: str | tuple[str, ...] | list[str] | None = None,
        nth: int | None = None,
        times: int | None = None,
        user: str | None = None,
        probability: float | None = None,
    ) -> OnCommand:
        """Match a command; finish the rule with an action, e.g. ``.error("Try later")``."""
        return OnCommand(
            self, command, args=args, nth=nth, times=times, user=user, probability=probability
        )

    def on_connect(
        self,
        *,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> OnConnect:
        """Match new connections; finish the rule with an action, e.g. ``.refuse()``.

        The actions: ``.refuse()``, ``.delay(s)``, ``.error(text)``,
        ``.throttle(bytes_per_second)``.
        """
        return OnConnect(self, nth=nth, times=times, probability=probability)

    def vanish(
        self,
        message: int,
        *,
        user: str | None = None,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> FaultRule:
        """Message number ``message`` is gone after LIST: RETR, TOP, DELE, LIST n, UIDL n get -ERR.

        ``nth`` and ``times`` count the commands that name the message.
        """
        message = _positive_int("message", message)
        user = _user(user)
        nth, times = _optional_int("nth", nth), _optional_int("times", times)
        probability = _probability(probability)
        rule = FaultRule(
            self,
            kind="command",
            effect=_Vanish(message),
            commands=_MESSAGE_COMMANDS,
            message=message,
            user=user,
            nth=nth,
            times=times,
            probability=probability,
            label=_label(
                f"vanish message {message}",
                user=user,
                nth=nth,
                times=times,
                probability=probability,
            ),
        )
        return self.add(rule)

    def size_mismatch(
        self,
        message: int,
        *,
        delta: int = 100,
        user: str | None = None,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> FaultRule:
        """LIST and STAT report message ``message`` ``delta`` octets off; RETR sends it whole."""
        message = _positive_int("message", message)
        delta = _delta(delta)
        user = _user(user)
        nth, times = _optional_int("nth", nth), _optional_int("times", times)
        probability = _probability(probability)
        rule = FaultRule(
            self,
            kind="command",
            effect=_SizeMismatch(message, delta),
            commands=frozenset({"LIST", "STAT"}),
            user=user,
            nth=nth,
            times=times,
            probability=probability,
            label=_label(
                f"size mismatch of message {message}",
                user=user,
                nth=nth,
                times=times,
                probability=probability,
            ),
        )
        return self.add(rule)

    # --- the dict form ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]], *, seed: int | None = 0) -> Faults:
        """A :class:`Faults` with these rules, each a dict as described in the module docs."""
        if isinstance(entries, (Mapping, str, bytes)):
            raise FaultConfigError(
                "faults must be given as a list of dicts (one per rule), "
                f"not {type(entries).__name__}"
            )
        return cls(entries, seed=seed)

    def add_from_dict(self, entry: Mapping[str, Any]) -> FaultRule:
        """Add one rule given as a dict (see the module docs); returns it."""
        return self._add_entry(entry, "fault")

    def _add_entry(self, entry: Mapping[str, Any], where: str) -> FaultRule:
        try:
            return _build(self, entry)
        except FaultConfigError as error:
            raise FaultConfigError(f"{where} {_show(entry)}: {error}") from None

    # --- managing rules --------------------------------------------------------------------
    def add(self, rule: FaultRule) -> FaultRule:
        """Add a rule made for this :class:`Faults` (the builders call this); returns it."""
        if rule.faults is not self:
            raise ValueError("this rule belongs to another Faults; build it with this one")
        with self._lock:
            if rule not in self._rules:
                rule.id = next(self._ids)
                self._rules.append(rule)
                self.hook.armed = True
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Take a rule off (no error if it is already gone)."""
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)
            self.hook.armed = bool(self._rules)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()
            self.hook.armed = False

    @property
    def rules(self) -> list[FaultRule]:
        """The rules, in the order they are tried."""
        with self._lock:
            return list(self._rules)

    def __iter__(self) -> Iterator[FaultRule]:
        return iter(self.rules)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rules)

    @property
    def armed(self) -> bool:
        """True while there is at least one rule (``hook.armed``, which the core reads)."""
        return self.hook.armed

    def __bool__(self) -> bool:
        return self.hook.armed

    def __repr__(self) -> str:
        return f"<Faults {len(self)} rule(s)>"

    def unused(self) -> list[FaultRule]:
        """The rules that never fired."""
        return [rule for rule in self.rules if rule.fired == 0]

    def assert_all_fired(self) -> None:
        """Raise ``AssertionError`` listing the rules that never fired, if any."""
        unused = self.unused()
        if not unused:
            return
        lines = "\n".join(
            f"  {rule.description}: matched {rule.seen} time(s), fired 0" for rule in unused
        )
        raise AssertionError(
            f"{len(unused)} fault rule(s) never fired (check the command name, args, user "
            f"and nth; 'matched' counts the commands or connections each one saw):\n{lines}"
        )

    # --- firing (the hook calls this) -------------------------------------------------------
    def _fire(
        self, kind: str, command: str, args: tuple[str, ...], user: str | None
    ) -> FaultRule | None:
        with self._lock:
            if not self._rules:
                return None
            matching = [
                r for r in self._rules if r.kind == kind and r._matches(command, args, user)
            ]
            for rule in matching:
                rule.seen += 1
            for rule in matching:
                if rule._due(self.random):
                    rule.fired += 1
                    return rule
        return None
