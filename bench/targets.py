"""Benchmark targets: pluggable server factories (``bare``, ``fakepop3``, ``fakepop3-uvloop``,
``dovecot``).

A target starts a server holding a named mailbox layout for users ``u0 .. u{n-1}`` (password
``secret``; every maildrop has the same content, since fakepop3 and Dovecot lock a maildrop
per session) and returns a :class:`Running` with its address and the pids whose memory counts.

Servers under load run in their own process (``python bench/serve.py``) so that their RSS can
be read from /proc and the load generator does not share their interpreter.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

# Only for the type checker: the benchmarks run on any supported Python, and no extra declares
# typing_extensions (typing.Self is 3.11+).
if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Self
    else:
        from typing_extensions import Self


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
PASSWORD = "secret"
BIG_MB = 50


# --- mailboxes -------------------------------------------------------------------------------
def session_messages() -> list[bytes]:
    """Ten messages of 2-6 KB, a few lines starting with a dot (so stuffing is exercised)."""
    out = []
    for i in range(1, 11):
        lines = [
            b"Line %d of message %d, some words to fill the width of a mail line." % (j, i)
            for j in range(30 + 8 * i)
        ]
        lines[5] = b".a line that starts with a dot"
        out.append(
            b"From: sender%d@example.com\r\nTo: u@example.com\r\nSubject: message %d\r\n"
            b"Message-ID: <%d@bench.example>\r\n\r\n" % (i, i, i) + b"\r\n".join(lines) + b"\r\n"
        )
    return out


def big_message(mb: int = BIG_MB) -> bytes:
    line = b"0123456789" * 7 + b"abcd\r\n"  # 76 octets
    block = line * 99 + b".dot-stuffed line\r\n" + line * 100
    head = b"From: big@example.com\r\nSubject: %d MB\r\n\r\n" % mb
    body = block * (mb * 1024 * 1024 // len(block) + 1)
    return head + body[: mb * 1024 * 1024 - len(head)]


def mailbox(layout: str) -> list[bytes]:
    if layout == "session":
        return session_messages()
    if layout == "big":
        return [big_message()]
    if layout.startswith("big:"):  # big:MB, for quick runs
        return [big_message(int(layout[4:]))]
    if layout == "idle":
        return session_messages()[:1]
    if layout == "empty":
        return []
    raise ValueError(f"unknown mailbox layout {layout!r}")


def users(n: int) -> list[str]:
    return [f"u{i}" for i in range(n)]


# --- /proc ----------------------------------------------------------------------------------
def proc_status(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM...) in bytes; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def proc_pss(pid: int) -> int:
    """Proportional set size (shared pages split between sharers) in bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return proc_status(pid, "VmRSS")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_greeting(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if s.recv(512).startswith(b"+OK"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no POP3 greeting on {HOST}:{port}")
        time.sleep(0.05)


# --- a running server -----------------------------------------------------------------------
@dataclass
class Running:
    name: str
    port: int
    pid: int  # the process that owns the listening socket (the master for Dovecot)
    stop: Callable[[], None]
    multi_process: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return HOST

    def pids(self) -> list[int]:
        return descendants(self.pid) if self.multi_process else [self.pid]

    def memory(self) -> int:
        """Server memory in bytes: RSS, or the sum of PSS over all processes of Dovecot."""
        if self.multi_process:
            return sum(proc_pss(p) for p in self.pids())
        return proc_status(self.pid, "VmRSS")

    def cpu(self) -> float:
        return sum(proc_cpu(p) for p in self.pids())

    def reset_peak(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            return True
        except OSError:
            return False

    def peak(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Target:
    name = "?"

    #: why the target cannot run here (None when it can)
    def unavailable(self) -> str | None:
        return None

    def start(self, nusers: int, layout: str) -> Running:
        raise NotImplementedError


class SubprocessTarget(Target):
    """bare / fakepop3 / fakepop3-uvloop: ``bench/serve.py`` hosts the server in a child process."""

    def __init__(self, name: str) -> None:
        self.name = name

    def unavailable(self) -> str | None:
        if not self.name.startswith("fakepop3"):
            return None
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        check = "from fakepop3 import POP3Server"
        if self.name == "fakepop3-uvloop":
            check += "; from fakepop3.server import uvloop_factory; uvloop_factory()"
        r = subprocess.run(
            [sys.executable, "-c", check],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if r.returncode:
            last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
            return f"not available yet ({last})"
        return None

    def start(self, nusers: int, layout: str) -> Running:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "serve.py"),
                self.name,
                "--users",
                str(nusers),
                "--mailbox",
                layout,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{self.name} server did not start: {line!r}")
        port = int(line.split()[1])

        def stop() -> None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()

        return Running(self.name, port, proc.pid, stop)


DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = pop3
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
default_process_limit = {procs}
default_client_limit = {clients}
first_valid_uid = 1
mail_location = maildir:{tmp}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {host}
    port = {port}
  }}
  service_count = 0
  process_min_avail = 2
}}
service pop3 {{
  process_limit = {procs}
}}
service anvil {{
  client_limit = {anvil}
}}
"""


class DovecotTarget(Target):
    """Dovecot on loopback, configured in a temporary folder (passwd-file, Maildir)."""

    name = "dovecot"

    def __init__(self, max_sessions: int = 200) -> None:
        self.max_sessions = max_sessions  # a process per session: we never hold 10,000

    def binary(self) -> str | None:
        return shutil.which("dovecot") or next(
            (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
        )

    def unavailable(self) -> str | None:
        if self.binary() is None:
            return "not installed (apt-get install dovecot-pop3d)"
        if os.geteuid() != 0:
            return "needs root to start its login processes"
        return None

    def start(self, nusers: int, layout: str) -> Running:
        import pwd

        binary = self.binary()
        assert binary is not None
        tmp = Path(tempfile.mkdtemp(prefix="bench-dovecot-"))
        os.chmod(tmp, 0o755)
        mail_user = pwd.getpwnam("nobody")
        port = free_port()
        procs = max(self.max_sessions + 50, 256)
        (tmp / "passwd").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in users(nusers)))
        for d in ("run", "state", "home"):
            (tmp / d).mkdir()
        msgs = mailbox(layout)
        for n, u in enumerate(users(nusers)):
            for sub in ("cur", "new", "tmp"):
                (tmp / "mail" / u / sub).mkdir(parents=True)
            for i, m in enumerate(msgs, 1):
                name = f"1700000000.M{i}P1.bench,S={len(m)}:2,S"
                if n:  # same content for every user: hard links, not copies
                    os.link(tmp / "mail" / "u0" / "cur" / name, tmp / "mail" / u / "cur" / name)
                else:
                    (tmp / "mail" / u / "cur" / name).write_bytes(m)
        for dirpath, _dirs, files in os.walk(tmp / "mail"):
            os.chown(dirpath, mail_user.pw_uid, mail_user.pw_gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), mail_user.pw_uid, mail_user.pw_gid)
        os.chown(tmp / "home", mail_user.pw_uid, mail_user.pw_gid)
        conf = tmp / "dovecot.conf"
        conf.write_text(
            DOVECOT_CONF.format(
                tmp=tmp,
                host=HOST,
                port=port,
                uid=mail_user.pw_uid,
                gid=mail_user.pw_gid,
                procs=procs,
                clients=procs * 4,
                anvil=procs * 4 + 100,
            )
        )
        proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            wait_greeting(port)
        except TimeoutError as e:
            proc.kill()
            err = proc.communicate()[1].decode(errors="replace")
            log = (tmp / "dovecot.log").read_text() if (tmp / "dovecot.log").exists() else ""
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"dovecot did not start: {e}\n{err[-2000:]}\n{log[-2000:]}") from e

        def stop() -> None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)

        return Running(self.name, port, proc.pid, stop, multi_process=True, extra={"dir": str(tmp)})


def make(name: str) -> Target:
    if name in ("bare", "fakepop3", "fakepop3-uvloop"):
        return SubprocessTarget(name)
    if name == "dovecot":
        return DovecotTarget()
    raise ValueError(f"unknown target {name!r} (bare, fakepop3, fakepop3-uvloop, dovecot)")
