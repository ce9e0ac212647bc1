"""Mermaid for the docs, served by the site itself: no CDN at reading time.

MkDocs Material draws the ```` ```mermaid ```` blocks with mermaid.js, which it loads from a CDN
unless ``mermaid`` is already defined on the page.  This script takes ``dist/mermaid.min.js`` of
a pinned mermaid release from the npm registry (``npm pack``: the registry CI can reach), checks
the tarball against the integrity the registry published for that release, and puts it in
``docs/assets/vendor/`` (gitignored), which mkdocs.yml loads through ``extra_javascript``.

Run it by hand (``python docs/_mermaid.py``), as ``.ci/package-check`` does; mkdocs.yml also
names it as a hook, so ``mkdocs build`` / ``mkdocs serve`` fetch the file once when it is missing.
To update mermaid: change ``VERSION`` and ``INTEGRITY`` (``npm view mermaid@X dist.integrity``).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

VERSION = "11.12.2"
INTEGRITY = "sha512-n34QPDPEKmaeCG4WDMGy0OT6PSyxKCfy2pJgShP+Qow2KLrvWjclwbc3yXfSIf4BanqWEhQEpngWwNp/XhZt6w=="
TARGET = Path(__file__).resolve().parent / "assets" / "vendor" / "mermaid.min.js"


class MermaidError(RuntimeError):
    """mermaid.min.js could not be fetched or did not match its pinned integrity."""


def fetch(target: Path = TARGET) -> Path:
    """Put the pinned ``mermaid.min.js`` at ``target`` (nothing to do when it is there)."""
    stamp = target.with_suffix(".version")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == VERSION:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise MermaidError(
            "npm is needed to fetch mermaid.min.js for the docs (apt-get install npm)"
        )
    with tempfile.TemporaryDirectory(prefix="fakepop3-mermaid-") as work:
        done = subprocess.run(
            [npm, "pack", f"mermaid@{VERSION}", "--pack-destination", work, "--silent"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = list(Path(work).glob("mermaid-*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise MermaidError(f"npm pack mermaid@{VERSION} failed: {done.stderr.strip()}")
        data = tarballs[0].read_bytes()
        digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if digest != INTEGRITY:
            raise MermaidError(f"mermaid-{VERSION}.tgz does not match its pinned integrity")
        with tarfile.open(tarballs[0]) as archive:
            member = archive.extractfile("package/dist/mermaid.min.js")
            if member is None:
                raise MermaidError(f"mermaid-{VERSION}.tgz has no dist/mermaid.min.js")
            script = member.read()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(script)
    stamp.write_text(VERSION + "\n")
    return target


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """MkDocs hook: fetch mermaid.min.js before the build when it is missing."""
    fetch()


if __name__ == "__main__":
    try:
        path = fetch()
    except MermaidError as error:
        sys.exit(f"_mermaid.py: error: {error}")
    print(
        f"mermaid {VERSION}: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
    )
