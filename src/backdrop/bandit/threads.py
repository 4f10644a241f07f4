"""One BLAS thread for the small matrices of the bandit policies.

A policy's algebra is on matrices of a few dozen rows (64 x 64 per arm): a multithreaded BLAS
spends more on waking its threads than on the work, measured 10x slower on a 2-core machine
(LinUCB's 100k simulated rounds: 49.8 s with the default threads, 5.1 s with one). The simulator,
the learner and the decision service run their policy code inside :func:`small_matrices`.
"""

from __future__ import annotations

from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def small_matrices():
    """Limit BLAS (OpenBLAS, MKL, BLIS) to one thread inside the block; the previous limits come back after."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def limit_for_process():
    """Limit BLAS to one thread for the rest of the process (a service worker); returns the limiter,
    whose ``restore_original_limits()`` undoes it."""
    return threadpool_limits(limits=1, user_api="blas")
