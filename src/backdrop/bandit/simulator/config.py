"""The audience and its effect sizes in interpretable units, and the named presets."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CategoricalSpec(BaseModel):
    """A categorical user field: values and their population shares (uniform when omitted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["categorical"] = "categorical"
    values: list[str] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self) -> CategoricalSpec:
        if self.weights is not None and (len(self.weights) != len(self.values) or min(self.weights) < 0 or sum(self.weights) <= 0):
            raise ValueError("weights must be one non-negative number per value, not all zero")
        if len(set(self.values)) != len(self.values):
            raise ValueError("values must be distinct")
        return self


class NumericSpec(BaseModel):
    """A numeric user field: normal(mean + segment shift, sd) or exponential(mean), clipped to [low, high]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["numeric"] = "numeric"
    distribution: Literal["normal", "exponential"] = "normal"
    mean: float
    sd: float = Field(default=1.0, gt=0)  # normal only; the exponential's sd is its mean
    low: float | None = None
    high: float | None = None
    #: sd of a per-segment shift of the mean (normal only): makes the field tell segments apart
    segment_shift_sd: float = Field(default=0.0, ge=0)
    decimals: int = Field(default=1, ge=0, le=6)

    @model_validator(mode="after")
    def _check(self) -> NumericSpec:
        if self.distribution == "exponential" and self.mean <= 0:
            raise ValueError("an exponential field needs mean > 0")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low must be <= high")
        return self

    @property
    def scale(self) -> float:
        return self.sd if self.distribution == "normal" else max(self.mean, 1e-9)


FieldSpec = CategoricalSpec | NumericSpec


def _default_fields() -> dict[str, FieldSpec]:
    return {
        "device": CategoricalSpec(values=["mobile", "desktop", "tablet"], weights=[0.6, 0.3, 0.1]),
        "age": NumericSpec(mean=38, sd=12, low=18, high=80, segment_shift_sd=8, decimals=0),
        "recency_days": NumericSpec(distribution="exponential", mean=14, low=0, high=365),
    }


class TasteWeights(BaseModel):
    """Relative weights of the terms of the personal taste h (the total is scaled by calibration).

    Every term is a table of independent N(0, 1) draws indexed as named, times the weight; the sum
    is divided by the root of the sum of squared weights. A term a linear model on the default
    encoder cannot represent (``segment_category_placement``, ``user``) is noise to the policies:
    it caps what any of them can learn, as real tastes would.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: float = Field(default=1.0, ge=0)  # segment x style
    segment_category: float = Field(default=0.8, ge=0)  # segment x category x style
    placement_category: float = Field(default=0.6, ge=0)  # placement x category x style
    segment_category_placement: float = Field(default=0.2, ge=0)  # segment x category x placement x style
    #: user field x style: a table per categorical value, a slope per numeric field (per standardised
    #: unit). None: :data:`DEFAULT_FIELD_TASTE` for the fields the population has, 0 for the others.
    fields: dict[str, float] | None = None
    user: float = Field(default=0.0, ge=0)  # per-user idiosyncratic taste (not learnable from features)
    #: segment x style attribute (scene, surface, palette, podium, light, season, overlay): a taste
    #: for podiums or for warm palettes, carried by every style that has one
    segment_attribute: float = Field(default=0.0, ge=0)
    #: placement x style attribute (a price tag that pays in a story but not in a square...)
    placement_attribute: float = Field(default=0.0, ge=0)

    def field_weights(self, field_names) -> dict[str, float]:
        if self.fields is not None:
            return {k: v for k, v in self.fields.items() if k in field_names}
        return {k: DEFAULT_FIELD_TASTE.get(k, 0.0) for k in field_names}

    def total(self, field_names=()) -> float:
        return math.sqrt(
            self.segment**2
            + self.segment_category**2
            + self.placement_category**2
            + self.segment_category_placement**2
            + sum(w * w for w in self.field_weights(field_names).values())
            + self.user**2
            + self.segment_attribute**2
            + self.placement_attribute**2
        )


DEFAULT_FIELD_TASTE = {"device": 0.5, "age": 0.5, "recency_days": 0.0}


class SimulationConfig(BaseModel):
    """The synthetic audience; effect sizes are relative CTR lifts, matched by calibration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_users: int = Field(default=5000, ge=1)
    n_segments: int = Field(default=4, ge=1, le=1000)
    #: user fields besides ``segment`` (which is always there: "s0".."s{n_segments-1}")
    fields: dict[str, FieldSpec] = Field(default_factory=_default_fields)
    #: placements shown and their share of impressions
    placements: dict[str, float] = Field(default_factory=lambda: {"square": 0.45, "landscape": 0.2, "story": 0.35})

    # -- calibrated effect sizes (population averages) --
    #: how much of a style's quality is the style's own, the same in every category (0: each
    #: category ranks its styles independently; 1: a style that wins in one category wins in all)
    quality_share: float = Field(default=0.0, ge=0, le=1)
    #: how much of that shared quality its attributes carry (0: each style is its own; 1: two styles
    #: with the same scene, surface, palette... are equally good)
    quality_attribute_share: float = Field(default=0.0, ge=0, le=1)

    #: CTR of the plain catalog image (see the module docstring for why not 1 %)
    base_ctr: float = Field(default=0.02, gt=0, lt=0.5)
    #: a generated creative (uniformly random style of the category) vs the catalog image (paper: ~ +15 %)
    generated_lift: float = Field(default=0.15, gt=-0.9, le=5)
    #: the best fixed style of each style set vs a uniformly random style
    style_spread: float = Field(default=0.10, ge=0, le=5)
    #: the best style for each impression (oracle) vs the best fixed style; the paper's LinUCB got ~ +5 %
    personal_spread: float = Field(default=0.10, ge=0, le=5)

    # -- base effects (not calibrated; they shift every creative of an impression alike) --
    #: odds multiplier - 1 per placement (about the CTR lift at low CTRs); missing = 0
    placement_lift: dict[str, float] = Field(default_factory=lambda: {"square": 0.0, "landscape": -0.15, "story": 0.10})
    category_sd: float = Field(default=0.25, ge=0)  # log-odds sd of category effects
    product_sd: float = Field(default=0.15, ge=0)  # log-odds sd of product effects
    user_sd: float = Field(default=0.4, ge=0)  # log-odds sd of the per-user random effect
    #: product popularity ~ rank^-zipf (0: uniform)
    popularity_zipf: float = Field(default=0.0, ge=0)

    taste: TasteWeights = Field(default_factory=TasteWeights)

    # -- variants of a style ("STYLE+VARIANT" arms: overlays such as a price tag) --
    #: sd of a variant's effect per category, in the unit of the style effect m (unit sd): how much
    #: a price tag helps or hurts a category's creatives over the same scene without one
    variant_sd: float = Field(default=0.5, ge=0)
    #: weight of the segment x variant taste next to the personal taste h (whose weights total 1)
    variant_taste: float = Field(default=0.5, ge=0)

    # -- feedback --
    #: mean delay (rounds) from an impression to its outcome reaching the policy; exponential; 0 = none
    delay_mean: float = Field(default=200.0, ge=0)
    #: policies are updated every this many rounds with the feedback that has arrived (update_many)
    update_every: int = Field(default=100, ge=1)

    seed: int = 0
    calibration_samples: int = Field(default=20000, ge=100)

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        if not self.placements or min(self.placements.values()) < 0 or sum(self.placements.values()) <= 0:
            raise ValueError("placements: give at least one placement with a positive share")
        for name, lift in self.placement_lift.items():
            if lift <= -1:
                raise ValueError(f"placement_lift.{name}: must be > -1")
        if "segment" in self.fields:
            raise ValueError("fields: 'segment' is built in (set n_segments)")
        for name, w in (self.taste.fields or {}).items():
            if name not in self.fields:
                raise ValueError(f"taste.fields.{name}: no such user field")
            if w < 0:
                raise ValueError(f"taste.fields.{name}: must be >= 0")
        return self


#: named overrides of :class:`SimulationConfig` (e.g. for a CLI ``--preset``):
#: ``paper`` is the defaults (paper-like lifts); ``strong`` has effects large enough that the
#: learners visibly beat the best fixed style within ~10k rounds (at paper-like effect sizes
#: that takes far more impressions than a laptop run: see the module docstring).
#: ``shared-quality``, ``attribute-tastes`` and ``shared`` are the paper's effect sizes in worlds
#: where what is learnt in one place holds in another: a style's quality partly the same across
#: categories (and partly carried by its attributes), tastes partly for attributes (a segment that
#: likes podiums likes every podium), or both. A learner is judged across these worlds, not on one.
PRESETS: dict[str, dict] = {
    "paper": {},
    "strong": {"base_ctr": 0.10, "style_spread": 0.20, "personal_spread": 0.50},
    "shared-quality": {"quality_share": 0.7, "quality_attribute_share": 0.5},
    "attribute-tastes": {"taste": {"segment_attribute": 1.0, "placement_attribute": 0.5}},
    "shared": {
        "quality_share": 0.7,
        "quality_attribute_share": 0.5,
        "taste": {"segment_attribute": 1.0, "placement_attribute": 0.5},
    },
}


def preset(name: str, **overrides) -> SimulationConfig:
    """:class:`SimulationConfig` of a named preset, with ``overrides`` on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return SimulationConfig(**(PRESETS[name] | overrides))
