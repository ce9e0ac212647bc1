"""``fakepop3 record``: capture a real server's maildrop and personality, changing nothing.

It logs in with poplib, reads the greeting, CAPA before and after login, probes a few safe
invalid commands (an unknown command, STAT before login, PASS before USER) for their error
texts, lists the maildrop (STAT, LIST, UIDL), reads every message with RETR (or its headers
with TOP n 0, ``--top-only``: for a server that marks messages seen on RETR) and ends with
QUIT.  It never sends DELE.  It writes into ``--out DIR``:

* ``mail/0001.eml`` ...: the messages as the server sent them (dot-unstuffed, CRLF), which
  ``fakepop3 --load NAME=DIR/mail`` reads back byte for byte;
* ``persona.toml``: greeting, CAPA in both states, the SASL mechanisms, the replies and the
  error texts seen, the UIDLs seen (as a comment), for ``--persona-file``;
* ``transcript.txt``: both directions, the password and SASL responses masked, message
  bodies summarised.

Replay: ``fakepop3 --persona-file DIR/persona.toml --user NAME:PASSWORD --load NAME=DIR/mail``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import poplib
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "fakepop3 record"
EXIT_USAGE = 2


class _Usage(Exception):
    """Bad input: one line, exit 2."""


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage dump
        raise _Usage(f"{message} (see {PROG} --help)")


def _parser() -> argparse.ArgumentParser:
    p = _ArgParser(
        prog=PROG,
        description="Log into a POP3 server without changing it (no DELE; RETR or TOP only; "
        "QUIT at the end) and write its maildrop (.eml files), a persona file and a "
        "transcript with the secrets masked.",
        allow_abbrev=False,
    )
    p.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the server")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls", action="store_true", help="implicit TLS (POP3S, port 995)")
    tls.add_argument("--stls", action="store_true", help="STLS after the greeting")
    p.add_argument("--cafile", metavar="FILE", help="trust this CA (PEM) instead of the system's")
    p.add_argument("--user", required=True, metavar="NAME", help="the user name")
    p.add_argument(
        "--password-env", required=True, metavar="VAR", help="the environment variable "
        "that holds the password (never a flag: it would show in ps and shell history)",
    )  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="where to write (made if missing)")
    p.add_argument("--top-only", action="store_true",
                   help="read headers only (TOP n 0), for servers that mark messages seen on RETR")  # fmt: skip
    p.add_argument("--anonymize", action="store_true",
                   help="rewrite names, addresses, subjects and bodies with Faker, keeping the "
                   "MIME structure, header order, dates and sizes (and addresses in the persona "
                   "and transcript)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="the seed of --anonymize (default 0): the same capture and seed give "
                   "the same output")  # fmt: skip
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="socket timeout (default 30)")  # fmt: skip
    return p


def _upstream(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _Usage(f"--upstream {text!r}: expected HOST:PORT, e.g. pop.example.com:995")
    return host.strip("[]"), int(port)


class _Transcript:
    """What went over the wire, secrets masked and message bodies counted, not kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.body: int | None = None  # lines of a RETR/TOP body being skipped
        self.secret_next = False

    def sent(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        word = text.split(" ", 1)[0].upper()
        if self.secret_next:
            text, self.secret_next = "*** (SASL response)", False
        elif word == "PASS":
            text = "PASS ***"
        elif word == "AUTH":
            parts = text.split(" ")
            text = " ".join(parts[:2] + (["***"] if len(parts) > 2 else []))
        elif word == "APOP":
            text = " ".join([*text.split(" ")[:2], "***"])
        if word in ("RETR", "TOP"):
            self.body = -1  # the status line comes first
        self.lines.append(f"C: {text}")

    def received(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if self.body is not None:
            if self.body == -1:
                self.lines.append(f"S: {text}")
                self.body = 0 if text.startswith("+OK") else None
            elif line == b".":
                self.lines.append(f"S: ({self.body} lines of the message)")
                self.lines.append("S: .")
                self.body = None
            else:
                self.body += 1
            return
        if text.startswith("+ "):
            self.secret_next = True
        self.lines.append(f"S: {text}")


def _recording(base: type[poplib.POP3], transcript: _Transcript) -> type[poplib.POP3]:
    class Recording(base):  # type: ignore[misc, valid-type]
        def _putline(self, line: bytes) -> None:
            transcript.sent(line)
            super()._putline(line)

        def _getline(self) -> tuple[bytes, int]:
            line, octets = super()._getline()
            transcript.received(line)
            return line, octets

    return Recording


def _error_text(error: poplib.error_proto) -> str:
    raw = error.args[0] if error.args else b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text[5:] if text.startswith("-ERR ") else text.removeprefix("-ERR")


def _ok_text(reply: bytes) -> str:
    text = reply.decode("utf-8", "replace")
    return text[4:] if text.startswith("+OK ") else ""


def _capa(client: poplib.POP3) -> tuple[str | None, list[str] | None]:
    try:
        status, lines, _ = client._longcmd("CAPA")  # type: ignore[attr-defined]
    except poplib.error_proto:
        return None, None
    return _ok_text(status), [line.decode("utf-8", "replace") for line in lines]


def _probe(client: poplib.POP3, command: str) -> str | None:
    """The -ERR text of a command that must fail (None if it did not)."""
    try:
        client._shortcmd(command)  # type: ignore[attr-defined]
    except poplib.error_proto as error:
        return _error_text(error)
    return None


def _toml(value: Any) -> str:
    """A TOML value: strings as basic strings (JSON's escapes are TOML's), lists of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def record(args: argparse.Namespace, password: str) -> dict[str, Any]:
    host, port = _upstream(args.upstream)
    out = Path(args.out)
    mail = out / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    transcript = _Transcript()
    anonymizer = None
    if args.anonymize:
        from ._anonymize import Anonymizer

        anonymizer = Anonymizer(args.seed)
    context = ssl.create_default_context(cafile=args.cafile) if (args.tls or args.stls) else None
    if args.tls:
        secure: Any = _recording(poplib.POP3_SSL, transcript)
        client: poplib.POP3 = secure(host, port, timeout=args.timeout, context=context)
    else:
        client = _recording(poplib.POP3, transcript)(host, port, timeout=args.timeout)
    seen: dict[str, Any] = {"greeting": client.welcome.decode("utf-8", "replace")}
    try:
        if args.stls:
            client.stls(context)
        seen["capa_status"], seen["capa_before"] = _capa(client)
        seen["unknown_command"] = _probe(client, "XYZZY")
        seen["wrong_state"] = _probe(client, "STAT")
        seen["no_user"] = _probe(client, "PASS x")
        seen["user"] = _ok_text(client.user(args.user))
        seen["logged_in"] = _ok_text(client.pass_(password))
        _, seen["capa_after"] = _capa(client)
        count, _ = client.stat()
        try:
            _, uid_lines, _ = client.uidl()
            seen["uids"] = [line.split(b" ", 1)[1].decode() for line in uid_lines]
        except poplib.error_proto:
            seen["uids"] = None
        for n in range(1, count + 1):
            if args.top_only:
                _, lines, _ = client.top(n, 0)
            else:
                _, lines, _ = client.retr(n)
            raw = b"".join(line + b"\r\n" for line in lines)
            if anonymizer is not None:
                raw = anonymizer.message(raw)
            (mail / f"{n:04d}.eml").write_bytes(raw)
        seen["count"] = count
        seen["quit"] = _ok_text(client.quit())
    finally:
        client.close()
    said = transcript.lines
    if anonymizer is not None:
        user = anonymizer.text(args.user) if "@" in args.user else "user"
        said = [anonymizer.text(line).replace(args.user, user) for line in said]
        for key, value in list(seen.items()):
            if isinstance(value, str):
                seen[key] = anonymizer.text(value)
    _write_persona(out / "persona.toml", seen, args, host, port)
    (out / "transcript.txt").write_text("\n".join(said) + "\n", encoding="utf-8")
    return seen


def _write_persona(
    path: Path, seen: dict[str, Any], args: argparse.Namespace, host: str, port: int
) -> None:
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = f"recorded from {host}:{port} by fakepop3 record, {when}"
    greeting = seen["greeting"]
    text = greeting[4:] if greeting.startswith("+OK ") else greeting[3:].lstrip()
    apop = text.endswith(">") and "<" in text and "@" in text[text.rfind("<") :]
    if apop:
        text = text[: text.rfind("<")].rstrip()
    lines = [
        f"# {source}",
        f"# {seen['count']} messages" + (", headers only (TOP n 0)" if args.top_only else ""),
    ]
    if seen.get("uids"):
        lines.append(f"# UIDLs seen (first 5): {' '.join(seen['uids'][:5])}")
    lines += [f"name = {_toml('recorded-' + host)}", f"greeting = {_toml(text)}"]
    if apop:
        lines.append("apop = true")
    mechs: list[str] = []
    for line in (seen["capa_after"] or []) + (seen["capa_before"] or []):
        words = line.split()
        if words[:1] == ["SASL"]:
            mechs = words[1:]
            break
    if seen["capa_before"] is None:
        lines += ["", "[capa]", "supported = false"]
    else:
        lines += ["", "[capa]", f"status = {_toml(seen['capa_status'] or '')}"]
        lines.append(f"before_login = {_toml(seen['capa_before'])}")
        if seen["capa_after"] is not None:
            lines.append(f"after_login = {_toml(seen['capa_after'])}")
    replies = {k: seen[k] for k in ("user", "logged_in", "quit") if seen.get(k) is not None}
    if replies:
        lines += ["", "[replies]"] + [f"{k} = {_toml(v)}" for k, v in replies.items()]
    errors = {k: seen[k] for k in ("unknown_command", "wrong_state", "no_user") if seen.get(k)}
    if errors:
        lines += ["", "[errors]"] + [f"{k} = {_toml(v)}" for k, v in errors.items()]
    keys = [
        "greeting",
        "capa",
        *(f"replies.{k}" for k in replies),
        *(f"errors.{k}" for k in errors),
    ]
    if apop:
        keys.append("apop")
    lines += ["", "[sources]"] + [f"{_toml(k)} = {_toml(source)}" for k in keys]
    if mechs:
        lines.insert(lines.index(""), f"mechanisms = {_toml(mechs)}")
        lines.append(f"mechanisms = {_toml(source)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        _upstream(args.upstream)
        password = os.environ.get(args.password_env)
        if not password:
            raise _Usage(f"--password-env {args.password_env}: that variable is not set (or empty)")
        seen = record(args, password)
    except _Usage as error:
        print(f"fakepop3: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except poplib.error_proto as error:
        print(f"fakepop3: error: the server said: {_error_text(error)}", file=sys.stderr)
        return 1
    except (OSError, ssl.SSLError) as error:
        print(f"fakepop3: error: {args.upstream}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"{PROG}: {seen['count']} messages, persona and transcript in {args.out}")
    return 0
