"""Delayed feedback: outcomes that reach the policy rounds after the impression."""

from __future__ import annotations

import heapq

import numpy as np


class DelayedFeedback:
    """Feedback that becomes known at a later round: ``push(due, item)``, ``pop_due(now)``.

    Items come out in due order (ties in push order); ``pop_due(now)`` returns every item with
    ``due <= now``.
    """

    def __init__(self):
        self._heap: list = []
        self._n = 0

    def push(self, due: int, item) -> None:
        heapq.heappush(self._heap, (due, self._n, item))
        self._n += 1

    def pop_due(self, now: int) -> list:
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def __len__(self) -> int:
        return len(self._heap)


def sample_delays(n: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """Delays in whole rounds, floor(Exponential(mean)); all 0 when ``mean`` is 0."""
    if mean <= 0:
        return np.zeros(n, dtype=np.int64)
    return np.floor(rng.exponential(mean, size=n)).astype(np.int64)
