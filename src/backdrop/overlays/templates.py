"""Overlay templates: what a catalog ad carries over its scene (price, badge, logo, call to action).

Templates are YAML like styles (``overlays.yaml`` in the package, or ``--overlay-library FILE``);
a template's digest is part of every creative's key made with it, so the same scene with and
without a price are two creatives the bandit can choose between.

>>> library = OverlayLibrary.load()
>>> [e.kind for e in library.get("price-badge").elements]
['price', 'badge']
>>> library.get("sale").requires
['sale_price']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
Kind = Literal["price", "badge", "logo", "cta"]
Fill = Literal["none", "sale", "dark", "light"]
Need = Literal["price", "sale_price", "badge", "brand_logo"]


class Element(BaseModel):
    """One thing drawn over the scene, in a corner of the placement's safe area."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    #: where it goes first; the other corners are tried when the product is in the way
    corner: Corner = "bottom-left"
    #: text cap height (logo: its height) as a share of the canvas's shorter side
    size: float = Field(default=0.05, gt=0.01, le=0.25)
    #: badge / cta text; {badge}, {discount} (percent off), {brand} are filled from the product
    text: str = ""
    #: a pill behind the text (badge, cta); "none": the text alone, on a plate where it needs one
    fill: Fill = "none"


class OverlayTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    #: product fields the template needs; products without them do not get it
    requires: list[Need] = Field(default_factory=list)
    elements: list[Element] = Field(min_length=1)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]

    def needs(self) -> set[str]:
        """Every product field the template needs (declared, and implied by its elements)."""
        need: set[str] = set(self.requires)
        for e in self.elements:
            if e.kind == "price":
                need.add("price")
            if e.kind == "logo":
                need.add("brand_logo")
            if "{badge}" in e.text:
                need.add("badge")
            if "{discount}" in e.text:
                need.add("sale_price")
        return need


@dataclass(frozen=True)
class OverlayLibrary:
    templates: dict[str, OverlayTemplate] = field(default_factory=dict)
    source: str = "<memory>"

    @classmethod
    def load(cls, path: str | Path | None = None) -> OverlayLibrary:
        if path is None:
            text, source = resources.files("backdrop.overlays").joinpath("overlays.yaml").read_text(), "overlays.yaml (packaged)"
        else:
            try:
                text, source = Path(path).read_text(), str(path)
            except OSError as e:
                raise ConfigError(f"{path}: cannot read the overlay library ({e.strerror or e})") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: not valid YAML ({e})") from None
        templates = {}
        for name, body in (raw.get("templates") or {}).items():
            try:
                templates[name] = OverlayTemplate(name=name, **(body or {}))
            except (ValidationError, TypeError) as e:
                raise ConfigError(f"{source}: overlay template '{name}': {_problems(e)}") from None
        return cls(templates, source)

    def get(self, name: str) -> OverlayTemplate:
        try:
            return self.templates[name]
        except KeyError:
            raise ConfigError(f"unknown overlay template '{name}'; known: none, {', '.join(sorted(self.templates))}") from None


def _problems(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
    return str(e)
