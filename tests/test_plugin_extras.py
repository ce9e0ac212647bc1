"""The plugin at its edges: what importing it costs, pytest-asyncio optional, uvloop fixtures,
the fixtures of an async test, and the transcript of a failed test.

Each test runs pytest on a small test module (``pytester``, in process unless it needs a clean
interpreter), as the user's project would, with warnings turned into errors.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Protocol

import pytest

# Imported here, once: pytester's in-process runs unload the modules they imported, and
# cryptography (under trustme, for the TLS defaults below) cannot be imported twice in a process.
import trustme  # noqa: F401

pytest_plugins = ["pytester"]

FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")
INI = """
[pytest]
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
needs_uvloop = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed")


class Runner(Protocol):
    def __call__(self, source: str, *args: str, ini: str = INI) -> pytest.RunResult: ...


@pytest.fixture
def run(pytester: pytest.Pytester) -> Runner:
    def runner(source: str, *args: str, ini: str = INI) -> pytest.RunResult:
        pytester.makeini(ini)
        pytester.makepyfile(test_it=textwrap.dedent(source))
        return pytester.runpytest(*FAST, *args)

    return runner


# --- importing the plugin costs nothing until a fixture runs ------------------------------------

#: What `import fakepop3.plugin` may add to what `import pytest` loaded: the façade, the plugin and
#: its configuration, and the store with the mail registry the façade imports (both small, with
#: no email, Faker, asyncio or socket).
ALLOWED = {
    "fakepop3",
    "fakepop3.plugin",
    "fakepop3._plugin_config",
    "fakepop3.store",
    "fakepop3.mail",
    "fakepop3.mail._mailbox",
}
#: Never imported by the plugin itself (pytest-asyncio, when installed, is pytest's to load).
FORBIDDEN = (
    "asyncio",
    "email",
    "faker",
    "pytest_asyncio",
    "ssl",
    "socket",
    "poplib",
    "selectors",
    "fakepop3.server",
    "fakepop3.mail._generate",
    "fakepop3.generate",
    "fakepop3.faults",
    "fakepop3.protocol",
    "fakepop3.options",
    "fakepop3._loopthread",
)

PROBE = """
import json, sys
import pytest
before = set(sys.modules)
import fakepop3.plugin
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_importing_the_plugin_loads_no_server_generator_email_or_asyncio() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    added = set(json.loads(done.stdout))
    own = {name for name in added if name.split(".")[0] == "fakepop3"}
    assert own <= ALLOWED, f"the plugin imports {sorted(own - ALLOWED)}"
    pulled = sorted(
        name for name in added if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert pulled == [], f"import fakepop3.plugin loads {pulled}"


def test_the_fixtures_import_the_rest_when_they_first_run(run: Runner) -> None:
    result = run(
        """
        import sys

        def test_server(pop3_server, pop3_mailbox):
            assert "fakepop3.server" in sys.modules
            assert len(pop3_mailbox) == 3
        """
    )
    result.assert_outcomes(passed=1)


def test_bench_importtime_reports_the_plugin_beside_the_yardstick() -> None:
    bench = Path(__file__).resolve().parent.parent / "bench" / "importtime.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert re.search(r"fakepop3\.plugin +\d+\.\d ms", done.stdout), done.stdout
    assert re.search(r"yardstick +\d+\.\d ms", done.stdout), done.stdout


def test_marker_options_come_from_the_schema_on_first_use() -> None:
    from fakepop3 import _plugin_config, plugin
    from fakepop3.options import marker_options

    assert plugin.MARKER_OPTIONS == marker_options()
    assert "uvloop" in plugin.MARKER_OPTIONS
    with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
        _ = plugin.NOPE  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
        _ = _plugin_config.NOPE  # type: ignore[attr-defined]


def test_pytest_markers_lists_the_options(run: Runner) -> None:
    result = run("def test_a():\n    pass\n", "--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.pop3(**options): *; options: users, messages*"])


# --- pytest-asyncio is optional --------------------------------------------------------------


def test_pytest_asyncio_is_a_dependency() -> None:
    """The project's core: pytest, pytest-asyncio and faker (the warning it gives is handled by
    the plugin's default for its loop scope, tested below)."""
    required = importlib.metadata.requires("fakepop3") or []
    unconditional = [r for r in required if "extra ==" not in r]
    for name in ("pytest", "pytest-asyncio", "faker"):
        assert any(r.startswith(name) for r in unconditional), (name, unconditional)


QUIET = """
def test_sync(pop3_server, pop3_client, pop3_mailbox):
    assert pop3_client.stat()[0] == len(pop3_mailbox) == 3
"""


def test_a_quiet_run_without_pytest_asyncio_stays_quiet_under_w_error(run: Runner) -> None:
    """Without pytest-asyncio (here: disabled) nothing of fakepop3 warns, with no ini key set."""
    result = run(QUIET, "-p", "no:asyncio", "-W", "error", ini="[pytest]\nfilterwarnings = error\n")
    result.assert_outcomes(passed=1)
    assert "Warning" not in result.stdout.str()


def test_a_quiet_run_with_pytest_asyncio_stays_quiet_under_w_error(run: Runner) -> None:
    """pytest-asyncio runs (a dependency) and the project never set its loop scope: the plugin's
    default keeps pytest-asyncio from warning, which would fail the run under -W error."""
    result = run(QUIET, "-W", "error", ini="[pytest]\nfilterwarnings = error\n")
    result.assert_outcomes(passed=1)
    assert "asyncio_default_fixture_loop_scope=function" in result.stdout.str()
    assert "Warning" not in result.stdout.str()


def test_a_projects_own_loop_scope_wins(run: Runner) -> None:
    ini = "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = module\n"
    result = run(QUIET, "-W", "error", ini=ini)
    result.assert_outcomes(passed=1)
    assert "asyncio_default_fixture_loop_scope=module" in result.stdout.str()
    result = run(QUIET, "-W", "error", "-o", "asyncio_default_fixture_loop_scope=session",
                 ini="[pytest]\nfilterwarnings = error\n")  # fmt: skip
    assert "asyncio_default_fixture_loop_scope=session" in result.stdout.str()


def test_async_pop3_server_without_pytest_asyncio_says_what_to_install(run: Runner) -> None:
    result = run(
        """
        def test_wants_async(async_pop3_server):
            pass
        """,
        "-p",
        "no:asyncio",
        ini="[pytest]\nfilterwarnings = error\n",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*async_pop3_server needs pytest-asyncio*pip install pytest-asyncio*"]
    )


def test_pytest_asyncio_loaded_by_module_name_gets_the_real_fixture(run: Runner) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_async(async_pop3_server):
            assert async_pop3_server.running
        """,
        "-p",
        "no:asyncio",
        "-p",
        "pytest_asyncio.plugin",
    )
    result.assert_outcomes(passed=1)


# --- the fixtures of an async test refer to its one server ---------------------------------


def test_pop3_mailbox_of_an_async_test_is_async_pop3_servers(run: Runner) -> None:
    result = run(
        """
        import asyncio
        import pytest
        from fakepop3._plugin_config import SERVERS_KEY

        def stat(server, user):
            client = server.client(user.name, user.password)
            count, _ = client.stat()
            client.quit()
            return count

        @pytest.mark.asyncio
        async def test_mail_added_reaches_the_server(request, async_pop3_server, pop3_mailbox,
                                                     pop3_user):
            assert pop3_mailbox is async_pop3_server.mailbox(pop3_user.name)
            pop3_mailbox.add(b"Subject: one more\\r\\n\\r\\nhi\\r\\n")
            assert await asyncio.to_thread(stat, async_pop3_server, pop3_user) == 4
            assert request.node.stash[SERVERS_KEY] == [async_pop3_server]  # no second server

        @pytest.mark.asyncio
        async def test_without_async_pop3_server_it_is_pop3_servers(pop3_server, pop3_mailbox):
            assert pop3_mailbox is pop3_server.mailbox("alice")
        """
    )
    result.assert_outcomes(passed=2)


def test_pop3_client_in_an_async_test_with_async_pop3_server_fails_at_once(run: Runner) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_blocking_client(async_pop3_server, pop3_client):
            pass
        """
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pop3_client is a blocking poplib client, and async_pop3_server serves on this "
            "test's event loop*asyncio.to_thread(async_pop3_server.client)*"
        ]
    )


# --- the transcript of a failed test ------------------------------------------------------


def test_the_transcript_shows_the_greeting_and_the_faults_that_fired(run: Runner) -> None:
    result = run(
        """
        import poplib
        import pytest
        from fakepop3 import Faults

        def faults():
            rules = Faults()
            rules.on("STAT").disconnect(after_bytes=3)
            rules.on_connect().delay(0.001)
            return rules

        @pytest.mark.pop3(faults=faults())
        def test_fails(pop3_server, pop3_client):
            with pytest.raises((poplib.error_proto, OSError, IndexError)):
                pop3_client.stat()
            pop3_server.wait_for_sessions(1)
            assert False, "on purpose"
        """
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- POP3 transcript -*",
            "session #* from 127.0.0.1:* (ended by *)",
            "  S: +OK fakepop3 ready. <APOP timestamp>",
            "  C: USER alice",
            "*",
            "  C: STAT",
            "  S: +OK*  [[]fault: disconnect after 3 octets of the reply [[]rule 1: on STAT]]",
            "faults that fired:",
            "  disconnect after 3 octets of the reply [[]rule 1: on STAT]: 1 time(s)",
            "  * [[]rule 2: on connect]: 1 time(s)",
        ]
    )


# --- uvloop in fixtures -------------------------------------------------------------------

UVLOOP_TESTS = """
import pytest

def loop_type(server):
    return type(server._loop).__module__.split(".")[0]

def test_server(pop3_server, pop3_client):
    assert loop_type(pop3_server) == "{expected}"
    assert pop3_client.stat()[0] == 3

def test_factory(pop3_server_factory):
    other = pop3_server_factory(users={{"bob": "pw"}})
    assert loop_type(other) == "{expected}"
    other.client("bob").quit()
"""


@needs_uvloop
def test_pop3_uvloop_flag_runs_the_fixture_servers_on_uvloop(run: Runner) -> None:
    result = run(UVLOOP_TESTS.format(expected="uvloop"), "--pop3-uvloop")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["fakepop3: *loop=uvloop"])


@needs_uvloop
def test_pop3_uvloop_ini_key(run: Runner) -> None:
    result = run(UVLOOP_TESTS.format(expected="uvloop"), ini=INI + "pop3_uvloop = true\n")
    result.assert_outcomes(passed=2)


def test_without_the_flag_the_servers_run_on_asyncio(run: Runner) -> None:
    result = run(UVLOOP_TESTS.format(expected="asyncio"))
    result.assert_outcomes(passed=2)


@needs_uvloop
def test_uvloop_marker(run: Runner) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.pop3(uvloop=True)
        def test_on_uvloop(pop3_server, pop3_client):
            assert type(pop3_server._loop).__module__.startswith("uvloop")
            assert pop3_client.stat()[0] == 3

        def test_not_marked(pop3_server):
            assert type(pop3_server._loop).__module__.startswith("asyncio")
        """
    )
    result.assert_outcomes(passed=2)


def test_pop3_uvloop_without_uvloop_stops_the_run_with_one_line(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    result = run("def test_a():\n    pass\n", "--pop3-uvloop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--pop3-uvloop (ini pop3_uvloop): uvloop is not installed*fakepop3[[]speed]*"]
    )


def test_uvloop_marker_without_uvloop_fails_the_test_saying_how_to_install_it(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    result = run(
        """
        import pytest

        @pytest.mark.pop3(uvloop=True)
        def test_on_uvloop(pop3_server):
            pass
        """
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*uvloop=True (--pop3-uvloop, ini pop3_uvloop): uvloop is not*"])


def test_a_bad_pop3_uvloop_ini_value_is_a_usage_error(run: Runner) -> None:
    result = run("def test_a():\n    pass\n", ini=INI + "pop3_uvloop = maybe\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# --- a shared server, watched per test -------------------------------------------------------
SHARED = """
import poplib

import pytest

from fakepop3 import POP3Server


@pytest.fixture(scope="module")
def shared():
    with POP3Server(users={"alice": "secret"}) as server:
        server.mailbox("alice").add(b"Subject: kept\\r\\n\\r\\nbody\\r\\n")
        yield server


@pytest.fixture
def pop3(shared, pop3_watch):
    return pop3_watch(shared)


def test_one_deletes_and_fails(pop3):
    client = pop3.client("alice")
    client.dele(1)
    client.quit()
    pop3.wait_for_sessions(1)
    assert len(pop3.mailbox("alice")) == 99


def test_two_sees_the_baseline_and_no_history(pop3):
    assert len(pop3.mailbox("alice")) == 1
    assert pop3.history.sessions == []


def test_three_an_error_inside_the_server_fails_only_this_test(pop3):
    pop3.history.add_session_listener(lambda s: 1 / 0)
    client = pop3.client("alice")
    client.quit()
    pop3.wait_for_sessions(2)


def test_four_starts_clean(pop3):
    assert pop3.errors == []
"""


def test_a_watched_shared_server_reports_resets_and_fails_on_its_errors(run: Runner) -> None:
    result = run(SHARED)
    result.assert_outcomes(passed=3, failed=1, errors=1)  # three passes, then errs at teardown
    out = result.stdout.str()
    assert "POP3 transcript" in out and "C: DELE 1" in out  # the failed test's own sessions
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_three_an_error_inside_the_server_fails_only_this_test*"]
    )
    assert "ZeroDivisionError" in out and "error(s) inside the POP3 server at" in out


# --- project-wide defaults: the default user, TLS on -------------------------------------------
def test_the_default_user_and_tls_come_from_the_ini(run: Runner) -> None:
    ini = "[pytest]\nfilterwarnings = error\npop3_user = importer:s3:cret\npop3_tls = true\n"
    result = run(
        """
        import pytest

        def test_defaults(pop3_server, pop3_user, pop3_client):
            assert (pop3_user.name, pop3_user.password) == ("importer", "s3:cret")
            assert "STLS" in pop3_client.capa()
            assert pop3_server.tls is not None

        @pytest.mark.pop3(users={"bob": "pw"}, tls=False)
        def test_the_marker_wins(pop3_server, pop3_user):
            assert pop3_user.name == "bob" and pop3_server.tls is None
        """,
        ini=ini,
    )
    result.assert_outcomes(passed=2)


def test_the_flags_give_the_same_defaults(run: Runner) -> None:
    result = run(
        """
        def test_defaults(pop3_server, pop3_user):
            assert pop3_user.name == "carol" and pop3_server.tls is not None
        """,
        "--pop3-user", "carol:pw", "--pop3-tls",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("bad", ["nocolon", ":pw", "name:", " spaced :pw"])
def test_a_bad_default_user_is_a_usage_error(run: Runner, bad: str) -> None:
    result = run("def test_a(pop3_server):\n    pass\n", "--pop3-user", bad)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pop3-user (ini pop3_user) must be NAME:PASSWORD*"])


def test_pop3_lint_lints_every_fixture_server(run: Runner) -> None:
    result = run(
        """
        import pytest

        def test_drops_with_a_deletion_pending(pop3_server):
            client = pop3_server.client("alice")
            client.dele(1)
            client.close()                       # no QUIT: the deletion is lost
            pop3_server.wait_for_sessions(1)

        @pytest.mark.pop3(lint=False)
        def test_the_marker_turns_it_off(pop3_server):
            client = pop3_server.client("alice")
            client.dele(1)
            client.close()
            pop3_server.wait_for_sessions(1)
        """,
        "--pop3-lint",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_drops_with_a_deletion_pending*"])
    assert "dropped-with-deletions" in result.stdout.str()
    out = result.stdout.str()  # the finding is also in the POP3 transcript of the failed test
    transcript = out[out.index("POP3 transcript") :]
    assert "lint findings:\n  " in transcript and "dropped-with-deletions" in transcript
