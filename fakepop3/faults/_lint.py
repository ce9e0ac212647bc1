"""The strict client lint: the protocol mistakes a client makes, each with its RFC reference.

``POP3Server(lint=True)`` (or ``@pytest.mark.pop3(lint=True)``) makes a :class:`Linter` that
reads every session of the history when it ends.  Each mistake is a :class:`LintFinding`;
the first one puts a :class:`LintError` into ``server.errors``, so the test fails at teardown
(as for any server-side error) with every finding listed.  ``lint_ignore=[rule, ...]`` opts out
per rule (:data:`LINT_RULES`).

Rules a maintainer must keep:

* The linter reads only the history (the commands, their replies, how each session ended)
  and the server's settings: it never changes what the server does.
* A rule is named in :data:`LINT_RULES` with its RFC reference; the tests pin the names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..history import SessionRecord
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
}
_MAIL_COMMANDS = frozenset({"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST"})
_LOGIN_COMMANDS = frozenset({"USER", "PASS", "APOP", "AUTH"})
_NUMBERED = frozenset({"RETR", "DELE", "TOP", "LIST", "UIDL"})


@dataclass(frozen=True)
class LintFinding:
    """One mistake of a client: the rule, the session and command, what was wrong."""

    rule: str
    session_id: int
    command: str
    text: str

    def __str__(self) -> str:
        return f"[{self.rule}] session {self.session_id}, {self.command}: {self.text}"


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


class Linter:
    """Reads each session of a server's history when it ends; keeps the findings."""

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

    @property
    def findings(self) -> list[LintFinding]:
        """Every finding so far, in the order found."""
        with self._lock:
            return list(self._findings)

    def session_ended(self, record: SessionRecord) -> None:
        """The history's session listener: lint one ended session."""
        found = self._lint(record, self._settings())
        found = [f for f in found if f.rule not in self.ignore]
        if not found:
            return
        with self._lock:
            self._findings.extend(found)
            first = self._error is None
            if first:
                self._error = LintError(self)
        if first:
            assert self._error is not None
            self._report(self._error)

    def _lint(self, record: SessionRecord, settings: Settings) -> list[LintFinding]:
        found: list[LintFinding] = []

        def add(rule: str, command: str, text: str) -> None:
            found.append(LintFinding(rule, record.id, command, text))

        logged_in = False
        pending: str | None = None  # the name USER or APOP gave
        deleted: set[str] = set()
        for c in record.commands:
            line = " ".join((c.command, *c.args))
            ok = c.reply.startswith("+OK")
            if c.command in _MAIL_COMMANDS and not logged_in:
                add("wrong-state", line, "a mail command before login (AUTHORIZATION state)")
            elif c.command in _LOGIN_COMMANDS | {"STLS"} and logged_in:
                add("wrong-state", line, "a login command after login (TRANSACTION state)")
            if c.command in _LOGIN_COMMANDS and settings.require_tls and not c.tls:
                add("login-in-clear", line, "credentials sent before STLS")
            if c.command in ("TOP", "UIDL") and c.command in settings.disabled:
                add("disabled-capability", line, f"{c.command} is not in CAPA")
            if c.command == "AUTH" and c.args:
                mechanism = c.args[0].upper()
                if mechanism not in settings.mechanisms:
                    add("unadvertised-mechanism", line, f"{mechanism} is not offered")
            if c.command in _NUMBERED and c.args and c.args[0] in deleted:
                add("deleted-message", line, f"message {c.args[0]} was deleted")
            if c.command == "DELE" and ok and c.args:
                deleted.add(c.args[0])
            elif c.command == "RSET" and ok:
                deleted.clear()
            if c.command in ("USER", "APOP") and c.args:
                pending = c.args[0]
            login = c.command in ("PASS", "APOP", "SASL") or (c.command == "AUTH" and c.args)
            if login and not logged_in:  # (AUTH alone lists the mechanisms)
                self._login(c.user or pending, c.received_at, ok, line, settings, add)
                logged_in = ok
        if deleted and record.end_reason != "quit":
            add(
                "dropped-with-deletions",
                "(end)",
                f"{len(deleted)} DELE(s) pending and no QUIT (ended: {record.end_reason})",
            )
        return found

    def _login(
        self,
        user: str | None,
        at: float,
        ok: bool,
        line: str,
        settings: Settings,
        add: Callable[[str, str, str], None],
    ) -> None:
        """A login attempt by ``user`` at ``at`` (``ok``: it succeeded)."""
        if user is None:
            return
        with self._lock:
            last = self._last_login.get(user)
            if ok:
                self._last_login[user] = at
        delay = settings.login_delay
        if delay and last is not None and at - last < delay:
            add("login-delay", line, f"{at - last:.1f}s after the last login; LOGIN-DELAY {delay}")
