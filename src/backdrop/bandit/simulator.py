"""A synthetic ad audience to test style-choosing policies against: users, impressions, clicks.

Three reusable pieces and a runner:

* :class:`SimulationConfig` -- the audience and its effect sizes, in interpretable units.
* :class:`Population` -- users (feature dicts), the catalog, its style sets and the placements;
  ``sample_impression(rng)`` / ``sample_impressions(n, rng)`` draw who sees which product where.
* :class:`ClickModel` -- the true click probability of an impression shown with a style (or with
  the plain catalog image, ``"original"``), the oracle, and the "best fixed style" table.
* :func:`simulate` -- runs policies on the same impressions and click draws, with delayed,
  batched feedback, and returns a :class:`SimulationResult` (table, JSON records, plot).

The click model (logit of the click probability of user u, product i, placement l, style s)::

    logit p = beta0 + cat[c] + place[l] + product[i] + user[u]                   (base; "original")
            + [s is a generated creative] * (gamma + k_style * m[c, s] + k_personal * h(u, c, l, s))

* ``cat``, ``product``, ``user`` are Gaussian log-odds effects (sd ``category_sd``, ``product_sd``,
  ``user_sd``); ``place[l] = log(1 + placement_lift[l])`` (an odds multiplier, about a CTR
  multiplier at these rates). They move every creative of an impression alike, so they add noise
  but no regret.
* ``m[c, s]``: how good style s is for category c on average (unit sd, centred over the
  category's styles).
* ``h``: the *personal* taste -- a weighted sum (weights in :class:`TasteWeights`) of
  segment x style, segment x category x style, placement x category x style,
  segment x category x placement x style, every other user field x style (categorical values,
  numeric slopes) and an optional per-user idiosyncratic taste; centred over the offered styles of
  each impression and then over the population for every (category, style), so that it decides
  *who* prefers which style but leaves each category's average style ranking to ``m``.

**Calibration.** Every random effect is drawn from ``config.seed``; then the four scalars
``beta0, gamma, k_style, k_personal`` are solved for (root finding, coordinate sweeps until the
relative errors are below 1e-6) on the exact click probabilities of ``calibration_samples``
impressions from the population -- no clicks are drawn -- so that:

* the catalog image's CTR is ``base_ctr``;
* a generated creative of a uniformly random style beats it by ``generated_lift``;
* the best fixed style per style set (``ClickModel.best_fixed``) beats the random style by
  ``style_spread``;
* the per-impression best style (the oracle) beats the best fixed style by ``personal_spread``.

:meth:`ClickModel.effects` measures these on any other sample; they match to within the Monte Carlo
error of the 20k calibration sample (measured about 0.002 in lift at the defaults; the tests allow
0.01, and 2 % relative on the base CTR).

**Why base_ctr 0.02, and what a run can show.** Display-ad CTRs are nearer 1 %, as in the paper,
but telling two styles apart takes about ``8 p / d^2`` impressions each (two standard errors of
the difference d of their CTRs p): ~300k each at 1 % and a 5 % lift. 2 % halves that, but at the paper-like defaults (+15 % generated, +10 % style spread,
+10 % personal spread) it is still far more than a 20k-round run: measured, LinUCB
(alpha 0.1, epsilon 0.05) is 6 % below the best fixed style over rounds 0-20k, 2 % below over
50k-100k and level only after ~200k rounds (the personalisation *is* learnable: a per-arm linear
model on the default 64 features, fitted on the true probabilities, gets 97 % of the oracle's
+10 %). The ``strong`` preset (``PRESETS``: base CTR 10 %, style spread +20 %, personal spread
+50 %) shows learning within a few thousand rounds. Set ``base_ctr=0.01`` for realism.

**Delayed feedback.** The outcome (click or not) of round t reaches the policy at round
``t + floor(Exponential(delay_mean))``, and policies are updated only every ``update_every``
rounds with everything that has arrived by then (``update_many``), as a deployed model is
retrained in batches. Feedback still in flight when the run ends is not delivered:
``updates + in_flight == rounds`` for every learning policy.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import optimize, special

from .features import FeatureConfig, FeatureEncoder, NumericField
from .arms import ORIGINAL
from .policies import (  # noqa: F401 - FixedStyle is re-exported: the best fixed style of a click model
    UCB1,
    EpsilonGreedy,
    FixedStyle,
    LinTS,
    LinUCB,
    Policy,
    Uniform,
    make_policy,
)

DEMO_CATALOG = Path(__file__).resolve().parents[1] / "data" / "demo" / "products.csv"


# -- configuration ----------------------------------------------------------------------------


class CategoricalSpec(BaseModel):
    """A categorical user field: values and their population shares (uniform when omitted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["categorical"] = "categorical"
    values: list[str] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self) -> CategoricalSpec:
        if self.weights is not None and (
            len(self.weights) != len(self.values) or min(self.weights) < 0 or sum(self.weights) <= 0
        ):
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


# -- small helpers ----------------------------------------------------------------------------


def _rng(seed: int, *tags) -> np.random.Generator:
    """An independent stream per (seed, tag...): adding a stream never shifts another."""
    key = "/".join(str(t) for t in tags).encode()
    words = np.frombuffer(hashlib.blake2b(key, digest_size=16).digest(), dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words.tolist()]))


def _stable_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=4).digest(), "little")


# -- population ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Impression:
    """One ad slot: who, which product, where, and the styles that can fill it."""

    user_id: str
    user_features: dict
    product_id: str
    category_path: tuple[str, ...]
    placement: str
    styles: tuple[str, ...]


@dataclass(frozen=True)
class ImpressionBatch:
    """Many impressions as index arrays into a :class:`Population` (fast path of the runner)."""

    user: np.ndarray
    product: np.ndarray
    placement: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


class Population:
    """Users, the catalog's products with their style sets, and the placements.

    ``products`` defaults to the demo catalog, ``library`` to the shipped style library; the
    placement names come from ``config.placements`` (checked against the placement file when
    ``check_placements``).
    """

    def __init__(
        self,
        config: SimulationConfig | None = None,
        products: Sequence | None = None,
        library=None,
        *,
        check_placements: bool = True,
    ):
        self.config = c = config or SimulationConfig()
        if products is None:
            from ..creative.catalog import load_catalog

            products = load_catalog(DEMO_CATALOG, check_images=False).products
        if not products:
            raise ValueError("the population needs at least one product")
        if library is None:
            from ..styles import StyleLibrary

            library = StyleLibrary.load()
        if check_placements:
            from ..errors import ConfigError
            from ..imaging.layout import load_placements

            known = load_placements()
            unknown = [p for p in c.placements if p not in known]
            if unknown:
                raise ConfigError(f"placements: unknown placement(s) {', '.join(unknown)}; known: {', '.join(known)}")

        # products, categories, style sets
        self.products = list(products)
        self.product_ids = [p.product_id for p in self.products]
        self.product_index = {pid: i for i, pid in enumerate(self.product_ids)}
        self.categories: list[tuple[str, ...]] = []
        cat_index: dict[tuple, int] = {}
        self.style_sets: list[tuple[str, ...]] = []
        set_index: dict[tuple, int] = {}
        names: dict[str, int] = {}
        product_cat, product_set = [], []
        for p in self.products:
            path = tuple(p.category_path)
            product_cat.append(cat_index.setdefault(path, len(cat_index)))
            if len(cat_index) > len(self.categories):
                self.categories.append(path)
            styles = tuple(s.name for s in library.for_category(path))
            if not styles:
                raise ValueError(f"no styles for category {' > '.join(path)}")
            product_set.append(set_index.setdefault(styles, len(set_index)))
            if len(set_index) > len(self.style_sets):
                self.style_sets.append(styles)
            for s in styles:
                names.setdefault(s, len(names))
        self.style_names: list[str] = list(names)
        self.style_index = names
        self.product_category = np.array(product_cat, dtype=np.intp)
        self.product_set = np.array(product_set, dtype=np.intp)
        self.category_set = np.zeros(len(self.categories), dtype=np.intp)
        self.category_set[self.product_category] = self.product_set
        k_max = max(len(s) for s in self.style_sets)
        self.set_styles = np.full((len(self.style_sets), k_max), -1, dtype=np.intp)
        for g, styles in enumerate(self.style_sets):
            self.set_styles[g, : len(styles)] = [names[s] for s in styles]
        weights = np.arange(1, len(self.products) + 1, dtype=np.float64) ** -c.popularity_zipf
        self.product_weights = weights / weights.sum()

        # placements
        self.placements = tuple(c.placements)
        self.placement_index = {p: i for i, p in enumerate(self.placements)}
        w = np.array([c.placements[p] for p in self.placements], dtype=np.float64)
        self.placement_weights = w / w.sum()

        # users
        rng = _rng(c.seed, "users")
        self.segments = tuple(f"s{k}" for k in range(c.n_segments))
        seg_share = rng.dirichlet(np.full(c.n_segments, 4.0)) if c.n_segments > 1 else np.ones(1)
        self.user_segment = rng.choice(c.n_segments, size=c.n_users, p=seg_share)
        self.user_ids = [f"u{k:0{max(5, len(str(c.n_users - 1)))}d}" for k in range(c.n_users)]
        self.user_index = {u: k for k, u in enumerate(self.user_ids)}
        self.categorical: dict[str, np.ndarray] = {}  # field -> value index per user
        self.numeric: dict[str, np.ndarray] = {}  # field -> standardised value per user
        columns: dict[str, list] = {}
        for name, spec in c.fields.items():
            frng = _rng(c.seed, "users", name)
            if isinstance(spec, CategoricalSpec):
                p = np.array(
                    spec.weights if spec.weights else [1.0] * len(spec.values),
                    dtype=np.float64,
                )
                idx = frng.choice(len(spec.values), size=c.n_users, p=p / p.sum())
                self.categorical[name] = idx
                columns[name] = [spec.values[k] for k in idx]
            else:
                if spec.distribution == "normal":
                    shift = (
                        frng.normal(0.0, spec.segment_shift_sd, size=c.n_segments)
                        if spec.segment_shift_sd
                        else np.zeros(c.n_segments)
                    )
                    v = frng.normal(spec.mean + shift[self.user_segment], spec.sd)
                else:
                    v = frng.exponential(spec.mean, size=c.n_users)
                if spec.low is not None or spec.high is not None:
                    v = np.clip(v, spec.low, spec.high)
                v = np.round(v, spec.decimals)
                self.numeric[name] = (v - spec.mean) / spec.scale
                columns[name] = [int(x) if spec.decimals == 0 else float(x) for x in v]
        self.users: list[dict] = [
            {
                "segment": self.segments[self.user_segment[k]],
                **{n: col[k] for n, col in columns.items()},
            }
            for k in range(c.n_users)
        ]

    # -- sampling -------------------------------------------------------------------------------

    def sample_impressions(self, n: int, rng: np.random.Generator) -> ImpressionBatch:
        return ImpressionBatch(
            user=rng.integers(len(self.users), size=n),
            product=rng.choice(len(self.products), size=n, p=self.product_weights),
            placement=rng.choice(len(self.placements), size=n, p=self.placement_weights),
        )

    def sample_impression(self, rng: np.random.Generator) -> Impression:
        return self.impression(self.sample_impressions(1, rng), 0)

    def sample_user(self, rng: np.random.Generator) -> tuple[str, dict]:
        k = int(rng.integers(len(self.users)))
        return self.user_ids[k], dict(self.users[k])

    def impression(self, batch: ImpressionBatch, i: int) -> Impression:
        u, p, l = int(batch.user[i]), int(batch.product[i]), int(batch.placement[i])
        product = self.products[p]
        return Impression(
            user_id=self.user_ids[u],
            user_features=dict(self.users[u]),
            product_id=product.product_id,
            category_path=tuple(product.category_path),
            placement=self.placements[l],
            styles=self.style_sets[self.product_set[p]],
        )

    def batch_of(self, impressions: Sequence[Impression]) -> ImpressionBatch:
        """Index arrays of impressions made by this population (looked up by id)."""
        try:
            return ImpressionBatch(
                user=np.array([self.user_index[i.user_id] for i in impressions], dtype=np.intp),
                product=np.array(
                    [self.product_index[i.product_id] for i in impressions],
                    dtype=np.intp,
                ),
                placement=np.array(
                    [self.placement_index[i.placement] for i in impressions],
                    dtype=np.intp,
                ),
            )
        except KeyError as e:
            raise ValueError(f"impression not from this population: unknown id {e.args[0]!r}") from None

    def contexts(self, batch: ImpressionBatch) -> list[tuple[dict, tuple[str, ...], str]]:
        """(user features, category path, placement) per row: what :class:`FeatureEncoder` takes."""
        return [
            (self.users[u], tuple(self.products[p].category_path), self.placements[l])
            for u, p, l in zip(batch.user.tolist(), batch.product.tolist(), batch.placement.tolist())
        ]

    def encoder_config(self, n_features: int = 64) -> FeatureConfig:
        """A feature layout for this population: segment and categorical fields one-hot, numeric standardised."""
        c = self.config
        return FeatureConfig(
            n_features=n_features,
            numeric={n: NumericField(center=s.mean, scale=s.scale) for n, s in c.fields.items() if isinstance(s, NumericSpec)},
            one_hot={"segment": list(self.segments)}
            | {n: list(s.values) for n, s in c.fields.items() if isinstance(s, CategoricalSpec)},
            segment_field="segment",
        )

    def encoder(self, n_features: int = 64) -> FeatureEncoder:
        return FeatureEncoder(self.encoder_config(n_features))


# -- click model --------------------------------------------------------------------------------


@dataclass
class _Parts:
    base: np.ndarray  # (n,) logit of the catalog image without beta0
    M: np.ndarray  # (n, K) category style effect (unit scale)
    H: np.ndarray  # (n, K) personal taste (unit scale, centred)
    S: np.ndarray  # (n, K) global style ids, -1 where the row offers fewer styles
    valid: np.ndarray  # (n, K)
    group: np.ndarray  # (n,) style-set index
    group_sizes: np.ndarray  # rows per style set (all sets of the population)
    _grouping: tuple | None = None

    def grouping(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row order sorted by style set, start of each present set in that order, the present sets)."""
        if self._grouping is None:
            order = np.argsort(self.group, kind="stable")
            ids = np.flatnonzero(self.group_sizes)
            starts = np.concatenate([[0], np.cumsum(self.group_sizes[ids])[:-1]]).astype(np.intp)
            self._grouping = (order, starts, ids)
        return self._grouping


class ClickModel:
    """True click probabilities for a :class:`Population`, drawn from ``config.seed`` and calibrated.

    ``beta0, gamma, k_style, k_personal`` are the calibrated scalars (see the module docstring);
    ``best_fixed`` maps each style set (tuple, library order) to its best fixed style.
    """

    def __init__(self, population: Population, config: SimulationConfig | None = None):
        self.population = pop = population
        self.config = c = config or population.config
        n_cat, n_sty, n_seg, n_pl = (
            len(pop.categories),
            len(pop.style_names),
            len(pop.segments),
            len(pop.placements),
        )
        rng = _rng(c.seed, "effects")
        self.cat_effect = rng.normal(0, c.category_sd, n_cat) if c.category_sd else np.zeros(n_cat)
        self.product_effect = rng.normal(0, c.product_sd, len(pop.products)) if c.product_sd else np.zeros(len(pop.products))
        self.user_effect = (
            _rng(c.seed, "effects", "user").normal(0, c.user_sd, len(pop.users)) if c.user_sd else np.zeros(len(pop.users))
        )
        self.place_effect = np.array([math.log1p(c.placement_lift.get(p, 0.0)) for p in pop.placements])

        # category-level style quality: unit sd, centred over the category's styles
        m = np.zeros((n_cat, n_sty))
        mrng = _rng(c.seed, "effects", "style")
        for ci in range(n_cat):
            ids = pop.set_styles[pop.category_set[ci]]
            ids = ids[ids >= 0]
            v = mrng.normal(size=len(ids))
            v = v - v.mean()
            sd = v.std()
            m[ci, ids] = v / sd if sd > 0 else 0.0
        self.m = m

        t = c.taste
        trng = _rng(c.seed, "effects", "taste")
        norm = t.total(c.fields) or 1.0
        self._w = {
            "segment": t.segment / norm,
            "segment_category": t.segment_category / norm,
            "placement_category": t.placement_category / norm,
            "segment_category_placement": t.segment_category_placement / norm,
            "user": t.user / norm,
        }
        self.T_seg = trng.normal(size=(n_seg, n_sty))
        self.T_segcat = trng.normal(size=(n_seg, n_cat, n_sty))
        self.T_plcat = trng.normal(size=(n_pl, n_cat, n_sty))
        self.T_segcatpl = trng.normal(size=(n_seg, n_cat, n_pl, n_sty))
        self.T_user = _rng(c.seed, "effects", "taste", "user").normal(size=(len(pop.users), n_sty)) if t.user else None
        self.T_field: dict[str, tuple[float, np.ndarray]] = {}
        for name, w in t.field_weights(c.fields).items():
            if not w:
                continue
            frng = _rng(c.seed, "effects", "taste", name)
            spec = c.fields[name]
            table = frng.normal(size=(len(spec.values), n_sty)) if isinstance(spec, CategoricalSpec) else frng.normal(size=n_sty)
            self.T_field[name] = (w / norm, table)
        self.H_mean = np.zeros((n_cat, n_sty))

        # calibration
        self.beta0, self.gamma, self.k_style, self.k_personal = (
            math.log(c.base_ctr / (1 - c.base_ctr)),
            0.0,
            0.0,
            0.0,
        )
        cal = pop.sample_impressions(c.calibration_samples, _rng(c.seed, "calibration"))
        parts = self._parts(cal, center_population=False)
        self._center_population(cal, parts)
        parts = self._parts(cal)
        self.calibration = self._calibrate(parts)
        self.best_fixed: dict[tuple[str, ...], str] = self._best_fixed_table(parts)

    # -- the model --------------------------------------------------------------------------------

    def _parts(self, b: ImpressionBatch, center_population: bool = True) -> _Parts:
        pop = self.population
        u, i, l = np.asarray(b.user), np.asarray(b.product), np.asarray(b.placement)
        c = pop.product_category[i]
        g = pop.product_set[i]
        S = pop.set_styles[g]
        valid = S >= 0
        Sz = np.where(valid, S, 0)
        base = self.cat_effect[c] + self.place_effect[l] + self.product_effect[i] + self.user_effect[u]
        cc = c[:, None]
        M = self.m[cc, Sz]
        seg = pop.user_segment[u][:, None]
        w = self._w
        H = w["segment"] * self.T_seg[seg, Sz]
        H += w["segment_category"] * self.T_segcat[seg, cc, Sz]
        H += w["placement_category"] * self.T_plcat[l[:, None], cc, Sz]
        H += w["segment_category_placement"] * self.T_segcatpl[seg, cc, l[:, None], Sz]
        if self.T_user is not None:
            H += w["user"] * self.T_user[u[:, None], Sz]
        for name, (wf, table) in self.T_field.items():
            if table.ndim == 2:
                H += wf * table[pop.categorical[name][u][:, None], Sz]
            else:
                H += wf * table[Sz] * pop.numeric[name][u][:, None]
        H = np.where(valid, H, 0.0)
        H -= (H.sum(axis=1) / valid.sum(axis=1))[:, None]
        if center_population:
            H -= self.H_mean[cc, Sz]
        H = np.where(valid, H, 0.0)
        M = np.where(valid, M, 0.0)
        return _Parts(base, M, H, S, valid, g, np.bincount(g, minlength=len(pop.style_sets)))

    def _center_population(self, b: ImpressionBatch, parts: _Parts) -> None:
        """Make the personal taste average zero over the population for every (category, style)."""
        c = np.broadcast_to(
            self.population.product_category[np.asarray(b.product)][:, None],
            parts.S.shape,
        )
        total = np.zeros_like(self.H_mean)
        count = np.zeros_like(self.H_mean)
        v = parts.valid
        np.add.at(total, (c[v], parts.S[v]), parts.H[v])
        np.add.at(count, (c[v], parts.S[v]), 1.0)
        self.H_mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)

    def _style_p(self, parts: _Parts, beta0=None, gamma=None, k_style=None, k_personal=None) -> np.ndarray:
        beta0 = self.beta0 if beta0 is None else beta0
        gamma = self.gamma if gamma is None else gamma
        k_style = self.k_style if k_style is None else k_style
        k_personal = self.k_personal if k_personal is None else k_personal
        eta = (beta0 + gamma + parts.base)[:, None] + k_style * parts.M + k_personal * parts.H
        return np.where(parts.valid, special.expit(eta), np.nan)

    def _original_p(self, parts: _Parts, beta0=None) -> np.ndarray:
        return special.expit((self.beta0 if beta0 is None else beta0) + parts.base)

    @staticmethod
    def _fixed_positions(parts: _Parts, P: np.ndarray) -> np.ndarray:
        """Per style set, the position of the style with the highest total p over the rows."""
        order, starts, ids = parts.grouping()
        sums = np.add.reduceat(np.where(parts.valid, P, -1.0)[order], starts, axis=0)
        positions = np.zeros(len(parts.group_sizes), dtype=np.intp)
        positions[ids] = sums.argmax(axis=1)
        return positions

    @classmethod
    def _summary(
        cls,
        parts: _Parts,
        P: np.ndarray,
        p0: np.ndarray,
        positions: np.ndarray | None = None,
    ) -> dict:
        if positions is None:
            positions = cls._fixed_positions(parts, P)
        rows = np.arange(len(P))
        P0 = np.where(parts.valid, P, 0.0)
        return {
            "original": float(p0.mean()),
            "uniform": float((P0.sum(axis=1) / parts.valid.sum(axis=1)).mean()),
            "best_fixed": float(P0[rows, positions[parts.group]].mean()),
            "oracle": float(P0.max(axis=1).mean()),
        }

    def _calibrate(self, parts: _Parts) -> dict:
        c = self.config
        targets = {
            "base_ctr": c.base_ctr,
            "generated_lift": c.generated_lift,
            "style_spread": c.style_spread,
            "personal_spread": c.personal_spread,
        }

        def measure(**kw) -> dict:
            s = self._summary(
                parts,
                self._style_p(parts, **kw),
                self._original_p(parts, kw.get("beta0")),
            )
            return _lifts(s)

        def solve(name: str, key: str, lo: float, hi: float, nonneg: bool, near: bool) -> None:
            def f(v):
                return measure(**{name: v})[key] - targets[key]

            if nonneg and f(0.0) >= 0:
                setattr(self, name, 0.0)  # the target is below what the other effects already give
                return
            if near:  # later sweeps: the root has moved little, bracket it closely
                v = getattr(self, name)
                a, b = v - 0.02 * (1 + abs(v)), v + 0.02 * (1 + abs(v))
                if nonneg:
                    a = max(a, 0.0)
                fa, fb = f(a), f(b)
                if fa * fb > 0:
                    a, b = lo, hi
                    fa, fb = f(a), f(b)
            else:
                a, b = lo, hi
                fa, fb = f(a), f(b)
            while fa * fb > 0 and b < 1e3:
                b *= 2
                fb = f(b)
            if fa * fb > 0:
                raise ValueError(f"cannot reach {key}={targets[key]}: the click model saturates")
            setattr(self, name, optimize.brentq(f, a, b, xtol=1e-10, rtol=1e-10))

        self._sweeps = 0
        for sweep in range(60):
            self._sweeps += 1
            solve("beta0", "base_ctr", -20.0, 5.0, False, sweep > 0)
            solve("gamma", "generated_lift", -10.0, 10.0, False, sweep > 0)
            solve("k_style", "style_spread", 0.0, 4.0, True, sweep > 0)
            solve("k_personal", "personal_spread", 0.0, 4.0, True, sweep > 0)
            got = measure()
            err = max(abs(got[k] - v) / max(abs(v), 1e-3) for k, v in targets.items())
            if err < 1e-6:
                break
        got = measure()
        return {
            "beta0": self.beta0,
            "gamma": self.gamma,
            "k_style": self.k_style,
            "k_personal": self.k_personal,
            "samples": len(parts.base),
            "targets": targets,
            "realised": got,
        }

    def _best_fixed_table(self, parts: _Parts) -> dict[tuple[str, ...], str]:
        positions = self._fixed_positions(parts, self._style_p(parts))
        pop = self.population
        return {styles: styles[int(positions[g])] for g, styles in enumerate(pop.style_sets) if g < len(positions)}

    # -- batch API ----------------------------------------------------------------------------------

    def probabilities(self, batch: ImpressionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p of the catalog image (n,), p per offered style (n, K) NaN-padded, style ids (n, K) -1-padded).

        Column k of row r is ``population.style_sets[...][k]``: the impression's ``styles`` order.
        """
        parts = self._parts(batch)
        return self._original_p(parts), self._style_p(parts), parts.S

    def effects(self, n: int = 200_000, seed: int | None = None) -> dict:
        """Realised CTRs and lifts, by exact expectation over ``n`` fresh impressions (no clicks drawn)."""
        rng = _rng(self.config.seed if seed is None else seed, "effects-check", n)
        batch = self.population.sample_impressions(n, rng)
        parts = self._parts(batch)
        P = self._style_p(parts)
        pos = self._positions_of_table()
        s = self._summary(parts, P, self._original_p(parts), pos)
        return {"ctr": s, **_lifts(s)}

    def _positions_of_table(self) -> np.ndarray:
        return np.array(
            [styles.index(self.best_fixed[styles]) for styles in self.population.style_sets],
            dtype=np.intp,
        )

    # -- one impression ---------------------------------------------------------------------------

    def p_all(self, impression: Impression) -> dict[str, float]:
        """p of the catalog image (key ``"original"``) and of every offered style."""
        b = self.population.batch_of([impression])
        p0, P, _ = self.probabilities(b)
        styles = self.population.style_sets[self.population.product_set[b.product[0]]]
        return {
            ORIGINAL: float(p0[0]),
            **{s: float(P[0, k]) for k, s in enumerate(styles)},
        }

    def p_click(self, impression: Impression, style: str) -> float:
        """The click probability of ``impression`` shown with ``style`` (``"original"``: the catalog image)."""
        ps = self.p_all(impression)
        try:
            return ps[style]
        except KeyError:
            raise ValueError(f"style {style!r} is not offered for {impression.product_id} (offered: {', '.join(ps)})") from None

    def oracle(self, impression: Impression) -> tuple[str, float]:
        """The offered style with the highest click probability, and that probability."""
        ps = self.p_all(impression)
        ps.pop(ORIGINAL)
        best = max(ps, key=ps.__getitem__)
        return best, ps[best]

    @staticmethod
    def sample_click(p: float, rng: np.random.Generator) -> bool:
        return bool(rng.random() < p)

    def best_fixed_policy(self, **kw) -> FixedStyle:
        return FixedStyle(table=self.best_fixed, **kw)


def _lifts(s: Mapping[str, float]) -> dict[str, float]:
    return {
        "base_ctr": s["original"],
        "generated_lift": s["uniform"] / s["original"] - 1,
        "style_spread": s["best_fixed"] / s["uniform"] - 1,
        "personal_spread": s["oracle"] / s["best_fixed"] - 1,
    }


def build(config: SimulationConfig | None = None, products=None, library=None) -> tuple[Population, ClickModel]:
    """The population and its calibrated click model for ``config``."""
    pop = Population(config, products, library)
    return pop, ClickModel(pop)


# -- delayed feedback ---------------------------------------------------------------------------


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


# -- the runner ---------------------------------------------------------------------------------

PolicyFactory = Callable[..., Policy]

#: baselines computed from the click model rather than learnt
BASELINES = ("original", "uniform", "best-fixed", "oracle")
DEFAULT_BASELINES = ("original", "uniform", "best-fixed", "oracle")

#: learning policies by short name, with settings suited to click rewards of a few per cent
#: (LinUCB's alpha=1 explores for far longer than a 20k-round run at these rates)
POLICY_FACTORIES: dict[str, PolicyFactory] = {
    "linucb": partial(make_policy, "linucb", alpha=0.1, epsilon=0.05),
    "lints": partial(make_policy, "lints", alpha=0.03),
    "epsilon-greedy": partial(make_policy, "epsilon-greedy", epsilon=0.05),
    "ucb1": partial(make_policy, "ucb1", alpha=0.1),
}
DEFAULT_POLICIES = ("linucb", "lints", "epsilon-greedy")

#: named overrides of :class:`SimulationConfig` (e.g. for a CLI ``--preset``):
#: ``paper`` is the defaults (paper-like lifts); ``strong`` has effects large enough that the
#: learners visibly beat the best fixed style within ~10k rounds (at paper-like effect sizes
#: that takes far more impressions than a laptop run: see the module docstring).
PRESETS: dict[str, dict] = {
    "paper": {},
    "strong": {"base_ctr": 0.10, "style_spread": 0.20, "personal_spread": 0.50},
}


def preset(name: str, **overrides) -> SimulationConfig:
    """:class:`SimulationConfig` of a named preset, with ``overrides`` on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return SimulationConfig(**(PRESETS[name] | overrides))


def policy_factories(names: Sequence[str]) -> dict[str, PolicyFactory]:
    """Factories for names from :data:`POLICY_FACTORIES` (learners) -- for a CLI ``--policies`` list."""
    out = {}
    for n in names:
        if n not in POLICY_FACTORIES:
            raise ValueError(
                f"unknown policy {n!r}; choose from {', '.join(POLICY_FACTORIES)} (baselines: {', '.join(BASELINES)})"
            )
        out[n] = POLICY_FACTORIES[n]
    return out


@dataclass
class PolicyRun:
    """What one policy did in a run (per-round arrays and totals)."""

    name: str
    kind: str  # "policy" (learns through the API), "baseline"
    p: np.ndarray  # expected reward (true p of the shown creative) per round
    clicks: np.ndarray  # 0/1 per round
    choice: np.ndarray  # index into the round's styles (-1: the catalog image)
    updates: int = 0  # feedback rows delivered to the policy
    in_flight: int = 0  # feedback rows not delivered when the run ended
    seconds: float = 0.0


@dataclass
class SimulationResult:
    config: SimulationConfig
    n_rounds: int
    seed: int
    oracle_p: np.ndarray  # (n,) the oracle's p per round
    runs: dict[str, PolicyRun]
    checkpoints: np.ndarray  # rounds (1-based counts) at which curves are sampled
    calibration: dict = field(default_factory=dict)
    seconds: float = 0.0

    # -- summaries ------------------------------------------------------------------------------

    def _ref(self, name: str) -> float | None:
        run = self.runs.get(name)
        return float(run.p.mean()) if run is not None and self.n_rounds else None

    def to_records(self) -> list[dict]:
        """One JSON-able dict per policy (the table's rows)."""
        fixed, original = self._ref("best-fixed"), self._ref("original")
        oracle_total = float(self.oracle_p.sum())
        out = []
        for name, r in self.runs.items():
            n = len(r.p)
            exp_ctr = float(r.p.mean()) if n else 0.0
            regret = float((self.oracle_p - r.p).sum())
            out.append(
                {
                    "policy": name,
                    "kind": r.kind,
                    "rounds": n,
                    "clicks": int(r.clicks.sum()),
                    "ctr": float(r.clicks.mean()) if n else 0.0,
                    "expected_ctr": exp_ctr,
                    "lift_vs_original": exp_ctr / original - 1 if original else None,
                    "lift_vs_best_fixed": exp_ctr / fixed - 1 if fixed else None,
                    "cum_regret": regret,
                    "regret_share": regret / oracle_total if oracle_total else 0.0,
                    "updates": r.updates,
                    "in_flight": r.in_flight,
                    "seconds": round(r.seconds, 3),
                }
            )
        return out

    def curves(self) -> dict[str, dict[str, list[float]]]:
        """Per policy, at each checkpoint: cumulative clicks, expected reward, regret; windowed expected CTR."""
        idx = self.checkpoints - 1
        out = {}
        for name, r in self.runs.items():
            cum_p = np.cumsum(r.p)
            cum_reg = np.cumsum(self.oracle_p - r.p)
            cum_clicks = np.cumsum(r.clicks)
            window = np.diff(np.concatenate([[0.0], cum_p[idx]])) / np.diff(np.concatenate([[0], self.checkpoints]))
            out[name] = {
                "clicks": cum_clicks[idx].astype(float).tolist(),
                "expected_reward": cum_p[idx].tolist(),
                "regret": cum_reg[idx].tolist(),
                "window_expected_ctr": window.tolist(),
            }
        return out

    def to_dict(self, curves: bool = True) -> dict:
        """Everything JSON-able: config, calibration, records, and the curves."""
        d = {
            "rounds": self.n_rounds,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "config": self.config.model_dump(mode="json"),
            "calibration": _jsonable(self.calibration),
            "oracle_expected_ctr": float(self.oracle_p.mean()) if self.n_rounds else 0.0,
            "policies": self.to_records(),
        }
        if curves:
            d["checkpoints"] = self.checkpoints.tolist()
            d["curves"] = self.curves()
        return d

    def to_markdown(self) -> str:
        head = "| policy | rounds | clicks | CTR | expected CTR | vs original | vs best fixed | cum. regret | regret share | updates | in flight | s |"
        lines = [head, "|---|" + "--:|" * (head.count("|") - 2)]
        for r in self.to_records():
            lift = lambda v: "" if v is None else f"{v:+.1%}"
            lines.append(
                f"| {r['policy']} | {r['rounds']} | {r['clicks']} | {r['ctr']:.2%} | {r['expected_ctr']:.3%} | "
                f"{lift(r['lift_vs_original'])} | {lift(r['lift_vs_best_fixed'])} | {r['cum_regret']:.1f} | "
                f"{r['regret_share']:.1%} | {r['updates']} | {r['in_flight']} | {r['seconds']:.1f} |"
            )
        return "\n".join(lines)

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """PNG: cumulative regret vs rounds (left) and expected CTR over time (right), per policy."""
        from ..render import figure, save

        fig, (ax1, ax2) = figure(12, 4.8, 1, 2)
        x = self.checkpoints
        n = max(self.n_rounds, 1)
        span = max(1, n // 20)  # smoothing window for the CTR panel
        for name, r in self.runs.items():
            style = {"linestyle": "--"} if r.kind == "baseline" else {}
            ax1.plot(x, np.cumsum(self.oracle_p - r.p)[x - 1], label=name, **style)
            smooth = np.convolve(r.p, np.ones(span) / span, mode="valid")  # mean of rounds t-span+1..t
            ends = np.clip(x, span, n)
            ax2.plot(ends, smooth[ends - span], label=name, **style)
        ax1.set(
            xlabel="round",
            ylabel="cumulative regret (expected clicks)",
            title="Regret vs the oracle",
        )
        ax2.set(
            xlabel="round",
            ylabel=f"expected CTR (moving mean of {span} rounds)",
            title="CTR over time",
        )
        ax2.yaxis.set_major_formatter(lambda v, _: f"{v:.2%}")
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
        ax1.legend(fontsize=8)
        if title:
            fig.suptitle(title)
        return save(fig, path, dpi=100)


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o


def simulate(
    policies: Mapping[str, PolicyFactory | Policy] | None = None,
    config: SimulationConfig | None = None,
    n_rounds: int = 20000,
    seed: int | None = None,
    encoder: FeatureEncoder | None = None,
    *,
    click_model: ClickModel | None = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    delay_mean: float | None = None,
    update_every: int | None = None,
    n_checkpoints: int = 200,
    progress: Callable[[str, float], None] | None = None,
) -> SimulationResult:
    """Run every policy on the same ``n_rounds`` impressions and click draws.

    * ``policies``: name -> a :class:`Policy` (used as is, and updated) or a factory called as
      ``factory(n_features=..., seed=...)`` (policy classes and ``functools.partial`` of them
      work). Default: :data:`DEFAULT_POLICIES` from :data:`POLICY_FACTORIES`.
    * ``config``: the audience (default :class:`SimulationConfig`); ``click_model`` reuses an
      already-built world instead (its config wins).
    * ``seed``: the run's streams (impressions, clicks, delays, policy seeds); default
      ``config.seed``. The world (users, tastes) depends on ``config.seed`` only.
    * ``encoder``: default ``population.encoder()`` (64 features, the population's fields).
    * ``delay_mean`` / ``update_every``: override the config's feedback settings (they do not
      change the world, so a built ``click_model`` can be reused with other delays).
    * ``progress(name, seconds)``: called after the setup and after each policy.
    * ``baselines``: any of ``"original"`` (catalog image), ``"uniform"`` (a random offered
      style; the :class:`Uniform` policy), ``"best-fixed"`` (:class:`FixedStyle` with the click
      model's table), ``"oracle"``.

    Common random numbers: round t's impression, its click uniform U_t (click = U_t < p) and its
    feedback delay are the same for every policy. Policies choose through ``choose_many`` on the
    rounds between two deliveries (their state does not change in between, so this is the same
    as choosing round by round) and learn through ``update_many`` every
    ``config.update_every`` rounds, with the feedback whose delay has elapsed.
    """
    t_start = time.perf_counter()
    if click_model is None:
        click_model = ClickModel(Population(config))
    config = click_model.config
    feedback = {k: v for k, v in (("delay_mean", delay_mean), ("update_every", update_every)) if v is not None}
    if feedback:
        config = SimulationConfig(**(config.model_dump() | feedback))
    pop = click_model.population
    seed = config.seed if seed is None else int(seed)
    n = int(n_rounds)
    if n < 1:
        raise ValueError("n_rounds must be >= 1")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    if policies is None:
        policies = policy_factories(DEFAULT_POLICIES)
    clash = [p for p in policies if p in baselines]
    if clash:
        raise ValueError(f"policy name(s) {', '.join(clash)} clash with baselines")
    encoder = encoder or pop.encoder()

    batch = pop.sample_impressions(n, _rng(seed, "run", "impressions"))
    u_click = _rng(seed, "run", "clicks").random(n)
    delays = sample_delays(n, config.delay_mean, _rng(seed, "run", "delays"))
    p0, P, _ = click_model.probabilities(batch)
    oracle_k = np.nanargmax(P, axis=1)
    rows = np.arange(n)
    oracle_p = P[rows, oracle_k]
    groups = pop.product_set[batch.product]
    X = encoder.encode_many(pop.contexts(batch))
    if progress:
        progress("setup", time.perf_counter() - t_start)

    runs: dict[str, PolicyRun] = {}

    def add_baseline(name: str, k: np.ndarray | None) -> None:
        t0 = time.perf_counter()
        p = p0 if k is None else P[rows, k]
        runs[name] = PolicyRun(
            name,
            "baseline",
            p,
            (u_click < p).astype(np.int8),
            np.full(n, -1) if k is None else k,
            seconds=time.perf_counter() - t0,
        )

    for b in baselines:
        if b == "original":
            add_baseline(b, None)
        elif b == "oracle":
            add_baseline(b, oracle_k)
        elif b == "uniform":
            runs[b] = _run_policy(
                b,
                Uniform(seed=_stable_seed(seed, b)),
                pop,
                groups,
                X,
                P,
                u_click,
                delays,
                config.update_every,
                "baseline",
            )
        elif b == "best-fixed":
            runs[b] = _run_policy(
                b,
                click_model.best_fixed_policy(),
                pop,
                groups,
                X,
                P,
                u_click,
                delays,
                config.update_every,
                "baseline",
            )
        if progress:
            progress(b, runs[b].seconds)
    for name, spec in policies.items():
        policy = spec if isinstance(spec, Policy) else spec(n_features=encoder.n_features, seed=_stable_seed(seed, name))
        runs[name] = _run_policy(
            name,
            policy,
            pop,
            groups,
            X,
            P,
            u_click,
            delays,
            config.update_every,
            "policy",
        )
        if progress:
            progress(name, runs[name].seconds)

    k = max(1, min(int(n_checkpoints), n))
    checkpoints = np.unique(np.linspace(1, n, k).round().astype(np.int64))
    return SimulationResult(
        config=config,
        n_rounds=n,
        seed=seed,
        oracle_p=oracle_p,
        runs=runs,
        checkpoints=checkpoints,
        calibration=click_model.calibration,
        seconds=time.perf_counter() - t_start,
    )


def _run_policy(name, policy, pop, groups, X, P, u_click, delays, update_every, kind) -> PolicyRun:
    t0 = time.perf_counter()
    n = len(groups)
    choice = np.empty(n, dtype=np.intp)
    queue = DelayedFeedback()
    delivered = 0
    for start in range(0, n, update_every):
        stop = min(start + update_every, n)
        block_groups = groups[start:stop]
        for g in np.unique(block_groups):
            idx = start + np.flatnonzero(block_groups == g)
            arms = pop.style_sets[g]
            decisions = policy.choose_many(X[idx], arms)
            choice[idx] = [d.index for d in decisions]
        for t in range(start, stop):
            queue.push(t + int(delays[t]), t)
        due = queue.pop_due(stop - 1)
        if due:
            due = np.array(due, dtype=np.intp)
            arms = [pop.style_sets[groups[t]][choice[t]] for t in due]
            rewards = (u_click[due] < P[due, choice[due]]).astype(np.float64)
            policy.update_many(X[due], arms, rewards)
            delivered += len(due)
    p = P[np.arange(n), choice]
    return PolicyRun(
        name=name,
        kind=kind,
        p=p,
        clicks=(u_click < p).astype(np.int8),
        choice=choice,
        updates=delivered,
        in_flight=len(queue),
        seconds=time.perf_counter() - t0,
    )


__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "DEFAULT_POLICIES",
    "ORIGINAL",
    "POLICY_FACTORIES",
    "PRESETS",
    "CategoricalSpec",
    "ClickModel",
    "DelayedFeedback",
    "FixedStyle",
    "Impression",
    "ImpressionBatch",
    "NumericSpec",
    "PolicyRun",
    "Population",
    "SimulationConfig",
    "SimulationResult",
    "TasteWeights",
    "build",
    "policy_factories",
    "preset",
    "sample_delays",
    "simulate",
]
