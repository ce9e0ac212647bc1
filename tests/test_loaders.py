"""Tests of the mail file loaders (fakepop3.loaders)."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from fakepop3.builder import build_message
from fakepop3.loaders import (
    MailLoadError,
    MailNotFoundError,
    detect_format,
    load_eml,
    load_eml_dir,
    load_maildir,
    load_mbox,
    load_messages,
)

MSGS = [
    build_message(subject=f"Message {i}", text=f"Body {i}\nFrom the start of a line\n.dot\n")
    for i in range(3)
]


def test_single_eml_exact_bytes(tmp_path: Path) -> None:
    raw = MSGS[0] + b"\r\n"  # trailing blank line kept as stored
    path = tmp_path / "one.eml"
    path.write_bytes(raw)
    assert detect_format(path) == "eml"
    assert load_messages(path) == [raw]
    assert load_messages(str(path)) == [raw]
    assert load_eml(path) == [raw]


def test_folder_of_eml_in_file_name_order(tmp_path: Path) -> None:
    for name, raw in (("b.eml", MSGS[1]), ("a.eml", MSGS[0]), ("c.EML", MSGS[2])):
        (tmp_path / name).write_bytes(raw)
    (tmp_path / "notes.txt").write_bytes(b"not mail")
    (tmp_path / "sub").mkdir()
    assert detect_format(tmp_path) == "eml-dir"
    assert load_messages(tmp_path) == [MSGS[0], MSGS[1], MSGS[2]]
    assert load_eml_dir(tmp_path) == load_messages(tmp_path)


def test_mbox_without_separator_and_quoting_as_stored(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    box = mailbox.mbox(path)
    for raw in MSGS:
        box.add(raw)
    box.flush()
    box.close()
    stored = path.read_bytes()
    assert b"\n>From the start of a line" in stored  # mailbox quoted it
    assert detect_format(path) == "mbox"
    loaded = load_messages(path)
    assert len(loaded) == 3
    for raw, got in zip(MSGS, loaded, strict=True):
        assert got.startswith(b"From: Sender")  # the header, not the separator line
        assert got == raw.replace(b"\nFrom the", b"\n>From the")  # as stored
    assert load_mbox(path) == loaded


def test_handwritten_mbox(tmp_path: Path) -> None:
    path = tmp_path / "hand.mbox"
    path.write_bytes(
        b"From a@example.com Thu Jan  1 00:00:00 2024\n"
        b"Subject: one\n\n>From here\n.\n\n"
        b"From b@example.com Thu Jan  1 00:00:01 2024\n"
        b"Subject: two\n\nbody\n"
    )
    assert load_messages(path) == [b"Subject: one\n\n>From here\n.\n", b"Subject: two\n\nbody\n"]


def test_empty_mbox_by_name(tmp_path: Path) -> None:
    path = tmp_path / "empty.mbox"
    path.write_bytes(b"")
    assert load_messages(path) == []


def test_maildir(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir")
    for raw in MSGS:
        box.add(raw)
    box.flush()
    moved = mailbox.MaildirMessage(MSGS[2])
    moved.set_subdir("cur")
    moved.add_flag("S")
    box.add(moved)
    assert detect_format(tmp_path / "Maildir") == "maildir"
    loaded = load_messages(tmp_path / "Maildir")
    on_disk = [
        f.read_bytes() for sub in ("new", "cur") for f in (tmp_path / "Maildir" / sub).iterdir()
    ]
    assert len(loaded) == 4
    assert sorted(loaded) == sorted(on_disk)  # bytes exactly as stored
    assert sum(raw in loaded for raw in MSGS) == 3  # the CRLF ones unchanged
    assert loaded == load_maildir(tmp_path / "Maildir")
    assert load_messages(tmp_path / "Maildir") == loaded  # stable order


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mbox"
    with pytest.raises(MailNotFoundError) as info:
        load_messages(missing)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ValueError)
    assert str(missing) in str(info.value)
    assert "no such file" in str(info.value)
    for loader in (load_eml, load_eml_dir, load_mbox, load_maildir):
        with pytest.raises(FileNotFoundError):
            loader(missing)


def test_not_mail(tmp_path: Path) -> None:
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 binary")
    with pytest.raises(MailLoadError, match="not mail") as info:
        load_messages(junk)
    assert str(junk) in str(info.value)
    assert info.value.path == junk
    assert not isinstance(info.value, FileNotFoundError)

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(MailLoadError, match="Maildir") as info:
        load_messages(empty_dir)
    assert str(empty_dir) in str(info.value)

    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    with pytest.raises(MailLoadError, match="empty file"):
        load_messages(empty)

    with pytest.raises(MailLoadError, match="not an mbox"):
        load_mbox(junk)
    with pytest.raises(MailLoadError, match="not an .eml"):
        load_eml(junk)
    with pytest.raises(MailLoadError, match="not a Maildir"):
        load_maildir(empty_dir)
    with pytest.raises(ValueError, match="unknown mail format"):
        load_messages(junk, format="pst")  # type: ignore[arg-type]


def test_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "x.eml"
    path.write_bytes(MSGS[1])
    assert load_messages(path, format="eml") == [MSGS[1]]
    with pytest.raises(MailLoadError, match="not an mbox"):
        load_messages(path, format="mbox")
