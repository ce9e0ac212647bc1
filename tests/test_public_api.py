"""The public API: ``fakepop3.__all__``, every name importable from the package, loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fakepop3


def test_all_lists_every_public_name_once_and_each_resolves() -> None:
    assert fakepop3.__all__ == sorted(set(fakepop3.__all__))
    assert set(fakepop3.__all__) == set(fakepop3._HOMES)
    for name in fakepop3.__all__:
        value = getattr(fakepop3, name)
        module = sys.modules[f"fakepop3.{fakepop3._HOMES[name]}"]
        assert getattr(module, name) is value, name


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from fakepop3 import *", namespace)
    assert {n for n in namespace if not n.startswith("__")} == set(fakepop3.__all__)


def test_an_unknown_name_is_an_attribute_error_that_names_it() -> None:
    with pytest.raises(AttributeError, match="no attribute 'POP3Sever'"):
        _ = fakepop3.POP3Sever  # type: ignore[attr-defined]


def test_dir_lists_the_public_names() -> None:
    assert set(fakepop3.__all__) <= set(dir(fakepop3))


def test_importing_the_package_loads_only_the_store_and_the_mail_registry() -> None:
    # The mail package registers Mailbox's generate/load/add_message with the store at import;
    # nothing else of fakepop3 (server, core, faults, the generator itself) and nothing heavy.
    code = (
        "import sys; before = set(sys.modules); import fakepop3; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {m for m in out if m.startswith("fakepop3")}
    assert ours <= {"fakepop3", "fakepop3.mail", "fakepop3.mail._mailbox", "fakepop3.store"}, ours
    assert not {"asyncio", "ssl", "faker", "pytest", "email.policy"} & set(out)


def test_a_public_name_loads_its_module_on_first_use() -> None:
    code = (
        "import sys, fakepop3; fakepop3.MailStore; "
        "print('fakepop3.store' in sys.modules, 'fakepop3.server' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "False"]
