"""What a style is made of, as categorical attributes a learner can share what it learns through.

A style is its scene (sweep, tabletop, room...), floor surface, palette rule, podium, light and
season; an arm ``"STYLE+VARIANT"`` adds its overlay (a price tag, a sale badge). Two styles with
a podium share the ``podium=`` attribute, so a taste for podiums learnt on one reaches the other,
and a new style starts from what its attributes are known to be worth.

>>> from backdrop.styles import StyleLibrary
>>> attrs = arm_attributes("podium-pastel+price", StyleLibrary.load().all_styles())
>>> attrs["scene"], attrs["podium"], attrs["overlay"]
('sweep', 'cylinder', 'price')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from . import Style, StyleLibrary
from .evolve import parent_of

#: the attributes every arm has, in this order (an arm without a value for one has "none")
ATTRIBUTES = ("scene", "surface", "palette", "podium", "light", "season", "overlay")

#: what joins a style and its variant in an arm's name
VARIANT_SEP = "+"


def style_attributes(style: Style) -> dict[str, str]:
    """The style's attributes (overlay "none": a variant adds its own)."""
    p = style.procedural
    light = "sun" if p.get("sun") or p.get("sun_pattern") else "spot" if p.get("scene") == "spotlight" else "soft"
    return {
        "scene": str(p.get("scene", "none")),
        "surface": str(p.get("surface", "none")),
        "palette": str(p.get("palette", "none")),
        "podium": str(p.get("podium", "none")),
        "light": light,
        "season": "seasonal" if style.season is not None else "all-year",
        "overlay": "none",
    }


def arm_attributes(arm: str, styles: Mapping[str, Style]) -> dict[str, str]:
    """Attributes of an arm (a style, or ``STYLE+VARIANT``) among ``styles`` (``StyleLibrary.all_styles()``);
    a bred variant not among them (``PARENT__vTAG``) has its parent's, any other style "none" for all.

    >>> styles = StyleLibrary.load().all_styles()
    >>> arm_attributes("podium-pastel__v1a2b+price", styles) == arm_attributes("podium-pastel+price", styles)
    True
    """
    base, _, variant = arm.partition(VARIANT_SEP)
    style = styles.get(base)
    while style is None and (parent := parent_of(base)) is not None:
        base = parent
        style = styles.get(base)
    attrs = style_attributes(style) if style is not None else dict.fromkeys(ATTRIBUTES, "none")
    if variant:
        attrs["overlay"] = variant
    return attrs


class AttributeEncoder:
    """One-hot vectors of arms' attributes, with a leading 1 (what every arm shares).

    The vocabulary is fixed when built (from the arms it is given); a value it has not seen
    encodes as all zeros in that attribute's slots, so a new style still gets the shared 1 and
    its known attributes.

    >>> enc = AttributeEncoder({"a": {"scene": "sweep"}, "b": {"scene": "room"}})
    >>> enc.names
    ['1', 'scene=room', 'scene=sweep']
    >>> enc.vector({"scene": "room"}).tolist()
    [1.0, 1.0, 0.0]
    """

    def __init__(self, arms: Mapping[str, Mapping[str, str]]):
        values = sorted({f"{k}={v}" for attrs in arms.values() for k, v in attrs.items()})
        self.names = ["1", *values]
        self._slot = {name: i for i, name in enumerate(self.names)}

    def vector(self, attrs: Mapping[str, str]) -> np.ndarray:
        v = np.zeros(len(self.names))
        v[0] = 1.0
        for k, value in attrs.items():
            slot = self._slot.get(f"{k}={value}")
            if slot is not None:
                v[slot] = 1.0
        return v


def arm_feature_vectors(arms: Iterable[str], library: StyleLibrary) -> dict[str, list[float]]:
    """Per arm, its attribute vector (:class:`AttributeEncoder` over these arms): what
    ``HybridLinUCB(arm_features=...)`` shares across styles."""
    styles = library.all_styles()
    attrs = {arm: arm_attributes(arm, styles) for arm in arms}
    enc = AttributeEncoder(attrs)
    return {arm: enc.vector(a).tolist() for arm, a in attrs.items()}


def library_arm_features(library: StyleLibrary, overlays: Iterable[str] = ()) -> dict[str, list[float]]:
    """Attribute vectors, on one vocabulary, of every style in ``library`` alone and with each of
    ``overlays`` (``STYLE+OVERLAY``): every arm a service may be asked to serve from it.

    >>> feats = library_arm_features(StyleLibrary.load(), ["price"])
    >>> len(feats["podium-pastel"]) == len(feats["podium-pastel+price"]), "podium-pastel+price" in feats
    (True, True)
    """
    arms = [arm for name in library.all_styles() for arm in (name, *(f"{name}{VARIANT_SEP}{o}" for o in overlays))]
    return arm_feature_vectors(arms, library)
