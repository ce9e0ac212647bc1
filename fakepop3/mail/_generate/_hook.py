"""What a message hook is given: :class:`HookContext`, and the :data:`MessageHook` type.

Rules a maintainer must keep:

* A hook's randomness comes only from ``ctx.random`` and ``ctx.faker``, both
  seeded per message from the ``"hook-random"`` and ``"hook"`` streams
  (see ``_random.py``), so hooked output stays deterministic.
* ``ctx.faker`` is a locale's shared full Faker: it is seeded and used with that
  locale's lock held (``MessageGenerator.message``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Faker is imported on first use: a cold STAT does not need it
    from faker import Faker

__all__ = ["HookContext", "MessageHook"]

MessageHook = Callable[["HookContext", bytes], "bytes | str | None"]
"""A hook ``hook(ctx, message) -> bytes | str | None``.

Called with the finished message; return replacement bytes (or ``str``), or
``None`` to keep the message. Use ``ctx.random`` and ``ctx.faker`` (both seeded
for this message) for anything random, so the output stays deterministic.
"""


@dataclass(frozen=True)
class HookContext:
    """What a :data:`MessageHook` gets besides the message bytes."""

    index: int
    """Position *k* of the message in the mailbox (0-based)."""
    seed: int
    """The mailbox seed."""
    message_id: str
    """The ``Message-ID`` of the generated message, with angle brackets."""
    parent: int | None
    """Index of the message this one replies to, or ``None``."""
    random: random.Random
    """A random generator seeded for this message only."""
    faker: Faker
    """A Faker instance seeded for this message only (shared; do not keep it)."""
