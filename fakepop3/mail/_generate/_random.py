"""Seeded streams: how message *k*'s random numbers are derived from the seed.

Every random number of a generated mailbox comes from a stream keyed by
``(seed, purpose)``: the purposes are ``"size"`` (message sizes), ``"message"``
(each message's plan, then its content), ``"hook"`` and ``"hook-random"`` (what a
hook's ``ctx.faker`` and ``ctx.random`` are seeded with).  A purpose's key is a
BLAKE2 digest made once per generator; message *k*'s seed is the SplitMix64
output for ``key + (k + 1) * GOLDEN``.

Rules a maintainer must keep:

* These functions are part of the output: changing a constant, the digest, the
  string fed to it or the mixing steps changes every generated message (the
  pinned digests in ``tests/test_generate.py`` say so at once).
* Integer arithmetic only, masked to 64 bits, so a seed is the same on every
  machine and Python version.  ``Planner.sizes`` inlines :func:`derive` (one
  Python call per message saved); keep the two in step.
* A new purpose gets a new name here; never reuse a purpose's stream for
  something else (it would shift the draws of the existing one).
"""

from __future__ import annotations

import hashlib

__all__ = ["GOLDEN", "MASK64", "MIX1", "MIX2", "derive", "stream_key"]

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def stream_key(seed: int, purpose: str) -> int:
    """The 64-bit key of one purpose's streams (any int seed), stable across machines."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def derive(key: int, index: int) -> int:
    """A 64-bit seed for message ``index`` of the stream ``key`` (SplitMix64)."""
    z = (key + (index + 1) * GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)
