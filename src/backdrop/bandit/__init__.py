"""Contextual bandits: features, policies with propensities, offline evaluation, simulation."""

from .features import FeatureConfig, FeatureEncoder
from .policies import (
    POLICIES,
    REGISTRY,
    SERVABLE,
    UCB1,
    BetaTS,
    Decision,
    DecisionBatch,
    EpsilonGreedy,
    FixedArm,
    FixedStyle,
    HybridLinUCB,
    LinTS,
    LinUCB,
    ModelFileError,
    Policy,
    Uniform,
    make_policy,
)

__all__ = [
    "POLICIES",
    "REGISTRY",
    "SERVABLE",
    "UCB1",
    "BetaTS",
    "Decision",
    "DecisionBatch",
    "EpsilonGreedy",
    "FeatureConfig",
    "FeatureEncoder",
    "FixedArm",
    "FixedStyle",
    "HybridLinUCB",
    "LinTS",
    "LinUCB",
    "ModelFileError",
    "Policy",
    "Uniform",
    "make_policy",
]
