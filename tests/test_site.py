"""The documentation site as readers get it: built with ``mkdocs build --strict``, then read.

The site is built once per test run (shared by the xdist workers through a lock file) into a
temporary folder.  The checks: no raw Sphinx role (``:class:`X```) is left in the API reference;
every public name of ``fakepop3.__all__`` has a docstring, a ``::: fakepop3.NAME`` entry in
docs/reference/api.md and its section in the built page, and so do the attributes users reach
for first; the layers diagram of docs/architecture.md is the one ``LAYERS`` draws; and, in
headless Chromium (Debian's, ``.ci/install-browser``), the home page, the reference and the pages
with diagrams load with no console error, with every diagram drawn as SVG by the site's own
mermaid.js (the browser resolves no host but localhost, so a CDN load would fail loudly).
``FAKEPOP3_SITE_SCREENSHOTS=FOLDER`` saves each page's first diagram as a PNG there.

Without the docs tools, Chromium or npm (which fetches mermaid.js: docs/_mermaid.py) the tests
are skipped on a developer's machine and fail in CI (``CI`` set).
"""

from __future__ import annotations

import functools
import html
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import fakepop3
from tests._browser import CHROMEDRIVER, CHROMIUM, chromium
from tests.test_architecture import LAYERS

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
    if not (DOCS / "assets" / "vendor" / "mermaid.min.js").is_file() and not shutil.which("npm"):
        _missing("npm, to fetch mermaid.js for the docs (docs/_mermaid.py)")
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


def layers_diagram() -> str:
    """The Mermaid text of the layers picture in docs/architecture.md, drawn from LAYERS."""
    parts: dict[int, list[str]] = {}
    for part, layer in LAYERS.items():
        parts.setdefault(layer, []).append(part)
    order = sorted(parts, reverse=True)
    lines = ["flowchart TB"]
    lines += [f'    L{n}["{n} · {" · ".join(parts[n])}"]' for n in order]
    lines.append("    " + " --> ".join(f"L{n}" for n in order))
    return "\n".join(lines)


def test_the_layers_diagram_is_the_one_LAYERS_draws() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```mermaid\n(.*?)\n```$", text, flags=re.M | re.S)
    expected = layers_diagram()
    assert expected in blocks, (
        f"docs/architecture.md needs this diagram:\n```mermaid\n{expected}\n```"
    )


# --- in a real browser ------------------------------------------------------------------------
WAIT = 30.0  # seconds the pages may take to draw their diagrams
#: The pages opened, and how many diagrams each draws.
PAGES = {
    "": 0,
    "reference/api/": 0,
    "server/": 1,
    "faults/": 1,
    "ci/": 1,
    "architecture/": 1,
}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site on http://127.0.0.1:PORT (port 0: a free one)."""
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        _missing("chromium and chromedriver: run .ci/install-browser")
    with chromium(
        # Nothing but this machine: a page that reaches for a CDN gets a console error.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        capabilities={"goog:loggingPrefs": {"browser": "ALL"}},
    ) as driver:
        # Material draws each diagram into a closed shadow root; open it, so the test can see
        # the SVG.
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {
                "source": "const attach = Element.prototype.attachShadow;"
                "Element.prototype.attachShadow = function (init) {"
                "  return attach.call(this, {...init, mode: 'open'}); };"
            },
        )
        yield driver


#: The one request a page makes off the site: Material's header fetches the repository's stars
#: and latest release from GitHub's API (``repo_url``); offline it fails and shows none.
ONLINE_EXTRA = re.compile(r"^https://api\.github\.com/repos/fakepop3/fakepop3(/releases/latest)? ")


def _online_extra(entry: dict[str, str]) -> bool:
    return entry.get("source") == "network" and bool(ONLINE_EXTRA.match(entry["message"]))


DRAWN = """
const blocks = document.querySelectorAll('pre.mermaid');
const drawn = [...document.querySelectorAll('div.mermaid')].map(d => {
  const svg = d.shadowRoot && d.shadowRoot.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : null;
  return svg && box.width > 0 && box.height > 0 ? svg.textContent : null;
});
return {waiting: blocks.length, drawn: drawn};
"""


@pytest.mark.parametrize("path", list(PAGES))
def test_the_page_loads_in_chromium_without_console_errors(
    browser: object, served: str, path: str
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get_log("browser")  # type: ignore[attr-defined]  # forget the previous page's
    driver.get(served + path)  # type: ignore[attr-defined]
    diagrams = PAGES[path]

    def settled(d: object) -> dict[str, object] | None:
        state = d.execute_script(DRAWN)  # type: ignore[attr-defined]
        if d.execute_script("return document.readyState") != "complete":  # type: ignore[attr-defined]
            return None
        return state if state["waiting"] == 0 and len(state["drawn"]) == diagrams else None

    try:
        state = WebDriverWait(driver, WAIT, poll_frequency=0.1).until(settled)
    except TimeoutException:
        state = driver.execute_script(DRAWN)  # type: ignore[attr-defined]
        raise AssertionError(f"{path or 'home'}: diagrams not drawn: {state}") from None
    assert all(state["drawn"]), f"{path}: a diagram is not an SVG with a size: {state}"
    assert driver.execute_script("return typeof mermaid") == (  # type: ignore[attr-defined]
        "object"
    ), "the site's own mermaid.js did not load"
    scripts = driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.scripts].map(s => s.src).filter(Boolean)"
    )
    assert all(src.startswith(served) for src in scripts), scripts
    errors = [
        entry
        for entry in driver.get_log("browser")  # type: ignore[attr-defined]
        if entry["level"] in ("SEVERE", "ERROR") and not _online_extra(entry)
    ]
    assert not errors, f"{path or 'home'}: console errors: {errors}"
    assert "fakepop3" in driver.title  # type: ignore[attr-defined]
    if path == "server/":
        assert "TRANSACTION" in state["drawn"][0]
    shots = os.environ.get("FAKEPOP3_SITE_SCREENSHOTS")  # a folder: one PNG a page, to look at
    if shots and diagrams:
        element = driver.find_element("css selector", "div.mermaid")  # type: ignore[attr-defined]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)  # type: ignore[attr-defined]
        element.screenshot(str(Path(shots) / f"{path.strip('/').replace('/', '-') or 'home'}.png"))
