"""Timed rules (:meth:`Faults.deliver_after`, a message delivered by the clock) and the
checks of how often rules fired (:meth:`FaultRule.wait_fired`, ``assert_all_fired``).

A timed rule matches no command: the server that runs the rules schedules it on its loop
(``Faults.scheduler``, ``POP3Server._arm_timed``) and, when its timer is due, calls
:meth:`_Timed._fire_timed`, which delivers the message and counts the rule as fired.
:meth:`FaultRule.wait_fired` is the event a test waits on.  Rules a maintainer must keep: a
timer never blocks the loop; a stop and a reset cancel every pending one (the server's part).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._checks import FaultConfigError, _data, _seconds, _user
from ._effects import _DeliverLater
from ._rules import FaultRule

__all__: list[str] = []


class _Timed:
    """The timed-rule part of :class:`~fakepop3.faults.Faults` (its lock and rules)."""

    _lock: threading.Lock
    _rules: list[FaultRule]
    _fired_changed: threading.Condition
    scheduler: Callable[[FaultRule], None] | None

    def _init_timed(self) -> None:
        """Called by ``Faults.__init__`` once its lock is made."""
        self._fired_changed = threading.Condition(self._lock)
        #: Set by a running server: called with each timed rule added (:meth:`deliver_after`)
        #: so that it schedules the rule on its loop; None while no server runs these rules.
        self.scheduler = None

    def add(self, rule: FaultRule) -> FaultRule:  # pragma: no cover - Faults.add
        raise NotImplementedError

    @property
    def rules(self) -> list[FaultRule]:  # pragma: no cover - Faults.rules
        raise NotImplementedError

    def deliver_after(self, seconds: float, data: bytes | str, *, user: str) -> FaultRule:
        """Put the message ``data`` in ``user``'s maildrop ``seconds`` after the server starts
        (after this call if it runs already; after a reset or a restore, counted again from
        it): scheduled delivery by the clock, for a poller that must pick up mail that arrived
        between two polls.  A timer of the server's loop (it never blocks the loop), cancelled
        by ``server.stop()`` and by a reset; ``rule.wait_fired()`` waits for the delivery.
        Dict form: ``{"action": "deliver", "after": seconds, "user": ..., "data": ...}``."""
        seconds = _seconds("after", seconds)
        name = _user(user)
        if not name:
            raise FaultConfigError("deliver_after needs user=, the user whose maildrop gets it")
        rule = FaultRule(
            self,  # type: ignore[arg-type]  # a Faults
            kind="time",
            effect=_DeliverLater(_data(data), seconds),
            commands=frozenset(),  # matches no command
            user=name,
            times=1,
            label=f"after {seconds:g}s user={name!r}",
        )
        self.add(rule)
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler(rule)
        return rule

    def _fire_timed(self, rule: FaultRule, deliver: Callable[[bytes], object]) -> bool:
        """Called by the server's timer of a timed rule: ``deliver(message)`` and count the
        rule as fired, unless it was removed or fired already; True if it fired."""
        with self._lock:
            if rule not in self._rules or rule.exhausted:
                return False
            rule.seen += 1
            assert isinstance(rule.effect, _DeliverLater)
            deliver(rule.effect.message)
            rule.fired += 1
            self._fired_changed.notify_all()
            return True

    def _wait_fired(self, rule: FaultRule, count: int, timeout: float | None) -> None:
        with self._lock:
            if not self._fired_changed.wait_for(lambda: rule.fired >= count, timeout):
                raise TimeoutError(
                    f"waited {timeout}s for {rule.description} to fire {count} time(s); "
                    f"it fired {rule.fired}"
                )

    @property
    def timed(self) -> list[FaultRule]:
        """The timed rules (:meth:`deliver_after`), which the server schedules on its loop."""
        return [rule for rule in self.rules if rule.kind == "time"]

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
