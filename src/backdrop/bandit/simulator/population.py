"""Who sees which product where: users, the catalog with its style sets, and the placements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..arms import ORIGINAL
from ..features import FeatureConfig, FeatureEncoder, NumericField
from .config import CategoricalSpec, NumericSpec, SimulationConfig
from .seeds import rng_stream

DEMO_CATALOG = Path(__file__).resolve().parents[2] / "data" / "demo" / "products.csv"


#: what joins a style and its variant in an arm's name (``creative.store.arm_name``)
VARIANT_SEP = "+"


def split_arm(arm: str) -> tuple[str, str, str]:
    """(style, separator, variant) of an arm: ``split_arm("studio-sweep+price")`` is
    ``("studio-sweep", "+", "price")``; a plain style has no variant."""
    return arm.partition(VARIANT_SEP)


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

    A product's style set is its category's styles in the library, or ``arms[product_id]`` when
    given: the arms a store really holds for it, which may differ between products of one category
    (a product on sale has a sale overlay more). An arm is a style (``"studio-sweep"``) or a variant
    of one, ``"STYLE+VARIANT"`` (an overlay: ``"studio-sweep+price"``); ``arm_base`` and
    ``arm_variant`` say which, and the click model gives a variant its style's appeal plus an effect
    of its own (:mod:`backdrop.bandit.simulator`).
    """

    def __init__(
        self,
        config: SimulationConfig | None = None,
        products: Sequence | None = None,
        library=None,
        *,
        check_placements: bool = True,
        arms: Mapping[str, Sequence[str]] | None = None,
    ):
        self.config = c = config or SimulationConfig()
        if products is None:
            from ...creative.catalog import load_catalog

            products = load_catalog(DEMO_CATALOG, check_images=False).products
        if not products:
            raise ValueError("the population needs at least one product")
        arms = dict(arms or {})
        if library is None and not all(p.product_id in arms for p in products):
            from ...styles import StyleLibrary

            library = StyleLibrary.load()
        if check_placements:
            from ...errors import ConfigError
            from ...imaging.layout import load_placements

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
            if p.product_id in arms:
                styles = tuple(arms[p.product_id])
                if not styles or len(set(styles)) != len(styles) or ORIGINAL in styles:
                    raise ValueError(f"arms of {p.product_id}: give distinct arms, not {ORIGINAL!r} (got {', '.join(styles) or 'none'})")
            else:
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
        # every arm's style and variant ("studio-sweep+price": studio-sweep, price); a plain style is its own base
        bases: dict[str, int] = {}
        variants: dict[str, int] = {}
        arm_base, arm_variant = [], []
        for arm in self.style_names:
            base, _, variant = split_arm(arm)
            arm_base.append(bases.setdefault(base, len(bases)))
            arm_variant.append(variants.setdefault(variant, len(variants)) if variant else -1)
        #: the styles (arms without their variant), in order of first appearance
        self.base_styles: list[str] = list(bases)
        #: the variants (overlays) the arms carry
        self.variants: list[str] = list(variants)
        #: per arm, its attributes (scene, surface, ...; ``backdrop.styles.attributes``): what
        #: attribute tastes act through; "none" everywhere for a style the library does not hold
        self.arm_attributes: list[dict[str, str]] = self._attributes(library)
        self.arm_base = np.array(arm_base, dtype=np.intp)
        self.arm_variant = np.array(arm_variant, dtype=np.intp)
        self.product_category = np.array(product_cat, dtype=np.intp)
        self.product_set = np.array(product_set, dtype=np.intp)
        self.category_set = np.zeros(len(self.categories), dtype=np.intp)
        self.category_set[self.product_category] = self.product_set
        #: per category, the styles (base ids) of all its products' sets, in order of first appearance
        self.category_styles: list[np.ndarray] = []
        for ci in range(len(self.categories)):
            seen: dict[int, None] = {}
            for g in dict.fromkeys(self.product_set[self.product_category == ci].tolist()):
                for arm in self.style_sets[g]:
                    seen.setdefault(int(self.arm_base[names[arm]]), None)
            self.category_styles.append(np.array(list(seen), dtype=np.intp))
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
        rng = rng_stream(c.seed, "users")
        self.segments = tuple(f"s{k}" for k in range(c.n_segments))
        seg_share = rng.dirichlet(np.full(c.n_segments, 4.0)) if c.n_segments > 1 else np.ones(1)
        self.user_segment = rng.choice(c.n_segments, size=c.n_users, p=seg_share)
        self.user_ids = [f"u{k:0{max(5, len(str(c.n_users - 1)))}d}" for k in range(c.n_users)]
        self.user_index = {u: k for k, u in enumerate(self.user_ids)}
        self.categorical: dict[str, np.ndarray] = {}  # field -> value index per user
        self.numeric: dict[str, np.ndarray] = {}  # field -> standardised value per user
        columns: dict[str, list] = {}
        for name, spec in c.fields.items():
            frng = rng_stream(c.seed, "users", name)
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
                    shift = frng.normal(0.0, spec.segment_shift_sd, size=c.n_segments) if spec.segment_shift_sd else np.zeros(c.n_segments)
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
        u, p, pl = int(batch.user[i]), int(batch.product[i]), int(batch.placement[i])
        product = self.products[p]
        return Impression(
            user_id=self.user_ids[u],
            user_features=dict(self.users[u]),
            product_id=product.product_id,
            category_path=tuple(product.category_path),
            placement=self.placements[pl],
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
            (self.users[u], tuple(self.products[p].category_path), self.placements[pl])
            for u, p, pl in zip(batch.user.tolist(), batch.product.tolist(), batch.placement.tolist(), strict=True)
        ]

    def _attributes(self, library) -> list[dict[str, str]]:
        from ...styles.attributes import arm_attributes

        # a library-like object without the styles themselves (a test's stand-in) has no attributes
        styles = library.all_styles() if hasattr(library, "all_styles") else {}
        return [arm_attributes(arm, styles) for arm in self.style_names]

    def encoder_config(self, n_features: int = 64) -> FeatureConfig:
        """A feature layout for this population: segment and categorical fields one-hot, numeric standardised."""
        c = self.config
        return FeatureConfig(
            n_features=n_features,
            numeric={n: NumericField(center=s.mean, scale=s.scale) for n, s in c.fields.items() if isinstance(s, NumericSpec)},
            one_hot={"segment": list(self.segments)} | {n: list(s.values) for n, s in c.fields.items() if isinstance(s, CategoricalSpec)},
            segment_field="segment",
        )

    def encoder(self, n_features: int = 64) -> FeatureEncoder:
        return FeatureEncoder(self.encoder_config(n_features))
