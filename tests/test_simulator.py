import json
from functools import partial

import numpy as np
import pytest
from pydantic import ValidationError

from backdrop.bandit import LinUCB, Uniform
from backdrop.bandit.simulator import (
    ORIGINAL,
    DelayedFeedback,
    FixedStyle,
    Population,
    SimulationConfig,
    build,
    preset,
    sample_delays,
    simulate,
)
from backdrop.styles import StyleLibrary

#: effects large enough for a learner to beat the best fixed style within a few thousand rounds
STRONG = {
    "base_ctr": 0.10,
    "style_spread": 0.20,
    "personal_spread": 0.50,
    "n_users": 2000,
    "delay_mean": 50,
    "update_every": 50,
}


@pytest.fixture(scope="module")
def world():
    return build(SimulationConfig())


# -- configuration ------------------------------------------------------------------------------


def test_config_forbids_unknown_fields_and_checks_values():
    with pytest.raises(ValidationError):
        SimulationConfig(base_ctrr=0.1)
    with pytest.raises(ValidationError):
        SimulationConfig(base_ctr=0.0)
    with pytest.raises(ValidationError):
        SimulationConfig(fields={"segment": {"values": ["a"]}})
    with pytest.raises(ValidationError):
        SimulationConfig(taste={"fields": {"nope": 1.0}})
    assert preset("strong").personal_spread == 0.5
    assert preset("paper") == SimulationConfig()


def test_population_over_the_demo_catalog_and_style_library(world):
    pop, _ = world
    lib = StyleLibrary.load()
    assert len(pop.products) == 20 and len(pop.categories) == 11
    assert set(pop.placements) == {"square", "landscape", "story"}
    assert len(pop.users) == SimulationConfig().n_users
    assert set(pop.users[0]) == {"segment", "device", "age", "recency_days"}
    rng = np.random.default_rng(0)
    for _ in range(50):
        imp = pop.sample_impression(rng)
        assert imp.styles == tuple(s.name for s in lib.for_category(imp.category_path))
        assert imp.placement in pop.placements
        x = pop.encoder().encode(imp.user_features, imp.category_path, imp.placement)
        assert x.shape == (64,) and np.all(np.isfinite(x))


def test_custom_user_schema():
    config = SimulationConfig(
        n_users=300,
        n_segments=2,
        fields={
            "country": {"values": ["de", "fr", "it"]},
            "spend": {"kind": "numeric", "distribution": "exponential", "mean": 50},
        },
        taste={"fields": {"country": 1.0, "spend": 0.5}},
    )
    pop, cm = build(config)
    assert set(pop.users[0]) == {"segment", "country", "spend"}
    assert {u["segment"] for u in pop.users} == {"s0", "s1"}
    assert set(cm.T_field) == {"country", "spend"}
    assert abs(cm.effects(50_000)["personal_spread"] - 0.10) < 0.02


# -- determinism --------------------------------------------------------------------------------


def test_world_is_deterministic_for_a_seed(world):
    pop, cm = world
    pop2, cm2 = build(SimulationConfig())
    assert pop2.users == pop.users
    for k in ("beta0", "gamma", "k_style", "k_personal"):
        assert cm2.calibration[k] == cm.calibration[k]
    assert cm2.best_fixed == cm.best_fixed
    imp = pop.sample_impression(np.random.default_rng(3))
    assert cm2.p_all(imp) == cm.p_all(imp)
    pop3, cm3 = build(SimulationConfig(seed=1))
    assert pop3.users != pop.users
    assert cm3.calibration["k_personal"] != cm.calibration["k_personal"]


def test_simulation_is_deterministic_for_a_seed(world):
    _, cm = world
    pols = {"linucb": partial(LinUCB, alpha=0.1)}
    a = simulate(pols, click_model=cm, n_rounds=1500, seed=7)
    b = simulate(pols, click_model=cm, n_rounds=1500, seed=7)
    c = simulate(pols, click_model=cm, n_rounds=1500, seed=8)
    strip = lambda recs: [{k: v for k, v in r.items() if k != "seconds"} for r in recs]
    assert strip(a.to_records()) == strip(b.to_records())
    for name in a.runs:
        np.testing.assert_array_equal(a.runs[name].choice, b.runs[name].choice)
    assert strip(a.to_records()) != strip(c.to_records())


# -- calibration: realised effect sizes match the configured ones ----------------------------------

# The scalars are solved exactly on a 20k-impression calibration sample; on fresh impressions the
# lifts differ only by that sample's Monte Carlo error: within 0.01 absolute (lifts), 2 % (base CTR).
LIFT_TOL = 0.01


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "base_ctr": 0.05,
            "generated_lift": 0.30,
            "style_spread": 0.20,
            "personal_spread": 0.25,
            "seed": 3,
        },
        {
            "base_ctr": 0.01,
            "generated_lift": 0.0,
            "style_spread": 0.05,
            "personal_spread": 0.05,
            "n_segments": 8,
            "seed": 11,
        },
    ],
)
def test_realised_lifts_match_configured_effect_sizes(overrides):
    config = SimulationConfig(**overrides)
    _, cm = build(config)
    # on the calibration sample itself: exact up to the root finder
    got = cm.calibration["realised"]
    assert got["base_ctr"] == pytest.approx(config.base_ctr, rel=1e-5)
    for key in ("generated_lift", "style_spread", "personal_spread"):
        assert got[key] == pytest.approx(getattr(config, key), abs=1e-5)
    # on 200k fresh impressions, by exact expectation (no clicks drawn)
    eff = cm.effects(200_000, seed=12345)
    assert eff["base_ctr"] == pytest.approx(config.base_ctr, rel=0.02)
    assert abs(eff["generated_lift"] - config.generated_lift) < LIFT_TOL
    assert abs(eff["style_spread"] - config.style_spread) < LIFT_TOL
    assert abs(eff["personal_spread"] - config.personal_spread) < LIFT_TOL
    ctr = eff["ctr"]
    assert ctr["original"] < ctr["uniform"] or config.generated_lift == 0
    assert ctr["uniform"] <= ctr["best_fixed"] <= ctr["oracle"]


def test_no_style_spread_and_no_personal_spread():
    _, cm = build(SimulationConfig(style_spread=0.0, personal_spread=0.0, n_users=500))
    assert cm.k_personal == 0.0
    eff = cm.effects(50_000)
    assert abs(eff["personal_spread"]) < 1e-9
    assert abs(eff["style_spread"]) < 0.005


# -- click model --------------------------------------------------------------------------------


def test_oracle_is_at_least_every_style(world):
    pop, cm = world
    rng = np.random.default_rng(1)
    for _ in range(300):
        imp = pop.sample_impression(rng)
        best, p_best = cm.oracle(imp)
        ps = cm.p_all(imp)
        assert set(ps) == {ORIGINAL, *imp.styles}
        assert best in imp.styles
        assert all(p_best >= cm.p_click(imp, s) for s in imp.styles)
        assert 0 < ps[ORIGINAL] < 1
    with pytest.raises(ValueError, match="not offered"):
        cm.p_click(imp, "no-such-style")
    # batch path: the oracle column is the row maximum
    _, P, S = cm.probabilities(pop.sample_impressions(5000, rng))
    assert np.all(np.nanmax(P, axis=1)[:, None] >= np.where(S >= 0, P, 0))
    assert cm.sample_click(1.0, rng) is True and cm.sample_click(0.0, rng) is False


def test_best_fixed_table_is_the_population_optimum(world):
    pop, cm = world
    b = pop.sample_impressions(100_000, np.random.default_rng(2))
    _, P, _ = cm.probabilities(b)
    groups = pop.product_set[b.product]
    for g, styles in enumerate(pop.style_sets):
        rows = groups == g
        means = np.nanmean(P[rows], axis=0)[: len(styles)]
        chosen = styles.index(cm.best_fixed[styles])
        assert means[chosen] >= means.max() * 0.99  # up to sampling noise


def test_fixed_style_policy():
    p = FixedStyle(table={("a", "b", "c"): "b"})
    d = p.choose(np.zeros(3), ["c", "a", "b"])  # order does not matter
    assert d.arm == "b" and d.propensity == 1.0
    assert p.choose(None, ["x", "y"]).arm == "x"  # unknown set: the first offered (the category default)
    assert FixedStyle(**p.params()).table == p.table


# -- policies learn -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_linucb_beats_uniform_and_best_fixed_when_personal_spread_is_large(seed):
    config = SimulationConfig(seed=seed, **STRONG)
    r = simulate({"linucb": partial(LinUCB, alpha=0.1)}, config, n_rounds=8000)
    rec = {x["policy"]: x for x in r.to_records()}
    # measured (seeds 0, 1): regret 350 / 398 vs uniform 735 / 754; CTR +18 % / +14 % over best-fixed
    assert rec["linucb"]["cum_regret"] < 0.7 * rec["uniform"]["cum_regret"]
    assert rec["linucb"]["expected_ctr"] > 1.05 * rec["best-fixed"]["expected_ctr"]
    assert rec["linucb"]["lift_vs_best_fixed"] > 0.05
    assert rec["oracle"]["cum_regret"] == 0.0
    # common random numbers: click = U_t < p, so the oracle clicks whenever anyone does
    assert np.all(r.runs["oracle"].clicks >= r.runs["linucb"].clicks)
    # learning: the second half is better than the first
    p = r.runs["linucb"].p
    assert p[4000:].mean() > p[:4000].mean()


def test_common_random_numbers_same_choices_same_clicks(world):
    _, cm = world
    r = simulate(
        {"fixed-copy": lambda **kw: FixedStyle(table=cm.best_fixed, **kw)},
        click_model=cm,
        n_rounds=2000,
        seed=4,
    )
    np.testing.assert_array_equal(r.runs["fixed-copy"].clicks, r.runs["best-fixed"].clicks)
    np.testing.assert_array_equal(r.runs["fixed-copy"].p, r.runs["best-fixed"].p)


# -- delayed feedback ---------------------------------------------------------------------------


class Recorder(Uniform):
    """Uniform that logs, at every update, how many rounds it had chosen and which rows arrived."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.chosen = 0
        self.log: list[tuple[int, int]] = []  # (rounds chosen so far, rows delivered)

    def choose_many(self, X, arms):
        self.chosen += len(X)
        return super().choose_many(X, arms)

    def update_many(self, X, arms, rewards):
        self.log.append((self.chosen, len(rewards)))
        super().update_many(X, arms, rewards)


def test_delayed_feedback_arrives_later_in_batches_and_nothing_is_lost(world):
    _, cm = world
    n = 3000
    runs = {}
    for delay, every in [(0.0, 1), (0.0, 100), (300.0, 100)]:
        rec = Recorder()
        r = simulate(
            {"rec": rec},
            click_model=cm,
            n_rounds=n,
            seed=5,
            baselines=(),
            delay_mean=delay,
            update_every=every,
        )
        assert r.config.delay_mean == delay and r.config.update_every == every
        runs[(delay, every)] = (rec, r.runs["rec"])
    # no delay, every round: each outcome reaches the policy right after its round
    rec, run = runs[(0.0, 1)]
    assert run.updates == n and run.in_flight == 0
    assert rec.log == [(t, 1) for t in range(1, n + 1)]
    # no delay, batches of 100: 100 rows every 100 rounds
    rec, run = runs[(0.0, 100)]
    assert rec.log == [(t, 100) for t in range(100, n + 1, 100)]
    # delay ~ Exponential(300): updates only at batch boundaries, fewer rows by any round, nothing lost
    rec, run = runs[(300.0, 100)]
    assert all(chosen % 100 == 0 for chosen, _ in rec.log)
    delivered = np.cumsum([k for _, k in rec.log])
    at = np.array([chosen for chosen, _ in rec.log])
    assert np.all(delivered <= at)
    assert delivered[at == 1000][0] < 1000 * 0.9  # a good part of the first 1000 rounds still in flight
    assert run.updates + run.in_flight == n and run.in_flight > 0
    assert rec.n_updates == run.updates
    # the delays themselves: same stream for every policy, mean as configured
    d = sample_delays(200_000, 300.0, np.random.default_rng(0))
    assert abs(d.mean() - 299.5) < 3  # floor of Exponential(300)
    assert not sample_delays(10, 0.0, np.random.default_rng(0)).any()


def test_delayed_feedback_queue():
    q = DelayedFeedback()
    for due, item in [(5, "a"), (2, "b"), (5, "c"), (9, "d")]:
        q.push(due, item)
    assert q.pop_due(1) == []
    assert q.pop_due(5) == ["b", "a", "c"]
    assert len(q) == 1 and q.pop_due(100) == ["d"]


# -- result -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_result(world):
    _, cm = world
    return simulate(
        {"linucb": partial(LinUCB, alpha=0.1)},
        click_model=cm,
        n_rounds=2000,
        seed=0,
        n_checkpoints=50,
    )


def test_records_schema(small_result):
    records = small_result.to_records()
    assert [r["policy"] for r in records] == [
        "original",
        "uniform",
        "bandit",
        "best-fixed",
        "oracle",
        "linucb",
    ]
    keys = {
        "policy",
        "kind",
        "rounds",
        "clicks",
        "ctr",
        "expected_ctr",
        "lift_vs_original",
        "lift_vs_uniform",
        "lift_vs_bandit",
        "lift_vs_best_fixed",
        "window_rounds",
        "window_lift_vs_original",
        "window_lift_vs_uniform",
        "window_lift_vs_bandit",
        "window_lift_vs_best_fixed",
        "cum_regret",
        "regret_share",
        "updates",
        "in_flight",
        "seconds",
    }
    for r in records:
        assert set(r) == keys
        assert r["rounds"] == 2000
        assert r["ctr"] == pytest.approx(r["clicks"] / 2000)
        assert 0 <= r["regret_share"] <= 1
        assert r["cum_regret"] >= -1e-9
        assert r["kind"] in ("policy", "baseline")
    by = {r["policy"]: r for r in records}
    assert by["original"]["lift_vs_original"] == 0.0 and by["best-fixed"]["lift_vs_best_fixed"] == 0.0
    assert by["linucb"]["updates"] + by["linucb"]["in_flight"] == 2000
    d = json.loads(json.dumps(small_result.to_dict()))
    assert d["rounds"] == 2000 and len(d["policies"]) == 6
    assert len(d["checkpoints"]) == 50 and d["checkpoints"][-1] == 2000
    curve = d["curves"]["linucb"]
    assert len(curve["regret"]) == 50
    assert curve["regret"][-1] == pytest.approx(by["linucb"]["cum_regret"])
    assert curve["clicks"][-1] == by["linucb"]["clicks"]
    assert d["calibration"]["targets"]["base_ctr"] == 0.02
    md = small_result.to_markdown()
    assert md.count("\n") == 7 and "| linucb |" in md and "| bandit |" in md
    assert "last 1k: vs best style" in md  # a 2k run's window is its last half


def test_plot_writes_a_png(small_result, tmp_path):
    path = small_result.plot(tmp_path / "sub" / "sim.png", title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_bad_arguments(world):
    _, cm = world
    with pytest.raises(ValueError, match="baseline"):
        simulate({}, click_model=cm, n_rounds=10, baselines=("nope",))
    with pytest.raises(ValueError, match="clash"):
        simulate({"oracle": Uniform}, click_model=cm, n_rounds=10)
    with pytest.raises(ValueError):
        simulate({}, click_model=cm, n_rounds=0)
    with pytest.raises(ValueError, match="unknown"):
        from backdrop.bandit.simulator import policy_factories

        policy_factories(["nope"])
    with pytest.raises(ValueError, match="not from this population"):
        Population.batch_of(
            cm.population,
            [
                cm.population.sample_impression(np.random.default_rng(0)).__class__(
                    user_id="x",
                    user_features={},
                    product_id="y",
                    category_path=("a",),
                    placement="square",
                    styles=("s",),
                )
            ],
        )


# -- fair baselines and worlds ------------------------------------------------------------------


def test_the_bandit_baseline_learns_per_category_and_style_blind_to_the_user():
    _, cm = build(SimulationConfig(**STRONG))
    res = simulate({}, click_model=cm, n_rounds=20_000, seed=1, baselines=("uniform", "bandit", "best-fixed"))
    by = {r["policy"]: r for r in res.to_records()}
    assert by["bandit"]["window_lift_vs_uniform"] > 0.03  # it has learnt which styles sell
    # ... and only that: it cannot get past the best single style, which knows them from the start
    assert by["bandit"]["window_lift_vs_best_fixed"] < 0.01
    run = res.runs["bandit"]
    assert run.updates + run.in_flight == 20_000
    # its arms are (category, style) pairs: a category's choices do not move another's
    assert by["bandit"]["lift_vs_bandit"] == 0.0


def test_windowed_lifts_are_over_the_last_rounds(small_result):
    rec = {r["policy"]: r for r in small_result.to_records()}["linucb"]
    w = small_result.window
    assert w == 1000 and rec["window_rounds"] == w
    mine, fixed = small_result.runs["linucb"].p[-w:].mean(), small_result.runs["best-fixed"].p[-w:].mean()
    assert rec["window_lift_vs_best_fixed"] == pytest.approx(mine / fixed - 1)


def test_summaries_over_seeds_give_mean_and_sd(world):
    from backdrop.bandit.simulator.results import summarize, summary_markdown

    _, cm = world
    runs = [simulate({}, click_model=cm, n_rounds=1000, seed=s, baselines=("uniform", "best-fixed")) for s in (1, 2)]
    rows = {r["policy"]: r for r in summarize(runs)}
    values = [r.to_records()[0]["lift_vs_best_fixed"] for r in runs]
    assert rows["uniform"]["lift_vs_best_fixed"]["mean"] == pytest.approx(np.mean(values))
    assert rows["uniform"]["lift_vs_best_fixed"]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert rows["uniform"]["lift_vs_bandit"]["mean"] is None  # no bandit in these runs
    assert "| uniform | 2 |" in summary_markdown(list(rows.values()), runs[0].window)


def _ranks_of_shared_styles(cm) -> list[bool]:
    """Per pair of categories, whether the styles both offer are ranked alike by quality."""
    pop = cm.population
    out = []
    for a in range(len(pop.categories)):
        for b in range(a + 1, len(pop.categories)):
            both = np.intersect1d(pop.category_styles[a], pop.category_styles[b])
            if len(both) >= 3:
                out.append(bool((np.argsort(cm.m[a, both]) == np.argsort(cm.m[b, both])).all()))
    return out


def test_quality_shared_across_categories_ranks_a_style_alike_everywhere():
    _, independent = build(SimulationConfig(seed=3))
    _, shared = build(SimulationConfig(seed=3, quality_share=1.0))
    assert all(_ranks_of_shared_styles(shared))
    assert not all(_ranks_of_shared_styles(independent))


def test_quality_carried_by_attributes_makes_look_alike_styles_equal():
    # cosy-wood and wood-table are both a wooden tabletop in a neutral palette under soft light
    _, cm = build(SimulationConfig(quality_share=1.0, quality_attribute_share=1.0))
    pop = cm.population
    a, b = pop.style_index["cosy-wood"], pop.style_index["wood-table"]
    assert pop.arm_attributes[a] == pop.arm_attributes[b]
    both = [c for c in range(len(pop.categories)) if {a, b} <= set(pop.category_styles[c].tolist())]
    assert both and all(cm.m[c, a] == pytest.approx(cm.m[c, b]) for c in both)
    assert cm.calibration["realised"]["style_spread"] == pytest.approx(0.10, abs=1e-6)  # calibrated as any world


def test_attribute_tastes_act_through_attributes_only():
    taste = {"segment": 0, "segment_category": 0, "placement_category": 0, "segment_category_placement": 0, "fields": {}}
    config = SimulationConfig(taste=taste | {"segment_attribute": 1.0})
    pop, cm = build(config)
    a, b = pop.style_index["cosy-wood"], pop.style_index["wood-table"]
    batch = pop.sample_impressions(3000, np.random.default_rng(0))
    _, P, S = cm.probabilities(batch)
    rows, ka = np.nonzero(a == S)
    kb = np.argmax(S[rows] == b, axis=1)
    has_b = (S[rows] == b).any(axis=1)
    base = cm.m[pop.product_category[batch.product[rows]]]
    # the same attributes, the same taste: any difference is the style quality, the same for every user
    gap = (np.log(P[rows, ka] / (1 - P[rows, ka])) - np.log(P[rows, kb] / (1 - P[rows, kb])))[has_b]
    quality = cm.k_style * (base[:, a] - base[:, b])[has_b]
    assert np.allclose(gap, quality, atol=1e-9)


def test_the_paper_world_is_unchanged_by_the_new_settings():
    """Worlds without sharing draw exactly what they drew before these settings existed."""
    _, cm = build(SimulationConfig())
    assert cm.calibration["k_style"] == pytest.approx(0.06686934567448986, rel=1e-9)
    assert cm.calibration["k_personal"] == pytest.approx(0.14705313854736973, rel=1e-9)
