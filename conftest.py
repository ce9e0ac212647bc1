"""Root conftest.

The fakepop3 pytest plugin is normally loaded through its ``pytest11`` entry point. This
project's own runs block that (``-p no:fakepop3`` in pyproject's addopts) and load the same
module here instead, so that pytest-cov has started before ``fakepop3`` is imported and the
package's import-time lines are measured too. Users never need this.
"""

pytest_plugins = ["fakepop3.plugin"]
