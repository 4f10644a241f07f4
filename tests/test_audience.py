"""For whom a style works, and whether personalization beats the best single style (pure functions)."""

import json

import numpy as np

from backdrop.experiments.audience import MIN_CLICKS, Decision, context_breakdown, lift_over_best_style


def _world(n, seed, policy_knows=True, styles=("a", "b"), personal=True):
    """Two devices; with ``personal`` style a is best on ios and b on android (4% against 2%), else
    every style clicks 3%. Half the traffic is a uniformly random style, half the policy's (which
    picks the device's best with probability 0.9 when ``policy_knows``, else the wrong one)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        device = "ios" if rng.random() < 0.5 else "android"
        good = "a" if device == "ios" else "b"
        if rng.random() < 0.5:
            target = good if policy_knows else ("b" if good == "a" else "a")
            arm = target if rng.random() < 0.9 else str(rng.choice(styles))
            p = 0.9 + 0.1 / len(styles) if arm == target else 0.1 / len(styles)
            mine = True
        else:
            arm, p, mine = str(rng.choice(styles)), 1 / len(styles), False
        ctr = (0.04 if arm == good else 0.02) if personal else 0.03
        rows.append(
            Decision("Shoes", "feed", arm, p, mine, float(rng.random() < ctr), {"device": device, "age": int(rng.integers(18, 70))})
        )
    return rows


def test_a_policy_that_personalizes_beats_the_best_single_style_beyond_the_interval():
    v = lift_over_best_style(_world(30_000, 1))
    assert v["enough"] and v["lift_low"] > 0 and v["verdict"].startswith("personalization pays")
    assert v["lift_low"] < 0.30 < v["lift_high"]  # the policy's 3.9% against the best single style's 3%


def test_a_policy_that_gets_it_backwards_is_said_not_to_pay():
    v = lift_over_best_style(_world(30_000, 2, policy_knows=False))
    assert v["lift_high"] < 0 and v["verdict"].startswith("personalization does not pay yet")


def test_picking_the_best_of_many_equal_styles_does_not_flatter_it():
    """20 styles that all click 3%: a best-of-20 on the same data would beat the policy by luck."""
    styles = tuple("abcdefghijklmnopqrst")
    v = lift_over_best_style(_world(40_000, 3, styles=styles, personal=False))
    assert v["lift_low"] < 0 < v["lift_high"] and v["verdict"].startswith("not yet distinguishable")


def test_thin_data_is_said_to_be_thin():
    v = lift_over_best_style(_world(2_000, 4))
    assert v["clicks"] < MIN_CLICKS and not v["enough"] and v["verdict"].startswith("too thin to tell")
    assert lift_over_best_style([])["verdict"].startswith("no decision of the served policy")


def test_two_decisions_give_no_figure_rather_than_nan():
    """Two styles shown once each: no half values the other half's pick. The figures are None (JSON
    has no NaN: the console's results.json answered 500 on the README's two-decision walk)."""
    rows = [Decision("Shoes", "feed", "a", 0.5, True, 1.0, {}), Decision("Shoes", "feed", "b", 0.5, True, 0.0, {})]
    v = lift_over_best_style(rows)
    assert v["best_style_ctr"] is None and v["lift"] is None and v["verdict"].startswith("too thin to tell")
    json.dumps(v, allow_nan=False)


def test_context_breakdown_names_each_device_s_own_leader_and_puts_numbers_in_thirds():
    fields = {f["field"]: f for f in context_breakdown(_world(30_000, 5))}
    assert set(fields) == {"device", "age", "placement"}
    leaders = {lead["group"]: (lead["arm"], lead["ahead"]) for lead in fields["device"]["leaders"]}
    assert leaders == {"device=ios": ("a", True), "device=android": ("b", True)}
    ages = [lead["group"] for lead in fields["age"]["leaders"]]
    assert len(ages) == 3 and any(g.startswith("age <") for g in ages) and any(g.startswith("age ≥") for g in ages)
    assert all(not lead["ahead"] for lead in fields["age"]["leaders"])  # age says nothing in this world
    row = next(r for r in fields["device"]["rows"] if r["group"] == "device=ios" and r["arm"] == "a")
    assert row["ctr_low"] < 0.04 < row["ctr_high"]
