"""The closed loop: variants of winning styles (styles.evolve) and the loop on the simulator."""

from __future__ import annotations

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
