"""Large generated maildrops (issue 20, item 4): kept compact, STAT from a total, LIST and UIDL
streamed a chunk at a time.

A maildrop that a large lazy source (``store.COMPACT_FROM`` messages or more) went into is a
``store.MessageList``: sizes in an array, UIDs from the index, a ``Message`` made only when one
is asked for.  A LIST or UIDL of ``_commands.STREAM_FROM`` lines or more is a ``Stream`` that
the transport pulls under flow control.  Both must give exactly the bytes of the plain way:
the tests here compare them, over real sockets with poplib and in the sans-IO core.
"""

from __future__ import annotations

import poplib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakepop3 import MailStore, POP3Server, Session
from fakepop3 import store as store_module
from fakepop3.mail import generate_messages
from fakepop3.protocol import Send, Stream, _commands
from fakepop3.protocol._replies import lines
from fakepop3.store import Mailbox, MessageList, to_crlf

from .conftest import RawClient, feed, list_one, login, sent

COUNT = 100_000
SEED = 7


@pytest.fixture(scope="module")
def big_sizes() -> list[int]:
    return generate_messages(COUNT, seed=SEED).sizes()


def test_poplib_reads_stat_list_uidl_retr_top_of_100000_generated_messages(
    big_sizes: list[int],
) -> None:
    mail = generate_messages(COUNT, seed=SEED)
    with POP3Server(users={"alice": "secret"}) as server:
        box = server.mailbox("alice")
        added = box.generate(COUNT, seed=SEED)
        assert isinstance(added, MessageList)
        assert len(added) == len(box) == COUNT
        client = poplib.POP3(server.host, server.port, timeout=60)
        login(client)
        assert client.stat() == (COUNT, sum(big_sizes))
        status, listing, _ = client.list()
        assert status == b"+OK %d messages:" % COUNT
        assert listing == [b"%d %d" % (n, size) for n, size in enumerate(big_sizes, 1)]
        _, uidl, _ = client.uidl()
        # The UIDs Mailbox.add_lazy always gave: N.gK, N the mailbox's counter (from 1).
        assert uidl == [b"%d %d.g%d" % (n, n, n - 1) for n in range(1, COUNT + 1)]
        assert [line.split()[1].decode() for line in uidl[:3]] == box.uids[:3]
        for n in (1, 54_321, COUNT):
            status, body, _ = client.retr(n)
            assert status == b"+OK %d octets" % big_sizes[n - 1]
            assert b"\r\n".join(body) + b"\r\n" == to_crlf(mail[n - 1])  # poplib unstuffs
            assert list_one(client, n) == b"+OK %d %d" % (n, big_sizes[n - 1])
            assert client.uidl(n) == b"+OK %d %d.g%d" % (n, n, n - 1)
        _, top, _ = client.top(2, 0)
        assert b"\r\n".join(top) + b"\r\n" == box[1].headers + b"\r\n"
        client.dele(2)
        client.dele(3)
        assert client.stat() == (COUNT - 2, sum(big_sizes) - big_sizes[1] - big_sizes[2])
        with pytest.raises(poplib.error_proto, match="deleted"):
            client.retr(2)
        _, listing, _ = client.list()
        assert listing[:3] == [
            b"1 %d" % big_sizes[0],
            b"4 %d" % big_sizes[3],
            b"5 %d" % big_sizes[4],
        ]
        assert len(listing) == COUNT - 2
        assert client.rset().startswith(b"+OK %d messages (%d octets)" % (COUNT, sum(big_sizes)))
        client.dele(5)
        client.quit()
        server.wait_for_sessions(1)
        # The deletion is committed: the next session sees one message fewer, renumbered.
        client = poplib.POP3(server.host, server.port, timeout=60)
        login(client)
        assert client.stat() == (COUNT - 1, sum(big_sizes) - big_sizes[4])
        _, uidl, _ = client.uidl()
        assert uidl[3:6] == [b"4 4.g3", b"5 6.g5", b"6 7.g6"]
        assert len(uidl) == COUNT - 1
        client.quit()
        server.wait_for_sessions(2)
        # The history records a streamed reply's status line as any other.
        listed = [r.reply for r in server.history.filter("LIST", user="alice") if not r.args]
        assert listed == [f"+OK {COUNT} messages:", f"+OK {COUNT - 2} messages:"]
        uidl_all = [r.reply for r in server.history.filter("UIDL") if not r.args]
        assert uidl_all == ["+OK", "+OK"]
        assert len(box) == COUNT - 1 and box.uids[4] == "6.g5"
        server.reset()  # back to the content the server started with
        assert len(box) == COUNT and box.uids[4] == "5.g4"
    server.raise_errors()


def test_large_list_and_uidl_are_streams_made_in_bounded_chunks() -> None:
    store = MailStore()
    store.add_user("alice", "secret").generate(COUNT, seed=SEED)
    session = Session(store)
    feed(session, b"USER alice\r\n")
    feed(session, b"PASS secret\r\n")
    assert isinstance(session.messages, MessageList)
    for command in (b"LIST\r\n", b"UIDL\r\n"):
        (action,) = feed(session, command)
        assert isinstance(action, Send)
        status, stream = action.buffers
        assert status.startswith(b"+OK")
        assert isinstance(stream, Stream)
        chunks = list(stream)
        assert chunks[-1] == b".\r\n"
        whole = b"".join(chunks)
        assert len(whole) == len(stream) > 1_000_000
        assert whole.count(b"\r\n") == COUNT + 1
        # Never the whole reply at once: each chunk holds at most STREAM_CHUNK lines.
        assert max(len(c) for c in chunks) < 200_000
        assert max(c.count(b"\r\n") for c in chunks) <= _commands.STREAM_CHUNK
        assert bytes(stream) == whole  # made anew each time, the same bytes


def test_a_compact_maildrop_makes_a_message_only_while_it_is_held() -> None:
    box = MailStore().add_user("alice", "secret")
    box.generate(COUNT, seed=SEED)
    compact = box._compact
    assert compact is not None
    block = compact._parts[0].block  # type: ignore[union-attr]
    assert len(block.made) == 0
    assert block.sizes.itemsize == 4  # 4 bytes a message
    message = box[10]
    assert box[10] is message and block.made[10] is message  # one message, one object
    assert message.uid == "11.g10"
    del message
    assert len(block.made) == 0  # let go once nobody holds it
    # The UID counter moved on as if each message had taken its number (as before).
    assert box.add(b"Subject: next\r\n\r\nx\r\n").uid.startswith(f"{COUNT + 1}.")
    with pytest.raises(ValueError, match="already has a message with UID '7.g6'"):
        box.add(b"Subject: twin\r\n\r\nx\r\n", uid="7.g6")
    assert len(box) == COUNT + 1 and box[COUNT].headers == b"Subject: next\r\n"


# --- the compact and the plain way give the same bytes --------------------------------------
def _twin_mailboxes(
    count: int, before: int, after: int, **knobs: object
) -> tuple[Mailbox, Mailbox]:
    """The same content twice: kept compact, and as the plain list of Message (``COMPACT_FROM``
    moved so that each way is taken)."""
    boxes = []
    for compact_from in (1, 10**9):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(store_module, "COMPACT_FROM", compact_from)
            box = MailStore().add_user("alice", "secret")
            for i in range(before):
                box.add(f"Subject: before {i}\r\n\r\n{'x' * i}\r\n".encode())
            box.generate(count, **knobs)
            for i in range(after):
                box.add(f"Subject: after {i}\r\n\r\n.dot {i}\r\n".encode())
            boxes.append(box)
    compact, plain = boxes
    assert (compact._compact is not None) == (count > 0) and plain._compact is None
    return compact, plain


def _session(box: Mailbox) -> Session:
    store = MailStore()
    store._mailboxes["alice"] = box
    session = Session(store)
    feed(session, b"USER alice\r\n")
    feed(session, b"PASS secret\r\n")
    return session


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(0, 60),
    before=st.integers(0, 3),
    after=st.integers(0, 3),
    seed=st.integers(0, 2**32),
    deletions=st.lists(st.integers(1, 70), max_size=12),
    chunk=st.integers(1, 9),
)
def test_streamed_list_and_uidl_equal_the_whole_built_replies(
    count: int, before: int, after: int, seed: int, deletions: list[int], chunk: int
) -> None:
    compact, plain = _twin_mailboxes(count, before, after, seed=seed)
    total = count + before + after
    sessions = _session(compact), _session(plain)
    deleted = sorted({n for n in deletions if n <= total})
    for session in sessions:
        for n in deleted:
            feed(session, b"DELE %d\r\n" % n)
    fast, slow = sessions
    assert isinstance(fast.messages, MessageList) or count == 0
    assert isinstance(slow.messages, tuple)
    # The old whole-built bodies, from every Message of the plain snapshot.
    live = _commands.live(slow)
    old_list = lines(b"", [f"{i} {m.size}" for i, m in live])[1] + b".\r\n"
    old_uidl = lines(b"", [f"{i} {m.uid}" for i, m in live])[1] + b".\r\n"
    gone = fast.deleted
    streamed_list = b"".join(
        _commands.numbered_lines(_commands.sizes_of(fast.messages), gone, chunk)
    )
    streamed_uidl = b"".join(
        _commands.numbered_lines(_commands.uids_of(fast.messages), gone, chunk)
    )
    assert streamed_list == old_list
    assert streamed_uidl == old_uidl
    # And whole sessions: the compact one streaming every LIST/UIDL, the plain one not.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_commands, "STREAM_FROM", 0)
        replies_fast = [sent(feed(fast, c)) for c in (b"STAT\r\n", b"LIST\r\n", b"UIDL\r\n")]
    replies_slow = [sent(feed(slow, c)) for c in (b"STAT\r\n", b"LIST\r\n", b"UIDL\r\n")]
    assert replies_fast == replies_slow
    for n in (1, total // 2, total):
        for command in (b"LIST %d\r\n", b"UIDL %d\r\n", b"RETR %d\r\n", b"TOP %d 1\r\n"):
            assert sent(feed(fast, command % n)) == sent(feed(slow, command % n))
    assert sent(feed(fast, b"RSET\r\n")) == sent(feed(slow, b"RSET\r\n"))
    for session in sessions:
        for n in deleted:
            feed(session, b"DELE %d\r\n" % n)
        feed(session, b"QUIT\r\n")
    assert compact.uids == plain.uids
    assert [m.size for m in compact] == [m.size for m in plain]
    if len(compact):
        assert compact[0].raw == plain[0].raw


def test_broken_mail_in_a_compact_maildrop_reads_as_in_a_plain_one() -> None:
    compact, plain = _twin_mailboxes(40, 0, 0, seed=3, broken=0.5)
    transcripts = []
    for box in (compact, plain):
        with POP3Server(users={}) as server:
            server.store._mailboxes["alice"] = box
            box.password = "secret"
            # A raw client: broken mail has lines poplib refuses (longer than 2048 octets).
            with RawClient(server.host, server.port) as client:
                client.login()
                transcript = [client.command(b"STAT")]
                for command in (b"LIST", b"UIDL", *(b"RETR %d" % n for n in range(1, 41))):
                    client.send(command + b"\r\n")
                    transcript.append(b"".join(client.read_multiline()))
        server.raise_errors()
        transcripts.append(transcript)
    assert transcripts[0] == transcripts[1]
    sizes = [int(line.split()[1]) for line in transcripts[0][1].split(b"\r\n")[1:-2]]
    assert sizes == [m.size for m in plain] == [len(m.crlf) for m in compact]
    assert [m.raw for m in compact] == list(generate_messages(40, seed=3, broken=0.5))


# --- the transport's paths with a streamed reply ---------------------------------------------
@pytest.fixture
def streaming_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[POP3Server]:
    """A server whose every LIST and UIDL is streamed, on a compact generated maildrop."""
    monkeypatch.setattr(_commands, "STREAM_FROM", 1)
    monkeypatch.setattr(store_module, "COMPACT_FROM", 1)
    with POP3Server(users={"alice": "secret"}) as server:
        server.mailbox("alice").generate(25, seed=11)
        yield server
    server.raise_errors()


def _expected(box: Mailbox) -> tuple[bytes, bytes]:
    listing = b"".join(b"%d %d\r\n" % (n, m.size) for n, m in enumerate(box, 1)) + b".\r\n"
    uidl = b"".join(b"%d %s\r\n" % (n, m.uid.encode()) for n, m in enumerate(box, 1)) + b".\r\n"
    return listing, uidl


def test_pipelined_streamed_replies_come_whole_and_in_order(streaming_server: POP3Server) -> None:
    box = streaming_server.mailbox("alice")
    listing, uidl = _expected(box)
    with RawClient(streaming_server.host, streaming_server.port) as client:
        client.login()
        client.send(b"LIST\r\nUIDL\r\nSTAT\r\nLIST\r\nQUIT\r\n")
        assert client.read_multiline() == (b"+OK 25 messages:\r\n", listing)
        assert client.read_multiline() == (b"+OK\r\n", uidl)
        assert client.read_line() == b"+OK 25 %d\r\n" % sum(m.size for m in box)
        assert client.read_multiline()[1] == listing
        assert client.read_line().startswith(b"+OK")


def test_a_throttled_session_streams_its_list(streaming_server: POP3Server) -> None:
    streaming_server.faults.on_connect(times=1).throttle(2_000_000)
    listing, _ = _expected(streaming_server.mailbox("alice"))
    with RawClient(streaming_server.host, streaming_server.port) as client:
        client.login()
        client.send(b"LIST\r\n")
        assert client.read_multiline() == (b"+OK 25 messages:\r\n", listing)


def test_a_fault_cutting_a_streamed_list_sees_it_whole(streaming_server: POP3Server) -> None:
    streaming_server.faults.on("LIST").disconnect(after_bytes=40)
    listing, _ = _expected(streaming_server.mailbox("alice"))
    with RawClient(streaming_server.host, streaming_server.port) as client:
        client.login()
        client.send(b"LIST\r\n")
        assert client.read_to_eof() == (b"+OK 25 messages:\r\n" + listing)[:40]


# --- the control API's maildrop views, resets and snapshots on a compact maildrop -------------
def test_control_api_views_and_snapshots_of_a_compact_maildrop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("aiohttp")
    from .test_control import Api

    monkeypatch.setattr(store_module, "COMPACT_FROM", 1)
    plain = generate_messages(6, seed=5)
    with POP3Server(users={"alice": "secret"}, control_port=0) as server:
        assert server.control_url is not None
        api = Api(server.control_url)
        reply = api(
            "POST", "/api/v1/users/{name}/messages", {"generate": 6, "seed": 5}, name="alice"
        )
        uids = reply.json["uids"]
        box = server.mailbox("alice")
        assert box._compact is not None and uids == box.uids == [
            f"{n}.g{n - 1}" for n in range(1, 7)
        ]
        listed = api("GET", "/api/v1/users/{name}/messages", name="alice").json
        assert [(m["number"], m["uid"], m["size"]) for m in listed] == [
            (n, uid, len(to_crlf(plain[n - 1]))) for n, uid in enumerate(uids, 1)
        ]
        raw = api("GET", "/api/v1/users/{name}/messages/{uid}", name="alice", uid=uids[2]).body
        assert raw == plain[2]
        assert api("POST", "/api/v1/snapshots/{name}", name="six").status == 201
        api("DELETE", "/api/v1/users/{name}/messages/{uid}", name="alice", uid=uids[0])
        assert box.uids == uids[1:]
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        assert client.stat()[0] == 5
        client.dele(1)
        client.quit()
        assert box.uids == uids[2:]
        api("POST", "/api/v1/snapshots/{name}/restore", name="six")
        assert box.uids == uids
        api("DELETE", "/api/v1/users/{name}/messages", name="alice")
        assert len(box) == 0
        server.reset()
        assert len(box) == 0  # the server started with an empty maildrop
    server.raise_errors()


def test_two_shared_sessions_deleting_the_same_message_remove_it_once() -> None:
    # maildrop_lock=False (as Dovecot): both sessions log in on the same snapshot.
    from fakepop3.protocol import Settings

    store = MailStore()
    box = store.add_user("alice", "secret")
    box.generate(COUNT, seed=SEED)
    sizes = generate_messages(COUNT, seed=SEED).sizes()
    settings = Settings(maildrop_lock=False)
    first, second = Session(store, settings), Session(store, settings)
    for session in (first, second):
        feed(session, b"USER alice\r\n")
        feed(session, b"PASS secret\r\n")
        feed(session, b"DELE 7\r\n")
    feed(second, b"DELE 8\r\n")
    feed(first, b"QUIT\r\n")
    feed(second, b"QUIT\r\n")
    assert len(box) == COUNT - 2
    assert box.uids[5:8] == ["6.g5", "9.g8", "10.g9"]
    third = Session(store)
    feed(third, b"USER alice\r\n")
    feed(third, b"PASS secret\r\n")
    expected = sum(sizes) - sizes[6] - sizes[7]
    assert sent(feed(third, b"STAT\r\n")) == b"+OK %d %d\r\n" % (COUNT - 2, expected)


class _Counted:
    """A LazySource of the store's protocol only (no ``size_array``): message k is k's bytes."""

    def __init__(self, count: int, big: bool = False) -> None:
        self.count = count
        self.big = big

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> bytes:
        return b"Subject: %d\r\n\r\nbody\r\n" % index

    def sizes(self) -> list[int]:
        if self.big:  # sizes only claimed: no message is read here
            return [2**33 + k for k in range(self.count)]
        return [len(self[k]) for k in range(self.count)]


def test_any_large_lazy_source_is_kept_compact() -> None:
    box = MailStore().add_user("alice", "secret")
    box.add(b"Subject: first\r\n\r\nx\r\n")
    source = _Counted(store_module.COMPACT_FROM)
    added = box.add_lazy(source)
    assert isinstance(added, MessageList) and len(added) == len(source)
    compact = box._compact
    assert compact is not None and len(compact) == len(source) + 1
    assert compact[0].uid.startswith("1.") and compact[1].uid == "2.g0"
    assert (
        compact[-1].raw == source[len(source) - 1]
        and compact[-1].uid == f"{len(source) + 1}.g{len(source) - 1}"
    )
    assert [m.uid for m in compact[1:3]] == ["2.g0", "3.g1"]
    assert compact.total_size == sum(source.sizes()) + compact[0].size
    assert "MessageList of" in repr(compact)
    with pytest.raises(IndexError):
        compact[len(compact)]
    box.remove("3.g1")
    assert box.uids[:3] == [compact[0].uid, "2.g0", "4.g2"]
    box.clear()
    assert len(box) == 0 and box._compact is None
    # Sizes that do not fit in 4 bytes are kept in 8.
    huge = MailStore().add_user("bob").add_lazy(_Counted(store_module.COMPACT_FROM, big=True))
    assert isinstance(huge, MessageList) and huge.total_size == sum(
        _Counted(len(huge), big=True).sizes()
    )


def test_a_bug_in_making_a_streamed_reply_ends_the_session_not_the_server(
    streaming_server: POP3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(values: object, deleted: object, chunk: int = 1) -> Iterator[bytes]:
        yield b"1 100\r\n"
        raise RuntimeError("a bug while making a chunk")

    monkeypatch.setattr(_commands, "numbered_lines", broken)
    with RawClient(streaming_server.host, streaming_server.port) as client:
        client.login()
        client.send(b"LIST\r\n")
        data = client.read_to_eof()
    assert data.startswith(b"+OK 25 messages:\r\n1 100\r\n")
    assert b"Internal server error" in data
    assert len(streaming_server.errors) == 1
    assert "a bug while making a chunk" in str(streaming_server.errors[0])
    streaming_server.errors.clear()  # expected here: the fixture raises any other
    with RawClient(streaming_server.host, streaming_server.port) as client:
        client.login()  # the server goes on


def test_gmail_hides_what_was_popped_from_a_compact_maildrop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_module, "COMPACT_FROM", 1)
    with POP3Server({"alice": "secret"}, persona="gmail") as server:
        box = server.mailbox("alice")
        box.generate(6, seed=2)
        assert box._compact is not None
        uids = box.uids
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        client.retr(2)
        client.retr(5)
        client.quit()
        server.wait_for_sessions(1)
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        _, shown, _ = client.uidl()  # Gmail's UIDL format, one line per message not popped
        assert len(shown) == 4 == client.stat()[0]
        sizes = [m.size for m in box]
        assert client.stat()[1] == sum(sizes) - sizes[1] - sizes[4]
        client.quit()
        assert box.uids == uids  # nothing deleted
    server.raise_errors()
