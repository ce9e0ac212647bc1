"""The strict client lint: the protocol mistakes a client makes, each with its RFC reference.

``POP3Server(lint=True)`` (or ``@pytest.mark.pop3(lint=True)``) makes a :class:`Linter` and
attaches it to the server's history (:meth:`Linter.attach`): it checks every command as the
history records it, and the findings (:class:`LintFinding`) go into that command's record
(``CommandRecord.lint``), or into the session's record for those on its end
(``SessionRecord.lint``), so the history API, the standalone server's JSON lines history and
the control API show each one beside what it concerns.  When a session ends, its findings
join :attr:`Linter.findings`; the first one puts a :class:`LintError` into
``server.errors``, so the test fails at teardown (as for any server-side error) with every
finding listed.  ``lint_ignore=[rule, ...]`` opts out per rule (:data:`LINT_RULES`).

Rules a maintainer must keep:

* The linter reads only the history (the commands, their replies, how each session ended),
  what a linted session noted about each raw command line (``History.note_line``: an LF
  alone, its length, whether it came before the previous reply) and the server's settings:
  it never changes what the server does.
* A rule is named in :data:`LINT_RULES` with its RFC reference; the tests pin the names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..history import LintFinding

if TYPE_CHECKING:
    from ..history import CommandRecord, History, LineFacts, SessionRecord
    from ..protocol import Settings

__all__ = ["LINT_RULES", "LintError", "LintFinding", "Linter"]

#: Every lint rule: what it finds, and the RFC text it holds the client to.
LINT_RULES: dict[str, str] = {
    "wrong-state": "a command outside its state: a mail command before login, or "
    "USER/PASS/APOP/AUTH/STLS after it (RFC 1939 s3: each command is valid in given states)",
    "deleted-message": "a message number used after DELE in the same session (RFC 1939 s5: "
    "a message marked as deleted may not be referred to)",
    "dropped-with-deletions": "the connection ended without QUIT while DELEs were pending: "
    "nothing is deleted (RFC 1939 s6: only QUIT enters the UPDATE state)",
    "disabled-capability": "TOP or UIDL used although CAPA does not list it (RFC 2449 s6: "
    "they are optional commands)",
    "unadvertised-mechanism": "AUTH with a SASL mechanism the server does not offer (RFC 5034 "
    "s4 and RFC 2449 s6.3: the SASL capability lists the mechanisms)",
    "login-in-clear": "USER, PASS, APOP or AUTH before STLS on a server that requires TLS "
    "(RFC 2595 s4, RFC 8314 s3: no credentials in the clear)",
    "login-delay": "a login again within the advertised LOGIN-DELAY (RFC 2449 s6.5: the "
    "minimum seconds between logins)",
    "pipelining": "a command sent before the reply to the previous one although CAPA does not "
    "list PIPELINING (RFC 2449 s6.6: only then may a client send commands without waiting)",
    "bare-lf": "a command line ended by LF alone (RFC 1939 s3: commands are terminated by a "
    "CRLF pair)",
    "line-too-long": "a command line over 255 octets, its CRLF included (RFC 2449 s4: command "
    "lines MUST NOT exceed 255 octets)",
    "malformed-line": "a command line strict syntax refuses: a space before the keyword, two "
    "spaces or a TAB between words, a space at the end, a bare CR, a NUL byte, bytes that are "
    "not UTF-8, an empty line (RFC 1939 s3: keywords and arguments are each separated by a "
    "single SPACE); found with lenient_syntax too, which accepts some of them",
}
#: RFC 2449 s4: the longest command line, its CRLF included.
MAX_COMMAND_LINE = 255
_MAIL_COMMANDS = frozenset({"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST"})
_LOGIN_COMMANDS = frozenset({"USER", "PASS", "APOP", "AUTH"})
_NUMBERED = frozenset({"RETR", "DELE", "TOP", "LIST", "UIDL"})
_NO_FINDINGS: tuple[LintFinding, ...] = ()


class LintError(AssertionError):
    """In ``server.errors`` once the lint found something; its text lists every finding."""

    def __init__(self, linter: Linter) -> None:
        super().__init__()
        self.linter = linter

    def __str__(self) -> str:
        findings = self.linter.findings
        lines = "\n".join(f"  {f}" for f in findings)
        return (
            f"the client broke {len(findings)} POP3 rule(s) (lint=True; opt out per rule "
            f"with lint_ignore=[...]):\n{lines}"
        )


@dataclass
class _Seen:
    """What the linter knows of one open session."""

    logged_in: bool = False
    pending: str | None = None  # the name USER or APOP gave
    deleted: set[str] = field(default_factory=set)
    found: list[LintFinding] = field(default_factory=list)


class Linter:
    """Checks each command as the history records it; keeps the findings (module docs)."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        report: Callable[[BaseException], None],
        ignore: Iterable[str] = (),
    ) -> None:
        self._settings = settings
        self._report = report
        self.ignore = frozenset(ignore)
        unknown = sorted(self.ignore - set(LINT_RULES))
        if unknown:
            raise ValueError(
                f"unknown lint rule(s) {', '.join(unknown)}; known: {', '.join(LINT_RULES)}"
            )
        self._lock = threading.Lock()
        self._findings: list[LintFinding] = []
        self._last_login: dict[str, float] = {}
        self._error: LintError | None = None
        self._open: dict[int, _Seen] = {}
        self._history: History | None = None

    def attach(self, history: History) -> None:
        """Check every command ``history`` records from now on, and every session's end."""
        self._history = history
        history.set_linter(self.check)
        history.add_session_listener(self.session_ended)

    @property
    def findings(self) -> list[LintFinding]:
        """Every finding of the sessions ended so far, in the order found."""
        with self._lock:
            return list(self._findings)

    def check(self, c: CommandRecord, facts: LineFacts) -> tuple[LintFinding, ...]:
        """The history's linter: the findings on one command as it is recorded (``facts``:
        what the session noted about its raw line)."""
        seen = self._open.get(c.session_id)
        if seen is None:
            seen = self._open[c.session_id] = _Seen()
        found: list[LintFinding] = []
        line = " ".join((c.command, *c.args)) or "(not a command line)"

        def add(rule: str, text: str) -> None:
            if rule not in self.ignore:
                found.append(LintFinding(rule, c.session_id, line, text))

        settings = self._settings()
        for name, value in facts:
            if name == "pipelined" and not _lists_pipelining(settings, seen.logged_in):
                add("pipelining", "sent before the previous reply; CAPA has no PIPELINING")
            elif name == "bare-lf":
                add("bare-lf", "the line ended with LF alone, not CRLF")
            elif name == "long-line" and isinstance(value, int) and value > MAX_COMMAND_LINE:
                add("line-too-long", f"{value} octets with its line end; at most 255")
            elif name == "malformed":
                add("malformed-line", str(value))
        ok = c.reply.startswith("+OK")
        if c.command in _MAIL_COMMANDS and not seen.logged_in:
            add("wrong-state", "a mail command before login (AUTHORIZATION state)")
        elif c.command in _LOGIN_COMMANDS | {"STLS"} and seen.logged_in:
            add("wrong-state", "a login command after login (TRANSACTION state)")
        if c.command in _LOGIN_COMMANDS and settings.require_tls and not c.tls:
            add("login-in-clear", "credentials sent before STLS")
        if c.command in ("TOP", "UIDL") and c.command in settings.disabled:
            add("disabled-capability", f"{c.command} is not in CAPA")
        if c.command == "AUTH" and c.args:
            mechanism = c.args[0].upper()
            if mechanism not in settings.mechanisms:
                add("unadvertised-mechanism", f"{mechanism} is not offered")
        if c.command in _NUMBERED and c.args and c.args[0] in seen.deleted:
            add("deleted-message", f"message {c.args[0]} was deleted")
        if c.command == "DELE" and ok and c.args:
            seen.deleted.add(c.args[0])
        elif c.command == "RSET" and ok:
            seen.deleted.clear()
        if c.command in ("USER", "APOP") and c.args:
            seen.pending = c.args[0]
        login = c.command in ("PASS", "APOP", "SASL") or (c.command == "AUTH" and c.args)
        if login and not seen.logged_in:  # (AUTH alone lists the mechanisms)
            text = self._login(c.user or seen.pending, c.received_at, ok, settings)
            if text is not None:
                add("login-delay", text)
            seen.logged_in = ok
        if not found:
            return _NO_FINDINGS
        seen.found.extend(found)
        return tuple(found)

    def session_ended(self, record: SessionRecord) -> None:
        """The history's session listener: the findings on the session's end; the session's
        findings join :attr:`findings`."""
        seen = self._open.pop(record.id, None) or _Seen()
        if (
            seen.deleted
            and record.end_reason != "quit"
            and "dropped-with-deletions" not in self.ignore
        ):
            end = LintFinding(
                "dropped-with-deletions",
                record.id,
                "(end)",
                f"{len(seen.deleted)} DELE(s) pending and no QUIT (ended: {record.end_reason})",
            )
            seen.found.append(end)
            assert self._history is not None  # this is attach()'s session listener
            self._history.set_session_lint(record, (end,))
        if not seen.found:
            return
        with self._lock:
            self._findings.extend(seen.found)
            first = self._error is None
            if first:
                self._error = LintError(self)
        if first:
            assert self._error is not None
            self._report(self._error)

    def _login(self, user: str | None, at: float, ok: bool, settings: Settings) -> str | None:
        """A login attempt by ``user`` at ``at`` (``ok``: it succeeded): the text of a
        login-delay finding, or None."""
        if user is None:
            return None
        with self._lock:
            last = self._last_login.get(user)
            if ok:
                self._last_login[user] = at
        delay = settings.login_delay
        if delay and last is not None and at - last < delay:
            return f"{at - last:.1f}s after the last login; LOGIN-DELAY {delay}"
        return None


def _lists_pipelining(settings: Settings, logged_in: bool) -> bool:
    """True if CAPA lists PIPELINING (a persona's own lines, or the capability switched on)."""
    lines = settings.replies.capa_lines
    if lines is not None:
        shown = lines[1] if logged_in else lines[0]
        return any(line.split()[:1] == ["PIPELINING"] for line in shown)
    return settings.enabled("PIPELINING")
