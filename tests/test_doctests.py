"""The docstring examples of the main public objects run (as river runs every estimator's)."""

import doctest
import importlib

import pytest

MODULES = [
    "backdrop.text",
    "backdrop.styles",
    "backdrop.styles.categories",
    "backdrop.styles.params",
    "backdrop.styles.attributes",
    "backdrop.styles.evolve",
    "backdrop.overlays.contrast",
    "backdrop.overlays.money",
    "backdrop.overlays.templates",
    "backdrop.creative.report",
    "backdrop.imaging.framing",
    "backdrop.generators",
    "backdrop.generators.diffusion.geometry",
    "backdrop.generators.diffusion.schedulers",
    "backdrop.generators.diffusion.lora",
    "backdrop.generators.diffusion.configs",
    "backdrop.creative.catalog",
    "backdrop.creative.feeds",
    "backdrop.creative.fetch",
    "backdrop.creative.export",
    "backdrop.creative.store_index",
    "backdrop.creative.rotation",
    "backdrop.bandit.features",
    "backdrop.bandit.policies.linear",
    "backdrop.bandit.policies.registry",
    "backdrop.bandit.simulator.results",
    "backdrop.bandit.evaluation",
    "backdrop.experiments.stats",
    "backdrop.experiments.breakdown",
    "backdrop.experiments.evolve",
    "backdrop.console.auth",
    "backdrop.console.sessions",
    "backdrop.console.results",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples left: drop it from MODULES or give it one"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run: python -m doctest -v)"
