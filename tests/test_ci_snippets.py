"""The Node.js and Java test files of docs/ci.md, run as written against the real standalone server.

Each is a whole file (its first line names it); it runs in an empty folder with this
interpreter's ``fakepop3`` first on ``PATH``: the Node.js one with ``node --test``, the Java one
compiled with ``javac`` against Debian's JUnit 5 (``.ci/install-snippets``) and run by JUnit's
console launcher.  Without node, a JDK or JUnit the test is skipped on a developer's machine and
fails in CI (``CI`` set).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_docs import blocks

ROOT = Path(__file__).resolve().parent.parent
CI_MD = ROOT / "docs" / "ci.md"
JUNIT = Path("/usr/share/java")  # Debian's junit5 package
TIMEOUT = 120  # seconds a whole snippet may take


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        raise RuntimeError(f"CI needs {what}")
    pytest.skip(f"needs {what}")


def _snippet(lang: str, tmp_path: Path) -> Path:
    """The ``lang`` block of docs/ci.md, written to the file its first line names."""
    found = [b for b in blocks(CI_MD) if b.lang == lang]
    assert len(found) == 1, f"docs/ci.md should have one ```{lang} block"
    name = re.match(r"// ([\w.]+):", found[0].code)
    assert name, f"the ```{lang} block of docs/ci.md must start with '// FILE: ...'"
    path = tmp_path / name[1]
    path.write_text(found[0].code, encoding="utf-8")
    return path


def _run(command: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


def test_the_node_snippet_passes(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        _missing("node (Node.js 20 or later)")
    assert node is not None
    path = _snippet("js", tmp_path)
    output = _run([node, "--test", path.name], tmp_path)
    assert re.search(r"^# pass 2$", output, re.M) and re.search(r"^# fail 0$", output, re.M), output
    assert not (tmp_path / "pop3-ready.json").exists()  # the server was stopped


def test_the_java_snippet_passes(tmp_path: Path) -> None:
    javac, java = shutil.which("javac"), shutil.which("java")
    launcher = JUNIT / "junit-platform-console-standalone.jar"
    api = JUNIT / "junit-jupiter-api.jar"
    if javac is None or java is None:
        _missing("a JDK (javac, java)")
    if not (launcher.is_file() and api.is_file()):
        _missing("JUnit 5 from Debian: bash .ci/install-snippets")
    assert javac is not None and java is not None
    path = _snippet("java", tmp_path)
    classpath = os.pathsep.join(
        str(JUNIT / jar) for jar in ("junit-jupiter-api.jar", "apiguardian-api.jar")
    )
    _run([javac, "-d", "classes", "-cp", classpath, path.name], tmp_path)
    output = _run(
        [
            java,
            "-jar",
            str(launcher),
            "-cp",
            "classes",
            "--select-class",
            path.stem,
            "--disable-banner",
            "--details=summary",
            "--disable-ansi-colors",
        ],
        tmp_path,
    )
    assert re.search(r"\b2 tests successful\b", output), output
    assert re.search(r"\b0 tests failed\b", output), output
