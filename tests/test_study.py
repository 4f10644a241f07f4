"""The study end to end through the real service, the abtest and cost commands, and the HTML reports."""

import csv
import json

import numpy as np
import pytest

from backdrop.cli import main
from backdrop.experiments.study import ARMS
from conftest import SEEDS


def test_the_study_recovers_the_configured_effects_in_most_seeds(studies):
    """Tolerance: each ablation's 95% CI covers the click model's true lift in at least 2 of 3 seeds,
    and each seed covers at least 4 of its 5 ablations (95% intervals miss 1 in 20 by design)."""
    covered = np.array([[a["covered"] for a in r["ablations"]] for r, _, _ in studies.values()])
    assert covered.shape == (3, 5)
    assert covered.sum(axis=0).min() >= 2, covered
    assert covered.sum(axis=1).min() >= 4, covered
    for result, config, _ in studies.values():
        truth = {a["ablation"]: a["true_lift"] for a in result["ablations"]}
        # the click model holds what was configured (population expectations; calibration tolerance 0.01)
        assert truth["generated vs catalog image"] == pytest.approx(config.generated_lift, abs=0.02)
        assert truth["style choice vs random style"] == pytest.approx(config.style_spread, abs=0.02)


def test_the_study_reads_the_services_log_and_says_clicks_are_simulated(studies):
    result, config, _ = studies[SEEDS[0]]
    table = result["table"]
    assert result["note"].startswith("Clicks in this study are simulated")
    assert table["impressions"] == config.impressions and {a["arm"] for a in table["arms"]} == set(ARMS)
    assert table["srm"]["warning"] is None  # hash assignment keeps the planned split
    assert table["clicks"] > 0.05 * config.impressions
    # the off-policy estimates come from the random arm's log, for both the fixed and the learning arm
    assert {(r["target"], r["estimator"]) for r in result["off_policy"]} == {
        (t, e) for t in ("fixed", "personalized") for e in ("ips", "snips", "dr")
    }
    regret = result["regret"]
    assert regret["original"]["regret"][-1] > regret["fixed"]["regret"][-1] > 0  # the catalog image is far from the oracle


def test_each_studys_log_ends_with_a_model_of_all_its_traffic(studies):
    """However fast the machine served the traffic (the last join windows were still open when it
    ended), the learner folded every decision the personalised arm made."""
    from backdrop.serving.eventlog import open_event_log
    from backdrop.serving.learner import learnable

    for _, _, out in studies.values():
        log = open_event_log(str(out / "events.sqlite"))
        try:
            rows = log.joined(0, float("inf"), limit=10**6)
            latest = log.latest_model()
        finally:
            log.close()
        assert latest is not None, f"{out}: no model version was published"
        assert latest.learner_offset == rows[-1][0].logged_seq
        assert latest.n_decisions == len(learnable(rows)) > 0


def test_study_report_renders_every_plot_in_chromium(studies, browser):
    _, _, out = studies[SEEDS[0]]
    browser.open((out / "report.html").as_uri())
    text = browser.evaluate("document.body.innerText")
    assert text.splitlines()[0].startswith("Clicks in this study are simulated")
    images = browser.image_report()
    assert len(images) == 4
    assert [i["src"] for i in images if not (i["complete"] and i["width"] > 300)] == []
    assert browser.evaluate("document.querySelectorAll('table').length") >= 3


def test_study_refuses_to_overwrite_and_checks_its_inputs(small_store, studies, capsys):
    some_out = studies[SEEDS[0]][2]
    assert main(["study", "--store", str(small_store), "--out", str(some_out), "--impressions", "1000", "--no-progress"]) == 2
    assert "already holds a study" in capsys.readouterr().err
    assert main(["study", "--store", str(some_out / "nope"), "--impressions", "1000"]) == 2
    assert "not a creative store" in capsys.readouterr().err
    assert main(["study", "--store", str(small_store), "--impressions", "1000", "--base-ctr", "2"]) == 2


def test_abtest_on_the_service_log_and_on_a_csv(studies, tmp_path, capsys, browser):
    db = studies[SEEDS[0]][2] / "events.sqlite"
    assert main(["abtest", str(db), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(json.dumps(studies[SEEDS[0]][0]["table"]))  # the same analysis as the study's

    rng = np.random.default_rng(0)
    path = tmp_path / "impressions.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "click", "at"])
        for i in range(6000):
            arm = ["control", "B"][i % 2]
            w.writerow([arm, int(rng.random() < (0.05 if arm == "control" else 0.07)), 1_700_000_000 + i])
    html = tmp_path / "ab.html"
    assert main(["abtest", str(path), "--html", str(html), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    b = next(a for a in r["arms"] if a["arm"] == "B")
    assert r["control"] == "control" and b["n"] == 3000 and b["p"] < 0.01
    browser.open(html.as_uri())
    assert [i for i in browser.image_report() if not (i["complete"] and i["width"] > 0)] == []

    assert main(["abtest", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_abtest_plan_works_the_papers_case(capsys):
    assert main(["abtest", "plan", "--baseline-ctr", "0.01", "--lift", "0.05", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)[0]
    assert 600_000 < plan["impressions_per_arm"] < 680_000  # the paper's 10,000 per treatment is ~60x too few
    assert main(["abtest", "plan", "--baseline-ctr", "0.01"]) == 2
    assert "--lift" in capsys.readouterr().err


def test_cost_prints_the_table_and_one_estimate(small_store, capsys):
    assert main(["cost"]) == 0
    out = capsys.readouterr().out
    assert "| 10,000 |" in out and "| 1,000,000 |" in out and "| 10,000,000 |" in out
    assert main(["cost", "--products", "1000", "--placements", "2", "--styles", "3", "--store", str(small_store), "--json"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["images"] == 6000 and e["generated_images"] == pytest.approx(6600)
    assert e["gpu_hours"] == pytest.approx(6600 / e["gpu_images_per_s"] / 3600)
    assert "measured" in e["bytes_per_creative_source"]
