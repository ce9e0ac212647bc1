"""Unit tests of the client-test machinery itself: skipping, CI failures, golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakepop3 import POP3Server

from . import conftest
from .conftest import Golden, StartServer, command_sequence, require_program

MISSING = "fakepop3-no-such-client-program"


def test_a_missing_client_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING}.*install it like this"):
        require_program(MISSING, "install it like this")


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_a_missing_client_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI=true, so a missing client fails"):
        require_program(MISSING, "install it like this")


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_ci_false_still_skips(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception):
        require_program(MISSING, "install it like this")


def test_a_present_program_is_found() -> None:
    assert Path(require_program("sh", "it is always there")).name == "sh"


def test_sequence_marks_where_tls_starts(start_server: StartServer) -> None:
    server = start_server(tls=True)
    assert server.tls is not None
    client = server.client()
    client.stls(server.tls.client_context())
    client.quit()
    assert (
        command_sequence(server) == "session 1 (ended by quit)\n  CAPA\n  STLS\n  <TLS>\n  QUIT\n"
    )


def test_golden_mismatch_fails_with_a_diff(
    start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conftest, "GOLDEN_DIR", tmp_path)
    (tmp_path / "case.txt").write_text("# a comment\n\nsession 1 (ended by quit)\n  NOOP\n")
    server: POP3Server = start_server()
    server.client().quit()
    golden = Golden()
    golden.update = False
    with pytest.raises(pytest.fail.Exception, match=r"(?s)differs.*-  NOOP.*\+  QUIT"):
        golden.check("case", server, "title")
    with pytest.raises(pytest.fail.Exception, match="no golden file missing.txt"):
        golden.check("missing", server, "title")
    golden.update = True
    golden.check("case", server, "a new title")
    text = (tmp_path / "case.txt").read_text()
    assert text.startswith("# a new title\n") and text.endswith(
        "session 1 (ended by quit)\n  QUIT\n"
    )
    golden.update = False
    golden.check("case", server, "title")  # now it matches
