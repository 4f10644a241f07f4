"""The closed loop: variants of winning styles (styles.evolve) and the loop on the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backdrop.bandit.simulator import SimulationConfig, build
from backdrop.bandit.simulator.evolution import EvolutionSettings, compare, run_loop
from backdrop.bandit.simulator.runner import POLICY_FACTORIES
from backdrop.creative.pipeline import request_for
from backdrop.generators.procedural import ProceduralGenerator
from backdrop.imaging.color import dominant_colors
from backdrop.imaging.layout import layout, load_placements
from backdrop.styles import StyleLibrary
from backdrop.styles.evolve import VARIANT_OF, mutate, parent_of

STRONG = {"base_ctr": 0.10, "style_spread": 0.30, "personal_spread": 0.2, "n_users": 2000, "delay_mean": 20, "update_every": 50}


@pytest.fixture(scope="module")
def styles():
    return StyleLibrary.load().all_styles()


def test_a_variant_is_a_valid_style_of_its_parents_scene_named_after_it(styles):
    for name in ("studio-sweep", "marble-counter", "podium-pastel", "color-pop", "urban-concrete", "spotlight"):
        parent = styles[name]
        a, b, again = mutate(parent, seed=1), mutate(parent, seed=2), mutate(parent, seed=1)
        assert a == again and a.name != b.name  # the same seed, the same variant
        assert parent_of(a.name) == name and a.name.startswith(name + VARIANT_OF)
        assert a.procedural.get("scene") == parent.procedural.get("scene")
        changed = {k for k in set(a.procedural) | set(parent.procedural) if a.procedural.get(k) != parent.procedural.get(k)}
        assert {"palette", "surface", "podium", "sun_pattern"} & changed  # something a shoot would vary
        assert a.prompt.startswith(parent.prompt) and a.prompt != parent.prompt  # the diffusion prompt says it too


def test_variants_render(styles):
    gen = ProceduralGenerator()
    rgb = np.full((200, 120, 3), (30, 90, 200), np.uint8)
    alpha = np.zeros((200, 120), np.uint8)
    alpha[20:190, 20:100] = 255
    scene = layout(rgb, alpha, load_placements()["square"], dominant_colors(rgb, alpha))
    for name in ("studio-sweep", "podium-pastel", "marble-counter"):
        for seed in range(3):
            variant = mutate(styles[name], seed=seed)
            bg = gen.generate(request_for(scene, variant, {"title": "bottle"}, 0))
            assert bg.shape == (scene.height, scene.width, 3) and 20 < bg.mean() < 250


def test_parent_of_keeps_the_overlay_and_knows_originals():
    assert parent_of("a__v1+price") == "a+price"
    assert parent_of("a__v1__v2") == "a__v1"
    assert parent_of("studio-sweep") is None and parent_of("studio-sweep+sale") is None


@pytest.fixture(scope="module")
def world():
    return build(SimulationConfig(**STRONG))


def test_without_the_loop_only_the_original_styles_serve(world):
    _, cm = world
    run = run_loop(POLICY_FACTORIES["pooled-ucb"], cm, 3000, 1, None)
    assert run.steps == [] and len(run.p) == 3000 and np.all((run.p > 0) & (run.p < 1))


def test_the_loop_breeds_the_best_and_retires_the_worst(world):
    _, cm = world
    settings = EvolutionSettings(every=2000, parents=2, correlation=1.0, min_impressions=100)
    run = run_loop(POLICY_FACTORIES["pooled-ucb"], cm, 12_000, 1, settings)
    assert [s["round"] for s in run.steps] == [2000, 4000, 6000, 8000, 10000]
    bred = [b for s in run.steps for b in s["bred"]]
    retired = [r for s in run.steps for r in s["retired"]]
    assert bred and retired
    assert all(b["quality"] == pytest.approx(b["parent_quality"]) for b in bred)  # correlation 1: as good as the parent
    # the loop judges on clicks: what it breeds from is better than what it retires
    assert np.mean([b["parent_quality"] for b in bred]) > np.mean([r["quality"] for r in retired]) + 0.2
    # a variant's variant names its lineage
    assert all(parent_of(b["arm"]) == b["parent"] for b in bred)


def test_compare_reports_the_loops_lift_with_an_interval():
    out = compare(
        POLICY_FACTORIES["pooled-ucb"], SimulationConfig(**STRONG), 4000, [1, 2], EvolutionSettings(every=1000, min_impressions=50)
    )
    assert [r["seed"] for r in out["runs"]] == [1, 2]
    lift = out["lift"]
    assert lift["ci_low"] <= lift["mean"] <= lift["ci_high"] and lift["sd"] >= 0
    assert all(r["bred"] > 0 for r in out["runs"])


def test_bad_loop_settings_are_refused():
    with pytest.raises(ValueError):
        EvolutionSettings(correlation=1.5)
    with pytest.raises(ValueError):
        EvolutionSettings(max_arms=1)


# -- on a real store and service ----------------------------------------------------------------


def test_the_loop_on_a_store_breeds_the_winner_retires_the_loser_and_the_service_starts_the_variant_from_its_parent(
    small_store, tmp_path, capsys
):
    """Serve juices through the real service (color-pop clicked 30%, marble-counter 3%), run `backdrop
    evolve` on its log, make the variant's creatives with `backdrop generate`, and serve them."""
    import json
    import shutil
    import time

    from fastapi.testclient import TestClient

    from backdrop.cli import main
    from backdrop.serving.app import create_app
    from backdrop.serving.learner import Learner
    from backdrop.serving.settings import load_settings

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    db = tmp_path / "events.sqlite"

    def settings():
        return load_settings(None, store=store, db=str(db), api_key="k" * 32, join_window_s=0.05, commit_grace_s=2.5, log_timeout_ms=2000.0)

    rng = np.random.default_rng(0)
    juices = ("apple-juice", "banana-juice", "carrot-juice")
    with TestClient(create_app(settings())) as c:
        for i in range(450):
            body = c.post("/v1/decide", json={"item_id": juices[i % 3], "placement": "square", "user": {"id": f"u{i}"}}).json()
            if rng.random() < (0.3 if body["style"] == "color-pop" else 0.03):
                c.post("/v1/feedback", json={"decision_id": body["decision_id"], "reward": 1}, headers={"X-API-Key": "k" * 32})
    capsys.readouterr()
    out = tmp_path / "evolved.yaml"
    args = ["evolve", "--store", str(store), "--db", str(db), "--min-impressions", "30", "--parents", "1", "--out", str(out)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decisions"] == 450
    juice = "Groceries > Juices"
    assert [w["style"] for w in report["winners"][juice]] == ["color-pop"]
    assert [r["style"] for r in report["retire"][juice]] == ["marble-counter"]
    (bred,) = report["bred"]
    variant = bred["variant"]
    assert bred["parent"] == "color-pop" and parent_of(variant) == "color-pop"
    assert variant in [s.name for s in StyleLibrary.load(out).for_category(("Groceries", "Juices"))]
    assert main(args) == 0  # the readable form says the same
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "retire" in text and f"--styles {variant} --category 'Groceries > Juices'" in text

    demo = Path(__file__).resolve().parents[1] / "src" / "backdrop" / "data" / "demo" / "products.csv"
    assert main(["generate", str(demo), "--out", str(store), "--category", "Groceries > Juices", "--placements", "square",
                 "--style-library", str(out), "--styles", variant, "--workers", "1", "--no-progress", "--json"]) == 0  # fmt: skip
    made = json.loads(capsys.readouterr().out)
    assert made["generated"] >= 3 and made["failed"] == 0  # the juices only: no product without the variant's style
    assert main(["generate", str(demo), "--out", str(store), "--category", "Groceries > Teas", "--no-progress"]) == 1
    assert "(none in 'Groceries > Teas')" in capsys.readouterr().err

    with TestClient(create_app(settings())) as c:
        service = c.app.state.service
        learner = Learner.for_settings(service.log, service.settings)
        learner.clock = lambda: time.time() + 10
        learner.drain()
        service.reload_model()
        body = c.post("/v1/decide", json={"item_id": "apple-juice", "placement": "square", "user": {"id": "new"}}).json()
        logged = service.log.get_decision(body["decision_id"])
        assert variant in logged.arms  # the variant is an arm now
        means, _ = service.policy._means_widths(np.asarray(logged.context), ("color-pop", variant, "marble-counter"))
        # never shown, the variant starts between its parent and the loser: half the parent's edge
        assert means[0] > means[1] > means[2]

        # the loser leaves the juices' rotation at the next store refresh; its creatives stay
        assert main([*args, "--retire"]) == 0
        assert "retired marble-counter from Groceries > Juices" in capsys.readouterr().out
        service.refresh_index()
        offered = {a for item in juices for a in service.index.by_item.get((item, "square"), {})}
        assert "marble-counter" not in offered and {"color-pop", variant} <= offered
        assert (
            service.index.retired == 6 and 'backdrop_creatives{status="retired"} 6.0' in c.get("/metrics").text
        )  # 3 juices x 2 placements
        assert main(["evolve", "--store", str(store), "--unretire", "Groceries > Juices=marble-counter"]) == 0
        assert "back in Groceries > Juices's rotation" in capsys.readouterr().out
        service.refresh_index()
        assert "marble-counter" in service.index.by_item[("apple-juice", "square")]
        assert main(["evolve", "--store", str(store), "--unretire", "Groceries > Juices=marble-counter"]) == 2
        assert "is not retired" in capsys.readouterr().err


def test_evaluate_log_compares_with_the_non_personalized_bandit(small_store, tmp_path, capsys):
    """`backdrop evaluate log --store` puts the bandit a retailer would run beside the candidates."""
    import json
    import shutil

    from fastapi.testclient import TestClient

    from backdrop.cli import main
    from backdrop.serving.app import create_app
    from backdrop.serving.settings import load_settings

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    settings = load_settings(None, store=store, api_key="k" * 32, join_window_s=0.05, commit_grace_s=2.5, log_timeout_ms=2000.0)
    rng = np.random.default_rng(3)
    with TestClient(create_app(settings)) as c:
        for i in range(240):
            body = c.post(
                "/v1/decide", json={"item_id": ("apple-juice", "banana-juice")[i % 2], "placement": "square", "user": {"id": f"u{i}"}}
            ).json()
            if rng.random() < (0.3 if body["style"] == "color-pop" else 0.03):
                c.post("/v1/feedback", json={"decision_id": body["decision_id"], "reward": 1}, headers={"X-API-Key": "k" * 32})
    capsys.readouterr()
    args = ["evaluate", "log", "--store", str(store), "--join-window", "0", "--commit-grace", "0", "--bootstrap", "50", "--json"]
    assert main(args) == 0
    records = json.loads(capsys.readouterr().out)
    by = {(r["policy"], r["estimator"]): r for r in records}
    assert {("pooled-ucb", "snips"), ("bandit", "snips"), ("uniform", "snips")} <= set(by)
    # the bandit learns color-pop's edge per category: it beats showing styles at random
    assert by[("bandit", "snips")]["value"] > by[("uniform", "snips")]["value"]
    assert main(["evaluate", "log", "--db", str(store / "events.sqlite"), "--policy", "bandit"]) == 2
    assert "needs --store" in capsys.readouterr().err
