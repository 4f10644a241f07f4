"""What a decision may offer: the item's servable creatives on a placement, and its baseline.

The index says what the store holds and what review and QA allow; a file found damaged after the
index was loaded (:class:`DamagedFiles`) leaves the candidates at once. The baseline (the arm
``original``) is the catalog photo fitted to the placement when the store has it, else the catalog
photo itself, and ``None`` when neither can be read: a decision that needs it is then refused
before anything is logged, and readiness counts it (:func:`missing_baselines`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ..bandit.arms import ORIGINAL
from .index import CreativeIndex, _Creative

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidates:
    """An (item, placement)'s servable styles, its baseline (None: cannot be served), and the stored
    arms left out because their files were found damaged."""

    styles: dict[str, _Creative]
    original: _Creative | None
    unavailable: tuple[str, ...] = ()

    def creative(self, arm: str) -> _Creative:
        """The creative an arm is answered with (the baseline for ``original``)."""
        c = self.original if arm == ORIGINAL else self.styles.get(arm)
        if c is None:
            raise KeyError(arm)
        return c


def baseline_of(index: CreativeIndex, item: str, placement: str, damaged: DamagedFiles | None = None) -> _Creative | None:
    """The creative shown for an item's baseline on a placement: its stored ``original`` rendition
    (the photo on the placement's canvas), else the catalog photo (a store made before ``generate``
    fitted it); None when neither can be served, or a reviewer rejected the fitted one."""
    bad = damaged.keys if damaged is not None else frozenset()
    return next((c for c in index.baseline_choices(item, placement) if c.key not in bad), None)


def candidates_for(index: CreativeIndex, item: str, placement: str, damaged: DamagedFiles | None = None) -> Candidates:
    """The servable styles of ``item`` on ``placement`` and its baseline, as of ``index`` and ``damaged``."""
    stored = index.by_item.get((item, placement), {})
    bad = damaged.keys if damaged is not None else frozenset()
    styles = {arm: c for arm, c in stored.items() if arm != ORIGINAL and c.key not in bad}
    unavailable = tuple(sorted(arm for arm, c in stored.items() if c.key in bad))
    return Candidates(styles, baseline_of(index, item, placement, damaged), unavailable)


def missing_baselines(index: CreativeIndex, damaged: DamagedFiles | None = None) -> list[tuple[str, str]]:
    """(item, placement) pairs whose baseline cannot be served (the snapshot's, once; then only the
    pairs a damaged file served are looked at again)."""
    missing, users = index.baselines
    found = dict.fromkeys(missing)
    for key in damaged.keys if damaged is not None else ():
        for pair in users.get(key, ()):
            if baseline_of(index, *pair, damaged) is None:
                found[pair] = None
    return list(found)


class DamagedFiles:
    """Creative files found damaged after the index was loaded, by a GET or the periodic size check.

    A key marked here leaves the candidates at once (the store refresh would only find it on its
    next pass) and counts toward readiness; :meth:`check` forgets it once its file matches again.
    """

    def __init__(self) -> None:
        self._found: dict[str, str] = {}
        self._lock = threading.Lock()
        self.keys: frozenset[str] = frozenset()

    def mark(self, key: str, why: str) -> None:
        with self._lock:
            if key not in self._found:
                logger.error("creative %s taken out of the candidates: %s", key, why)
            self._found[key] = why
            self.keys = frozenset(self._found)

    def why(self, key: str) -> str:
        return self._found.get(key, "")

    def check(self, index: CreativeIndex) -> list[str]:
        """Stat every local file the index serves: mark the damaged ones, forget the restored ones.
        The keys found damaged, sorted. (Files on object storage are checked by the store refresh's listing.)"""
        damaged = {}
        for key, c in index.files.items():
            why = file_problem(c)
            if why:
                damaged[key] = why
        with self._lock:
            for key in set(self._found) - set(damaged):
                if key in index.files:
                    logger.warning("creative %s matches the store's index again; served again", key)
                    del self._found[key]
            for key, why in damaged.items():
                if key not in self._found:
                    logger.error("creative %s taken out of the candidates: %s", key, why)
                self._found[key] = why
            self.keys = frozenset(self._found)
        return sorted(damaged)


def file_problem(c: _Creative) -> str:
    """Why a local creative's file cannot be served as indexed ("" when it can, or when it is remote)."""
    if c.path is None:
        return ""
    try:
        size = c.path.stat().st_size
    except OSError as e:
        return f"file {c.path} cannot be read: {e.strerror}"
    if c.size is not None and size != c.size:
        return f"file {c.path} has {size} bytes, the index says {c.size}"
    if size == 0:
        return f"file {c.path} is empty"
    return ""
