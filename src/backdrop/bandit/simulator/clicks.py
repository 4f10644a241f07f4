"""The calibrated click model of a :class:`~.population.Population` (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from ..arms import ORIGINAL
from ..policies import FixedStyle
from .config import CategoricalSpec, SimulationConfig
from .population import Impression, ImpressionBatch, Population
from .seeds import rng_stream


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
        # the style effects are drawn per style (base); an arm "STYLE+VARIANT" takes its style's and
        # adds its variant's (n_arm == n_sty when no arm carries a variant: then nothing changes)
        n_cat, n_sty, n_seg, n_pl = (
            len(pop.categories),
            len(pop.base_styles),
            len(pop.segments),
            len(pop.placements),
        )
        n_arm, n_var = len(pop.style_names), len(pop.variants)
        rng = rng_stream(c.seed, "effects")
        self.cat_effect = rng.normal(0, c.category_sd, n_cat) if c.category_sd else np.zeros(n_cat)
        self.product_effect = rng.normal(0, c.product_sd, len(pop.products)) if c.product_sd else np.zeros(len(pop.products))
        self.user_effect = (
            rng_stream(c.seed, "effects", "user").normal(0, c.user_sd, len(pop.users)) if c.user_sd else np.zeros(len(pop.users))
        )
        self.place_effect = np.array([math.log1p(c.placement_lift.get(p, 0.0)) for p in pop.placements])

        # category-level style quality: unit sd, centred over the category's styles
        m = np.zeros((n_cat, n_sty))
        mrng = rng_stream(c.seed, "effects", "style")
        shared = self._shared_quality(c) if c.quality_share else None
        for ci in range(n_cat):
            ids = pop.category_styles[ci]
            v = mrng.normal(size=len(ids))
            if shared is not None:
                v = math.sqrt(c.quality_share) * shared[ids] + math.sqrt(1 - c.quality_share) * v
            v = v - v.mean()
            sd = v.std()
            m[ci, ids] = v / sd if sd > 0 else 0.0
        self.m = m

        t = c.taste
        trng = rng_stream(c.seed, "effects", "taste")
        norm = t.total(c.fields) or 1.0
        self._w = {
            "segment_attribute": t.segment_attribute / norm,
            "placement_attribute": t.placement_attribute / norm,
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
        self.T_user = rng_stream(c.seed, "effects", "taste", "user").normal(size=(len(pop.users), n_sty)) if t.user else None
        self.T_field: dict[str, tuple[float, np.ndarray]] = {}
        for name, w in t.field_weights(c.fields).items():
            if not w:
                continue
            frng = rng_stream(c.seed, "effects", "taste", name)
            spec = c.fields[name]
            table = frng.normal(size=(len(spec.values), n_sty)) if isinstance(spec, CategoricalSpec) else frng.normal(size=n_sty)
            self.T_field[name] = (w / norm, table)
        # variants (overlays): a category-level effect in the unit of m, and a segment x variant taste
        vrng = rng_stream(c.seed, "effects", "variant")
        self.m_variant = vrng.normal(0, c.variant_sd, (n_cat, n_var)) if c.variant_sd else np.zeros((n_cat, n_var))
        self.T_segvar = vrng.normal(size=(n_seg, n_var))
        self._w_variant = c.variant_taste
        self.H_mean = np.zeros((n_cat, n_arm))
        # attribute tastes: per segment (placement) and attribute value, summed over an arm's values
        onehot, _ = self._attribute_onehot()
        arng = rng_stream(c.seed, "effects", "taste", "attributes")
        self.T_segattr = (arng.normal(size=(n_seg, onehot.shape[1])) @ onehot.T) / math.sqrt(max(onehot.sum(axis=1).max(), 1))
        self.T_platt = (arng.normal(size=(n_pl, onehot.shape[1])) @ onehot.T) / math.sqrt(max(onehot.sum(axis=1).max(), 1))

        # calibration
        self.beta0, self.gamma, self.k_style, self.k_personal = (
            math.log(c.base_ctr / (1 - c.base_ctr)),
            0.0,
            0.0,
            0.0,
        )
        cal = pop.sample_impressions(c.calibration_samples, rng_stream(c.seed, "calibration"))
        parts = self._parts(cal, center_population=False)
        self._center_population(cal, parts)
        parts = self._parts(cal)
        self.calibration = self._calibrate(parts)
        self.best_fixed: dict[tuple[str, ...], str] = self._best_fixed_table(parts)

    def _attribute_onehot(self, with_overlay: bool = True) -> tuple[np.ndarray, list[str]]:
        """(n_arm, n_values) one-hot of every arm's attribute values, and the values' names."""
        attrs = [{k: v for k, v in a.items() if with_overlay or k != "overlay"} for a in self.population.arm_attributes]
        names = sorted({f"{k}={v}" for a in attrs for k, v in a.items() if v != "none"})
        slot = {n: i for i, n in enumerate(names)}
        onehot = np.zeros((len(attrs), len(names)))
        for i, a in enumerate(attrs):
            for k, v in a.items():
                if v != "none":
                    onehot[i, slot[f"{k}={v}"]] = 1.0
        return onehot, names

    def _shared_quality(self, c) -> np.ndarray:
        """Per style (base), the part of its quality it has in every category (unit sd)."""
        pop = self.population
        n_sty = len(pop.base_styles)
        rng = rng_stream(c.seed, "effects", "style", "shared")
        own = rng.normal(size=n_sty)
        onehot, _ = self._attribute_onehot(with_overlay=False)
        base_rows = np.array([int(np.flatnonzero(pop.arm_base == b)[0]) for b in range(n_sty)])
        per_value = rng_stream(c.seed, "effects", "style", "attributes").normal(size=onehot.shape[1])
        counts = np.maximum(onehot[base_rows].sum(axis=1), 1.0)
        by_attributes = onehot[base_rows] @ per_value / np.sqrt(counts)
        a = c.quality_attribute_share
        return math.sqrt(a) * by_attributes + math.sqrt(1 - a) * own

    # -- the model --------------------------------------------------------------------------------

    def _parts(self, b: ImpressionBatch, center_population: bool = True) -> _Parts:
        pop = self.population
        u, i, pl = np.asarray(b.user), np.asarray(b.product), np.asarray(b.placement)
        c = pop.product_category[i]
        g = pop.product_set[i]
        S = pop.set_styles[g]
        valid = S >= 0
        Sa = np.where(valid, S, 0)  # arm ids (H_mean is per arm)
        Sz = pop.arm_base[Sa]  # their styles (the effect tables are per style)
        base = self.cat_effect[c] + self.place_effect[pl] + self.product_effect[i] + self.user_effect[u]
        cc = c[:, None]
        M = self.m[cc, Sz]
        seg = pop.user_segment[u][:, None]
        w = self._w
        H = w["segment"] * self.T_seg[seg, Sz]
        H += w["segment_category"] * self.T_segcat[seg, cc, Sz]
        H += w["placement_category"] * self.T_plcat[pl[:, None], cc, Sz]
        H += w["segment_category_placement"] * self.T_segcatpl[seg, cc, pl[:, None], Sz]
        if self.T_user is not None:
            H += w["user"] * self.T_user[u[:, None], Sz]
        if w["segment_attribute"]:
            H += w["segment_attribute"] * self.T_segattr[seg, Sa]
        if w["placement_attribute"]:
            H += w["placement_attribute"] * self.T_platt[pl[:, None], Sa]
        for name, (wf, table) in self.T_field.items():
            if table.ndim == 2:
                H += wf * table[pop.categorical[name][u][:, None], Sz]
            else:
                H += wf * table[Sz] * pop.numeric[name][u][:, None]
        if len(pop.variants):
            V = pop.arm_variant[Sa]
            has = V >= 0
            Vz = np.where(has, V, 0)
            M = M + np.where(has, self.m_variant[cc, Vz], 0.0)
            H += np.where(has, self._w_variant * self.T_segvar[seg, Vz], 0.0)
        H = np.where(valid, H, 0.0)
        H -= (H.sum(axis=1) / valid.sum(axis=1))[:, None]
        if center_population:
            H -= self.H_mean[cc, Sa]
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
        rng = rng_stream(self.config.seed if seed is None else seed, "effects-check", n)
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
