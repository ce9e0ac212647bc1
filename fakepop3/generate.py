"""Faker-driven generator of realistic RFC 5322 messages (kept import path).

The generator lives in :mod:`fakepop3.mail` (``fakepop3/mail/_generate/``, whose
package docstring explains its determinism, sizes and speed); this module
re-exports what it always exported, so ``from fakepop3.generate import ...``
keeps working.
"""

from __future__ import annotations

from .mail._generate import (
    DEFAULT_END,
    DEFAULT_START,
    MIN_SIZE_FLOOR,
    GeneratedMail,
    HookContext,
    MessageGenerator,
    MessageHook,
    generate_message,
    generate_messages,
)
from .mail._generate import DEFAULT_NON_ASCII_LOCALES as DEFAULT_NON_ASCII_LOCALES
from .mail._generate._text import CRLF as CRLF

__all__ = [
    "DEFAULT_END",
    "DEFAULT_START",
    "MIN_SIZE_FLOOR",
    "GeneratedMail",
    "HookContext",
    "MessageGenerator",
    "MessageHook",
    "generate_message",
    "generate_messages",
]
