"""Root conftest: the fakepop3 plugin is loaded through its pytest11 entry point.

Nothing here on purpose; tests/conftest.py holds helpers shared by the test suite.
"""
