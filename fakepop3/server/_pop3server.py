"""``POP3Server``: the options, the listeners, the lifecycle and the helpers for tests.

``async with POP3Server(...)`` serves on the running loop.  ``with
POP3Server(...)`` runs the same server on the process's shared background loop
thread (``fakepop3._loopthread``), so that blocking clients such as ``poplib``
never share a loop with it.
Either way the server binds before ``start`` returns: ``server.port`` is the
real port (also for port 0) and a bind error is raised in the caller.  ``start()``
binds in the caller's thread (the SMTP intake's listeners too) and hands the
sockets to the loop without waiting (clients that connect at once wait in the
listen backlog); with a control API it waits for the loop, which binds that
(see ``_service``).

Rules a maintainer must keep: the server imports no pytest; a connection's behaviour lives in
``_transport`` (the server only makes connections, sweeps idle ones and closes them all).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import poplib
import socket
from collections.abc import Callable, Iterable, Mapping
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any, TypeVar

from .. import history as _history
from .. import personas as _personas
from .._binding import bind, off_the_loop, serve
from .._loopthread import LoopThread
from .._service import ServerError, Service
from .._validate import is_loopback
from ..auth import ALL_MECHANISMS, Authenticator
from ..faults import FaultRule, Faults, Linter
from ..history import History, SessionRecord
from ..options import OPTIONS
from ..options import check_python_options as _check_python_options
from ..personas import Persona
from ..protocol import Session, Settings
from ..protocol._linted import open_linted
from ..store import Mailbox, MailStore, MessageInput
from ..tls import TLSCertificates
from . import _reset, _runtime
from ._runtime import check_control_exposure
from ._transport import RECV_BUFFER, _Connection

if TYPE_CHECKING:
    from ..control import ControlAPI
    from ..smtp import SMTPIntake
    from ._reset import Baseline

_T = TypeVar("_T")

__all__ = ["POP3Server", "ServerError", "uvloop_factory"]

log = logging.getLogger("fakepop3")

#: burst of more clients than that would see connects dropped and retried a second later).
BACKLOG = 1024


def _persona_options(persona: Persona, checked: dict[str, object]) -> dict[str, Any]:
    """The options a persona sets, where ``checked`` (POP3Server's keywords) has the default:
    a keyword given by the caller wins (``disable`` adds to the persona's)."""
    out: dict[str, Any] = {}

    def pick(name: str, value: object) -> None:
        given = checked[name]
        out[name] = value if given == OPTIONS[name].default else given

    pick(
        "greeting",
        persona.greeting if persona.greeting is not None else OPTIONS["greeting"].default,
    )
    out["disable"] = tuple(dict.fromkeys((*_personas.disabled(persona), *checked["disable"])))  # type: ignore[misc]
    mechs = persona.sasl_mechanisms()
    known = None if mechs is None else tuple(m for m in mechs if m in ALL_MECHANISMS)
    pick("mechanisms", known)
    pick("require_tls", persona.require_tls)
    pick("login_delay", persona.login_delay)
    pick("expire", persona.expire)
    pick("timeout", persona.timeout if persona.timeout is not None else OPTIONS["timeout"].default)
    return out


def _persona_settings(persona: Persona | None) -> dict[str, Any]:
    """The protocol settings a persona sets that are not options."""
    if persona is None:
        return {}
    out: dict[str, Any] = {"enforce_login_delay": persona.enforce_login_delay}
    if persona.implementation is not None:
        out["implementation"] = persona.implementation
    return out


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """``uvloop.new_event_loop``, for ``POP3Server(loop_factory=...)`` (the ``speed`` extra).

    Raises :class:`RuntimeError` saying how to install it when uvloop is missing.
    """
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise RuntimeError(
            "uvloop is not installed (it does not run on Windows): pip install 'fakepop3[speed]'"
        ) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class POP3Server(Service):
    """A fake POP3 server for tests.

    Configure it with keyword arguments (all have sane defaults), then start it
    with ``with`` (thread-hosted) or ``async with`` (on the running loop)::

        with POP3Server(users={"alice": "secret"}) as server:
            server.mailbox("alice").add(b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
            client = poplib.POP3(server.host, server.port)

    ``tls=True`` makes test certificates with ``trustme`` and offers STLS;
    ``tls_port`` (0 for any free port) also listens with implicit TLS.

    Arguments (all keyword-only but ``users``):

    Every keyword is declared once in :mod:`fakepop3.options` (type, default,
    check, the CLI flag and TOML key of the standalone server); a bad value
    raises :class:`fakepop3.options.OptionError` (a ``ValueError``) with one line.

    * ``users``: ``{name: password}`` (or a list of names, for token-only or
      ``any_login`` users); the password is also the APOP secret.  More with
      :meth:`add_user`.
    * ``tokens``: ``{name: [token, ...]}``, OAuth bearer tokens for XOAUTH2 and
      OAUTHBEARER (a user named only here has no password).
    * ``host`` / ``port``: where to listen; ``127.0.0.1`` and 0 (a free port,
      reported in ``server.port`` once started).  A non-loopback host is logged
      as a warning.
    * ``tls``: ``True`` for trustme certificates, or a :class:`TLSCertificates`;
      enables STLS.  ``tls_port``: also listen with implicit TLS (POP3S).
    * ``tls_cert``: a bad certificate on purpose (``"expired"``, ``"wrong-host"``...: see
      :mod:`fakepop3.tls`); ``tls_version``: pin TLS to ``"1.2"``, ``"1.3"``, ``"1.0"``, ``"1.1"``.
    * ``require_tls``: refuse USER/PASS/APOP/AUTH until STLS.
    * ``lint``: record the client's protocol mistakes (:data:`fakepop3.faults.LINT_RULES`) and
      fail at teardown (``server.errors``); ``lint_ignore``: rules not to check.
    * ``store``: a :class:`MailStore` to share between servers.
    * ``history``: ``False`` turns recording off, or pass a :class:`History`.
    * ``timeout``: the autologout timer in seconds (RFC 1939: at least 600 on
      a real server); ``command_timeout``: how long one command line may take
      to arrive (slow-client guard).  ``None`` turns either off.
    * ``on_session_end``: called with each :class:`SessionRecord` as it ends.
    * ``faults``: a :class:`Faults` (default: an empty one, ``server.faults``).
    * ``disable``: capabilities to switch off (``"TOP"``, ``"UIDL"``, ``"USER"``,
      ``"SASL"``, ``"APOP"``, ``"STLS"``, ``"PIPELINING"``, ...); CAPA and the
      commands follow.  ``mechanisms``: the SASL mechanisms offered.
    * ``any_login``: accept any user name with any secret (a maildrop is made
      for a new name).
    * ``login_delay`` / ``expire``: advertise LOGIN-DELAY (and enforce it) and
      EXPIRE (RFC 2449).
    * ``hostname``: the name in the APOP timestamp and CRAM-MD5 challenges.
    * ``max_connections``: past it a new connection gets ``-ERR [SYS/TEMP]``.
    * ``max_bad_commands``: unknown or malformed commands before login that
      close the session.
    * ``lenient_syntax``: accept extra spaces and TABs in command lines (by default a
      line is as strict as Dovecot's: ``DELE 1 `` is refused, nothing deleted).
    * ``maildrop_lock``: ``False`` lets a second session log in to a maildrop that
      another session holds, as Dovecot's default does (by default it gets
      ``-ERR [IN-USE]``, RFC 1939 s4).
    * ``utf8``: offer UTF8 (RFC 6856): UTF-8 user names, and mail whose headers are not
      ASCII only to a session that sent ``UTF8`` (before it: ``-ERR [UTF8]`` to RETR and
      TOP, RFC 6856 s2.1).  Off by default, as on Dovecot, Gmail and Outlook: such mail is
      then sent as stored, as they send it.
    * ``smtp``: ``True`` or a port to take mail over SMTP too (``smtp`` extra);
      ``smtp_host``: where it listens (default: ``host``).
    * ``settings``: a ready :class:`fakepop3.protocol.Settings` (overrides the
      protocol arguments above).
    * ``persona``: behave like a real server (``"gmail"``, ``"outlook"``, ``"dovecot"``...:
      docs/personas.md); ``persona_file``: a persona TOML file of your own.  The options it
      sets (greeting, capabilities, mechanisms, LOGIN-DELAY, EXPIRE, timeout) are the
      persona's unless given here.
    * ``loop_factory``: makes the event loop of the thread-hosted server
      (``with`` / :meth:`start`; default ``asyncio.new_event_loop``), e.g.
      ``loop_factory=uvloop_factory()`` for uvloop (``speed`` extra).  ``async
      with`` serves on the running loop, whatever it is.
    """

    def __init__(
        self,
        users: Mapping[str, str | None] | Iterable[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool | TLSCertificates = False,
        tls_port: int | None = None,
        tls_cert: str = "valid",
        tls_version: str | None = None,
        store: MailStore | None = None,
        history: bool | History = True,
        timeout: float | None = 600.0,
        command_timeout: float | None = 60.0,
        on_session_end: Callable[[SessionRecord], None] | None = None,
        faults: Faults | None = None,
        disable: Iterable[str] = (),
        mechanisms: Iterable[str] | None = None,
        require_tls: bool = False,
        any_login: bool = False,
        login_delay: int | None = None,
        expire: int | str | None = None,
        hostname: str = "localhost",
        max_connections: int | None = None,
        max_bad_commands: int = 10,
        settings: Settings | None = None,
        smtp: bool | int = False,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        tokens: Mapping[str, Iterable[str]] | None = None,
        smtp_host: str | None = None,
        lenient_syntax: bool = False,
        maildrop_lock: bool = True,
        utf8: bool = False,
        greeting: str = "fakepop3 ready.",
        control_port: int | None = None,
        control_host: str | None = None,
        control_token: str | None = None,
        persona: str | None = None,
        persona_file: str | os.PathLike[str] | None = None,
        lint: bool = False,
        lint_ignore: Iterable[str] = (),
    ) -> None:
        # Every keyword checked by its schema entry (fakepop3.options): locals() here holds
        # exactly the parameters, so the one list of options is the signature itself.
        checked = _check_python_options(locals())
        port, tls_port, smtp = checked["port"], checked["tls_port"], checked["smtp"]
        host = checked["host"]
        user_passwords: dict[str, str | None] = checked["users"] or {}
        user_tokens: dict[str, tuple[str, ...]] = checked["tokens"] or {}
        disable, mechanisms = checked["disable"], checked["mechanisms"]
        #: The real server this one imitates (fakepop3.personas), or None.
        self.persona = _personas.resolve(checked["persona"], checked["persona_file"])
        if self.persona is not None:
            # The persona's values, for the options left at their defaults.
            made = _persona_options(self.persona, checked)
            disable, mechanisms = made["disable"], made["mechanisms"]
            greeting, require_tls = made["greeting"], made["require_tls"]
            login_delay, expire, timeout = made["login_delay"], made["expire"], made["timeout"]
            if require_tls and tls is False and tls_port is None:
                tls = True  # a persona that wants TLS first gets a test certificate
        #: The address the listeners bind (``host=``).
        self.host = host
        #: The plain POP3 port: the real one once started (``port=0`` picks a free one).
        self.port = port
        #: The implicit-TLS (POP3S) port once started, or None when there is none.
        self.tls_port = tls_port
        #: The users and their maildrops (:class:`MailStore`); :meth:`mailbox` reaches one.
        self.store = store if store is not None else MailStore()
        for name, password in user_passwords.items():
            self.store.add_user(name, password)
        for name, tokens_of_name in user_tokens.items():
            self.store.add_user(name, tokens=tokens_of_name)
        #: Every session and command received (:class:`History`): ``assert_sent``, ``transcript``.
        self.history = history if isinstance(history, History) else History(enabled=history)
        #: The strict client lint (``lint=True``; fakepop3/faults/_lint.py), or None.  It is
        #: attached first, so that every other listener sees the findings in the records.
        self.linter: Linter | None = None
        if lint:
            if not self.history.enabled:
                raise ValueError("lint=True reads the history: do not pass history=False")
            self.linter = Linter(lambda: self.settings, self._report, lint_ignore)
            self.linter.attach(self.history)
        #: Makes each session (``Session.open``'s arguments): a linted server's notes the raw
        #: command lines for the lint (fakepop3/protocol/_linted.py).
        self._open_session: Callable[..., Session] = (
            Session.open if self.linter is None else open_linted
        )
        if on_session_end is not None:
            self.history.add_session_listener(on_session_end)
        #: The autologout timer in seconds (``timeout=``; RFC 1939 s3), or None.
        self.timeout = timeout
        #: Seconds a client may take to finish a command line it started (slowloris guard),
        #: and at most the time a TLS handshake may take; None: no limit but the idle timeout.
        self.command_timeout = command_timeout
        #: How many sessions may be open at once (None: no limit).
        self.max_connections = max_connections
        hostile = tls_cert != "valid" or tls_version is not None  # tls.py, issue 18
        if tls is True or (tls is False and (tls_port is not None or hostile)):
            #: The certificates of STLS and the TLS port (:class:`TLSCertificates`), or None.
            self.tls: TLSCertificates | None = TLSCertificates.generate(
                mode=tls_cert, version=tls_version
            )
        elif isinstance(tls, TLSCertificates):
            self.tls = tls.variant(tls_cert, tls_version) if hostile else tls
        else:
            self.tls = None
        if require_tls and self.tls is None:
            raise ValueError("require_tls=True needs TLS: pass tls=True (or a TLSCertificates)")
        if settings is None:
            settings = Settings(
                hostname=hostname,
                disabled=frozenset(disable),
                mechanisms=tuple(mechanisms) if mechanisms is not None else Settings.mechanisms,
                tls_available=self.tls is not None,
                require_tls=require_tls,
                any_login=any_login,
                login_delay=login_delay,
                expire=expire,
                max_bad_commands=max_bad_commands,
                lenient_syntax=lenient_syntax,
                maildrop_lock=maildrop_lock,
                utf8=utf8,
                greeting=greeting,
                persona=self.persona,
                **_persona_settings(self.persona),
            )
        #: What the protocol core does (:class:`Settings`); change it at run time with :meth:`configure`.
        self.settings = settings
        self._auth = Authenticator(self.store, any_login=settings.any_login)
        #: The fault rules (:class:`Faults`): ``server.faults.on("RETR").disconnect()``.
        self.faults = faults if faults is not None else Faults()
        #: Errors raised inside the server; :meth:`raise_errors` (and the pytest fixture) fails on them.
        self.errors: list[BaseException] = []
        self._connections: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._timers: dict[FaultRule, asyncio.TimerHandle] = {}  # the timed rules' timers
        self._timing = False  # True while the timed rules are scheduled (_arm_timed)
        # One receive buffer per server: a server runs on one loop, and each read is consumed
        # before the next one starts (see _Connection.get_buffer).
        self._recv_buffer = memoryview(bytearray(RECV_BUFFER))
        self._servers: list[asyncio.AbstractServer] = []
        self._tls_from = 0  # where the implicit-TLS sockets start among those bound
        self._asked: tuple[int, int | None] = (port, tls_port)  # the ports before binding
        self._smtp_bound: list[socket.socket] | None = None  # the intake's, until served
        #: The listening sockets, the plain ones first (bound in start(), before the loop serves).
        self._sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: LoopThread | None = None  # the thread host of `with server:`
        self._loop_factory = loop_factory if loop_factory is not None else asyncio.new_event_loop
        self._running = False
        #: SMTP intake (``smtp=True`` or a port): mail sent to ``user@anything`` lands in
        #: that user's maildrop.  Needs the ``smtp`` extra (aiosmtpd).
        self.smtp: SMTPIntake | None = None
        self._smtp_port: int | None = None if smtp is False else (0 if smtp is True else smtp)
        #: Where the SMTP intake listens (None: ``host``).
        self.smtp_host = smtp_host
        #: The control API (``control_port``), while the server runs.
        self.control: ControlAPI | None = None
        self._control_port = control_port
        self._control_host = control_host if control_host is not None else host
        self._control_token = control_token
        if control_port is not None:
            check_control_exposure(self._control_host, control_token)
        #: Resets so far (:meth:`reset`, SIGHUP and ``POST /api/v1/reset`` alike).
        self.resets = 0
        self._reset_listeners: list[Callable[[POP3Server], None]] = []
        # What reset() goes back to (see _reset.py): None until the first session, the first
        # change through the control API, or snapshot().
        self._baseline: Baseline | None = None
        self._snapshots: dict[str, Baseline] = {}
        self._at_start: Baseline | None = None  # the baseline when nothing else was taken

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self._running else "stopped"
        return f"<POP3Server {state} users={self.store.users}>"

    # --- mail and users -------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        password: str | None = None,
        *,
        tokens: Iterable[str] = (),
        messages: Iterable[MessageInput] = (),
    ) -> Mailbox:
        """Add a user (password and/or OAuth tokens) with an optional list of messages."""
        return self.store.add_user(name, password, tokens=tokens, messages=messages)

    def mailbox(self, name: str) -> Mailbox:
        """The maildrop of user ``name``."""
        return self.store.mailbox(name)

    # --- resets, snapshots and run-time settings (see _reset.py, _runtime.py) ---------------
    def snapshot(self, name: str | None = None) -> None:
        """Remember the users, maildrops, fault rules and settings now: :meth:`reset` goes back to them
        (``name`` None), or :meth:`restore` with this ``name`` does."""
        self._on_loop(self._snapshot_now, name)

    def _snapshot_now(self, name: str | None) -> None:
        if name is None:
            self._baseline = _reset.take(self)
        else:
            self._snapshots[name] = _reset.take(self)

    @property
    def snapshots(self) -> list[str]:
        """The names given to :meth:`snapshot`."""
        return list(self._snapshots)

    def restore(self, name: str) -> None:
        """Put back the users, maildrops, fault rules and settings of ``snapshot(name)`` (KeyError for an
        unknown name); like :meth:`reset`, it ends the open sessions and clears the history."""
        if name not in self._snapshots:
            known = ", ".join(map(repr, self._snapshots)) or "none"
            raise KeyError(f"no snapshot named {name!r} (snapshots: {known})")
        self._on_loop(self._reset_now, self._snapshots[name])

    def reset(self) -> None:
        """Go back to the baseline for the next test case: end every open session, put back
        the users, maildrops, fault rules (their counts started again) and the settings changed
        by :meth:`configure`, clear the history.

        The baseline is the last :meth:`snapshot`, else the moment the first client connected
        (POP3, or SMTP to the server's intake) or the control API first changed something
        (so mail added after start and before that is kept), else the content at start.
        Called from any thread; returns once done.  SIGHUP and ``POST /api/v1/reset`` call it.
        """
        self._on_loop(self._reset_now, None)

    def _reset_now(self, baseline: _reset.Baseline | None) -> None:
        if baseline is None:
            baseline = self._baseline or self._at_start
            if baseline is None:  # never started: nothing to go back to but now
                baseline = self._baseline = _reset.take(self)
        faults = self.faults
        if isinstance(faults, Faults):
            faults.release_holds()  # no client of the last test case is left at a gate
        _reset.end_sessions(self)
        self._disarm_timed()  # a timer of the last test case never fires into the next one
        _reset.restore(self, baseline)  # (a hold rule kept holds again: Faults.restart)
        self.history.clear()
        if self._running and self._loop is not None:
            self._arm_timed()  # the timed rules kept count again from now
        self.resets += 1
        for listener in list(self._reset_listeners):
            listener(self)

    def add_reset_listener(self, listener: Callable[[POP3Server], None]) -> None:
        """Call ``listener(server)`` after each reset or restore (on the server's loop)."""
        self._reset_listeners.append(listener)

    def _take_baseline(self) -> None:
        """Take the default baseline now unless there is one (first client, first change)."""
        if self._baseline is None:
            self._baseline = _reset.take(self)

    def configure(self, **changes: object) -> None:
        """Change options at run time (those marked ``control`` in the options table:
        ``disable``, ``mechanisms``, ``require_tls``, ``greeting``, ``login_delay``...): each
        value is checked as in ``POP3Server(...)``; sessions that start later see the change."""
        self._on_loop(self._configure_now, changes)

    def _configure_now(self, changes: dict[str, object]) -> None:
        self._take_baseline()  # a reset undoes the change
        _runtime.configure(self, changes)

    def current_settings(self) -> dict[str, object]:
        """The options :meth:`configure` can change, with their values now."""
        return _runtime.current(self)

    def _on_loop(self, function: Callable[..., _T], *args: object) -> _T:
        """``function(*args)`` on the server's loop (now, when called on it or when the server
        is not running; else handed over, waiting for its result)."""
        loop = self._loop
        if not self._running or loop is None or loop.is_closed():
            return function(*args)
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop or not loop.is_running():
            return function(*args)
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(function(*args))
            except BaseException as error:
                done.set_exception(error)

        loop.call_soon_threadsafe(run)
        return done.result()

    def smtp_intake(self, host: str | None = None, port: int = 0) -> SMTPIntake:
        """A new (stopped) SMTP intake into this server's store, with its ``any_login`` and
        ``hostname``, reporting errors to ``server.errors``: how ``smtp=...`` makes its own.
        ``host`` defaults to the server's."""
        from ..smtp import SMTPIntake

        intake = SMTPIntake(
            self.store,
            self.host if host is None else host,
            port,
            any_login=self.settings.any_login,
            hostname=self.settings.hostname,
            errors=self.errors,
        )
        intake.before_delivery = self._take_baseline
        return intake

    def connection_protocol(self, implicit_tls: bool = False) -> asyncio.BufferedProtocol:
        """A new connection protocol of this server, as its listeners make one per client
        (``implicit_tls``: the POP3S listener's).  For hosting the server on another transport,
        and for ``bench/instructions.py``, which feeds it bytes with no socket."""
        return _Connection(self, implicit_tls)

    # --- the lifecycle (Service): start/stop, with, async with, running, errors -------------
    _kind = "POP3Server"
    _what = "the POP3 server"

    def _bind(self) -> list[socket.socket] | None:
        """In the caller's thread (``start()``): bind the listeners (and the SMTP intake's) and
        take the start's baseline, or None with a control API, which binds on the loop."""
        if self._control_port is not None:
            return None
        bound = self._bind_listeners()
        if self._smtp_port is not None:
            intake = self.smtp_intake(self.smtp_host, self._smtp_port)  # None: the host
            try:
                self._smtp_bound = intake._bind()
            except BaseException:
                self._unbind(bound)
                raise
            intake._running = True  # served by this server's loop-side start (_serve)
            self.smtp = intake
        self._mark_start()
        return bound

    async def _serve(self, bound: list[socket.socket]) -> None:
        """On the loop: serve on the sockets :meth:`_bind` bound (the SMTP intake's too), then
        start its timers."""
        await self._serve_listeners(bound)
        intake, smtp_bound = self.smtp, self._smtp_bound
        if intake is not None and smtp_bound is not None:
            intake._loop = asyncio.get_running_loop()
            try:
                await intake._serve(smtp_bound)
            except BaseException:
                self._close_listeners()
                raise
            self._smtp_bound = None
        self._start_timers()

    def _unbind(self, bound: list[socket.socket]) -> None:
        super()._unbind(bound)
        self.port, self.tls_port = self._asked  # a failed start leaves the ports as given
        self._sockets = []
        smtp_bound, self._smtp_bound = self._smtp_bound, None
        if smtp_bound is not None and self.smtp is not None:
            self.smtp._running = False
            self.smtp._unbind(smtp_bound)
            self.smtp = None

    async def _open(self) -> None:
        """Bind the listeners (and the SMTP intake and the control API), then start the
        timers (``start_async``, and ``start()`` of a server with a control API)."""
        assert self._loop is not None
        bound = await off_the_loop(self._loop, self.host, self._bind_listeners)
        await self._serve_listeners(bound)
        if self._smtp_port is not None:
            intake = self.smtp_intake(self.smtp_host, self._smtp_port)  # None: the host
            try:
                await intake.start_async()
            except BaseException:
                self._close_listeners()
                raise
            self.smtp = intake
        if self._control_port is not None:
            try:
                await self._open_control()
            except BaseException:
                if self.smtp is not None:
                    await self.smtp.stop_async()
                    self.smtp = None
                self._close_listeners()
                raise
        self._mark_start()
        self._start_timers()

    def _bind_listeners(self) -> list[socket.socket]:
        """Bind and listen on every address of the host: the plain port, then the implicit-TLS
        one (no loop needed).  Sets ``port``/``tls_port`` once both are bound; raises
        ``OSError`` naming the address (nothing left bound then)."""
        # Every address of the host on one port (see _binding: port 0 and "localhost").
        plain = bind(self.host, self.port, BACKLOG, who="fakepop3")
        secure: list[socket.socket] = []
        if self.tls_port is not None:
            try:
                secure = bind(self.host, self.tls_port, BACKLOG, who="fakepop3")
            except OSError:
                for sock in plain:
                    sock.close()
                raise
        self._asked = (self.port, self.tls_port)  # put back if this start fails after all
        self.port = plain[0].getsockname()[1]
        if secure:
            self.tls_port = secure[0].getsockname()[1]
        self._tls_from = len(plain)
        self._sockets = plain + secure
        _warn_if_exposed(self.host)  # once bound: a bind that fails says so itself
        return plain + secure

    async def _serve_listeners(self, bound: list[socket.socket]) -> None:
        """Serve on the sockets of :meth:`_bind_listeners` (on failure, every one is closed)."""
        loop = self._loop
        assert loop is not None
        plain, secure = bound[: self._tls_from], bound[self._tls_from :]
        try:
            self._servers.extend(await serve(loop, self._plain_connection, plain, backlog=BACKLOG))
            if secure:
                assert self.tls is not None
                self._servers.extend(
                    await serve(
                        loop,
                        self._tls_connection,
                        secure,
                        backlog=BACKLOG,
                        ssl=self.tls.server_context,
                        ssl_handshake_timeout=self._handshake_timeout(),
                    )
                )
        except BaseException:
            for sock in bound:
                sock.close()
            self._close_listeners()
            raise

    def _close_listeners(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        self._sockets = []

    def _mark_start(self) -> None:
        """The content at start: what ``reset()`` goes back to when nothing else was taken."""
        self.store.snapshot_initial()
        self._at_start = _reset.take(self)

    def _start_timers(self) -> None:
        """On the loop, once serving: the timed fault rules (``deliver_after``) and the idle
        sweep."""
        self._arm_timed()
        if self.timeout is not None:
            assert self._loop is not None
            self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    def _plain_connection(self) -> _Connection:
        if self._baseline is None:  # the first client: the default baseline of reset()
            self._take_baseline()
        return _Connection(self, False)

    def _tls_connection(self) -> _Connection:
        if self._baseline is None:
            self._take_baseline()
        return _Connection(self, True)

    async def _open_control(self) -> None:
        from ..control import ControlAPI  # the control extra (aiohttp): imported when used

        assert self._control_port is not None
        control = ControlAPI(self, self._control_host, self._control_port, self._control_token)
        await control.start()
        self.control = control

    @property
    def control_port(self) -> int | None:
        """The control API's real port while it runs (``control_port=``), else None."""
        return self.control.port if self.control is not None else None

    @property
    def control_url(self) -> str | None:
        """``http://HOST:PORT`` of the control API while it runs, else None."""
        return self.control.url if self.control is not None else None

    def _sweep_interval(self) -> float:
        assert self.timeout is not None
        return max(0.02, min(1.0, self.timeout / 8))

    def _sweep(self) -> None:
        """The autologout timer of every session, checked by one timer per server.

        One timer per connection cost a heap push and a cancel per session; a session
        ends at most two ``_sweep_interval()`` after its idle time reached ``timeout``.
        """
        timeout = self.timeout
        if not self._running or timeout is None or self._loop is None:
            return
        now = _monotonic()
        for conn in list(self._connections):
            conn._check_idle(now, timeout)
        self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    # --- timed rules (Faults.deliver_after): timers of the loop --------------------------
    def _arm_timed(self) -> None:
        """Schedule every timed rule of the faults from now (at start, after a reset), and
        every one added later (``Faults.scheduler``); on the loop."""
        faults = self.faults
        if not isinstance(faults, Faults):
            return
        loop = self._loop
        assert loop is not None
        self._timing = True

        def scheduler(rule: FaultRule) -> None:
            loop.call_soon_threadsafe(self._schedule, rule)

        faults.scheduler = scheduler
        for rule in faults.timed:
            self._schedule(rule)

    def _schedule(self, rule: FaultRule) -> None:
        if not self._timing or self._loop is None:  # stopped meanwhile
            return
        assert rule.after is not None
        old = self._timers.pop(rule, None)
        if old is not None:
            old.cancel()
        self._timers[rule] = self._loop.call_later(rule.after, self._deliver_due, rule)

    def _deliver_due(self, rule: FaultRule) -> None:
        self._timers.pop(rule, None)
        faults = self.faults
        assert isinstance(faults, Faults) and rule.user is not None
        mailbox = self.store.get(rule.user)
        if mailbox is None:
            self._report(
                ValueError(
                    f"{rule.description}: there is no user {rule.user!r} on this server "
                    f"(users: {', '.join(self.store.users) or 'none'}); nothing delivered"
                )
            )
            faults._fire_timed(rule, lambda message: None)
            return
        faults._fire_timed(rule, mailbox.add)

    def _disarm_timed(self) -> None:
        """Cancel every pending timed rule (a stop, a reset); on the loop."""
        self._timing = False
        if isinstance(self.faults, Faults):
            self.faults.scheduler = None
        timers, self._timers = self._timers, {}
        for handle in timers.values():
            handle.cancel()

    async def _close(self) -> None:
        """Stop listening, close every session (without UPDATE) and wait for them."""
        self._disarm_timed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self.control is not None:
            control, self.control = self.control, None
            await control.stop()
        if self.smtp is not None:
            await self.smtp.stop_async()
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn._abort(reason=_history.SERVER)
        if isinstance(self.faults, Faults):
            self.faults.release_holds()  # its held sessions are closed; no gate stays shut
        for server in self._servers:
            await server.wait_closed()
        # Let connection_lost callbacks run so every session is recorded as ended.
        for _ in range(3):
            if not self._connections:
                break
            await asyncio.sleep(0)
        self._servers.clear()
        self._sockets = []

    def _stopped(self) -> None:
        if self.tls is not None:
            self.tls.cleanup()

    # --- for tests ------------------------------------------------------------------------
    @property
    def smtp_port(self) -> int | None:
        """The SMTP intake's real port while it runs (``smtp=True`` or a port), else None."""
        return self.smtp.port if self.smtp is not None else None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the plain POP3 listener."""
        return (self.host, self.port)

    def wait_for_sessions(self, count: int, timeout: float | None = 10.0) -> None:
        """Block until ``count`` sessions have ended since start (``TimeoutError`` otherwise)."""
        self.history.wait_for_sessions(count, timeout)

    async def wait_for_sessions_async(self, count: int) -> None:
        """Wait until ``count`` sessions have ended since start."""
        await self.history.wait_for_sessions_async(count)

    def client(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: str = "XOAUTH2",
        timeout: float = 10.0,
    ) -> poplib.POP3:
        """A ``poplib.POP3`` connected to this server, logged in if ``user`` is given: with
        USER/PASS (``password``, by default the user's own), or with ``token`` by SASL
        ``mechanism`` (``"XOAUTH2"`` or ``"OAUTHBEARER"``, RFC 7628).  A refused login raises
        ``poplib.error_proto`` with the server's ``-ERR`` line and closes the socket."""
        client = poplib.POP3(self.host, self.port, timeout=timeout)
        if user is not None:
            _login(client, self, user, password, token, mechanism)
        return client

    def ssl_client(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: str = "XOAUTH2",
        timeout: float = 10.0,
    ) -> poplib.POP3_SSL:
        """A ``poplib.POP3_SSL`` connected to the implicit-TLS port, verifying the certificate
        (logged in as :meth:`client` logs in)."""
        if self.tls is None or self.tls_port is None:
            raise RuntimeError("this server has no implicit-TLS port; pass tls_port=0")
        client = poplib.POP3_SSL(
            self.host, self.tls_port, timeout=timeout, context=self.tls.client_context()
        )
        if user is not None:
            _login(client, self, user, password, token, mechanism)
        return client

    def _handshake_timeout(self) -> float:
        """Seconds a TLS handshake may take: 30, or less when ``command_timeout`` is shorter."""
        if self.command_timeout is None:
            return 30.0
        return min(30.0, self.command_timeout)


def _login(
    client: poplib.POP3,
    server: POP3Server,
    user: str,
    password: str | None,
    token: str | None = None,
    mechanism: str = "XOAUTH2",
) -> None:
    try:
        if token is not None:
            _token_login(client, server, user, token, mechanism)
            return
        if password is None:
            mailbox = server.store.get(user)
            password = mailbox.password if mailbox is not None and mailbox.password else ""
        client.user(user)
        client.pass_(password)
    except BaseException:
        client.close()  # a failed login must not leak the socket
        raise


def _token_login(
    client: poplib.POP3, server: POP3Server, user: str, token: str, mechanism: str
) -> None:
    """``AUTH XOAUTH2`` / ``AUTH OAUTHBEARER`` with an initial response (RFC 7628 s3.1); on the
    error challenge, the empty answer the RFC asks for, then the ``-ERR`` raised."""
    name = mechanism.upper()
    if name == "XOAUTH2":
        response = f"user={user}\x01auth=Bearer {token}\x01\x01"
    elif name == "OAUTHBEARER":
        response = (
            f"n,a={user},\x01host={server.host}\x01port={server.port}\x01"
            f"auth=Bearer {token}\x01\x01"
        )
    else:
        raise ValueError(f"mechanism must be 'XOAUTH2' or 'OAUTHBEARER', not {mechanism!r}")
    # poplib has no AUTH: its line I/O is used directly (_putcmd/_getline, stable since 2.x).
    client._putcmd(f"AUTH {name} " + base64.b64encode(response.encode()).decode())  # type: ignore[attr-defined]
    reply, _ = client._getline()  # type: ignore[attr-defined]
    if reply.startswith(b"+ "):  # the error challenge: an empty answer, then the -ERR
        client._putcmd("")  # type: ignore[attr-defined]
        reply, _ = client._getline()  # type: ignore[attr-defined]
    if not reply.startswith(b"+OK"):
        raise poplib.error_proto(reply)


def _warn_if_exposed(host: str) -> None:
    if not is_loopback(host):
        log.warning(
            "fakepop3 is listening on %s, not on loopback: other machines can reach this fake "
            "server and its test passwords",
            host or "every address",
        )
