"""One bounded cache for the per-process memos of the hot paths (parsed lines, status lines).

A :class:`BoundedCache` is a ``dict`` to read, and is written through :meth:`BoundedCache.put`,
which keeps it under its limit: when full, it starts again from its ``base`` entries (the ones
made at import and always wanted).  On a hot path, read it through its ``get`` bound once
(``lookup = cache.get`` at import; ``reset`` empties the same dict, so the bound method stays
right): ``cache.get(key)`` on a dict subclass is not specialized by CPython 3.11 to 3.13 (the
method call checks the exact type), a bound ``get`` is a plain C call.

Starting again rather than evicting one entry keeps ``put`` cheap, and a cache that fills up is
one fed by ever-new keys (a client sending ever-new lines, a maildrop that changes for ever),
where no entry is worth more than another.  See bench/README.md, "Speed notes".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict[K, V], Generic[K, V]):
    """A dict of at most ``limit`` entries besides its ``base`` ones; write with :meth:`put`."""

    __slots__ = ("base", "limit")

    def __init__(self, limit: int, base: Mapping[K, V] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"a BoundedCache holds at least one entry, not {limit}")
        self.base: dict[K, V] = dict(base or {})
        self.limit = limit + len(self.base)
        super().__init__(self.base)

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` for ``key`` and return it; a full cache starts again first."""
        if len(self) >= self.limit:
            self.reset()
        self[key] = value
        return value

    def reset(self) -> None:
        """Forget everything but the base entries."""
        self.clear()
        self.update(self.base)
