"""The documentation site as readers get it: built with ``mkdocs build --strict``, then read.

The site is built once per test run (shared by the xdist workers through a lock file) into a
temporary folder.  The checks: no raw Sphinx role (``:class:`X```) is left in the API reference;
every public name of ``fakepop3.__all__`` has a docstring, a ``::: fakepop3.NAME`` entry in
docs/reference/api.md and its section in the built page, and so do the attributes users reach
for first.

Without the docs tools the tests are skipped on a developer's machine and fail in CI (``CI``
set).
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fakepop3

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API_MD = DOCS / "reference" / "api.md"
#: A Sphinx role as MkDocs leaves it: ``:class:<code>X</code>`` (or still in backticks).
RAW_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const|type):(?:<code>|`)")
#: The attributes a reader of the reference looks for first (issue 23).
FIRST_ATTRIBUTES = [
    *(
        f"POP3Server.{name}"
        for name in (
            "host",
            "port",
            "tls_port",
            "history",
            "faults",
            "store",
            "settings",
            "errors",
            "control_url",
            "start",
            "stop",
            "raise_errors",
        )
    ),
    "Mailbox.uids",
    "Message.uid",
    "History.sessions",
    "History.commands",
    *(
        f"CommandRecord.{name}"
        for name in (
            "session_id",
            "client",
            "user",
            "command",
            "args",
            "reply",
            "tls",
            "received_at",
            "fault",
        )
    ),
    *(
        f"SessionRecord.{name}"
        for name in ("id", "client", "started_at", "user", "tls", "ended_at", "end_reason")
    ),
]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        raise RuntimeError(f"CI needs {what}")
    pytest.skip(f"needs {what}")


def _build(site: Path) -> None:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site (built once per run: the xdist workers share it)."""
    for module in ("mkdocs", "mkdocstrings_handlers.python", "material", "griffe_sphinx"):
        if importlib.util.find_spec(module) is None:
            _missing(f"the docs tools (pip install -e '.[test]'): {module}")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    site = shared / "fakepop3-site"
    try:
        import fcntl
    except ImportError:  # Windows: each worker builds its own
        site = base / "fakepop3-site"
        if not (site / "index.html").is_file():
            _build(site)
        return site
    with open(shared / "fakepop3-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (site / "index.html").is_file():
            _build(site)
    return site


def _text_around(page: str, start: int) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page[max(0, start - 80) : start + 80]))


def test_the_reference_has_no_raw_sphinx_role(site: Path) -> None:
    page = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    raw = [_text_around(page, m.start()) for m in RAW_ROLE.finditer(page)]
    assert not raw, f"{len(raw)} raw Sphinx role(s) in the API reference, e.g.:\n" + "\n".join(
        raw[:5]
    )
    # The roles became links to the objects they name.
    assert 'href="#fakepop3.MailStore"><code>MailStore</code></a>' in page


def test_the_role_rewriter_resolves_targets_as_sphinx_does() -> None:
    import griffe

    sys.path.insert(0, str(DOCS))
    try:
        roles = importlib.import_module("_griffe_roles")
    finally:
        sys.path.remove(str(DOCS))
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    package = loader.load("fakepop3")
    server = package["server._pop3server.POP3Server"]
    text = (
        ":meth:`add_user`, :class:`~fakepop3.faults.Faults`, :mod:`fakepop3.options`, "
        ":class:`the store <MailStore>`, :class:`random.Random`"
    )
    assert roles.convert(text, server, loader) == (
        '<autoref identifier="fakepop3.server._pop3server.POP3Server.add_user" optional>'
        "`add_user`</autoref>, "
        '<autoref identifier="fakepop3.faults._builders.Faults" optional>`Faults`</autoref>, '
        '<autoref identifier="fakepop3.options" optional>`fakepop3.options`</autoref>, '
        '<autoref identifier="fakepop3.store.MailStore" optional>`the store`</autoref>, '
        "`random.Random`"
    )


def _griffe_package() -> object:
    import griffe

    return griffe.load(
        "fakepop3",
        search_paths=[str(ROOT)],
        extensions=griffe.load_extensions("griffe_sphinx"),
        resolve_aliases=True,
    )


def test_every_public_name_is_documented_and_rendered(site: Path) -> None:
    import griffe

    package = _griffe_package()
    entries = set(re.findall(r"^::: fakepop3\.(\w+)\s*$", API_MD.read_text(), flags=re.M))
    page = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    problems = []
    for name in fakepop3.__all__:
        found = package[name]  # type: ignore[index]
        target = found.final_target if isinstance(found, griffe.Alias) else found
        if not (target.docstring and target.docstring.value.strip()):
            problems.append(f"{name}: no docstring")
        if name not in entries:
            problems.append(f"{name}: no '::: fakepop3.{name}' in docs/reference/api.md")
        if f'id="fakepop3.{name}"' not in page:
            problems.append(f"{name}: not rendered in the built reference")
    for dotted in FIRST_ATTRIBUTES:
        owner, member = dotted.split(".")
        found = package[owner].final_target.all_members[member]  # type: ignore[index]
        target = found.final_target if isinstance(found, griffe.Alias) else found
        if not (target.docstring and target.docstring.value.strip()):
            problems.append(f"{dotted}: no docstring")
        if f'id="fakepop3.{dotted}"' not in page:
            problems.append(f"{dotted}: not rendered in the built reference")
    assert not problems, "\n".join(problems)
