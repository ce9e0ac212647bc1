"""Unit tests of the mail store: line ends, stuffing, sizes, TOP, UIDs, thread-safety."""

from __future__ import annotations

import email.message
import hashlib
import poplib
import threading
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakepop3 import Mailbox, MailStore, Message, POP3Server, UnknownUserError
from fakepop3.store import dot_stuff, to_crlf

from .conftest import login


# --- to_crlf / dot_stuff -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", b""),
        (b"a", b"a\r\n"),
        (b"a\n", b"a\r\n"),
        (b"a\r\n", b"a\r\n"),
        (b"a\nb\r\nc", b"a\r\nb\r\nc\r\n"),
        (b"\n\n", b"\r\n\r\n"),
        (b"a\r\r\n", b"a\r\r\n"),  # CRLF is never turned into CR CR LF
        (b"a\rb\n", b"a\rb\r\n"),  # a lone CR is data
        (b"a\r", b"a\r\r\n"),
        (b"\xff\x00\x80\n", b"\xff\x00\x80\r\n"),
    ],
)
def test_to_crlf(raw: bytes, expected: bytes) -> None:
    assert to_crlf(raw) == expected


@pytest.mark.parametrize(
    ("crlf", "expected"),
    [
        (b"", b""),
        (b".\r\n", b"..\r\n"),
        (b".a\r\n", b"..a\r\n"),
        (b"a\r\n.\r\n", b"a\r\n..\r\n"),
        (b"a\r\n..\r\n.\r\n", b"a\r\n...\r\n..\r\n"),
        (b"a.b\r\n", b"a.b\r\n"),
        (b"a\r.b\r\n", b"a\r.b\r\n"),  # after a lone CR is not a line start
    ],
)
def test_dot_stuff(crlf: bytes, expected: bytes) -> None:
    assert dot_stuff(crlf) == expected


def unstuff(wire: bytes) -> bytes:
    """What a client makes of a stuffed body (RFC 1939 s3)."""
    lines = wire.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@settings(max_examples=60)
@given(st.binary(max_size=300))
def test_sizes_line_ends_and_stuffing_hold_for_any_bytes(raw: bytes) -> None:
    message = Message(raw, "1")
    crlf = message.crlf
    assert message.size == len(crlf)
    assert b"\n" not in crlf.replace(b"\r\n", b"")  # no bare LF is ever sent
    assert crlf == b"" or crlf.endswith(b"\r\n")
    assert crlf.replace(b"\r\n", b"\n").rstrip(b"\n") == raw.replace(b"\r\n", b"\n").rstrip(b"\n")
    wire = message.wire
    assert unstuff(wire) == crlf
    assert b"\r\n.\r\n" not in b"\r\n" + wire  # the body never ends the reply early


@settings(max_examples=60)
@given(st.lists(st.sampled_from([b"", b".", b"..", b"a", b".a", b"\xe9"]), max_size=12),
       st.integers(min_value=0, max_value=15))  # fmt: skip
def test_top_is_headers_blank_line_and_n_body_lines(body: list[bytes], n: int) -> None:
    head = b"Subject: x\r\nFrom: y\r\n"
    raw = head + b"\r\n" + b"".join(line + b"\n" for line in body)
    message = Message(raw, "1")
    expected = head + b"\r\n" + b"".join(line + b"\r\n" for line in body[:n])
    assert unstuff(message.top(n)) == expected
    assert message.top(n) == dot_stuff(expected)


def test_message_views() -> None:
    message = Message(b"Subject: hi\nTo: a@b\n\nbody\n", "u1")
    assert message.crlf == b"Subject: hi\r\nTo: a@b\r\n\r\nbody\r\n"
    assert message.size == len(message.crlf) == 30
    assert message.headers == b"Subject: hi\r\nTo: a@b\r\n"
    assert message.as_email()["Subject"] == "hi"
    assert message.as_email().get_content() == "body\n"
    assert repr(message) == "<Message uid='u1' size=30>"
    assert message.raw == b"Subject: hi\nTo: a@b\n\nbody\n"  # stored as given


def test_top_beyond_the_body_is_the_whole_message() -> None:
    message = Message(b"A: b\r\n\r\n1\r\n2\r\n", "1")
    assert message.top(2) == message.top(99) == message.wire


# --- adding messages -----------------------------------------------------------------------------
def test_messages_accepted_as_bytes_str_and_email_message() -> None:
    mailbox = MailStore().add_user("alice", "pw")
    from_bytes = mailbox.add(b"Subject: b\r\n\r\nx\r\n")
    from_bytearray = mailbox.add(bytearray(b"Subject: ba\r\n\r\nx\r\n"))
    from_view = mailbox.add(memoryview(b"Subject: mv\r\n\r\nx\r\n"))
    from_str = mailbox.add("Subject: s\n\nh\u00e9llo \u2603\n")
    legacy = MIMEText("plain text")
    legacy["Subject"] = "legacy"
    modern = email.message.EmailMessage()
    modern["Subject"] = "modern"
    modern.set_content("hello\n")
    from_legacy, from_modern = mailbox.add(legacy), mailbox.add(modern)
    assert from_bytes.raw == b"Subject: b\r\n\r\nx\r\n"
    assert from_bytearray.raw == b"Subject: ba\r\n\r\nx\r\n"
    assert from_view.raw == b"Subject: mv\r\n\r\nx\r\n"
    assert from_str.raw == "Subject: s\n\nh\u00e9llo \u2603\n".encode()
    for message in (from_legacy, from_modern):
        assert b"\n" not in message.raw.replace(b"\r\n", b"")  # serialised with CRLF
        assert message.crlf.startswith(message.raw) and message.size == len(message.crlf)
    assert from_legacy.as_email()["Subject"] == "legacy"
    assert from_modern.as_email().get_content().splitlines() == ["hello"]
    assert len(mailbox) == 6 and [m.uid for m in mailbox] == mailbox.uids


def test_a_message_of_another_mailbox_is_copied_with_a_new_uid() -> None:
    store = MailStore()
    original = store.add_user("alice").add(b"Subject: x\r\n\r\n")
    copy = store.add_user("bob").add(original)
    assert copy is not original and copy.raw == original.raw
    store.mailbox("alice").remove(original)
    assert store.mailbox("bob").messages == [copy]


@pytest.mark.parametrize("bad", [42, None, ["Subject: x"], 1.5])
def test_other_message_types_are_refused_with_a_clear_error(bad: object) -> None:
    mailbox = MailStore().add_user("alice")
    with pytest.raises(TypeError, match="must be bytes, str or email.message.Message, not"):
        mailbox.add(bad)  # type: ignore[arg-type]
    assert len(mailbox) == 0


# --- UIDs ----------------------------------------------------------------------------------------
def valid_uid(uid: str) -> bool:
    return 1 <= len(uid) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in uid)


def test_generated_uids_are_valid_unique_and_stable() -> None:
    mailbox = MailStore().add_user("alice")
    messages = mailbox.extend([b"same"] * 50 + [b"x" * n for n in range(50)] + [b""])
    uids = [m.uid for m in messages]
    assert all(valid_uid(u) for u in uids), uids
    assert len(set(uids)) == len(uids)
    assert mailbox.uids == uids
    assert [m.uid for m in mailbox.messages] == uids


def test_uids_are_never_reused() -> None:
    mailbox = MailStore().add_user("alice")
    seen = {m.uid for m in mailbox.extend([b"a", b"b", b"c"])}
    mailbox.remove(mailbox[0])
    mailbox.remove(mailbox.uids[0])
    mailbox.commit_deletions([mailbox[0]])
    assert len(mailbox) == 0
    seen |= {m.uid for m in mailbox.extend([b"a", b"b", b"c"])}
    mailbox.clear()
    seen |= {m.uid for m in mailbox.extend([b"a", b"b", b"c"])}
    mailbox.reset()  # back to the (empty) initial content
    seen |= {m.uid for m in mailbox.extend([b"a", b"b", b"c"])}
    assert len(seen) == 12


def test_generated_uid_never_repeats_an_explicit_one() -> None:
    mailbox = MailStore().add_user("alice")
    raw = b"Subject: twice\r\n\r\n"
    lookalike = "1." + hashlib.sha1(raw).hexdigest()[:12]  # the form a generated UID takes
    mailbox.add(raw, uid=lookalike)
    mailbox.add(raw)
    mailbox.add(raw)
    assert len(set(mailbox.uids)) == 3, mailbox.uids


def test_explicit_uids() -> None:
    mailbox = MailStore().add_user("alice")
    assert mailbox.add(b"a", uid="!").uid == "!"
    assert mailbox.add(b"b", uid="~" * 70).uid == "~" * 70
    for bad in ("", "x" * 71, "has space", "tab\t", "caf\u00e9", "del\x7f"):
        with pytest.raises(ValueError, match="1 to 70 characters in 0x21-0x7E"):
            mailbox.add(b"c", uid=bad)
    with pytest.raises(ValueError, match="already has a message with UID '!'"):
        mailbox.add(b"d", uid="!")
    assert mailbox.uids == ["!", "~" * 70]


# --- mailboxes and the store ---------------------------------------------------------------------
def test_store_users() -> None:
    store = MailStore()
    alice = store.add_user("alice", "one", messages=[b"m1"])
    assert store.add_user("alice", "two", messages=[b"m2"]) is alice
    assert alice.password == "two" and len(alice) == 2
    assert store.add_user("alice").password == "two"  # no password given: kept
    assert store["alice"] is store.mailbox("alice") is store.get("alice") is alice
    assert "alice" in store and "bob" not in store and store.get("bob") is None
    assert store.users == ["alice"] and len(store) == 1 and list(store) == [alice]


def test_unknown_user_error_says_who_exists() -> None:
    store = MailStore()
    store.add_user("alice")
    with pytest.raises(UnknownUserError, match=r"no user 'bob' in the store \(users: alice\)"):
        store.mailbox("bob")
    with pytest.raises(KeyError):  # still a KeyError for callers that expect one
        store["bob"]


@pytest.mark.parametrize("name", ["", "a\r\nb", "a\nb", "nul\0"])
def test_bad_user_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="without CR, LF or NUL"):
        MailStore().add_user(name)


def test_remove_unknown_message() -> None:
    mailbox = MailStore().add_user("alice")
    mailbox.add(b"x")
    with pytest.raises(KeyError, match="has no message with UID 'nope'"):
        mailbox.remove("nope")
    assert len(mailbox) == 1


def test_snapshot_initial_and_reset() -> None:
    store = MailStore()
    alice = store.add_user("alice", messages=[b"a", b"b"])
    first = alice.messages
    store.snapshot_initial()
    alice.add(b"c")
    alice.remove(first[0])
    store.reset()
    assert alice.messages == first


def test_lock_is_exclusive_and_released_only_by_its_holder() -> None:
    mailbox = Mailbox("alice")
    mailbox.add(b"a")
    one, two = object(), object()
    snapshot = mailbox.acquire(one)
    assert snapshot is not None and len(snapshot) == 1 and mailbox.locked
    assert mailbox.acquire(two) is None
    mailbox.release(two)
    assert mailbox.locked
    mailbox.release(one)
    assert not mailbox.locked and mailbox.acquire(two) is not None


def test_commit_deletions_keeps_mail_added_meanwhile() -> None:
    mailbox = Mailbox("alice")
    a, b = mailbox.add(b"a"), mailbox.add(b"b")
    snapshot = mailbox.acquire(object())
    assert snapshot == (a, b)
    c = mailbox.add(b"c")
    mailbox.commit_deletions([a, b])
    assert mailbox.messages == [c]


def test_messages_returns_a_copy() -> None:
    mailbox = Mailbox("alice")
    mailbox.add(b"a")
    mailbox.messages.clear()
    assert len(mailbox) == 1


# --- thread-safety with a running server --------------------------------------------------------
def test_adding_from_many_threads_while_the_server_serves() -> None:
    with POP3Server(users={"alice": "secret"}) as server:
        mailbox = server.mailbox("alice")
        start = threading.Barrier(5)

        def writer(n: int) -> None:  # an exception here fails the test (filterwarnings = error)
            start.wait()
            for i in range(200):
                mailbox.add(f"Subject: {n}-{i}\n\nbody\n")

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        start.wait()
        counts = []
        for _ in range(10):  # log in over and over while the writers run
            client = poplib.POP3(server.host, server.port, timeout=10)
            login(client)
            count, size = client.stat()
            assert len(client.uidl()[1]) == count
            assert size == sum(int(line.split()[1]) for line in client.list()[1])
            counts.append(count)
            client.quit()
        for thread in threads:
            thread.join()
        assert counts == sorted(counts)  # each login sees at least what the one before saw
        assert len(mailbox) == 800
        assert len(set(mailbox.uids)) == 800
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        assert client.stat()[0] == 800
        client.quit()
    server.raise_errors()


def test_sessions_share_the_snapshot_and_answers_until_the_maildrop_changes() -> None:
    """Answers about the whole maildrop are computed once per unchanged maildrop, never stale."""
    from fakepop3 import MailStore

    mailbox = MailStore().add_user("alice", "pw")
    mailbox.add(b"Subject: 1\r\n\r\none\r\n")
    taken = mailbox.login("session 1")
    assert taken is not None
    first, first_answers = taken
    first_answers["STAT"] = (b"+OK 1 22\r\n",)  # what a session computes and shares
    mailbox.release("session 1")
    taken = mailbox.login("session 2")
    assert taken is not None
    second, second_answers = taken
    assert second is first  # unchanged: the same snapshot
    assert second_answers is first_answers and second_answers["STAT"] == (b"+OK 1 22\r\n",)
    mailbox.release("session 2")
    mailbox.add(b"Subject: 2\r\n\r\ntwo\r\n")  # a change drops the snapshot and its answers
    taken = mailbox.login("session 3")
    assert taken is not None
    third, third_answers = taken
    assert third is not first and len(third) == 2
    assert third_answers == {} and third_answers is not first_answers  # nothing stale
    assert first_answers["STAT"] == (b"+OK 1 22\r\n",)  # still right for the old snapshot
    assert mailbox.login("session 4") is None  # locked by session 3
    assert mailbox.acquire("session 4") is None


# --- the mail helpers on a mailbox (generate, load, add_message) --------------------------------
def test_generate_adds_lazy_messages_with_known_sizes_and_uids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fakepop3.generate import MessageGenerator, generate_messages

    built: list[int] = []
    build = MessageGenerator.message

    def counting(self: MessageGenerator, index: int) -> bytes:
        built.append(index)
        return build(self, index)

    monkeypatch.setattr(MessageGenerator, "message", counting)
    mailbox = MailStore().add_user("alice")
    mailbox.add(b"Subject: first\r\n\r\n")
    added = mailbox.generate(4, seed=3, min_size=1500)
    assert [m.uid for m in added] == ["2.g0", "3.g1", "4.g2", "5.g3"]
    expected = generate_messages(4, seed=3, min_size=1500, cache_size=0)
    assert [m.size for m in added] == expected.sizes()
    assert mailbox.messages[1:] == added
    assert built == []  # sizes without building a message
    assert [m.raw for m in added] == list(expected)
    assert built == [0, 1, 2, 3, 0, 1, 2, 3]  # each built on first use (and once for expected)


def test_generate_with_a_hook_builds_at_once_and_uids_are_digests() -> None:
    from fakepop3.generate import HookContext

    def hook(ctx: HookContext, raw: bytes) -> bytes:
        return raw.replace(b"\r\nSubject: ", b"\r\nSubject: hooked ", 1)

    mailbox = MailStore().add_user("alice")
    mailbox.add(b"Subject: first\r\n\r\n")
    added = mailbox.generate(3, seed=3, hook=hook)
    raws = [m.raw for m in added]
    assert all(b"\r\nSubject: hooked " in raw for raw in raws)
    assert [m.uid for m in added] == [
        f"{n}.{hashlib.sha1(raw).hexdigest()[:12]}" for n, raw in zip((2, 3, 4), raws, strict=True)
    ]
    assert [m.size for m in added] == [len(raw) for raw in raws]


def test_generate_passes_bad_knobs_errors_through() -> None:
    mailbox = MailStore().add_user("alice")
    with pytest.raises(ValueError, match="min_size must be at least 1024 octets, got 10"):
        mailbox.generate(2, min_size=10)
    with pytest.raises(TypeError, match="bogus"):
        mailbox.generate(2, bogus=1)
    assert len(mailbox) == 0


def test_add_message_and_load(tmp_path: Path) -> None:
    from fakepop3.builder import build_message

    mailbox = MailStore().add_user("alice")
    stored = mailbox.add_message(subject="Invoice 42", text="Please pay.")
    assert stored.raw == build_message(subject="Invoice 42", text="Please pay.")
    (tmp_path / "a.eml").write_bytes(b"Subject: a\r\n\r\nA\r\n")
    (tmp_path / "b.eml").write_bytes(b"Subject: b\r\n\r\nB\r\n")
    loaded = mailbox.load(tmp_path)
    assert [m.raw for m in loaded] == [b"Subject: a\r\n\r\nA\r\n", b"Subject: b\r\n\r\nB\r\n"]
    assert mailbox.load(tmp_path / "a.eml", format="eml")[0].raw == loaded[0].raw
    assert len(mailbox) == 4


# --- what the store imports ----------------------------------------------------------------------
#: Run in a fresh interpreter: load fakepop3/store.py under a stub package (so that
#: fakepop3/__init__, which imports the server, does not run), then the mail package.
STANDALONE_STORE = """
import importlib, json, sys, types
before = set(sys.modules)
package = types.ModuleType("fakepop3")
package.__path__ = [sys.argv[1]]
sys.modules["fakepop3"] = package
store = importlib.import_module("fakepop3.store")
report = {"store": sorted(set(sys.modules) - before)}
try:
    store.MailStore().add_user("alice").generate(1)
except RuntimeError as error:
    report["unregistered"] = str(error)
loaded = set(sys.modules)
importlib.import_module("fakepop3.mail")
report["mail"] = sorted(set(sys.modules) - loaded)
box = store.MailStore().add_user("alice")
box.generate(2, seed=5)
report["sizes"] = [m.size for m in box.messages]
report["raw"] = [len(m.raw) for m in box.messages]
print(json.dumps(report))
"""

#: What neither the store nor ``import fakepop3.mail`` may pull in.
HEAVY = {"socket", "_socket", "ssl", "_ssl", "asyncio", "selectors", "faker"}
HEAVY_EMAIL = {"email.message", "email.utils", "email.policy", "email.parser"}


def test_the_store_imports_nothing_of_fakepop3() -> None:
    import ast

    import fakepop3.store

    tree = ast.parse(Path(fakepop3.store.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            assert name not in ("__import__", "import_module"), ast.unparse(node)
    assert not {name for name in imported if name.startswith((".", "fakepop3"))}, imported
    assert "importlib" not in imported
    assert imported <= {
        "__future__",
        "array",  # the sizes of a compact maildrop (light, standard library, like the others)
        "bisect",
        "collections.abc",
        "dataclasses",
        "email.message",
        "email.parser",
        "email.policy",
        "hashlib",
        "itertools",
        "os",
        "sys",
        "threading",
        "typing",
        "weakref",
    }, imported


def test_the_store_alone_imports_no_network_email_or_mail_modules() -> None:
    import json
    import subprocess
    import sys

    import fakepop3.store

    here = str(Path(fakepop3.store.__file__).parent)
    out = subprocess.run(
        [sys.executable, "-I", "-c", STANDALONE_STORE, here],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    store_modules = set(report["store"])
    assert not store_modules & (HEAVY | HEAVY_EMAIL), sorted(store_modules)
    assert {m for m in store_modules if m.startswith("fakepop3.")} == {"fakepop3.store"}
    assert report["unregistered"] == (
        "Mailbox.generate() needs the mail package: import fakepop3.mail (import fakepop3 does)"
    )
    # The mail package is cheap to import: its modules load on first use.
    mail_modules = set(report["mail"])
    assert not mail_modules & (HEAVY | HEAVY_EMAIL), sorted(mail_modules)
    assert {m for m in mail_modules if m.startswith("fakepop3.")} == {
        "fakepop3.mail",
        "fakepop3.mail._mailbox",
    }
    assert report["sizes"] == report["raw"] != []


def test_email_messages_are_accepted_once_email_is_imported() -> None:
    message = email.message.EmailMessage()
    message["Subject"] = "lazy"
    message.set_content("body")
    stored = MailStore().add_user("alice").add(message)
    assert stored.as_email()["Subject"] == "lazy"
    with pytest.raises(TypeError, match="bytes, str or email.message.Message, not int"):
        MailStore().add_user("bob").add(42)  # type: ignore[arg-type]
