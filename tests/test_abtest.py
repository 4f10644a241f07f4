"""Loading impression logs, the A/B/n analysis end to end, its report and experiment plans."""

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from backdrop.errors import BackdropError, CatalogError
from backdrop.experiments import (
    Impressions,
    analyze,
    choose_control,
    load_impressions,
    over_time,
    plan,
    plan_markdown,
    plan_table,
    stats,
    to_markdown,
)


def _simulate(ctrs: dict, n: dict | int, seed: int = 0, covariate: bool = False, start: float = 1.7e9) -> Impressions:
    """Impressions with known per-arm CTRs, shuffled in time over one week."""
    rng = np.random.default_rng(seed)
    counts = n if isinstance(n, dict) else dict.fromkeys(ctrs, n)
    arm = np.concatenate([np.full(counts[a], a) for a in ctrs])
    p = np.concatenate([np.full(counts[a], ctrs[a]) for a in ctrs])
    pre = None
    if covariate:
        # a user-level propensity seen both before (covariate) and during the test
        user = rng.beta(0.5, 10, arm.size)
        pre = rng.binomial(100, user) / 100
        p = np.clip(p * user / user.mean(), 0, 1)
    click = (rng.random(arm.size) < p).astype(float)
    at = start + rng.permutation(arm.size) * (7 * 86_400 / arm.size)
    return Impressions(arm=arm, click=click, covariate=pre, at=at, source="sim")


def _write(tmp_path, text, name="impressions.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- loading


def test_load_csv_with_aliases_and_timestamps(tmp_path):
    path = _write(
        tmp_path,
        "Variant,Reward,pre_ctr,timestamp\nA,0,0.02,2024-05-01T10:00:00Z\nB,1,0.05,2024-05-01T10:00:01\n B ,0,0,1714557602\n",
    )
    imp = load_impressions(path)
    assert imp.arm.tolist() == ["A", "B", "B"]
    assert imp.click.tolist() == [0.0, 1.0, 0.0]
    assert imp.covariate.tolist() == [0.02, 0.05, 0.0]
    t0 = datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()
    assert imp.at.tolist() == [t0, t0 + 1, 1714557602.0]
    assert imp.source == str(path) and len(imp) == 3


def test_load_csv_minimal_columns(tmp_path):
    imp = load_impressions(_write(tmp_path, "style,click\nsoft-light,1\nstudio,0\n"))
    assert imp.covariate is None and imp.at is None
    assert imp.arm.tolist() == ["soft-light", "studio"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "arm,click\nA,0\nB,1\nB,yes\n",
            "impressions.csv: row 4: click 'yes' is not a number; expected 0/1 or a reward value",
        ),
        ("arm,click\nA,0\nB,\n", "row 3: click (empty) is not a number"),
        ("arm,click\nA,1\n,0\n", "row 3: arm is empty"),
        (
            "variant,reward,pre_ctr\nA,1,0.1\nB,0,n/a\n",
            "row 3: pre_ctr 'n/a' is not a number; give every row its pre-period",
        ),
        ("arm,click,at\nA,1,yesterday\n", "row 2: at 'yesterday' is not a time; use epoch seconds or ISO 8601"),
        ("arm,click\nA,1\nB,0,extra\n", "row 3: has 3 fields, the header has 2"),
        ("variant,clicked\nA,1\n", "missing column 'click' or 'reward'; found columns: variant, clicked"),
        ("creative,click\nA,1\n", "missing column 'arm' or 'variant' or 'style'; found columns: creative, click"),
        ("arm,click\n", "no impressions"),
        ("", "empty file"),
    ],
)
def test_load_csv_errors_name_file_row_and_field(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        load_impressions(path)
    assert expected in str(info.value)
    assert str(info.value).startswith(str(path))
    assert isinstance(info.value, BackdropError)  # the CLI turns these into a one-line message


def test_load_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        load_impressions(tmp_path / "nope.csv")
    with pytest.raises(CatalogError, match=r"unsupported impressions format '\.xlsx'"):
        load_impressions(_write(tmp_path, "x", "log.xlsx"))


def test_load_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ts = [datetime(2024, 5, 1, 10, s, tzinfo=UTC) for s in range(3)]
    table = pa.table({"style": ["A", "B", "A"], "reward": [0, 1, 1], "covariate": [0.1, 0.2, 0.3], "timestamp": ts})
    path = tmp_path / "imp.parquet"
    pq.write_table(table, path)
    imp = load_impressions(path)
    assert imp.arm.tolist() == ["A", "B", "A"]
    assert imp.click.tolist() == [0.0, 1.0, 1.0]
    assert imp.at.tolist() == [t.timestamp() for t in ts]

    pq.write_table(pa.table({"arm": ["A", "B"], "click": [1.0, None]}), path)
    with pytest.raises(CatalogError, match=r"row 2: click \(empty\) is not a number"):
        load_impressions(path)
    pq.write_table(pa.table({"arm": ["A"], "clicks": [1]}), path)
    with pytest.raises(CatalogError, match="found columns: arm, clicks"):
        load_impressions(path)


# --------------------------------------------------------------------------- analysis


def test_choose_control_rule():
    assert choose_control(["B", "control", "A"]) == "control"
    assert choose_control(["variant-2", "Original", "a"]) == "Original"
    assert choose_control(["B", "A", "C"]) == "A"
    assert choose_control(["studio", "soft-light", "marble"]) == "marble"
    assert choose_control(["x", "y"], control="y") == "y"
    with pytest.raises(BackdropError, match="arms: x, y"):
        choose_control(["x", "y"], control="z")


def test_analyze_end_to_end_recovers_the_known_lift():
    true = {"control": 0.02, "warm": 0.024, "cool": 0.02}  # warm +20%, cool +0%
    # one fixed seed: the intervals' coverage rate is checked by simulation in test_experiments_stats
    imp = _simulate(true, 60_000, seed=0)
    res = analyze(imp)
    json.dumps(res, allow_nan=False)  # strict JSON

    assert res["control"] == "control" and res["impressions"] == 180_000
    rows = {r["arm"]: r for r in res["arms"]}
    assert [r["arm"] for r in res["arms"]] == ["control", "cool", "warm"]
    for arm, ctr in true.items():
        r = rows[arm]
        assert r["n"] == 60_000
        assert r["ctr_low"] <= ctr <= r["ctr_high"]
        if arm != "control":
            assert r["lift_low"] <= ctr / true["control"] - 1 <= r["lift_high"]
    assert rows["warm"]["significant"] and rows["warm"]["p_holm"] < 0.01
    assert not rows["cool"]["significant"]

    # the numbers are those of the stats functions on the arm counts
    c, n = rows["control"]["clicks"], rows["control"]["n"]
    z, p = stats.two_proportion_test(rows["warm"]["clicks"], rows["warm"]["n"], c, n)
    assert rows["warm"]["z"] == pytest.approx(z) and rows["warm"]["p"] == pytest.approx(p)
    ps = [rows["cool"]["p"], rows["warm"]["p"]]
    assert [rows["cool"]["p_holm"], rows["warm"]["p_holm"]] == pytest.approx(stats.holm(ps).tolist())
    # always-valid p: the running minimum over the time-ordered log is at most the one-look value
    one_look, *_ = stats.msprt(rows["warm"]["clicks"], n, c, n, tau=rows["warm"]["tau"])
    assert rows["warm"]["always_valid_p"] <= one_look + 1e-12
    assert rows["warm"]["always_valid_p"] >= rows["warm"]["p"]  # the price of peeking
    assert res["srm"]["warning"] is None and res["srm"]["p"] > 0.001 and res["cuped"] is None


def test_analyze_without_timestamps_uses_one_look():
    imp = _simulate({"A": 0.03, "B": 0.033}, 40_000, seed=1)
    imp.at = None
    res = analyze(imp)
    a, b = res["arms"]
    assert a["arm"] == "A"
    p, low, high = stats.msprt(b["clicks"], b["n"], a["clicks"], a["n"])
    assert b["always_valid_p"] == pytest.approx(p)
    assert (b["always_valid_diff_low"], b["always_valid_diff_high"]) == pytest.approx((low, high))


def test_analyze_detects_sample_ratio_mismatch():
    imp = _simulate({"A": 0.03, "B": 0.03}, {"A": 50_000, "B": 48_500}, seed=2)
    res = analyze(imp)
    warning = res["srm"]["warning"]
    assert res["srm"]["p"] < 0.001
    assert "SAMPLE RATIO MISMATCH" in warning and "cannot be trusted" in warning
    assert "WARNING: SAMPLE RATIO MISMATCH" in to_markdown(res)

    # the same counts are fine when that split was planned
    ok = analyze(imp, planned_shares={"A": 50_000, "B": 48_500})
    assert ok["srm"]["warning"] is None and ok["srm"]["p"] == pytest.approx(1.0)
    # a planned arm that never served is a mismatch too
    missing = analyze(imp, planned_shares={"A": 1, "B": 1, "C": 1})
    assert missing["srm"]["warning"] and missing["srm"]["observed_shares"]["C"] == 0
    with pytest.raises(BackdropError, match="lacks arm"):
        analyze(imp, planned_shares={"A": 1})


def test_analyze_cuped_narrows_the_interval():
    imp = _simulate({"control": 0.03, "B": 0.036}, 50_000, seed=4, covariate=True)
    res = analyze(imp)
    json.dumps(res, allow_nan=False)
    raw = res["arms"][1]
    adj = res["cuped"]["B"]
    assert 0.03 < adj["variance_reduction"] < 0.2
    assert adj["lift_high"] - adj["lift_low"] < raw["lift_high"] - raw["lift_low"]
    assert adj["lift_low"] <= 0.2 <= adj["lift_high"]
    assert "CUPED" in to_markdown(res)


def test_analyze_zero_click_arm_and_bad_input():
    imp = Impressions(arm=["A"] * 100 + ["B"] * 100, click=[0.0] * 150 + [1.0] * 50)
    res = analyze(imp)  # A has no clicks: lift undefined, still a result
    json.dumps(res, allow_nan=False)
    assert res["arms"][1]["lift"] is None and res["arms"][1]["p"] < 1e-6
    assert "| A (control) | 100 | 0 |" in to_markdown(res)

    with pytest.raises(BackdropError, match="click must be 0 or 1"):
        analyze(Impressions(arm=["A", "B"], click=[0.0, 2.5]))
    with pytest.raises(BackdropError, match="only one arm"):
        analyze(Impressions(arm=["A", "A"], click=[0.0, 1.0]))
    with pytest.raises(ValueError, match="one entry per impression"):
        Impressions(arm=["A", "B"], click=[0.0])


def test_over_time_bins_add_up():
    imp = _simulate({"A": 0.05, "B": 0.06}, 5_000, seed=6)
    ot = over_time(imp, bins=7)
    assert len(ot["edges"]) == 8
    for arm in ("A", "B"):
        s = ot["arms"][arm]
        m = imp.arm == arm
        assert sum(s["n"]) == m.sum() and sum(s["clicks"]) == imp.click[m].sum()
        assert s["cumulative_ctr"][-1] == pytest.approx(imp.click[m].mean())
        assert all(0 <= v <= 1 for v in s["ctr"])
    with pytest.raises(BackdropError, match="needs timestamps"):
        over_time(Impressions(arm=["A"], click=[1.0]))


def test_to_markdown_table():
    res = analyze(_simulate({"control": 0.02, "B": 0.03}, 20_000, seed=8))
    md = to_markdown(res)
    assert "| arm | impressions | clicks | CTR [95% CI] | lift [95% CI] | p (Holm) | always-valid p |" in md
    assert "| control (control) | 20,000 |" in md
    b = res["arms"][1]
    assert f"{b['lift']:+.1%} [{b['lift_low']:+.1%}, {b['lift_high']:+.1%}]" in md
    assert "SRM check" in md and "— ok" in md


# --------------------------------------------------------------------------- planning


def test_plan_two_and_three_arms():
    p2 = plan(0.01, 0.05, daily_impressions=100_000)
    assert p2["impressions_per_arm"] == stats.sample_size_per_arm(0.01, 0.05)
    assert p2["impressions_total"] == 2 * p2["impressions_per_arm"]
    assert p2["days"] == math.ceil(p2["impressions_total"] / 100_000)

    p3 = plan(0.01, 0.05, arms=3)
    assert p3["alpha_per_comparison"] == pytest.approx(0.025) and p3["days"] is None
    assert p3["impressions_per_arm"] == stats.sample_size_per_arm(0.01, 0.05, alpha=0.025)
    assert p3["impressions_per_arm"] > p2["impressions_per_arm"]
    # the plan's n detects exactly the planned lift at the split alpha
    mde = stats.detectable_lift(0.01, p3["impressions_per_arm"], alpha=0.025)
    assert mde == pytest.approx(0.05, rel=1e-4)


def test_plan_table_and_markdown():
    rows = plan_table([0.01, 0.03], [0.05, 0.1, 0.2], arms=3, daily_impressions=50_000)
    assert len(rows) == 6
    assert [(r["baseline_ctr"], r["lift"]) for r in rows[:3]] == [(0.01, 0.05), (0.01, 0.1), (0.01, 0.2)]
    per_arm = [r["impressions_per_arm"] for r in rows]
    assert per_arm[0] > per_arm[1] > per_arm[2]  # bigger lifts need fewer impressions
    md = plan_markdown(rows)
    assert "Bonferroni" in md and "| days |" in md
    assert f"{rows[0]['impressions_per_arm']:,}" in md
    single = plan_markdown(plan(0.01, 0.05))
    assert "| 1.00% | +5% | 1.050% |" in single and "days" not in single


def _clustered_experiment(rng, users=3000, lift=0.0):
    """Per-user assignment, users with very different CTRs and numbers of impressions."""
    arm_of = rng.integers(0, 2, users)
    ctr = np.clip(rng.lognormal(np.log(0.03), 0.8, users), 0, 0.9) * np.where(arm_of == 1, 1 + lift, 1.0)
    n = rng.geometric(1 / 12, users)
    unit = np.repeat(np.arange(users), n)
    arm = np.where(arm_of[unit] == 1, "B", "control")
    click = (rng.random(len(unit)) < ctr[unit]).astype(float)
    return Impressions(arm=arm, click=click, unit=unit.astype(str))


def test_per_user_assignment_uses_the_delta_method_and_counts_users_for_srm():
    rng = np.random.default_rng(11)
    covered_delta = covered_binomial = 0
    reps = 150
    for _ in range(reps):
        imp = _clustered_experiment(rng)
        r = analyze(imp)
        b = r["arms"][1]
        covered_delta += b["lift_low"] <= 0.0 <= b["lift_high"]
        naive = analyze(Impressions(arm=imp.arm, click=imp.click))["arms"][1]
        covered_binomial += naive["lift_low"] <= 0.0 <= naive["lift_high"]
    # heavy-tailed users: the binomial interval is far too narrow; the delta method holds its level
    assert covered_delta / reps >= 0.88
    assert covered_binomial / reps <= covered_delta / reps - 0.04
    assert r["unit"] == "user" and r["arms"][0]["design_effect"] > 1.2
    # impressions per arm swing with who happens to be heavy users; users split evenly
    assert r["srm"]["warning"] is None


def test_a_user_in_two_arms_is_reported():
    imp = Impressions(arm=["control", "B", "B", "control"], click=[0, 1, 0, 0], unit=["u1", "u1", "u2", "u3"])
    r = analyze(imp)
    assert "more than one arm" in r["srm"]["warning"]


def test_compare_any_pair_gives_what_analyze_gives_against_the_control():
    from backdrop.experiments.abtest import compare

    rng = np.random.default_rng(4)
    for imp in (_clustered_experiment(rng, users=800), _clustered_experiment(rng, users=800)):
        for unit in (imp.unit, None):
            data = Impressions(arm=imp.arm, click=imp.click, unit=unit)
            b = analyze(data)["arms"][1]
            c = compare(data, "B", "control")
            assert (c["lift"], c["ci_low"], c["ci_high"], c["p"]) == pytest.approx(
                (b["lift"], b["lift_low"], b["lift_high"], b["p"]), rel=1e-12
            )
    with pytest.raises(BackdropError, match="no impressions of arm"):
        compare(data, "Z", "control")
