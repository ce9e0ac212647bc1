"""One fault rule: what it matches, what it does, how often it matched and fired.

Rules a maintainer must keep:

- ``seen`` and ``fired`` change only in :func:`_first_due`, which runs under the lock of the
  rule's :class:`Faults`; so do the draws from its seeded ``random`` (one draw per due rule
  with a ``probability``, in rule order, so that a seed gives the same run every time).
- A rule's matching values are checked before it is made (``_builders``, ``_checks``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from ._effects import _DeliverLater, _Effect

if TYPE_CHECKING:
    from ._builders import Faults


# --- rules -----------------------------------------------------------------------------------
class FaultRule:
    """One fault rule: what it matches, what it does, and how often it fired.

    Rules are made by :meth:`Faults.on`, :meth:`Faults.on_connect`,
    :meth:`Faults.vanish`, :meth:`Faults.size_mismatch` and the dict form.
    """

    def __init__(
        self,
        faults: Faults,
        *,
        kind: Literal["command", "connect", "time"],
        effect: _Effect,
        commands: frozenset[str] | None = None,
        args: tuple[str, ...] | None = None,
        message: int | None = None,
        user: str | None = None,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
        label: str = "",
    ) -> None:
        self.faults = faults
        self.kind = kind
        self.effect = effect
        self.commands = commands
        self.args = args
        self.message = message
        self.user = user
        self.nth = nth
        self.times = times
        self.probability = probability
        self.label = label
        #: The named state this rule fires in (None: any), and the state it switches to when it
        #: fires (None: it does not switch; "" : back to no state).
        self.state: str | None = None
        self.switch: str | None = None
        self.id = 0
        #: How many times this rule fired.
        self.fired = 0
        #: How many commands (or connections) matched it, fired or not.
        self.seen = 0

    @property
    def limit(self) -> int | None:
        """The most times this rule will fire (None: no limit)."""
        if self.times is not None:
            return self.times
        return 1 if self.nth is not None else None

    @property
    def exhausted(self) -> bool:
        """True once the rule fired as often as it may."""
        limit = self.limit
        return limit is not None and self.fired >= limit

    @property
    def description(self) -> str:
        """What the rule does and when, e.g. ``error -ERR Try later [rule 1: on RETR nth=2]``."""
        return self.describe(self.effect)

    def describe(self, effect: _Effect) -> str:
        """:attr:`description` with ``effect`` (one firing of this rule's) in place of its own."""
        return f"{effect.describe()} [rule {self.id}: {self.label}]"

    def remove(self) -> None:
        """Take this rule off its :class:`Faults` (it stops firing at once)."""
        self.faults.remove(self)

    @property
    def after(self) -> float | None:
        """A timed rule's delay in seconds (``Faults.deliver_after``); None for the others."""
        effect = self.effect
        return effect.seconds if isinstance(effect, _DeliverLater) else None

    def wait_fired(self, count: int = 1, timeout: float | None = 10.0) -> None:
        """Block until this rule has fired ``count`` times (the event to wait on, e.g. for a
        timed delivery: its message is in the maildrop then); ``TimeoutError`` after
        ``timeout`` seconds."""
        self.faults._wait_fired(self, count, timeout)

    def __repr__(self) -> str:
        return f"<FaultRule {self.description}, fired {self.fired} time(s)>"

    # --- used by Faults, under its lock ----------------------------------------------------
    def _matches(self, command: str, args: tuple[str, ...], user: str | None) -> bool:
        if self.commands is not None and command not in self.commands:
            return False
        if self.args is not None and args != self.args:
            return False
        if self.message is not None:
            if not args or not args[0].isascii() or not args[0].isdigit():
                return False
            if int(args[0]) != self.message:
                return False
        return self.user is None or user == self.user

    def _due(self, rng: random.Random) -> bool:
        if self.nth is not None and self.seen < self.nth:
            return False
        if self.exhausted:
            return False
        return self.probability is None or rng.random() < self.probability


def _first_due(
    rules: Sequence[FaultRule],
    kind: str,
    command: str,
    args: tuple[str, ...],
    user: str | None,
    rng: random.Random,
) -> FaultRule | None:
    """The first rule that matches this command (or connection) and is due, counted as fired.

    Every matching rule counts the occurrence in ``seen``, fired or not.  Called under the
    lock of the rules' :class:`Faults`.
    """
    if not rules:
        return None
    matching = [r for r in rules if r.kind == kind and r._matches(command, args, user)]
    for rule in matching:
        rule.seen += 1
    for rule in matching:
        if rule._due(rng):
            rule.fired += 1
            return rule
    return None


def _choose(
    rules: Sequence[FaultRule],
    state: str | None,
    kind: str,
    command: str,
    args: tuple[str, ...],
    user: str | None,
    rng: random.Random,
) -> tuple[FaultRule | None, str | None]:
    """The rule that fires (or None) and the named state after it: a due ``switch`` rule
    changes the state first, then the rules of that state (and of none) are tried."""
    switched = None
    switches = [r for r in rules if r.switch is not None and r.state in (None, state)]
    if switches:
        switched = _first_due(switches, kind, command, args, user, rng)
        if switched is not None:
            state = switched.switch or None
    rest = [r for r in rules if r.switch is None and r.state in (None, state)]
    return _first_due(rest, kind, command, args, user, rng) or switched, state


def _label(
    what: str,
    *,
    args: tuple[str, ...] | None = None,
    user: str | None = None,
    nth: int | None = None,
    times: int | None = None,
    probability: float | None = None,
) -> str:
    parts = [what]
    if args is not None:
        parts.append(f"args={' '.join(args)!r}")
    if user is not None:
        parts.append(f"user={user!r}")
    if nth is not None:
        parts.append(f"nth={nth}")
    if times is not None:
        parts.append(f"times={times}")
    if probability is not None:
        parts.append(f"probability={probability:g}")
    return " ".join(parts)
