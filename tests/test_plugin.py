"""The pytest plugin, tested as users meet it: test files run by ``pytester``.

Each test writes a small test module, runs pytest on it (in process, or in a
subprocess for xdist and cross-process determinism) and checks the outcome and
the output.  The inner runs turn warnings into errors, like this project does.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path
from typing import Protocol

import pytest

from fakepop3 import plugin
from fakepop3.generate import generate_messages

pytest_plugins = ["pytester"]

#: Inner runs skip the cache, Hypothesis's plugin (which imports, and with
#: PYTHONDONTWRITEBYTECODE rewrites, 70 modules in every in-process run) and
#: pytest-benchmark (under xdist it warns at configure time: an error with -W error).
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

INI = """
[pytest]
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""


class Runner(Protocol):
    def __call__(
        self, source: str, *args: str, conftest: str | None = None
    ) -> pytest.RunResult: ...


@pytest.fixture
def run(pytester: pytest.Pytester) -> Runner:
    """Write a test module (and an optional conftest) and run pytest on it in process."""
    pytester.makeini(INI)

    def runner(source: str, *args: str, conftest: str | None = None) -> pytest.RunResult:
        if conftest is not None:
            pytester.makeconftest(textwrap.dedent(conftest))
        pytester.makepyfile(test_it=textwrap.dedent(source))
        return pytester.runpytest(*FAST, *args)

    return runner


# --- fixtures -------------------------------------------------------------------------------


def test_default_fixtures(run: Runner) -> None:
    result = run(
        """
        import poplib
        from fakepop3 import Mailbox, POP3Server

        def test_server(pop3_server):
            assert isinstance(pop3_server, POP3Server)
            assert pop3_server.running
            assert pop3_server.host == "127.0.0.1" and pop3_server.port > 0
            assert pop3_server.store.users == ["alice"]
            assert len(pop3_server.mailbox("alice")) == 3
            assert len(pop3_server.history) == 0 and pop3_server.history.sessions == []
            assert pop3_server.tls is None

        def test_user_and_mailbox(pop3_server, pop3_user, pop3_mailbox):
            assert pop3_user == ("alice", "secret")
            assert pop3_user.name == "alice" and pop3_user.password == "secret"
            assert isinstance(pop3_mailbox, Mailbox)
            assert pop3_mailbox is pop3_server.mailbox("alice")
            assert all(m.as_email()["Message-ID"] for m in pop3_mailbox)

        def test_client_is_logged_in(pop3_client, pop3_server, pop3_mailbox):
            assert isinstance(pop3_client, poplib.POP3)
            assert pop3_client.stat() == (3, sum(m.size for m in pop3_mailbox))
            pop3_server.history.assert_sequence("USER alice", "PASS ***", "STAT")
        """
    )
    result.assert_outcomes(passed=3)


def test_each_test_gets_a_fresh_server_stopped_at_teardown(run: Runner) -> None:
    result = run(
        """
        seen = []

        def test_one(pop3_server, pop3_client):
            seen.append((pop3_server, pop3_client))
            for n in (1, 2, 3):
                pop3_client.dele(n)
            pop3_client.quit()
            pop3_server.wait_for_sessions(1)
            assert len(pop3_server.mailbox("alice")) == 0

        def test_two(pop3_server, pop3_mailbox):
            old_server, old_client = seen[0]
            assert old_server is not pop3_server
            assert not old_server.running
            assert old_client.sock is None
            assert len(pop3_mailbox) == 3
            assert len(pop3_server.history) == 0
        """
    )
    result.assert_outcomes(passed=2)


def test_client_is_closed_without_quit(run: Runner) -> None:
    result = run(
        """
        seen = []

        def test_one(pop3_server, pop3_client):
            seen.append(pop3_server)
            pop3_client.dele(1)

        def test_two():
            server = seen[0]
            assert not server.running
            [session] = server.history.sessions
            assert session.end_reason != "quit"
            assert len(server.mailbox("alice")) == 3  # no QUIT, no UPDATE
        """
    )
    result.assert_outcomes(passed=2)


def test_server_factory(run: Runner) -> None:
    result = run(
        """
        import poplib

        started = []

        def test_factory(pop3_server_factory, pop3_server):
            one = pop3_server_factory(users={"bob": "pw"}, disable=["UIDL"])
            two = pop3_server_factory(["carol"], any_login=True)
            started.extend([one, two])
            assert one.port not in (0, two.port, pop3_server.port)
            assert one.running and two.running
            assert one.host == "127.0.0.1"
            one.mailbox("bob").add(b"Subject: x\\r\\n\\r\\nbody\\r\\n")
            client = one.client("bob", "pw")
            assert client.stat()[0] == 1
            assert b"UIDL" not in client.capa()
            client.quit()
            client = two.client("carol", "whatever")
            assert client.stat() == (0, 0)
            client.quit()

        def test_all_stopped():
            assert len(started) == 2
            assert not any(server.running for server in started)
        """
    )
    result.assert_outcomes(passed=2)


def test_factory_rejects_bad_arguments_clearly(run: Runner) -> None:
    result = run(
        """
        import pytest

        def test_bad(pop3_server_factory):
            with pytest.raises(ValueError, match="port must be an integer"):
                pop3_server_factory(port=-1)
        """
    )
    result.assert_outcomes(passed=1)


ASYNC_TESTS = """
import asyncio
import poplib
import pytest

def fetch(server, user):
    client = poplib.POP3(server.host, server.port, timeout=10)
    client.user(user.name)
    client.pass_(user.password)
    count, _ = client.stat()
    client.quit()
    return count

{mark}
async def test_async_server(async_pop3_server, pop3_user):
    assert async_pop3_server.running
    assert async_pop3_server._loop is asyncio.get_running_loop()
    assert await asyncio.to_thread(fetch, async_pop3_server, pop3_user) == 3
    await async_pop3_server.wait_for_sessions_async(1)
    async_pop3_server.history.assert_sent("QUIT", user="alice", times=1)

@pytest.mark.pop3(messages=1, users={{"dora": "pw"}})
{mark}
async def test_async_marker(async_pop3_server, pop3_user, pop3_mailbox):
    assert pop3_user.name == "dora"
    assert len(async_pop3_server.mailbox("dora")) == 1
"""


def test_async_server_strict_mode(run: Runner) -> None:
    result = run(ASYNC_TESTS.format(mark="@pytest.mark.asyncio"), "-o", "asyncio_mode=strict")
    # test_async_marker also asks for pop3_mailbox: async_pop3_server's (no second server).
    result.assert_outcomes(passed=2)


def test_async_server_auto_mode(run: Runner) -> None:
    result = run(ASYNC_TESTS.format(mark=""), "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=2)


def test_async_server_in_a_sync_test_is_a_clear_error(run: Runner) -> None:
    result = run(
        """
        def test_sync(async_pop3_server):
            pass
        """
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*async_pop3_server*only works in async tests*pop3_server*"])


# --- the marker ---------------------------------------------------------------------------


def test_marker_users_messages_and_list_of_messages(run: Runner) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.pop3(users={"bob": "pw", "carol": "pw2"}, messages=5)
        def test_users(pop3_server, pop3_user, pop3_client):
            assert pop3_user == ("bob", "pw")
            assert pop3_client.stat()[0] == 5
            assert len(pop3_server.mailbox("carol")) == 0
            assert pop3_server.store.users == ["bob", "carol"]

        @pytest.mark.pop3(messages=[b"Subject: one\\r\\n\\r\\n1\\r\\n", "Subject: two\\n\\n2\\n"])
        def test_given_messages(pop3_mailbox):
            assert [m.raw for m in pop3_mailbox] == [
                b"Subject: one\\r\\n\\r\\n1\\r\\n", b"Subject: two\\n\\n2\\n"
            ]

        @pytest.mark.pop3(messages=0)
        def test_empty(pop3_client):
            assert pop3_client.stat() == (0, 0)

        @pytest.mark.pop3(login=False)
        def test_not_logged_in(pop3_client, pop3_server):
            assert pop3_client.getwelcome().startswith(b"+OK")
            assert len(pop3_server.history) == 0
        """
    )
    result.assert_outcomes(passed=4)


def test_marker_server_options(run: Runner) -> None:
    result = run(
        """
        import poplib
        import pytest

        @pytest.mark.pop3(tls=True)
        def test_tls(pop3_server):
            assert pop3_server.tls is not None
            client = pop3_server.client()
            assert "STLS" in client.capa()
            client.stls(context=pop3_server.tls.client_context())
            client.user("alice")
            client.pass_("secret")
            client.quit()

        @pytest.mark.pop3(tls=True, require_tls=True)
        def test_require_tls_client_upgrades(pop3_client, pop3_server):
            pop3_client.stat()
            assert pop3_server.history.filter("STAT", tls=True)

        @pytest.mark.pop3(login=False)
        def test_no_tls_by_default(pop3_client, pop3_server):
            assert pop3_server.tls is None
            assert "STLS" not in pop3_client.capa()

        @pytest.mark.pop3(mechanisms=["PLAIN"], disable=["TOP", "UIDL"], login=False)
        def test_capabilities(pop3_client):
            capa = pop3_client.capa()
            assert capa["SASL"] == ["PLAIN"]
            assert "TOP" not in capa and "UIDL" not in capa

        @pytest.mark.pop3(any_login=True, login=False)
        def test_any_login(pop3_client):
            pop3_client.user("nobody")
            assert pop3_client.pass_("anything").startswith(b"+OK")

        @pytest.mark.pop3(timeout=42, hostname="mail.test", max_connections=3)
        def test_passthrough(pop3_server):
            assert pop3_server.timeout == 42
            assert pop3_server.settings.hostname == "mail.test"
            assert pop3_server.max_connections == 3
        """
    )
    result.assert_outcomes(passed=6)


def test_markers_merge_from_module_to_function(run: Runner) -> None:
    result = run(
        """
        import pytest

        pytestmark = pytest.mark.pop3(messages=1, users={"bob": "pw"})

        @pytest.mark.pop3(messages=2)
        class TestClass:
            def test_class(self, pop3_mailbox, pop3_user):
                assert (len(pop3_mailbox), pop3_user.name) == (2, "bob")

            @pytest.mark.pop3(messages=4)
            def test_closest_wins(self, pop3_mailbox, pop3_user):
                assert (len(pop3_mailbox), pop3_user.name) == (4, "bob")

        def test_module(pop3_mailbox):
            assert len(pop3_mailbox) == 1
        """
    )
    result.assert_outcomes(passed=3)


def test_unknown_marker_argument_is_a_clear_error(run: Runner) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.pop3(mesages=2)
        def test_typo(pop3_server):
            pass

        @pytest.mark.pop3(3)
        def test_positional(pop3_server):
            pass
        """
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            (
                "*unknown option 'mesages' in @pytest.mark.pop3 (did you mean 'messages'?);"
                " known options: users, messages, generate, login, allow_server_errors, seed, locale*"
            ),
            "*@pytest.mark.pop3 takes keyword arguments only, got positional (3,)*",
        ]
    )


def test_bad_marker_values_are_clear_errors(run: Runner) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.pop3(disable=["NOPE"])
        def test_capability(pop3_server):
            pass

        @pytest.mark.pop3(messages=-1)
        def test_messages(pop3_server):
            pass

        @pytest.mark.pop3(users="alice")
        def test_users(pop3_server):
            pass

        @pytest.mark.pop3(messages=[42])
        def test_message_type(pop3_server):
            pass

        @pytest.mark.pop3(generate={"min_size": 1})
        def test_generate(pop3_server):
            pass
        """
    )
    result.assert_outcomes(errors=5)
    result.stdout.fnmatch_lines_random(
        [
            "*test_capability*options are not valid: unknown capability to disable: NOPE*",
            "*test_messages*messages must be a number of messages to generate (0 or more)*-1*",
            "*test_users*users must be a non-empty mapping of user name to password*'alice'*",
            "*test_message_type*not a message*int*",
            "*test_generate*cannot generate the default maildrop: min_size must be at least*",
        ]
    )


def test_marker_is_registered_for_strict_markers(run: Runner) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.pop3(messages=1)
        def test_it(pop3_mailbox):
            assert len(pop3_mailbox) == 1
        """,
        "--strict-markers",
    )
    result.assert_outcomes(passed=1)


# --- options --------------------------------------------------------------------------------


OPTION_TEST = """
from fakepop3.generate import generate_messages

def test_defaults(pop3_server, pop3_mailbox):
    print("HOST", pop3_server.host, "COUNT", len(pop3_mailbox))
    assert pop3_server.host == "{host}"
    assert [m.raw for m in pop3_mailbox] == list(
        generate_messages({count}, seed={seed}, locale={locale!r})
    )
"""


def test_command_line_options(run: Runner) -> None:
    source = OPTION_TEST.format(host="127.0.0.2", count=1, seed=7, locale=["de_DE", "fr_FR"])
    args = ["--pop3-host=127.0.0.2", "--pop3-messages=1", "--pop3-seed=7"]
    result = run(source, *args, "--pop3-locale=de_DE,fr_FR")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["fakepop3: host=127.0.0.2 seed=7 (unless faker_seed is defined) locale=de_DE,fr_FR*"]
    )


def test_ini_options_and_command_line_beats_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        INI + "pop3_messages = 2\npop3_seed = 11\npop3_locale = it_IT\npop3_host = 127.0.0.3\n"
    )
    pytester.makepyfile(OPTION_TEST.format(host="127.0.0.3", count=2, seed=11, locale=["it_IT"]))
    pytester.runpytest(*FAST).assert_outcomes(passed=1)
    pytester.makepyfile(OPTION_TEST.format(host="127.0.0.3", count=1, seed=11, locale=["it_IT"]))
    pytester.runpytest(*FAST, "--pop3-messages", "1").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--pop3-messages=many",
            "--pop3-messages (ini pop3_messages) must be an integer, not 'many'",
        ),
        ("--pop3-messages=-2", "--pop3-messages (ini pop3_messages) must be at least 0, not -2"),
        ("--pop3-seed=x", "--pop3-seed (ini pop3_seed) must be an integer, not 'x'"),
        ("--pop3-locale=,", "--pop3-locale (ini pop3_locale) must name a Faker locale"),
    ],
)
def test_bad_options_are_usage_errors(run: Runner, option: str, message: str) -> None:
    result = run("def test_it(): pass", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


# --- seeds, Faker ---------------------------------------------------------------------------


def test_default_mail_comes_from_faker_default_seed(run: Runner) -> None:
    result = run(
        """
        from fakepop3.generate import generate_messages

        def test_seed_zero(pop3_mailbox):
            assert [m.raw for m in pop3_mailbox] == list(generate_messages(3, seed=0))

        def test_faker_still_works(faker, pop3_mailbox):
            assert faker.name()
        """
    )
    result.assert_outcomes(passed=2)


def test_user_faker_seed_wins_and_changes_the_mail(run: Runner) -> None:
    result = run(
        """
        import pytest
        from fakepop3.generate import generate_messages

        def test_uses_faker_seed(pop3_mailbox, faker):
            mail = [m.raw for m in pop3_mailbox]
            assert mail == list(generate_messages(3, seed=1234))
            assert mail != list(generate_messages(3, seed=0))

        @pytest.mark.pop3(seed=5)
        def test_marker_seed_beats_faker_seed(pop3_mailbox):
            assert [m.raw for m in pop3_mailbox] == list(generate_messages(3, seed=5))

        @pytest.mark.parametrize("faker_seed", [99])
        def test_parametrized_faker_seed(pop3_mailbox, faker_seed):
            assert [m.raw for m in pop3_mailbox] == list(generate_messages(3, seed=99))

        @pytest.mark.parametrize("faker_seed", ["a string seed"])
        def test_string_seed(pop3_mailbox, faker_seed):
            assert len(pop3_mailbox) == 3
        """,
        "--pop3-seed=3",
        conftest="""
        import pytest

        @pytest.fixture
        def faker_seed():
            return 1234
        """,
    )
    result.assert_outcomes(passed=4)


def test_user_faker_locale_is_used(run: Runner) -> None:
    result = run(
        """
        from fakepop3.generate import generate_messages

        def test_locale(pop3_mailbox):
            mail = [m.raw for m in pop3_mailbox]
            assert mail == list(generate_messages(3, seed=0, locale=["ja_JP"]))
        """,
        conftest="""
        import pytest

        @pytest.fixture
        def faker_locale():
            return ["ja_JP"]
        """,
    )
    result.assert_outcomes(passed=1)


def test_plugin_defines_no_faker_fixtures(run: Runner) -> None:
    for name in ("faker", "faker_seed", "faker_locale", "faker_session_locale"):
        assert not hasattr(plugin, name), name
    result = run(
        """
        def test_needs_faker_seed(pop3_server, faker_seed):
            pass
        """
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'faker_seed' not found*"])


# --- server errors --------------------------------------------------------------------------


SERVER_ERROR_TEST = """
import poplib
import pytest

def boom(record):
    if record.command == "STAT":
        raise RuntimeError("boom from a history listener")

{marker}
def test_provokes_a_server_error(pop3_server, pop3_client):
    pop3_server.history.add_listener(boom)
    with pytest.raises(poplib.error_proto, match="Internal server error"):
        pop3_client.stat()
"""


def test_server_error_fails_the_test_at_teardown(run: Runner) -> None:
    result = run(SERVER_ERROR_TEST.format(marker=""))
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_provokes_a_server_error*",
            "*1 error(s) inside the POP3 server; the first:*",
            "*Traceback (most recent call last):*",
            "*RuntimeError: boom from a history listener*",
            "*mark it @pytest.mark.pop3(allow_server_errors=True)*",
        ]
    )


def test_server_errors_can_be_allowed(run: Runner) -> None:
    marker = "@pytest.mark.pop3(allow_server_errors=True)"
    result = run(SERVER_ERROR_TEST.format(marker=marker))
    result.assert_outcomes(passed=1)


def test_server_errors_of_factory_and_async_servers_fail_the_test(run: Runner) -> None:
    result = run(
        """
        import asyncio
        import poplib
        import pytest

        def boom(record):
            raise RuntimeError("boom " + record.command)

        def login(server):
            client = server.client()
            try:
                with pytest.raises(poplib.error_proto):
                    client.user("bob")
            finally:
                client.close()

        def test_factory(pop3_server_factory):
            server = pop3_server_factory({"bob": "pw"})
            server.history.add_listener(boom)
            login(server)

        @pytest.mark.asyncio
        async def test_async(async_pop3_server):
            async_pop3_server.history.add_listener(boom)
            await asyncio.to_thread(login, async_pop3_server)
        """
    )
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines_random(["*RuntimeError: boom USER*"] * 2)


# --- assertion helpers ----------------------------------------------------------------------


def test_history_assertions_explain_the_failure(run: Runner) -> None:
    result = run(
        """
        def test_assert_sent(pop3_client, pop3_server):
            pop3_client.retr(1)
            pop3_server.history.assert_sent("RETR", "2", times=1)

        def test_in(pop3_client, pop3_server):
            pop3_client.retr(1)
            assert "RETR 1" in pop3_server.history
            assert "RETR 2" in pop3_server.history

        def test_not_in(pop3_client, pop3_server):
            pop3_client.dele(1)
            assert "DELE 1" not in pop3_server.history
        """
    )
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            '>       pop3_server.history.assert_sent("RETR", "2", times=1)',
            (
                "E       AssertionError: expected 'RETR 2' to be sent 1 time(s), "
                "but it was sent 0 time(s)."
            ),
            "E       Most similar commands sent:",
            "E         #* alice: RETR 1 -> +OK * octets",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            '>       assert "RETR 2" in pop3_server.history',
            "E       AssertionError: assert 'RETR 2' was not sent; 3 command(s) were:",
            "E           USER alice",
            "E           PASS ***",
            "E           RETR 1",
            "E         Most similar: 'RETR 1'",
        ]
    )
    result.stdout.fnmatch_lines(
        ["E       AssertionError: assert 'DELE 1' was sent, but should not have been;*"]
    )
    # The helpers hide their own frames: the failure points at the test's line only.
    assert "fakepop3/history.py" not in result.stdout.str()


# --- report section -------------------------------------------------------------------------


def test_failed_test_report_shows_the_transcript(run: Runner) -> None:
    result = run(
        """
        def test_fails(pop3_client, pop3_server_factory):
            other = pop3_server_factory({"bob": "pw"})
            other.client("bob", "pw").quit()
            other.wait_for_sessions(1)
            pop3_client.stat()
            assert False, "the app did something wrong"

        def test_passes(pop3_client):
            pop3_client.noop()
        """,
        "-rA",
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- POP3 transcript (server 1 of 2, port *) -*",
            "session #* from 127.0.0.1:* (still open)",
            "  C: USER alice",
            "  S: +OK*",
            "  C: PASS ***",
            "  C: STAT",
            "  S: +OK 3 *",
            "*- POP3 transcript (server 2 of 2, port *) -*",
            "session #* (ended by quit)",
            "  C: USER bob",
        ]
    )
    # Passing tests get no transcript section.
    assert result.stdout.str().count("POP3 transcript") == 2
    assert "C: NOOP" not in result.stdout.str()


def test_transcript_of_a_test_without_sessions(run: Runner) -> None:
    result = run(
        """
        def test_fails(pop3_server):
            assert pop3_server.port == 0
        """
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- POP3 transcript -*", "(no POP3 sessions)"])


# --- faults ---------------------------------------------------------------------------------


def test_marker_faults(run: Runner) -> None:
    result = run(
        """
        import poplib
        import pytest
        from fakepop3.faults import Faults

        @pytest.mark.pop3(faults=[
            {"command": "RETR", "args": "2", "nth": 1, "action": "error",
             "text": "Try later", "code": "SYS/TEMP"},
        ])
        def test_retr_fails_once(pop3_client, pop3_server):
            with pytest.raises(poplib.error_proto, match=r"SYS/TEMP\\] Try later"):
                pop3_client.retr(2)
            assert pop3_client.retr(2)[0].startswith(b"+OK")
            [failed] = pop3_server.history.filter("RETR", "2", ok=False)
            assert failed.fault

        FAULTS = Faults()
        FAULTS.on("STAT").error("Not now")

        @pytest.mark.pop3(faults=FAULTS)
        def test_faults_object(pop3_client, pop3_server):
            assert pop3_server.faults is FAULTS
            with pytest.raises(poplib.error_proto, match="Not now"):
                pop3_client.stat()

        @pytest.mark.pop3(faults=[{"command": "RETR", "action": "explode"}])
        def test_bad_fault(pop3_server):
            pass

        @pytest.mark.pop3(faults="RETR fails")
        def test_not_a_list(pop3_server):
            pass
        """
    )
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "*test_bad_fault*faults=*is not a valid fault list*explode*",
            "*test_not_a_list*faults must be a list of fault dicts or a*Faults, not 'RETR fails'*",
        ]
    )


# --- xdist ----------------------------------------------------------------------------------


def test_xdist_workers_share_nothing_and_agree_on_the_mail(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_par="""
        import hashlib
        import os
        import pytest

        @pytest.mark.parametrize("i", range(8))
        def test_digest(pop3_server, pop3_client, pop3_mailbox, i):
            assert pop3_client.stat()[0] == 3
            digest = hashlib.sha256(b"".join(m.raw for m in pop3_mailbox)).hexdigest()
            worker = os.environ.get("PYTEST_XDIST_WORKER")
            print(f"DIGEST {worker} {pop3_server.port} {digest}")

        def test_fails(pop3_client):
            pop3_client.noop()
            assert False
        """
    )
    result = pytester.runpytest_subprocess(*FAST, "-n", "2", "-rA")
    result.assert_outcomes(passed=8, failed=1)
    found = re.findall(r"^DIGEST (gw\d) (\d+) ([0-9a-f]{64})$", result.stdout.str(), re.MULTILINE)
    assert len(found) == 8
    assert {worker for worker, _, _ in found} == {"gw0", "gw1"}
    assert len({digest for _, _, digest in found}) == 1
    # and it is the mail this process generates for seed 0: the same seed, the same bytes
    expected = list(generate_messages(3, seed=0))
    assert found[0][2] == hashlib.sha256(b"".join(expected)).hexdigest()
    # a failure on a worker still carries its transcript to the controller
    result.stdout.fnmatch_lines(["*- POP3 transcript -*", "  C: NOOP"])


# --- the README's pytest examples -----------------------------------------------------------


def _readme_test_blocks() -> list[str]:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL)
    return [block for block in blocks if "def test_" in block]


def test_readme_pytest_examples_run(pytester: pytest.Pytester) -> None:
    blocks = _readme_test_blocks()
    if not blocks:
        pytest.skip("README.md has no pytest example (a ```python block with 'def test_') yet")
    pytester.makeini(INI)
    for number, block in enumerate(blocks):
        pytester.makepyfile(**{f"test_readme_{number}": block})
    result = pytester.runpytest(*FAST, "-o", "asyncio_mode=auto")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= len(blocks), result.stdout.str()
    assert not {"failed", "errors", "error"} & outcomes.keys(), result.stdout.str()
