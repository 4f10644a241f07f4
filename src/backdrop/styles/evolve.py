"""Variants of a winning style: its procedural parameters and prompt mutated, named after it.

A variant of ``studio-sweep`` is ``studio-sweep__v3a9c`` (:data:`VARIANT_OF`): the name says whose
child it is, so a learner can start it from what it knows of the parent (``PooledUCB`` does), and the
console can show the lineage. What changes is one or two of the things a retailer would vary in a
shoot -- the palette rule, the floor's material, a podium, the light -- plus small moves of
saturation, lightness and light strength; the scene kind stays, so a tabletop stays a tabletop and
on-model products keep a set they can stand in.

>>> from backdrop.styles import StyleLibrary
>>> parent = StyleLibrary.load().all_styles()["studio-sweep"]
>>> child = mutate(parent, seed=1)
>>> parent_of(child.name), child.procedural["scene"]
('studio-sweep', 'sweep')
>>> parent_of("studio-sweep+price"), parent_of("studio-sweep__v3a9c+price")
(None, 'studio-sweep+price')
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from . import Style
from .params import validate_params

#: what joins a parent style's name and its variant's tag
VARIANT_OF = "__"

#: what a mutation may change, and to what
PALETTES = ("complementary", "analogous", "monochrome", "neutral")
SURFACES_FOR = {
    "sweep": ("paper", "plain"),
    "tabletop": ("wood", "marble", "linen", "concrete"),
    "room": ("plain", "concrete", "wood", "terrazzo"),
    "spotlight": ("plain",),
    "bokeh": ("marble", "plain"),
    "gradient": ("plain",),
}
PODIUMS = ("none", "cylinder", "cube", "discs")
LIGHTS = ("soft", "window", "leaves", "blinds")
#: scenes a podium stands in (a gradient has no floor)
PODIUM_SCENES = frozenset({"sweep", "room", "spotlight"})


def parent_of(arm: str) -> str | None:
    """The arm a variant was bred from (an overlay stays on: ``a__v1+price`` -> ``a+price``); None for an original."""
    base, sep, overlay = arm.partition("+")
    if VARIANT_OF not in base:
        return None
    return base.rsplit(VARIANT_OF, 1)[0] + sep + overlay


def mutate(style: Style, seed: int, changes: int = 2) -> Style:
    """A variant of ``style``: ``changes`` of palette / surface / podium / light changed, small jitter
    on saturation, lightness and light strength; a valid style (its parameters checked) named
    ``PARENT__vXXXX`` after what changed, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    p = dict(style.procedural)
    scene = p.get("scene", "sweep")
    moves = ["palette", "light"]
    if len(SURFACES_FOR.get(scene, ())) > 1:
        moves.append("surface")
    if scene in PODIUM_SCENES:
        moves.append("podium")
    said: list[str] = []
    changed = {str(m) for m in rng.permutation(moves)[:changes]}
    for move in sorted(changed):
        if move == "palette":
            p["palette"] = _other(rng, PALETTES, p.get("palette", "neutral"))
            p.pop("colors", None)  # explicit colours belong to the parent's palette
            said.append(f"{_a(p['palette'])} palette")
        elif move == "surface":
            p["surface"] = _other(rng, SURFACES_FOR[scene], p.get("surface", "plain"))
            said.append(f"{_a(p['surface'])} surface")
        elif move == "podium":
            podium = _other(rng, PODIUMS, p.get("podium", "none"))
            if podium == "none":
                for key in [k for k in p if k.startswith("podium")]:
                    p.pop(key)
                said.append("no podium")
            else:
                p["podium"] = podium
                said.append(f"{_a(podium)} podium")
        else:
            light = _other(rng, LIGHTS, p.get("sun_pattern", "soft") if p.get("sun") or p.get("sun_pattern") else "soft")
            if light == "soft":
                p.pop("sun", None)
                p.pop("sun_pattern", None)
                said.append("soft light")
            else:
                p["sun"] = p.get("sun") or 0.5
                p["sun_pattern"] = light
                said.append(f"{light} light")
    for key, low, high, step in (("saturation", 0.0, 1.0, 0.08), ("lightness", 0.3, 0.96, 0.04), ("light_strength", 0.0, 1.0, 0.08)):
        if key in p:
            p[key] = round(float(np.clip(p[key] + rng.normal(0, step), low, high)), 3)
    validate_params(p)
    tag = hashlib.blake2b(json.dumps(p, sort_keys=True).encode(), digest_size=2).hexdigest()
    what = ", ".join(said)
    return style.model_copy(
        update={
            "name": f"{style.name}{VARIANT_OF}v{tag}",
            "description": f"{style.description.rstrip('.')}; variant with {what}.",
            "prompt": f"{style.prompt}, {what}",
            "on_model_prompt": f"{style.on_model_prompt}, {what}" if style.on_model_prompt else "",
            "procedural": p,
            # the look promises a tone and a surface: a new palette or floor breaks that promise
            "look": None if {"palette", "surface"} & changed else style.look,
        }
    )


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _other(rng: np.random.Generator, options, current: str) -> str:
    choices = [o for o in options if o != current] or list(options)
    return str(choices[int(rng.integers(len(choices)))])
