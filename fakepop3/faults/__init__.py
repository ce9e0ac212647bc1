"""Fault injection: make the server misbehave the way real servers do.

Every server has a :class:`Faults` (``server.faults``).  Add rules to it, in
Python or as plain dicts, before or while the server runs::

    server.faults.on("RETR", nth=2).error("Try later", code="SYS/TEMP")
    server.faults.on("RETR", args="3").disconnect(after_bytes=100)
    server.faults.on("LIST").malformed("wrong-size")
    server.faults.on_connect(nth=1).refuse()
    server.faults.vanish(2, user="alice")
    ...
    server.faults.assert_all_fired()

A rule is a *match* (which commands or connections it applies to) and an
*action* (what happens instead of the normal reply).  The first rule that
matches and is due fires; the others do not.  Each fired fault is recorded in
the history beside the command it hit (``CommandRecord.fault``), and each rule
counts how often it fired (:attr:`FaultRule.fired`).

Matching
--------
``on(command, *, args=None, nth=None, times=None, user=None, probability=None)``

- ``command``: a POP3 command name (case-insensitive) or ``"*"`` for any command.
  SASL continuation lines are part of their ``AUTH`` and are never matched.
- ``args``: only this exact argument list (a string is split on spaces: ``args="2"``
  matches ``RETR 2``).
- ``user``: only commands of this user (before login: the name given to USER or
  APOP, or the pending USER name for PASS).
- ``nth``: only the n-th matching command (1-based).  Occurrences are counted *per
  rule*, over every session of the server since the rule was added, among the
  commands that match its command, ``args`` and ``user``.
- ``times``: fire at most this many times.  With ``nth``, the rule fires on
  occurrences ``nth`` to ``nth + times - 1``; ``nth`` alone means ``times=1``;
  neither means every time.
- ``probability``: fire with this chance (0 < p <= 1) when otherwise due, drawn from
  the seeded ``random.Random`` of the :class:`Faults` (``Faults(seed=0)`` by default,
  so a run is reproducible).

Command actions
---------------
- ``error(text, code=None)``: reply ``-ERR [code] text``; the command does not run
  (a DELE marks nothing, a QUIT deletes nothing).
- ``delay(seconds)``: run the command, wait, then reply.
- ``disconnect()``: close the connection before the reply; the command does not run.
  ``disconnect(after_bytes=n)``: run the command, send its first ``n`` octets, close.
  A QUIT cut this way *has* deleted its messages: the client cannot tell.
- ``truncate()``: run the command, send the reply without its last line end (a
  multi-line reply without its terminating ``.`` line), close.
- ``malformed(kind)``: run the command, then spoil its reply: ``"no-status"`` (the
  ``+OK``/``-ERR`` indicator removed), ``"bare-lf"`` (LF line ends instead of CRLF),
  ``"long-line"`` (status line padded to ``length`` octets, default 4096: over the
  RFC 1939 limit of 512 and poplib's 2048), ``"wrong-size"`` (LIST, STAT and RETR
  octet counts off by ``delta``, default 100).
- ``reply(data)``: send these bytes instead of the reply; the command does not run.

Transport faults and attacks (command rules):

- ``reset(after_bytes=None)``: end the connection with a TCP reset (RST, ``SO_LINGER`` 0)
  before the reply (the command does not run) or after ``after_bytes`` octets of it.
- ``hang(after_bytes=None)``: no reply (or the first ``after_bytes`` octets), the socket kept
  open until the client hangs up, the server stops or its idle timeout ends the session.
- ``slice(size, seconds=0)``: the reply written in ``size``-octet segments, ``seconds`` apart.
- ``slow_close(seconds)`` (QUIT only): QUIT answered, the close ``seconds`` late.
- ``delay(seconds, jitter=0, distribution="uniform")``: with ``jitter``, each firing waits a
  time drawn from the seeded ``random`` (``"uniform"``: ``seconds`` +- ``jitter``;
  ``"lognormal"``: ``seconds * exp(jitter * Z)``); the history shows the time drawn.
- ``inject(data)``: the reply, then ``data`` in the same write (on STLS: in the clear before
  the handshake, STLS response injection).
- ``hide(capability)`` (CAPA only): the capability left out of the reply (STLS stripping).
- ``deliver(data)``: the message ``data`` is put in the user's maildrop just before the command
  runs (on PASS: there for that login): scheduled delivery.  By the clock:
  ``Faults.deliver_after(seconds, data, user=...)`` (a timer of the server's loop, from its start,
  cancelled by a stop or a reset; ``rule.wait_fired()`` waits for it).
- ``switch(to)``: enter the named state ``to`` when the rule fires; rules given ``state=``
  (``on(..., state=...)``, ``on_connect(state=...)``) fire only in their state;
  ``Faults.set_state(name)`` and ``Faults.state`` from the test.
- ``hold()`` (also ``Faults.hold(command, ...)``; dict form ``"action": "hold"``, its gate in
  ``Faults.holds``): the command runs, its reply waits until ``gate.release()``;
  ``gate.wait_held()`` is the event to wait on.  A server that stops or resets releases them.

A dropped connection never runs UPDATE, so nothing is deleted unless QUIT ran.

Connect actions (``on_connect(*, nth=None, times=None, probability=None)``)
-----------------------------------------------------------------------------
``refuse()`` (close before the greeting), ``delay(seconds, jitter=0, distribution=...)``
(greeting late), ``error(text, code=None)`` (``-ERR`` greeting, then close),
``throttle(bytes_per_second)`` (the whole session drips out at that rate), ``reset()`` (RST
before the greeting), ``hang(after_bytes=None)`` (never greet) and ``slice(size, seconds=0)``
(the greeting in segments).

Mailbox faults
--------------
- ``vanish(message, *, user=None, ...)``: message number ``message`` is gone from the
  maildrop after LIST: RETR, TOP, DELE, ``LIST n`` and ``UIDL n`` of it get
  ``-ERR No such message.`` (the store itself keeps the message).
- ``size_mismatch(message, *, delta=100, user=None, ...)``: LIST (and STAT) report the
  message's size off by ``delta`` octets; RETR sends the real message.

Dict form
---------
:meth:`Faults.from_config` and :meth:`Faults.add_from_dict` take the same rules as
dicts (for the pytest marker and the standalone server's TOML config).  Keys:

- ``on``: ``"command"`` (the default), ``"connect"``, ``"mailbox"`` (the default
  when ``action`` is ``"vanish"`` or ``"size_mismatch"``) or ``"time"`` (the default when
  ``after`` is given: ``{"action": "deliver", "after": 0.5, "user": ..., "data": ...}``).
- ``action`` (required): for commands ``error``, ``delay``, ``disconnect``,
  ``truncate``, ``malformed``, ``reply``, ``reset``, ``hang``, ``slice``, ``slow_close``,
  ``inject``, ``hide``, ``deliver``, ``switch``, ``hold``; for connect ``refuse``, ``delay``, ``error``,
  ``throttle``, ``reset``, ``hang``, ``slice``, ``switch``; for the mailbox ``vanish``, ``size_mismatch``.
- matching: ``command`` (required for command rules), ``args``, ``user`` (command and
  mailbox rules), ``nth``, ``times``, ``probability`` (all rules); ``message``
  (required for mailbox rules).
- action parameters: ``text`` and ``code`` (error), ``seconds``, ``jitter`` and
  ``distribution`` (delay), ``after_bytes`` (disconnect, reset, hang), ``size`` and
  ``seconds`` (slice), ``seconds`` (slow_close), ``data`` (inject, deliver), ``capability`` (hide),
  ``kind``, ``length``, ``delta`` (malformed),
  ``data`` (reply; a string is sent UTF-8 encoded), ``bytes_per_second`` (throttle),
  ``delta`` (size_mismatch).

Example::

    Faults.from_config([
        {"command": "RETR", "nth": 2, "action": "error", "text": "Try later", "code": "SYS/TEMP"},
        {"on": "connect", "nth": 1, "action": "delay", "seconds": 2.5},
        {"action": "vanish", "message": 3, "user": "alice"},
    ])

An unknown key, action or value raises :class:`FaultConfigError` naming the
entry, the problem and what is allowed.

The hook
--------
The protocol core calls one object, ``faults.hook`` (a
:class:`fakepop3.protocol.FaultHook`: ``armed``, ``on_connect(session, greeting)``,
``on_command(session, command, args)``); the server gives it to each session, and
``Session(store, faults=faults)`` takes it from a :class:`Faults`.  ``on_connect(...)``
on a :class:`Faults` only builds rules.

The strict client lint (``POP3Server(lint=True)``, ``_lint``): see :class:`Linter`.

The package: ``_builders`` (this API), ``_rules`` (a rule, its matching and counting),
``_effects`` (what a fired fault does), ``_timed`` (timed rules: ``deliver_after``),
``_dictform`` (the dict form), ``_checks`` (every
value check and its message), ``_hook`` (the object the core calls).
"""

from ._builders import Faults, OnCommand, OnConnect
from ._checks import COMMANDS as COMMANDS  # a public name of fakepop3.faults, outside __all__
from ._checks import FaultConfigError
from ._effects import JITTER_DISTRIBUTIONS, MALFORMED_KINDS
from ._hold import Gate
from ._lint import LINT_RULES, Linter, LintError, LintFinding
from ._rules import FaultRule

__all__ = [
    "JITTER_DISTRIBUTIONS",
    "LINT_RULES",
    "MALFORMED_KINDS",
    "FaultConfigError",
    "FaultRule",
    "Faults",
    "Gate",
    "LintError",
    "LintFinding",
    "Linter",
    "OnCommand",
    "OnConnect",
]
