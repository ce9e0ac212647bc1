"""Every code example in the docs runs, as written.

The examples are the fenced code blocks of ``README.md`` and ``docs/**/*.md``:

* A ```` ```python ```` block that defines a ``test_*`` function at the top level is a
  test module: it runs through ``pytester`` with the installed plugin (fixtures come
  from the ``pytest11`` entry point, as in a user's project) and every test in it must
  pass.
* Any other ```` ```python ```` block is a script: it runs in a fresh temporary folder
  (``runpy``, as ``__main__``) and must not raise.  Its own ``assert`` statements are
  what it checks.
* A shell block runs only when the line before its fence is ``<!-- test: bash -->``: it
  runs with ``bash -euo pipefail`` in a temporary folder whose ``PATH`` starts with
  ``fakepop3`` and ``python3`` of this interpreter, and with the stand-ins of
  :data:`STANDINS` for the user's own programs.  It must exit 0.
* ``<!-- skip: reason -->`` on the line before a fence leaves that block out.  Use it
  sparingly (a block that needs the network, say); every skip shows in the test ids.

Examples start real servers on port 0, so they run in parallel under ``-n``.
"""

from __future__ import annotations

import os
import re
import runpy
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

# Imported here, once: pytester's in-process runs unload the modules they imported, and
# cryptography (under trustme) cannot be imported a second time in one process.
import trustme  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>skip|test):\s*(?P<text>.*?)\s*-->\s*$")
TEST_FUNCTION = re.compile(r"^(async\s+)?def\s+test_\w*\s*\(", re.MULTILINE)
SHELLS = {"bash", "sh", "shell", "console"}

#: Inner pytest runs: warnings are errors, as in the project's own suite.
INI = """
[pytest]
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

#: Inner runs skip the cache, Hypothesis's plugin and pytest-benchmark's (which warns, so fails
#: under ``filterwarnings = error``, when the outer run uses xdist).
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

#: Stand-ins for the user's own programs that the shell examples call.
STANDINS = {
    # docs/ci.md, the control API job: an importer that fetches every message of
    # $POP3_HOST:$POP3_PORT once, trying a RETR that fails with -ERR [SYS/TEMP] again once.
    "importer-fetch": """import os, poplib
client = poplib.POP3(os.environ["POP3_HOST"], int(os.environ["POP3_PORT"]), timeout=10)
client.user("importer")
client.pass_("secret")
count, _ = client.stat()
for n in range(1, count + 1):
    try:
        client.retr(n)
    except poplib.error_proto as error:
        if b"[SYS/TEMP]" not in error.args[0]:
            raise
        client.retr(n)
client.quit()
print(f"imported {count} messages")
""",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: tuple[str, str] | None  # ("skip" | "test", text)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the marker on the line before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        previous = lines[i - 1] if i > 0 else ""
        marker = MARKER.match(previous)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence[0] * len(fence))
            and lines[j].strip().strip(fence[0]) == ""
        ):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path}:{i + 1}: code block is never closed")
        found.append(
            Block(
                path,
                i + 1,
                opening["lang"].lower(),
                "\n".join(body) + "\n",
                (marker["kind"], marker["text"]) if marker else None,
            )
        )
        i = j + 1
    return found


ALL_BLOCKS = [b for source in SOURCES for b in blocks(source)]
PYTHON = [b for b in ALL_BLOCKS if b.lang in ("python", "py")]
SHELL = [b for b in ALL_BLOCKS if b.lang in SHELLS and b.marker and b.marker[0] == "test"]


def params(selected: list[Block]) -> list[object]:
    result = []
    for block in selected:
        marks = []
        if block.marker and block.marker[0] == "skip":
            marks.append(pytest.mark.skip(reason=f"docs marker: {block.marker[1]}"))
        result.append(pytest.param(block, id=block.id, marks=marks))
    return result


def test_the_docs_have_examples() -> None:
    """The collection itself can fail: no examples found means the parser is broken."""
    assert len(PYTHON) >= 20, [b.id for b in PYTHON]
    assert any(TEST_FUNCTION.search(b.code) for b in PYTHON)
    assert SHELL, "the CI recipe in docs/ci.md is a tested shell script"


def test_markers_are_well_formed() -> None:
    """A marker must sit right before a fence, and ``test:`` only before a shell block."""
    for source in SOURCES:
        lines = source.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            marker = MARKER.match(line)
            if not marker:
                continue
            following = lines[number] if number < len(lines) else ""
            opening = FENCE.match(following)
            assert opening, f"{source.name}:{number}: a marker must be followed by a code fence"
            if marker["kind"] == "test":
                assert marker["text"] == "bash", f"{source.name}:{number}: only 'test: bash'"
                assert opening["lang"] in SHELLS, f"{source.name}:{number}: not a shell block"
            else:
                assert marker["text"], f"{source.name}:{number}: a skip needs a reason"


def test_the_parser_finds_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n\n```python\nx = 1\n```\n\n<!-- skip: needs a network -->\n"
        "```python\nimport this\n```\n\n- item\n\n    ```sh\n    echo hi\n    ```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.line, b.lang, b.code, b.marker) for b in found] == [
        (3, "python", "x = 1\n", None),
        (8, "python", "import this\n", ("skip", "needs a network")),
        (14, "sh", "echo hi\n", None),
    ]


@pytest.mark.parametrize("block", params(PYTHON))
def test_python_example(
    block: Block, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    if TEST_FUNCTION.search(block.code):
        pytester.makeini(INI)
        pytester.makepyfile(test_example=block.code)
        result = pytester.runpytest(*INNER_ARGS)
        outcomes = result.parseoutcomes()
        tests = len(TEST_FUNCTION.findall(block.code))
        assert result.ret == pytest.ExitCode.OK, f"{block.id} failed:\n{result.stdout.str()}"
        assert outcomes.get("passed", 0) >= tests, outcomes
        return
    monkeypatch.chdir(pytester.path)
    script = pytester.path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("block", params(SHELL))
def test_shell_example(block: Block, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    work = tmp_path / "job"
    work.mkdir()
    programs = {
        "fakepop3": f'exec "{sys.executable}" -m fakepop3 "$@"\n',
        "python3": f'exec "{sys.executable}" "$@"\n',
    }
    for name, source in STANDINS.items():
        (bin_dir / f"{name}.py").write_text(source, encoding="utf-8")
        programs[name] = f'exec "{sys.executable}" "{bin_dir / name}.py" "$@"\n'
    for name, body in programs.items():
        program = bin_dir / name
        program.write_text("#!/usr/bin/env bash\n" + body, encoding="utf-8")
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = work / "job.sh"
    script.write_text(textwrap.dedent(block.code), encoding="utf-8")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a deadline: the script waits for the server by itself
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )


# --- the hand-written reference agrees with the code -------------------------------------------


def table_names(page: str) -> set[str]:
    """The names in the first column of the Markdown tables of a page (without backticks)."""
    names = set()
    for line in page.splitlines():
        cell = re.match(r"^\|\s*`([^`]+)`", line)
        if cell:
            names.add(cell[1].split()[0])
    return names


def test_reference_lists_every_fixture_and_marker_argument() -> None:
    from fakepop3 import plugin

    source = Path(plugin.__file__).read_text(encoding="utf-8")
    fixtures = set(
        re.findall(r"@pytest(?:_asyncio)?\.fixture\s*\n(?:async\s+)?def\s+([a-z]\w*)", source)
    )
    assert {"pop3_server", "pop3_client", "async_pop3_server", "pop3_server_factory"} <= fixtures
    page = (ROOT / "docs" / "reference" / "plugin.md").read_text(encoding="utf-8")
    documented = table_names(page)
    assert fixtures <= documented, f"fixtures missing in the reference: {fixtures - documented}"
    options = set(plugin.MARKER_OPTIONS)
    assert options <= documented, f"marker arguments missing: {options - documented}"
    flags = {f"--pop3-{name}" for name in ("host", "seed", "locale", "messages")}
    assert flags <= documented, f"options missing: {flags - documented}"


def test_cli_reference_is_the_real_help(monkeypatch: pytest.MonkeyPatch) -> None:
    from fakepop3._wait import _parser as wait_parser
    from fakepop3.cli import build_parser

    monkeypatch.setenv("COLUMNS", "100")
    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    [shown, wait_shown] = re.findall(r"```text\n(.*?)```", page, flags=re.DOTALL)
    assert shown == build_parser().format_help(), (
        "docs/reference/cli.md is out of date: paste the output of "
        "COLUMNS=100 fakepop3 --help into its text block"
    )
    assert wait_shown == wait_parser().format_help(), (
        "docs/reference/cli.md is out of date: paste the output of "
        "COLUMNS=100 fakepop3 wait --help into its second text block"
    )


def test_the_failure_report_sample_is_the_real_one(pytester: pytest.Pytester) -> None:
    """docs/pytest.md shows a failing test and its report: run the test, compare the report."""
    source = ROOT / "docs" / "pytest.md"
    found = blocks(source)
    section = source.read_text(encoding="utf-8").index("## The transcript of a failed test")
    first_line = source.read_text(encoding="utf-8")[:section].count("\n") + 1
    code, shown = (b for b in found if b.line > first_line)
    assert code.lang == "python" and shown.lang == "text"
    pytester.makeini(INI)
    pytester.makepyfile(test_example=code.code)
    result = pytester.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    report = out[out.index("session #1 from") : out.index("=" * 10, out.index("session #1 from"))]

    def same(text: str) -> str:  # the client's port is the one thing that changes
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text).strip()

    expected = shown.code.split("\n", 1)[1]  # below the section's title line
    assert same(report) == same(expected), (
        f"docs/pytest.md's sample report is out of date; the real one is:\n{report}"
    )
