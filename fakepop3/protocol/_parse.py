"""Command lines to (name, arguments), and the arguments the history may keep.

Written once, for both lanes (rule 4 of ``_state.py``).  Rules:

- :func:`parse` takes one line without its LF and at most one CR stripped (the input buffer's
  work); it returns ``(NAME, args, logged)`` (``logged``: the arguments as the history records
  them) or, for a line that is not a command line, the text of its ``-ERR`` (a bad command: it
  counts towards ``max_bad_commands``).
- The keyword is case-insensitive (RFC 1939 s3: "Keywords are case-insensitive"); arguments
  are split on spaces, except PASS's, which keeps the whole rest of the line: a password may
  contain spaces (RFC 1939 s7).
- Strict by default, as Dovecot is (RFC 1939 s3: "Keywords and arguments are each separated
  by a single SPACE character"; a syntactically invalid command gets a negative reply): a
  space before the keyword, two spaces or a TAB between words, a space at the end, or a CR
  left in the line is a bad command, answered with what is wrong and never acted on.  PASS's
  argument is the rest of the line, spaces and all, as Dovecot reads it.
  ``lenient=True`` (``Settings.lenient_syntax``) accepts them as the first release did:
  words split on any run of whitespace.  A line that is well formed parses the same either
  way, which is what lets the fast lane cache lines for both.
- :func:`parse` is the only place that decides what of a command's arguments is a secret (the
  history never holds a password, an APOP digest or a SASL response): PASS's whole argument;
  everything after the first argument of APOP, AUTH and USER, whatever the number of
  arguments (a malformed line is where a secret lands in the wrong place).
"""

from __future__ import annotations

__all__ = ["SECRET_COMMANDS", "Parsed", "parse"]

#: The commands whose arguments may hold a secret (:func:`parse` masks it).
SECRET_COMMANDS = frozenset({"PASS", "APOP", "AUTH"})


Parsed = tuple[str, tuple[str, ...], tuple[str, ...]]


def _malformed(text: str, keyword: str, rest: str) -> str | None:
    """What is wrong with the spacing of a command line under strict syntax, or None."""
    if "\r" in text:
        return "Command line contains a bare CR; end it with one CRLF."
    if not keyword or keyword[0] in " \t":
        return "Unknown command: the line starts with a space or TAB (RFC 1939 s3)."
    if "\t" in keyword:
        return "Command names and arguments are separated by one space, not a TAB (RFC 1939 s3)."
    if keyword.upper() == "PASS":
        return None  # the rest of the line is the password, spaces and all (RFC 1939 s7)
    if "\t" in rest:
        return "Command names and arguments are separated by one space, not a TAB (RFC 1939 s3)."
    if rest.endswith(" ") or (not rest and text.endswith(" ")):
        return "Noise after the last argument: a space at the end of the line (RFC 1939 s3)."
    if "  " in rest or rest.startswith(" "):
        return "Arguments are separated by a single space (RFC 1939 s3)."
    return None


def parse(line: bytes, lenient: bool = False) -> Parsed | str:
    """``(NAME, args, logged)`` of a command line, or the text of the ``-ERR`` for a line that is
    not one (``logged``: ``args`` as the history records them: secrets are ``***``).
    ``lenient``: accept any run of whitespace between words (see the rules above)."""
    if line.find(b"\0") >= 0:  # not `in`: bytes.__contains__ tries an int first (slower)
        return "Command line contains a NUL byte."
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "Command line is not valid UTF-8."
    if not text.strip():
        return "Empty command line."
    if lenient:
        words = text.split(None, 1)  # any run of whitespace, TABs and stray CRs included
        keyword, rest = words[0], words[1] if len(words) > 1 else ""
    else:
        keyword, _, rest = text.partition(" ")
        # PASS, the one line never cached, by its usual spelling first: its argument is the rest
        # of the line, so only a CR matters.  Any other line: five C-level tests pass a
        # well-formed one, and only a line that fails one is looked at closely (bench/README.md,
        # Speed notes, "After issue 16").
        if keyword == "PASS":
            if "\r" in text:
                return "Command line contains a bare CR; end it with one CRLF."
        elif "  " in text or "\t" in text or "\r" in text or text[0] == " " or text[-1] == " ":
            problem = _malformed(text, keyword, rest)
            if problem is not None:
                return problem
    name = keyword.upper()
    if name not in SECRET_COMMANDS:
        args = tuple(rest.split())
        if name == "USER" and len(args) > 1:  # "USER alice pw": a password where none belongs
            return name, args, (args[0], "***")
        return name, args, args
    # What of the arguments is a secret, decided here only: the history never holds a
    # password, an APOP digest or a SASL initial response.
    if name == "PASS":
        return (name, (rest,), ("***",)) if rest else (name, (), ())
    args = tuple(rest.split())
    if len(args) >= 2:  # APOP's digest, AUTH's initial response, whatever their number
        return name, args, (args[0], "***")
    return name, args, args
