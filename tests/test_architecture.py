"""The layers of the package and the direction of its imports (ARCHITECTURE in docs/architecture.md).

Arrows point down only: the plugin and the CLI use the server; the server uses faults and the
protocol core; the core uses auth, history and the store.  Never the other way: the core knows
no asyncio, ssl, socket or pytest; the store knows nothing above it; smtp does not know the
server; the server does not know pytest.  Read from the source (every ``import``, also inside
functions) and checked again in a fresh interpreter, so a transitive import is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fakepop3"

#: Each part of the package and its layer: a module may import only parts of a lower layer
#: (or of its own part).  A part is a top-level module or subpackage of fakepop3.
LAYERS: dict[str, int] = {
    "_cache": 0,
    "_validate": 0,
    "_wait": 0,
    "_record": 1,
    "_anonymize": 0,
    "_knobs": 1,
    # real servers' personalities: data and its loader, read by the core and the server
    "personas": 1,
    "store": 1,
    "auth": 2,
    "history": 2,
    "mail": 2,
    # the old import paths of the mail helpers: shims over fakepop3.mail
    "builder": 3,
    "generate": 3,
    "loaders": 3,
    "protocol": 3,
    "faults": 4,
    "tls": 4,
    "_binding": 4,
    "_loopthread": 4,
    "_service": 5,
    "options": 5,
    # fakepop3 proxy: its STLS on the client side uses the test certificates of tls
    "_proxy": 5,
    "smtp": 6,
    # the control API: below the server, which imports it when control_port is given
    "control": 6,
    "server": 7,
    "_plugin_config": 8,
    "config": 8,
    "_plugin_async": 9,
    "cli": 9,
    "plugin": 10,
    "__main__": 11,
}
#: The façade: it names every part, and imports each lazily (see tests/test_public_api.py).
FACADE = "__init__"


def _part(module: str) -> str:
    return module.split(".", 1)[0]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The fakepop3 modules (relative to the package) that ``name`` imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                if not node.module:  # from . import x
                    out.update(".".join([*base, alias.name]).strip(".") for alias in node.names)
                    continue
                out.add(target.strip("."))
            elif node.module and node.module.startswith("fakepop3"):
                out.add(node.module.removeprefix("fakepop3").strip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fakepop3."):
                    out.add(alias.name.removeprefix("fakepop3."))
    # ``from . import __version__`` and the like: names of the façade, not modules.
    modules = _modules()
    return {m for m in out if m and (m in modules or _part(m) in modules)}


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part(m) for m in _modules() if m != FACADE}
    assert parts <= set(LAYERS), f"give these a layer in LAYERS: {sorted(parts - set(LAYERS))}"


@pytest.mark.parametrize("name", sorted(m for m in _modules() if m != FACADE))
def test_imports_point_down(name: str) -> None:
    mine = _part(name)
    wrong = sorted(
        target
        for target in _imports(name, _modules()[name])
        if _part(target) != mine and LAYERS.get(_part(target), 99) >= LAYERS[mine]
    )
    assert not wrong, f"fakepop3.{name} (layer {LAYERS[mine]}) imports upwards or sideways: {wrong}"


def _loaded_after(module: str) -> set[str]:
    # What importing ``module`` adds: a coverage run loads its own modules (socket...) first.
    code = (
        f"import sys; before = set(sys.modules); import {module}; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("fakepop3.protocol", {"asyncio", "ssl", "socket", "pytest", "fakepop3.server"}),
        # (the façade loads the mail registry with any module; that the store itself imports
        # no mail module is held by test_imports_point_down and tests/test_store.py)
        ("fakepop3.store", {"asyncio", "ssl", "socket", "pytest", "fakepop3.mail._generate"}),
        ("fakepop3.history", {"asyncio", "ssl", "socket", "pytest"}),
        ("fakepop3.smtp", {"fakepop3.server", "pytest"}),
        (
            "fakepop3.server",
            {"pytest", "_pytest", "fakepop3.plugin", "aiohttp", "fakepop3.control"},
        ),
        # the control API's HTTP library is imported only when a control port is given
        ("fakepop3.plugin", {"aiohttp", "fakepop3.control"}),
        ("fakepop3.cli", {"aiohttp", "fakepop3.control"}),
        ("fakepop3.control", {"aiohttp", "fakepop3.server"}),
        ("fakepop3.faults", {"asyncio", "ssl", "socket", "pytest", "fakepop3.server"}),
    ],
)
def test_a_layer_imported_alone_pulls_in_nothing_above_it(module: str, forbidden: set[str]) -> None:
    loaded = _loaded_after(module)
    assert not loaded & forbidden, f"import {module} also loads {sorted(loaded & forbidden)}"
