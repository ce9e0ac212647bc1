"""A griffe extension for the API reference: Sphinx roles in docstrings become cross-references.

The docstrings of fakepop3 name other objects the Sphinx way (``:class:`Faults```,
``:meth:`POP3Server.reset```, ``:mod:`fakepop3.options```, ``:class:`~fakepop3.faults.Faults```).
MkDocs does not know those roles and would print them as text.  Before mkdocstrings renders a
docstring, this extension rewrites each role into an *optional* mkdocstrings cross-reference
(``<autoref identifier="..." optional>``): a link where the object it names is rendered in the
site, plain code where it is not (a private module, the standard library) -- never a warning.

A target is looked up as Sphinx does: in the object that holds the docstring and in its parents
(a method's ``:meth:`reset``` is a method of its class), then as a full path (``fakepop3.X``).
``~a.b.C`` shows ``C``; ``title <target>`` shows the title.

mkdocs.yml loads it by path (``extensions: [docs/_griffe_roles.py]``); tests/test_site.py checks
that no role is left in the built reference.
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import Alias, AliasResolutionError, CyclicAliasError, Extension, GriffeLoader, Object

#: A Sphinx cross-reference role of the Python domain: ``:class:`X```, ``:py:meth:`X.y```.
ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|func|attr|data|mod|exc|obj|const|type):`(?P<text>[^`]+)`"
)


def _lookup(scope: Object | Alias, target: str, loader: GriffeLoader) -> str | None:
    """The canonical path of ``target`` as seen from ``scope``, or None when it is not known."""
    scopes: list[Object | Alias] = []
    current: Object | Alias | None = scope
    while current is not None:
        scopes.append(current)
        current = current.parent
    candidates = [f"{s.path}.{target}" for s in scopes] + [target]
    for path in candidates:
        try:
            found = loader.modules_collection[path]
            if isinstance(found, Alias):
                found = found.final_target
            return str(found.canonical_path)
        except (KeyError, AliasResolutionError, CyclicAliasError, ValueError):
            continue
    return None


def convert(text: str, scope: Object | Alias, loader: GriffeLoader) -> str:
    """``text`` with every Sphinx role turned into an optional cross-reference (or code)."""

    def replace(match: re.Match[str]) -> str:
        written = match["text"].strip()
        title, target = written, written
        explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^<>]+)>", written)
        if explicit:
            title, target = explicit["title"], explicit["target"]
        if target.startswith("~"):
            target = target[1:]
            if not explicit:
                title = target.rsplit(".", 1)[-1]
        target = target.lstrip(".!").removesuffix("()")
        path = _lookup(scope, target, loader)
        code = f"`{title}`"
        if path is None:
            return code
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

    return ROLE.sub(replace, text)


class SphinxRoles(Extension):
    """Rewrite the Sphinx roles of every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: Object, loader: GriffeLoader, **kwargs: Any) -> None:
        seen: set[int] = set()
        todo: list[Object] = [pkg]
        while todo:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None and ROLE.search(obj.docstring.value):
                obj.docstring.value = convert(obj.docstring.value, obj, loader)
            todo.extend(m for m in obj.members.values() if not isinstance(m, Alias))
