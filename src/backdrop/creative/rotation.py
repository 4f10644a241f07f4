"""Styles taken out of a category's rotation: retired, not deleted.

A style the closed loop found worse than its category's best (``backdrop evolve --retire``) leaves
what the service offers for that category's products, with its overlay variants; its creatives stay
in the store, and ``unretire`` brings it back. The service picks a change up at its next store
refresh.
"""

from __future__ import annotations

import time

from .review import query_or_empty
from .store import CreativeStore


def retire(store: CreativeStore, category: str, style: str, reason: str) -> None:
    """Take ``style`` out of ``category``'s rotation: a style with all its overlay variants, or one
    arm ``STYLE+OVERLAY`` alone."""
    db = store._db()
    with db:
        db.execute("DELETE FROM retired WHERE category=? AND style=?", (category, style))
        db.execute("INSERT INTO retired VALUES (?, ?, ?, ?)", (category, style, reason, time.time()))


def unretire(store: CreativeStore, category: str, style: str) -> bool:
    """Put it back; False when it was not retired."""
    db = store._db()
    with db:
        gone = db.execute("DELETE FROM retired WHERE category=? AND style=?", (category, style)).rowcount
    return bool(gone)


def retired(store: CreativeStore) -> dict[tuple[str, str], str]:
    """(category, style) -> why, for every retired style; empty for a store from before retirement."""
    return {(c, s): why for c, s, why in query_or_empty(store, "SELECT category, style, reason FROM retired")}


def is_retired(arm: str, category: str, retired_styles: dict[tuple[str, str], str]) -> bool:
    """Whether an arm (a style, or ``STYLE+OVERLAY``) of a product in ``category`` is out of rotation:
    it is retired, or its style is.

    >>> out = {("Juices", "wood-table"): "below color-pop", ("Juices", "color-pop+sale"): "below color-pop"}
    >>> [is_retired(a, "Juices", out) for a in ("wood-table+price", "color-pop+sale", "color-pop")]
    [True, True, False]
    """
    return (category, arm) in retired_styles or (category, arm.partition("+")[0]) in retired_styles
