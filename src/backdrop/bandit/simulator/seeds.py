"""Independent, reproducible random streams: adding a stream never shifts another."""

from __future__ import annotations

import hashlib

import numpy as np


def rng_stream(seed: int, *tags) -> np.random.Generator:
    """An independent stream per (seed, tag...): adding a stream never shifts another."""
    key = "/".join(str(t) for t in tags).encode()
    words = np.frombuffer(hashlib.blake2b(key, digest_size=16).digest(), dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words.tolist()]))


def stable_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=4).digest(), "little")
