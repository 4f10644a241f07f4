"""The closed loop on a real store: which styles win per category (and audience), variants of the
winners, and the styles to retire.

What each style is worth is estimated from the decision service's own log, off-policy: the click
rate a category would have had if every impression had shown that style, by self-normalised
inverse propensity weighting of the logged choices (a style the policy shows mostly to the people
who like it is not flattered by it), with a normal interval. Then, per category:

* **winners**: the ``parents`` styles with the highest estimate among those shown at least
  ``min_impressions`` times; each breeds a variant (:func:`backdrop.styles.evolve.mutate`) that is
  written into a copy of the style library, so that ``backdrop generate --style-library`` makes its
  creatives and they go through QA and review like any other; the service's learner starts the
  variant from its parent (``PooledUCB``'s ``inherit``);
* **retire**: styles whose interval lies wholly below the best style's (they stay in the store).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..bandit.arms import ORIGINAL
from ..styles import StyleLibrary
from ..styles.evolve import mutate

Z95 = 1.959963984540054


@dataclass(frozen=True)
class StyleValue:
    """A style's estimated click rate in a category (and audience), had it been shown to everyone there."""

    category: str
    style: str
    audience: str  # "" for everyone, else "FIELD=VALUE"
    shown: int  # impressions that showed it
    rows: int  # impressions where it was offered
    value: float  # SNIPS estimate
    low: float
    high: float


def style_values(rows: Iterable[tuple], category_of: Mapping[str, str], by: str | None = None) -> list[StyleValue]:
    """Per (category, audience, style) the SNIPS value of "always this style", from logged
    ``(DecisionRecord, reward)`` rows; the baseline (catalog image), fallbacks and rows of an
    unknown item are left out. ``by``: a user field to split the audience by.

    >>> from backdrop.serving.records import DecisionRecord
    >>> rows = [(DecisionRecord(str(i), 0.0, "p", "square", ["a", "b"], "ab"[i % 2], 0.5, "x", 0, []), float(i % 4 == 0)) for i in range(8)]
    >>> [(v.style, v.shown, round(v.value, 2)) for v in style_values(rows, {"p": "Shoes"})]
    [('a', 4, 0.5), ('b', 4, 0.0)]
    """
    # per cell: shown, offered, sum w, sum w r, sum w^2, sum w^2 r, sum w^2 r^2 (w = 1 / propensity)
    cells: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0])
    rates = True  # every reward in [0, 1]: a rate, whose interval ends at 1
    for d, r in rows:
        if d.fallback is not None or d.arm == ORIGINAL or d.item_id not in category_of or d.propensity <= 0:
            continue
        reward = 0.0 if r is None else float(r)
        rates = rates and 0.0 <= reward <= 1.0
        audiences = [""]
        if by is not None and by in (d.user_features or {}):
            audiences.append(f"{by}={d.user_features[by]}")
        for audience in audiences:
            for arm in d.arms:
                if arm == ORIGINAL:
                    continue
                c = cells[(category_of[d.item_id], audience, arm)]
                c[1] += 1
                if arm == d.arm:
                    w = 1.0 / d.propensity
                    c[0] += 1
                    c[2] += w
                    c[3] += w * reward
                    c[4] += w * w
                    c[5] += w * w * reward
                    c[6] += w * w * reward * reward
    out = []
    for (category, audience, style), (shown, offered, sw, swr, sw2, sw2r, sw2r2) in sorted(cells.items()):
        if not shown:
            continue
        value = swr / sw
        # delta-method variance of a ratio estimator: sum w^2 (r - value)^2 / (sum w)^2
        var = max(sw2r2 - 2 * value * sw2r + value * value * sw2, 0.0) / (sw * sw) if shown > 1 else 0.25
        half = Z95 * math.sqrt(var)
        high = min(value + half, 1.0) if rates else value + half
        out.append(StyleValue(category, style, audience, int(shown), int(offered), value, max(0.0, value - half), high))
    return out


@dataclass
class Plan:
    winners: dict[str, list[StyleValue]]  # category -> the styles to breed from, best first
    retire: dict[str, list[StyleValue]]  # category -> the styles whose interval lies below the best's
    values: list[StyleValue]


def plan(values: list[StyleValue], min_impressions: int = 300, parents: int = 2) -> Plan:
    """Winners and retirements per category (everyone, not the audiences: those are for reading)."""
    by_cat: dict[str, list[StyleValue]] = defaultdict(list)
    for v in values:
        if not v.audience and v.shown >= min_impressions:
            by_cat[v.category].append(v)
    winners, retire = {}, {}
    for cat, vs in by_cat.items():
        vs.sort(key=lambda v: -v.value)
        winners[cat] = vs[:parents]
        losers = [v for v in vs[1:] if v.high < vs[0].low]
        if losers:
            retire[cat] = losers
    return Plan(winners, retire, values)


def breed(library_yaml: dict, library: StyleLibrary, winners: Mapping[str, list[StyleValue]], seed: int = 0) -> tuple[dict, list[dict]]:
    """A copy of the library's YAML with one variant of every winner added to the winner's category
    (under the category's library key), and what was bred: ``[{category, products, parent, variant,
    description}]`` (``products``: the store's category the winner won in)."""
    raw = yaml.safe_load(yaml.safe_dump(library_yaml))  # a deep copy of plain data
    styles = library.all_styles()
    bred: list[dict] = []
    for category, vs in sorted(winners.items()):
        key = library.match(tuple(p.strip() for p in category.split(">"))).category
        entry = raw["categories"][key]
        listed = entry["styles"] if isinstance(entry, dict) else entry
        for v in vs:
            parent = styles.get(v.style.partition("+")[0])
            if parent is None:
                continue
            child = mutate(parent, seed=seed + len(bred))
            spec = child.model_dump(mode="json", exclude_none=True, exclude_defaults=True, exclude={"name"})
            raw.setdefault("styles", {})[child.name] = spec
            if child.name not in listed:
                listed.append(child.name)
            bred.append(
                {"category": key, "products": category, "parent": parent.name, "variant": child.name, "description": child.description}
            )
    return raw, bred


def write_library(raw: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# written by `backdrop evolve`: the style library with variants of the winning styles\n" + yaml.safe_dump(raw, sort_keys=False)
    )
    return path


def to_dict(p: Plan, bred: list[dict]) -> dict:
    return {
        "winners": {c: [asdict(v) for v in vs] for c, vs in p.winners.items()},
        "retire": {c: [asdict(v) for v in vs] for c, vs in p.retire.items()},
        "bred": bred,
        "values": [asdict(v) for v in p.values],
    }
