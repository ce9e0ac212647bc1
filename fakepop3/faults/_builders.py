"""The user's API: :class:`Faults` (the rule set of a server) and the rule builders.

``Faults.on(...)`` and ``Faults.on_connect(...)`` return a builder whose action methods add
the rule; ``vanish`` and ``size_mismatch`` add mailbox rules directly.

Rules a maintainer must keep:

- Every builder goes through :class:`_RuleBuilder`: it checks the matching values (in
  ``_checks``), makes the :class:`FaultRule` and its label, and adds it.  An action checks
  its own parameters, then hands ``_add`` a checked effect.
- ``Faults`` guards its rules with one lock: adding, removing, listing and firing (the
  choice and the counting of ``seen`` and ``fired``) all happen under it, and so does every
  write of ``hook.armed``.
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
    _capability,
    _command_name,
    _data,
    _delta,
    _one_of,
    _optional_int,
    _positive_int,
    _probability,
    _rate,
    _seconds,
    _state_name,
    _status_line,
    _user,
)
from ._dictform import _add_entry
from ._effects import (
    _DISCONNECT,
    _REFUSE,
    _SIZED,
    MALFORMED_KINDS,
    _Cut,
    _Delay,
    _Deliver,
    _Effect,
    _error,
    _Hang,
    _Hide,
    _Hold,
    _Inject,
    _Malformed,
    _replace,
    _Reset,
    _SizeMismatch,
    _Slice,
    _SlowClose,
    _Switch,
    _Throttle,
    _Truncate,
    _vanished,
)
from ._hold import Gate
from ._hook import FaultsHook
from ._rules import FaultRule, _choose, _label
from ._timed import _Timed

MalformedKind = Literal["no-status", "bare-lf", "long-line", "wrong-size"]
Distribution = Literal["uniform", "lognormal"]
_MESSAGE_COMMANDS = frozenset({"RETR", "TOP", "DELE", "LIST", "UIDL"})


class _RuleBuilder:
    """The match part that every builder shares: its values checked, the rule made and added.

    ``what`` starts the rule's label (``"on RETR"``); ``commands`` (None: any) and
    ``message`` are already checked by the caller.
    """

    def __init__(
        self,
        faults: Faults,
        kind: Literal["command", "connect"],
        what: str,
        *,
        commands: frozenset[str] | None = None,
        message: int | None = None,
        args: object = None,
        nth: object = None,
        times: object = None,
        user: object = None,
        probability: object = None,
        state: object = None,
    ) -> None:
        self._faults = faults
        self._kind: Literal["command", "connect"] = kind
        self._what = what
        self._commands = commands
        self._message = message
        self.args = _args(args)
        self.nth = _optional_int("nth", nth)
        self.times = _optional_int("times", times)
        self.user = _user(user)
        self.probability = _probability(probability)
        self.state = _state_name("state", state)

    def _add(self, effect: _Effect, switch: str | None = None) -> FaultRule:
        label = _label(
            self._what,
            args=self.args,
            user=self.user,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
        )
        if self.state is not None:
            label += f" state={self.state!r}"
        rule = FaultRule(
            self._faults,
            kind=self._kind,
            effect=effect,
            commands=self._commands,
            args=self.args,
            message=self._message,
            user=self.user,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
            label=label,
        )
        rule.state, rule.switch = self.state, switch
        return self._faults.add(rule)

    def switch(self, to: str | None) -> FaultRule:
        """When this rule fires, the server enters the named state ``to`` (None: no state) before
        the other rules are tried; the command (or connection) is otherwise served as usual.
        Rules given ``state=`` fire only while the server is in that state."""
        to = _state_name("to", to)
        return self._add(_Switch(to), switch=to if to is not None else "")


class OnCommand(_RuleBuilder):
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
        state: str | None = None,
    ) -> None:
        self.command = name = _command_name(command)
        super().__init__(
            faults,
            "command",
            f"on {name}",
            commands=None if name == "*" else frozenset({name}),
            args=args,
            nth=nth,
            times=times,
            user=user,
            probability=probability,
            state=state,
        )

    def error(
        self, text: str = "Fault injected by fakepop3.", code: str | None = None
    ) -> FaultRule:
        """Reply ``-ERR [code] text`` instead of running the command.

        ``code`` is an RFC 2449 response code without brackets: ``"SYS/TEMP"``,
        ``"SYS/PERM"``, ``"IN-USE"``, ``"LOGIN-DELAY"``, ``"AUTH"``...
        """
        return self._add(_error(_status_line(text, code)))

    def delay(
        self, seconds: float, *, jitter: float = 0.0, distribution: Distribution = "uniform"
    ) -> FaultRule:
        """Run the command, then wait ``seconds`` before replying.

        With ``jitter``, each firing waits a time drawn from the seeded random of the
        :class:`Faults` (the same seed, the same delays): ``"uniform"`` from ``seconds - jitter``
        (at least 0) to ``seconds + jitter``; ``"lognormal"`` ``seconds * exp(jitter * Z)``, Z a
        standard normal (median ``seconds``, a long tail).  The history shows the time drawn.
        """
        return self._add(_Delay.checked(seconds, jitter, distribution))

    def disconnect(self, after_bytes: int | None = None) -> FaultRule:
        """Close the connection before the reply (the command does not run).

        With ``after_bytes``, the command runs and the first ``after_bytes``
        octets of its reply are sent before the close.
        """
        if after_bytes is None:
            return self._add(_DISCONNECT)
        return self._add(_Cut(_positive_int("after_bytes", after_bytes, low=0)))

    def truncate(self) -> FaultRule:
        """Send the reply without its last line end (a multi-line reply loses its ``.`` line), close."""
        return self._add(_Truncate())

    def malformed(self, kind: MalformedKind, *, length: int = 4096, delta: int = 100) -> FaultRule:
        """Send a spoiled reply: ``"no-status"``, ``"bare-lf"``, ``"long-line"`` or ``"wrong-size"``.

        ``length`` is the status line's size for ``"long-line"`` (over 512);
        ``delta`` is how far the octet counts are off for ``"wrong-size"``.
        """
        _one_of("malformed kind", kind, MALFORMED_KINDS)
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
        return self._add(_replace(_data(data)))

    # --- transport faults ----------------------------------------------------------------
    def reset(self, after_bytes: int | None = None) -> FaultRule:
        """End the connection with a TCP reset (RST, ``SO_LINGER`` 0) before the reply (the
        command does not run), or after the first ``after_bytes`` octets of it (it runs)."""
        if after_bytes is None:
            return self._add(_Reset())
        return self._add(_Reset(_positive_int("after_bytes", after_bytes, low=0)))

    def hang(self, after_bytes: int | None = None) -> FaultRule:
        """Never reply (the command does not run), or stop after ``after_bytes`` octets of the
        reply (it runs), and keep the connection open: until the client hangs up, the server
        stops, or its idle ``timeout`` ends the session."""
        if after_bytes is None:
            return self._add(_Hang())
        return self._add(_Hang(_positive_int("after_bytes", after_bytes, low=0)))

    def slice(self, size: int, seconds: float = 0.0) -> FaultRule:
        """Write the reply in segments of ``size`` octets, ``seconds`` apart."""
        return self._add(_Slice(_positive_int("size", size), _seconds("seconds", seconds)))

    def slow_close(self, seconds: float) -> FaultRule:
        """QUIT only: answer it (its deletions done), then close ``seconds`` late (the FIN)."""
        if self.command != "QUIT":
            raise FaultConfigError(
                f"slow_close() delays the close after QUIT; use it on QUIT, not {self.command}"
            )
        return self._add(_SlowClose(_seconds("seconds", seconds)))

    def hold(self) -> Gate:
        """Run the command and hold its reply until ``gate.release()``; returns the gate
        (a context manager: released, and the rule removed, on exit).  Python only."""
        gate = Gate()
        gate.rule = self._add(_Hold(gate))
        return gate

    def deliver(self, data: bytes | str) -> FaultRule:
        """Put the message ``data`` in the maildrop of the command's user just before it runs, then run
        it as usual: ``on("PASS", user="alice", nth=3).deliver(raw)`` makes a message appear
        at alice's 3rd login (attempt), once (scheduled delivery for pollers)."""
        return self._add(_Deliver(_data(data)))

    # --- attacks on the client -----------------------------------------------------------
    def inject(self, data: bytes | str) -> FaultRule:
        """Run the command, send its reply and ``data`` right after it, in the same write.

        On STLS: the bytes go in the clear after the ``+OK``, before the TLS handshake (STLS
        response injection, CVE-2011-0411 class); a correct client discards them."""
        return self._add(_Inject(_data(data)))

    def hide(self, capability: str) -> FaultRule:
        """CAPA only: leave ``capability`` out of the reply (``"STLS"``: STLS stripping)."""
        if self.command != "CAPA":
            raise FaultConfigError(
                f"hide() takes a capability out of the CAPA reply; use it on CAPA, not "
                f"{self.command}"
            )
        return self._add(_Hide(_capability(capability)))


class OnConnect(_RuleBuilder):
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
        state: str | None = None,
    ) -> None:
        super().__init__(
            faults,
            "connect",
            "on connect",
            nth=nth,
            times=times,
            probability=probability,
            state=state,
        )

    def refuse(self) -> FaultRule:
        """Close the connection at once, before any greeting."""
        return self._add(_REFUSE)

    def delay(
        self, seconds: float, *, jitter: float = 0.0, distribution: Distribution = "uniform"
    ) -> FaultRule:
        """Send the greeting ``seconds`` late (``jitter``: as :meth:`OnCommand.delay`)."""
        return self._add(_Delay.checked(seconds, jitter, distribution))

    def error(
        self, text: str = "Service not available, try again later.", code: str | None = None
    ) -> FaultRule:
        """Greet with ``-ERR [code] text`` and close."""
        return self._add(_error(_status_line(text, code), close=True))

    def throttle(self, bytes_per_second: float) -> FaultRule:
        """Send everything in this session (greeting included) at this rate."""
        return self._add(_Throttle(_rate("bytes_per_second", bytes_per_second)))

    def reset(self) -> FaultRule:
        """Accept the connection, then reset it (RST) before any greeting."""
        return self._add(_Reset())

    def hang(self, after_bytes: int | None = None) -> FaultRule:
        """Never greet (or stop after ``after_bytes`` octets of it), the connection kept open."""
        if after_bytes is None:
            return self._add(_Hang())
        return self._add(_Hang(_positive_int("after_bytes", after_bytes, low=0)))

    def slice(self, size: int, seconds: float = 0.0) -> FaultRule:
        """The greeting in ``size``-octet segments, ``seconds`` apart (replies: ``on("*")``)."""
        return self._add(_Slice(_positive_int("size", size), _seconds("seconds", seconds)))


# --- the rule set ----------------------------------------------------------------------------
class Faults(_Timed):
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
        self._seed = seed
        self.random = random.Random(seed)
        self._state: str | None = None
        self._init_timed()  # _timed.py
        for i, entry in enumerate(rules, 1):
            _add_entry(self, entry, f"fault #{i}")

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
        state: str | None = None,
    ) -> OnCommand:
        """Match a command; finish the rule with an action, e.g. ``.error("Try later")``.

        ``state``: the rule fires only while the server is in this named state (see
        :meth:`OnCommand.switch` and :attr:`Faults.state`)."""
        return OnCommand(
            self,
            command,
            args=args,
            nth=nth,
            times=times,
            user=user,
            probability=probability,
            state=state,
        )

    def on_connect(
        self,
        *,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
        state: str | None = None,
    ) -> OnConnect:
        """Match new connections; finish the rule with an action, e.g. ``.refuse()``.

        The actions: ``.refuse()``, ``.delay(s)``, ``.error(text)``,
        ``.throttle(bytes_per_second)``.
        """
        return OnConnect(self, nth=nth, times=times, probability=probability, state=state)

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
        return _RuleBuilder(
            self,
            "command",
            f"vanish message {message}",
            commands=_MESSAGE_COMMANDS,
            message=message,
            user=user,
            nth=nth,
            times=times,
            probability=probability,
        )._add(_vanished(message))

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
        return _RuleBuilder(
            self,
            "command",
            f"size mismatch of message {message}",
            commands=frozenset({"LIST", "STAT"}),
            user=user,
            nth=nth,
            times=times,
            probability=probability,
        )._add(_SizeMismatch(message, delta))

    def hold(
        self,
        command: str,
        *,
        args: str | tuple[str, ...] | list[str] | None = None,
        nth: int | None = None,
        times: int | None = None,
        user: str | None = None,
    ) -> Gate:
        """``on(command, ...).hold()``: hold the reply of a matching command; the gate."""
        return self.on(command, args=args, nth=nth, times=times, user=user).hold()

    @property
    def holds(self) -> list[Gate]:
        """The gates of the hold rules (``hold()``, the dict form's ``"hold"``), in rule order."""
        return [r.effect.gate for r in self.rules if isinstance(r.effect, _Hold)]

    def release_holds(self) -> None:
        """Release every gate of the hold rules (a server does, when it stops or resets)."""
        for gate in self.holds:
            gate.release()

    @property
    def state(self) -> str | None:
        """The server's named state (None: none); rules given ``state=`` fire only in theirs."""
        return self._state

    def set_state(self, state: str | None) -> None:
        """Enter the named state ``state`` (None: leave every state), e.g. from a test."""
        state = _state_name("state", state)
        with self._lock:
            self._state = state

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
        return _add_entry(self, entry, "fault")

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

    def restart(self, rules: Iterable[FaultRule] | None = None) -> None:
        """Count again from nothing: each rule's ``seen`` and ``fired`` back to 0 (so ``nth=1``
        fires again, a hold's gate closed again) and the random generator seeded as it was made; with ``rules`` (rules of
        this Faults, as :attr:`rules` gave them), keep only those, in that order."""
        with self._lock:
            if rules is not None:
                kept = list(rules)
                if any(rule.faults is not self for rule in kept):
                    raise ValueError("restart() takes rules of this Faults only")
                self._rules = kept
            for rule in self._rules:
                rule.seen = 0
                rule.fired = 0
                if isinstance(rule.effect, _Hold):
                    rule.effect.gate._rearm()  # closed again: it holds the next hit
            self.random.seed(self._seed)
            self._state = None
            self.hook.armed = bool(self._rules)

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

    # --- firing (the hook calls this) -------------------------------------------------------
    def _fire(
        self, kind: str, command: str, args: tuple[str, ...], user: str | None
    ) -> tuple[FaultRule, _Effect] | None:
        with self._lock:
            rule, self._state = _choose(
                self._rules, self._state, kind, command, args, user, self.random
            )
            if rule is None:
                return None
            self._fired_changed.notify_all()  # rule.wait_fired() (_timed.py)
            # A jittered delay draws its time here, under the lock, from the seeded random.
            return rule, rule.effect.draw(self.random)
