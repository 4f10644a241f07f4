"""The results page's figures: from the event log (read-only), the store's products and the
service's Prometheus metrics, with the statistics ``backdrop abtest`` uses."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np

from ..bandit.arms import ORIGINAL
from ..experiments import abtest
from ..experiments.audience import Decision, context_breakdown, lift_over_best_style
from ..experiments.breakdown import breakdown
from ..render import figure, png_data_uri
from ..serving.eventlog.base import LogUnavailable
from ..serving.eventlog.reader import LogReader
from ..serving.rollout import APPRENTICE
from ..serving.service import CONTROL, FIXED_STYLE, RANDOM_STYLE

#: the per-category table groups by the first levels of the category path (a catalog has thousands of leaves)
CATEGORY_DEPTH = 2

#: a decision was clicked: a positive feedback reward or a click event (only activated decisions count)
_CLICKED = "(r.reward > 0 OR EXISTS (SELECT 1 FROM events e WHERE e.decision_id = d.decision_id AND e.type = 'click'))"
_COUNTS = (
    f"SELECT d.arm, d.placement, d.item_id, COUNT(*), SUM(CASE WHEN {_CLICKED} THEN 1 ELSE 0 END)"
    " FROM decisions d LEFT JOIN rewards r ON r.decision_id = d.decision_id WHERE d.activated_at IS NOT NULL"
    " GROUP BY d.arm, d.placement, d.item_id"
)
_EXPERIMENT = (
    f"SELECT d.experiment_arm, d.user_id, d.created_at, CASE WHEN {_CLICKED} THEN 1 ELSE 0 END FROM decisions d"
    " LEFT JOIN rewards r ON r.decision_id = d.decision_id WHERE d.experiment_arm IS NOT NULL AND d.activated_at IS NOT NULL"
    " ORDER BY d.seq"
)
_INACTIVE = "SELECT COUNT(*) FROM decisions WHERE activated_at IS NULL"
#: the shown decisions with a choice, newest first: who saw what (the "for whom" breakdowns)
_CONTEXTS = (
    f"SELECT d.item_id, d.placement, d.arm, d.propensity, d.policy, d.user_features, CASE WHEN {_CLICKED} THEN 1 ELSE 0 END"
    " FROM decisions d LEFT JOIN rewards r ON r.decision_id = d.decision_id"
    " WHERE d.activated_at IS NOT NULL AND d.fallback IS NULL ORDER BY d.seq DESC LIMIT ?"
)
#: how many of the newest decisions the "for whom" figures read (a page must stay quick on a large log)
CONTEXT_ROWS = 200_000
#: the policies of decisions an experiment's arm made, not the served bandit
_NOT_THE_POLICY = frozenset({CONTROL, FIXED_STYLE, RANDOM_STYLE, APPRENTICE})
_MODELS = "SELECT version, created_at, policy, learner_offset, n_decisions, n_rewards, n_expired FROM models ORDER BY version"


def results(
    reader: LogReader, categories: dict[str, str], metrics_text: str | None = None, planned_shares: dict[str, float] | None = None
) -> dict:
    """Everything the results page shows. ``categories``: item id -> category path (from the store).

    Keys: ``log`` (the event log, redacted), ``error`` (why there are no figures, or None),
    ``summary``, ``by_arm``, ``by_category``, ``by_placement`` (:func:`breakdown` rows, lift over the
    catalog image), ``for_whom`` and ``vs_best_style`` (:func:`for_whom`), ``experiment``
    (:func:`abtest.analyze`, or None), ``models``, ``service``."""
    out: dict = {"log": reader.redacted_url, "error": None, "experiment": None, "models": [], "service": service_metrics(metrics_text)}
    try:
        counts = reader.query(_COUNTS)
        experiment = reader.query(_EXPERIMENT)
        models = reader.query(_MODELS)
        inactive = int(reader.query(_INACTIVE)[0][0])
        contexts = reader.query(_CONTEXTS, (CONTEXT_ROWS,))
    except LogUnavailable as e:
        out["error"] = str(e)
        return out
    total = sum(int(n) for *_, n, _c in counts)
    clicks = sum(int(c or 0) for *_, c in counts)
    out["summary"] = {"decisions": total, "clicks": clicks, "ctr": clicks / total if total else None, "inactive": inactive}

    def group(name: Callable[[tuple], str]) -> list[dict]:
        return breakdown(((name(r), r[0], r[3], r[4] or 0) for r in counts), control=ORIGINAL)

    out["by_arm"] = group(lambda r: "all")
    out["by_category"] = group(lambda r: " > ".join(categories.get(r[2], "(not in the store)").split(" > ")[:CATEGORY_DEPTH]))
    out["by_placement"] = group(lambda r: r[1])
    out["for_whom"], out["vs_best_style"] = for_whom(contexts, categories)
    out["models"] = [
        {
            "version": int(v),
            "created_at": float(t),
            "policy": p,
            "learner_offset": int(o),
            "decisions": int(d),
            "rewards": int(r),
            "expired": int(e),
        }
        for v, t, p, o, d, r, e in models
    ]
    if experiment:
        imp = abtest.Impressions(
            arm=np.array([e[0] for e in experiment], dtype=object),
            click=np.array([float(e[3]) for e in experiment]),
            at=np.array([float(e[2]) for e in experiment]),
            source=reader.redacted_url,
            unit=np.array([e[1] for e in experiment], dtype=object) if all(e[1] for e in experiment) else None,
        )
        if len(set(imp.arm.tolist())) >= 2:
            out["experiment"] = abtest.analyze(imp, planned_shares=planned_shares)
    out["plots"] = plots(out)
    return out


def for_whom(contexts: list, categories: dict[str, str]) -> tuple[list[dict], dict]:
    """The context breakdowns and the policy's lift over the best single style per category, from
    the newest :data:`CONTEXT_ROWS` shown decisions (``_CONTEXTS`` rows)."""
    rows = []
    for item, placement, arm, propensity, policy, features, clicked in contexts:
        try:
            user = json.loads(features) if features else {}
        except ValueError:
            user = {}
        category = " > ".join(categories.get(item, "(not in the store)").split(" > ")[:CATEGORY_DEPTH])
        rows.append(Decision(category, placement, arm, float(propensity), policy not in _NOT_THE_POLICY, float(clicked), user))
    out = context_breakdown(rows)
    lift = lift_over_best_style(rows)
    lift["window"] = len(rows)
    lift["capped"] = len(rows) >= CONTEXT_ROWS
    return out, lift


def plots(data: dict) -> dict[str, str]:
    """Inline PNGs: CTR per arm with its interval, and the model versions over time."""
    out = {}
    rows = [r for r in data["by_arm"] if r["n"]][:20]
    if rows:
        fig, ax = figure(7.5, 0.32 * len(rows) + 1.2)
        y = np.arange(len(rows))[::-1]
        ctr = np.array([r["ctr"] for r in rows]) * 100
        err = np.array([[r["ctr"] - r["ctr_low"], r["ctr_high"] - r["ctr"]] for r in rows]).T * 100
        ax.barh(y, ctr, xerr=err, capsize=3, color=["#8c8c8c" if r["control"] else "#2f6fb0" for r in rows])
        ax.set_yticks(y, [r["arm"] for r in rows], fontsize=8)
        ax.set_xlabel("CTR (%) with 95% Wilson interval")
        out["ctr"] = png_data_uri(fig)
    models = data["models"]
    if models:
        fig, ax = figure(7.5, 2.6)
        t0 = models[0]["created_at"]
        minutes = [(m["created_at"] - t0) / 60 for m in models]
        ax.step(minutes, [m["version"] for m in models], where="post", color="#2f6fb0")
        ax.set_xlabel("minutes since the first model version")
        ax.set_ylabel("model version")
        out["models"] = png_data_uri(fig)
    return out


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of a Prometheus histogram from its cumulative ``(le, count)`` buckets,
    interpolated within the bucket it falls in (as PromQL's ``histogram_quantile``).

    >>> histogram_quantile([(0.001, 50), (0.002, 90), (0.005, 100), (float("inf"), 100)], 0.5)
    0.001
    >>> round(histogram_quantile([(0.001, 50), (0.002, 90), (0.005, 100), (float("inf"), 100)], 0.95), 4)
    0.0035
    """
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_le  # past the last finite bucket: its bound is all that is known
            if count == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count)
        lower_le, lower_count = le, count
    return None


def service_metrics(text: str | None) -> dict | None:
    """Decide latency (p50, p99), learner lag, model version and creative counts from ``/metrics``."""
    if text is None:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    buckets: list[tuple[float, float]] = []
    out: dict = {"decide_p50_ms": None, "decide_p99_ms": None, "decisions": 0, "learner_lag_s": None, "model_version": None}
    out["creatives"] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "backdrop_request_seconds_bucket" and s.labels.get("endpoint") == "/v1/decide":
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name == "backdrop_request_seconds_count" and s.labels.get("endpoint") == "/v1/decide":
                out["decisions"] = int(s.value)
            elif s.name == "backdrop_learner_lag_seconds":
                out["learner_lag_s"] = s.value
            elif s.name == "backdrop_model_version":
                out["model_version"] = int(s.value)
            elif s.name == "backdrop_creatives":
                out["creatives"][s.labels.get("status", "")] = int(s.value)
    for q, name in ((0.5, "decide_p50_ms"), (0.99, "decide_p99_ms")):
        v = histogram_quantile(buckets, q)
        out[name] = None if v is None else v * 1000
    return out
