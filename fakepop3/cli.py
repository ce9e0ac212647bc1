"""The standalone server: ``fakepop3`` (or ``python -m fakepop3``) for CI jobs in any language.

It serves until SIGTERM or SIGINT (exit 0).  SIGHUP, like ``POST /api/v1/reset``
on the control port, resets the server for the next test (``POP3Server.reset``: open
sessions ended, users, mail and fault rules back to the start, history cleared),
appends a ``{"event": "reset"}`` line to the history file and rewrites the ready
file with ``resets`` counted up, so a script can wait for the reset to be done.
``fakepop3 wait`` is the readiness probe (``fakepop3._wait``).
Bad options print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from . import __version__
from .config import ConfigError, Options, env_values, load_config
from .history import CommandRecord, SessionRecord
from .loaders import MailLoadError
from .options import GROUPS, TEXT, Option, Surface, python_options, toml_options
from .server import POP3Server, uvloop_factory
from .tls import TLSCertificates

__all__ = ["main"]

PROG = "fakepop3"
EXIT_USAGE = 2

DESCRIPTION = """\
A fake POP3 server for tests, as a program for CI jobs in any language.
It serves until SIGTERM or Ctrl-C (exit 0); SIGHUP (or POST /api/v1/reset on the
control port) resets it for the next test: open sessions ended, users, mail and
fault rules back to the start, history cleared. Bad options exit with status 2.
"fakepop3 wait --help": wait until a server answers (a readiness probe)."""

EPILOG = """\
examples:
  fakepop3 --port 0 --user alice:secret --generate alice=50 --seed 42 \\
           --ready-file ready.json --history history.jsonl
  fakepop3 --config fakepop3.toml --port 2110      (flags win over the config)
  FAKEPOP3_USERS=alice:secret,bob:pw FAKEPOP3_PORT=0 fakepop3 --token bob=tok
  fakepop3 --port 1110 --control-port 8025 --user alice:secret &
  fakepop3 wait --control http://127.0.0.1:8025 && curl -s localhost:8025/api/v1/users

environment: every flag is also FAKEPOP3_<NAME> (FAKEPOP3_COMMAND_TIMEOUT=30; a repeatable
flag takes a comma-separated list: FAKEPOP3_USERS, FAKEPOP3_TOKENS, FAKEPOP3_DISABLE, ...).
Flags win over the environment, which wins over the config file.
  fakepop3 --user alice:secret --tls-port 0 --ca-out ca.pem --smtp-port 0

ready file (written atomically once listening, removed at exit):
  {"host": ..., "port": ..., "tls_port": ..., "smtp_port": ..., "control_port": ..., "ca": ...,
   "pid": ..., "resets": 0}

history file (one JSON object a line, flushed as it happens; secrets masked):
  {"event": "command", "session": 1, "user": "alice", "command": "RETR", "args": ["1"], ...}
  {"event": "session_end", ...}  {"event": "smtp", ...}  {"event": "reset", "resets": 1, ...}
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {PROG} --help)")


class _Stopped(Exception):
    """SIGTERM arrived before the server was serving."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser, one flag per CLI option of :mod:`fakepop3.options`
    (every option defaults to None: "not given")."""
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with the same keys as the flags (env: FAKEPOP3_CONFIG)",
    )
    groups = {title: p.add_argument_group(title) for title in GROUPS}
    for option in _cli_options():
        group = groups[option.group]
        if option.is_flag:
            group.add_argument(
                option.cli_flag, dest=option.text_key, action=argparse.BooleanOptionalAction,
                help=option.help,
            )  # fmt: skip
        else:
            group.add_argument(
                option.cli_flag,
                dest=option.text_key,
                metavar=option.metavar,
                action="append" if option.repeat else "store",
                help=option.help,
            )
    return p


def _cli_options() -> list[Option]:
    return [o for o in toml_options().values() if Surface.CLI in o.surfaces]


def options_from(argv: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> Options:
    """Parse the flags, read the config file (``--config``, else ``FAKEPOP3_CONFIG``), merge
    (flags win over the environment, which wins over the file) and check."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    opts = Options()
    config = args.config if args.config is not None else env.get("FAKEPOP3_CONFIG") or None
    if config is not None:
        opts.apply(load_config(config))
    opts.apply(env_values(env))
    flags: dict[str, Any] = {}
    for option in _cli_options():
        raw = getattr(args, option.text_key)
        if raw is None:
            continue
        if option.is_flag:
            flags[option.text_key] = raw
        else:
            flags[option.text_key] = option.from_text(raw, Surface.CLI)
    opts.apply(flags)
    opts.check()
    return opts


# --- preparing the server -----------------------------------------------------------------
def make_server(opts: Options) -> POP3Server:
    """A :class:`POP3Server` configured from ``opts`` (not started, no mail yet)."""
    tls: bool | TLSCertificates = False
    try:
        if opts.cert is not None and opts.key is not None:
            tls = TLSCertificates.from_files(opts.cert, opts.key)
        elif opts.tls_enabled or opts.ca_out is not None:
            tls = TLSCertificates.generate()
    except (ValueError, RuntimeError, OSError) as error:
        raise ConfigError(str(error)) from None
    faults = _faults(opts.faults, opts.seed) if opts.faults is not None else None
    try:
        # Every option both surfaces have, by its schema entry; three are made here first.
        made: dict[str, Any] = {
            "tls": tls,
            "faults": faults,
            "smtp": opts.smtp_port if opts.smtp_port is not None else False,
        }
        kwargs: dict[str, Any] = {
            o.name: made[o.name] if o.name in made else getattr(opts, o.text_key)
            for o in python_options()
            if o.surfaces & TEXT
        }
        server = POP3Server(**kwargs)
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error)) from None
    server.history.keep_sessions(opts.history_limit)  # the history file keeps every one
    return server


def _faults(config: list[dict[str, Any]], seed: int) -> Any:
    from .faults import Faults

    try:
        return Faults.from_config(config, seed=seed)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config faults: {error}") from None


class _Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.active = stream.isatty()
        self.shown = False

    def step(self, text: str) -> None:
        """Show what is being done now (replacing the previous step)."""
        if not self.active:
            return
        self.stream.write(f"\r{PROG}: preparing: {text}...\x1b[K")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def fill_mailboxes(server: POP3Server, opts: Options, progress: _Progress) -> None:
    """Add the mail of ``--load`` and ``--generate`` to the maildrops.

    Generated mail is what ``Mailbox.generate(COUNT, seed=SEED, locale=LOCALE)`` adds
    in Python (lazily: sizes now, bytes on first RETR), so a test in any language
    can rely on the same messages for the same seed.
    """
    store = server.store
    try:
        for i, (name, path) in enumerate(opts.load, 1):
            progress.step(f"loading {path} into {name} ({i}/{len(opts.load)})")
            try:
                store.add_user(name).load(path)
            except MailLoadError as error:
                raise ConfigError(f"--load {name}={path}: {error.expected}") from None
            except OSError as error:
                raise ConfigError(f"--load {name}={path}: {error.strerror or error}") from None
        locale = opts.locale if isinstance(opts.locale, str) else list(opts.locale)
        shown = opts.locale if isinstance(opts.locale, str) else ",".join(opts.locale)
        for i, (name, count) in enumerate(opts.generate, 1):
            progress.step(f"generating {count} messages for {name} ({i}/{len(opts.generate)})")
            try:
                store.add_user(name).generate(
                    count, seed=opts.seed, locale=locale, **opts.generate_options
                )
            except (AttributeError, ValueError) as error:
                raise ConfigError(f"--locale {shown!r}: {error}") from None
    finally:
        progress.done()


# --- files for the CI script --------------------------------------------------------------
class HistoryFile:
    """Appends one JSON object a line to a file, each line written whole at once.

    A write that fails (a full disk, a broken device) is taken back (the file is cut to its
    last whole line), warned about once on stderr, and the file is written no more: the
    server goes on serving.  :meth:`open` refuses a path that cannot be written at all.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self._size = 0  # bytes of whole lines written so far
        self._lock = threading.Lock()
        self.failed: str | None = None  # why it stopped writing, once it did

    @classmethod
    def open(cls, path: Path) -> HistoryFile:
        """The file at ``path``, emptied; :class:`ConfigError` if it cannot be opened."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o666)
        except OSError as error:
            raise ConfigError(f"--history {path}: {_why(error)}") from None
        return cls(path, fd)

    def write(self, event: str, *, strict: bool = False, **fields: Any) -> None:
        """Append one line; a failure warns once (``strict``: raises :class:`ConfigError`)."""
        data = (json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n").encode()
        with self._lock:
            fd = self._fd
            if fd is None:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as error:
                self._give_up(fd, error, strict)
            else:
                self._size += len(data)

    def _give_up(self, fd: int, error: OSError, strict: bool) -> None:
        """Take back the part of the line that was written, warn once, write no more."""
        with contextlib.suppress(OSError):  # a device (/dev/full) cannot be cut: nothing to
            os.ftruncate(fd, self._size)  # take back there
        self.failed = _why(error)
        self._fd = None
        os.close(fd)
        if strict:
            raise ConfigError(f"--history {self.path}: {self.failed}")
        _warn(
            f"cannot write the history file {self.path} ({self.failed}): it stops here, "
            "at its last whole line; the server goes on serving"
        )

    def command(self, record: CommandRecord) -> None:
        self.write("command", **record.to_dict())

    def session_end(self, session: SessionRecord) -> None:
        self.write("session_end", **session.to_dict())

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _why(error: OSError) -> str:
    """An OSError as the few words a user needs (``Is a directory``, ``Permission denied``)."""
    return error.strerror or str(error)


class _GuardedStream:
    """A stand-in for ``sys.stdout`` while the program runs: a stdout that is closed
    (``fakepop3 ... | head -1``, a dead ``tee``) silences the server's own lines, never stops
    the server (a reset still gets counted, SIGTERM still exits 0)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # BrokenPipeError, EPIPE, a closed file object
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._break()

    def _break(self) -> None:
        self.broken = True
        _silence(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _warn(text: str) -> None:
    """One line on stderr (a stderr that is gone is left alone)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"{PROG}: warning: {text}", file=sys.stderr, flush=True)


def _silence(stream: IO[str]) -> None:
    """Point a broken stream's descriptor at /dev/null, so that the interpreter's own flush at
    exit does not fail on it (the recipe of the Python docs, "Note on SIGPIPE")."""
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        return
    try:
        os.dup2(devnull, fd)
    except OSError:  # pragma: no cover - dup2 onto an open descriptor does not fail
        pass
    finally:
        os.close(devnull)


def _write_ready(path: Path, data: dict[str, Any]) -> None:
    """The first ready file: a path that cannot be written is a bad option."""
    try:
        write_atomically(path, data)
    except OSError as error:
        raise ConfigError(f"--ready-file {path}: {_why(error)}") from None


def _check_writable(opts: Options) -> None:
    """Refuse at once a ready file or CA file in a folder where no file can be made (before
    mail is generated and ports are bound)."""
    for what, path in (("--ready-file", opts.ready_file), ("--ca-out", opts.ca_out)):
        if path is None:
            continue
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        except OSError as error:
            raise ConfigError(
                f"{what} {path}: cannot write in {path.parent}: {_why(error)}"
            ) from None
        os.close(fd)
        os.unlink(probe)


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` so a reader sees the old file, no file, or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- running ------------------------------------------------------------------------------
class _App:
    def __init__(self, opts: Options, server: POP3Server) -> None:
        self.opts = opts
        self.server = server
        self.history: HistoryFile | None = None
        self.ready_file_failed = False
        self.ca: Path | None = None

    def ready_data(self) -> dict[str, Any]:
        server = self.server
        return {
            "host": server.host,
            "port": server.port,
            "tls_port": server.tls_port,
            "smtp_port": server.smtp.port if server.smtp is not None else None,
            "control_port": server.control_port,
            "ca": str(self.ca) if self.ca is not None else None,
            "pid": os.getpid(),
            "resets": server.resets,
        }

    def reset(self) -> None:
        """SIGHUP: what ``POST /api/v1/reset`` does (``after_reset`` then reports it)."""
        self.server.reset()

    def after_reset(self, server: POP3Server) -> None:
        """After every reset (SIGHUP, the control API): the history line, the ready file."""
        if self.history is not None:
            self.history.write("reset", resets=server.resets, time=time.time())
        print(f"{PROG}: reset #{server.resets}: back to the start for the next test", flush=True)
        if self.opts.ready_file is not None:
            try:
                write_atomically(self.opts.ready_file, self.ready_data())
            except OSError as error:  # a full disk: the reset is done all the same
                if not self.ready_file_failed:
                    self.ready_file_failed = True
                    _warn(
                        f"cannot rewrite the ready file {self.opts.ready_file} "
                        f"({error.strerror or error}): resets go on, but its count stays at the "
                        "last one written (POST /api/v1/reset answers with the count)"
                    )

    async def serve(self) -> int:
        opts, server = self.opts, self.server
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _on_signal(loop, signal.SIGTERM, stop.set)
        _on_signal(loop, signal.SIGINT, stop.set)
        if hasattr(signal, "SIGHUP"):
            _on_signal(loop, signal.SIGHUP, self.reset)
        if opts.history is not None:
            self.history = HistoryFile.open(opts.history)
            server.history.add_listener(self.history.command)
            server.history.add_session_listener(self.history.session_end)
        try:
            try:
                await server.start_async()  # and its SMTP intake (smtp=PORT)
            except OSError as error:
                raise ConfigError(_listen_error(error)) from None
            except RuntimeError as error:  # aiosmtpd or aiohttp is missing
                flag = "--control-port" if "control" in str(error) else "--smtp-port"
                raise ConfigError(f"{flag}: {error}") from None
            # A reset goes back to the mail loaded at start (not to the first session's).
            server.snapshot()
            server.add_reset_listener(self.after_reset)
            try:
                if server.smtp is not None and self.history is not None:
                    history = self.history
                    server.smtp.add_listener(lambda d: history.write("smtp", **d.to_dict()))
                self._write_ca()
                if self.history is not None:
                    self.history.write("start", strict=True, **self.ready_data(), time=time.time())
                self.banner()  # before the ready file: a reader of it finds the banner too
                if opts.ready_file is not None:
                    _write_ready(opts.ready_file, self.ready_data())
                await stop.wait()
            finally:
                await server.stop_async()
                if opts.ready_file is not None:
                    # What is there now may not be ours (a folder put in its place): left alone.
                    with contextlib.suppress(OSError):
                        opts.ready_file.unlink(missing_ok=True)
                if server.tls is not None:
                    server.tls.cleanup()
        finally:
            if self.history is not None:
                self.history.write("stop", time=time.time())
                self.history.close()
        print(f"{PROG}: stopped", flush=True)
        return 0

    def _write_ca(self) -> None:
        tls = self.server.tls
        if tls is None or tls.ca_pem is None:
            return
        if self.opts.ca_out is not None:
            try:
                self.ca = tls.write_ca(self.opts.ca_out).resolve()
            except OSError as error:
                raise ConfigError(f"--ca-out {self.opts.ca_out}: {_why(error)}") from None
        else:
            self.ca = tls.ca_path.resolve()

    def banner(self) -> None:
        server, opts = self.server, self.opts
        tls = ", STLS offered" if server.tls is not None else ""
        lines = [f"{PROG} {__version__} listening on {server.host}:{server.port} (POP3{tls})"]
        if server.tls_port is not None:
            lines.append(f"  implicit TLS on {server.host}:{server.tls_port}")
        if server.smtp is not None:
            lines.append(f"  SMTP intake on {server.smtp.host}:{server.smtp.port}")
        if server.control_url is not None:
            token = " (needs its token)" if opts.control_token is not None else ""
            lines.append(f"  control API and live page on {server.control_url}/{token}")
        if self.ca is not None:
            lines.append(f"  CA certificate: {self.ca}")
        boxes = [f"{m.name} ({_count(len(m))})" for m in server.store]
        lines.append(f"  users: {', '.join(boxes) if boxes else '(none)'}")
        if opts.uvloop:
            loop = type(asyncio.get_running_loop())
            lines.append(f"  event loop: {loop.__module__}.{loop.__qualname__}")
        if opts.any_login:
            lines.append("  any user name and password is accepted")
        if opts.history is not None:
            lines.append(f"  history: {opts.history}")
        if opts.ready_file is not None:
            lines.append(f"  ready file: {opts.ready_file}")
        reset = "SIGHUP or POST /api/v1/reset" if server.control_url else "SIGHUP"
        lines.append(
            f"  pid {os.getpid()}: {reset} resets for the next test; SIGTERM or Ctrl-C stops"
        )
        print("\n".join(lines), flush=True)


def _count(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


def _listen_error(error: OSError) -> str:
    """``cannot listen on HOST:PORT: Address already in use``: one line, no asyncio detail."""
    text = error.strerror or str(error)
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.strerror and cause.errno and cause.errno > 0:
        text = text.replace(cause.strerror, os.strerror(cause.errno))
    return text.removeprefix(f"{PROG} ")


def _on_signal(
    loop: asyncio.AbstractEventLoop, sig: signal.Signals, callback: Callable[[], None]
) -> None:
    try:
        loop.add_signal_handler(sig, callback)
    except NotImplementedError:  # pragma: no cover - Windows: no loop signal handlers
        signal.signal(sig, lambda *_: loop.call_soon_threadsafe(callback))


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped()


def _uvloop_run() -> Callable[[Coroutine[Any, Any, int]], int]:
    """``uvloop.run`` (``asyncio.run`` on a uvloop loop), or a ConfigError saying how to get it."""
    try:
        uvloop_factory()
    except RuntimeError as error:
        raise ConfigError(f"--uvloop: {error}") from None
    import uvloop  # type: ignore[import-not-found, unused-ignore]

    run: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    return run


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the standalone server; returns the exit status (0, or 2 for bad options)."""
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["wait"]:
        from ._wait import main as wait

        return wait(args[1:])
    if args[:1] == ["record"]:
        from ._record import main as record

        return record(args[1:])
    if args[:1] == ["proxy"]:
        from ._proxy import main as proxy

        return proxy(args[1:])
    argv = args
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_stopped) if in_main_thread else None
    stdout = sys.stdout
    sys.stdout = _GuardedStream(stdout)
    try:
        opts = options_from(argv)
        _check_writable(opts)
        server = make_server(opts)
        if opts.ready_file is not None:
            try:
                opts.ready_file.unlink(missing_ok=True)  # never let a stale one look ready
            except OSError as error:
                raise ConfigError(f"--ready-file {opts.ready_file}: {_why(error)}") from None
        run = _uvloop_run() if opts.uvloop else asyncio.run
        fill_mailboxes(server, opts, _Progress(sys.stderr))
        return run(_App(opts, server).serve())
    except ConfigError as error:
        return _fail(str(error))
    except (_Stopped, KeyboardInterrupt):
        print(f"{PROG}: stopped before it was ready", file=sys.stderr, flush=True)
        return 0
    finally:
        sys.stdout = stdout
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
