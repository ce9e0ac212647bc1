"""Command lines to (name, arguments), and the arguments the history may keep.

Written once, for both lanes (rule 4 of ``_state.py``).  Rules:

- :func:`parse` takes one line without its LF and at most one CR stripped (the input buffer's
  work); it returns ``(NAME, args, logged)`` (``logged``: the arguments as the history records
  them) or, for a line that is not a command line, the text of its ``-ERR`` (a bad command: it
  counts towards ``max_bad_commands``).
- The keyword is case-insensitive (RFC 1939 s3: "Keywords are case-insensitive"); arguments
  are split on spaces, except PASS's, which keeps the whole rest of the line: a password may
  contain spaces (RFC 1939 s7).
- :func:`parse` is the only place that decides what of a command's arguments is a secret (the
  history never holds a password, an APOP digest or a SASL response).
"""

from __future__ import annotations

__all__ = ["SECRET_COMMANDS", "Parsed", "parse"]

#: The commands whose arguments may hold a secret (:func:`parse` masks it).
SECRET_COMMANDS = frozenset({"PASS", "APOP", "AUTH"})


Parsed = tuple[str, tuple[str, ...], tuple[str, ...]]


def parse(line: bytes) -> Parsed | str:
    """``(NAME, args, logged)`` of a command line, or the text of the ``-ERR`` for a line that is
    not one (``logged``: ``args`` as the history records them: secrets are ``***``)."""
    if line.find(b"\0") >= 0:  # not `in`: bytes.__contains__ tries an int first (slower)
        return "Command line contains a NUL byte."
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "Command line is not valid UTF-8."
    if not text.strip():
        return "Empty command line."
    keyword, _, rest = text.lstrip(" ").partition(" ")
    name = keyword.upper()
    if name not in SECRET_COMMANDS:
        args = tuple(rest.split())
        return name, args, args
    # What of the arguments is a secret, decided here only: the history never holds a
    # password, an APOP digest or a SASL initial response.
    if name == "PASS":
        return (name, (rest,), ("***",)) if rest else (name, (), ())
    args = tuple(rest.split())
    if (name == "APOP" and len(args) == 2) or (name == "AUTH" and len(args) >= 2):
        return name, args, (args[0], "***")
    return name, args, args
