"""Contextual bandits: features, policies with propensities, offline evaluation, simulation."""

from .features import FeatureConfig, FeatureEncoder
from .policies import (
    POLICIES,
    REGISTRY,
    SERVABLE,
    FixedStyle,
    make_policy,
    BetaTS,
    Decision,
    DecisionBatch,
    EpsilonGreedy,
    FixedArm,
    HybridLinUCB,
    LinTS,
    LinUCB,
    ModelFileError,
    Policy,
    UCB1,
    Uniform,
)

__all__ = [
    "POLICIES",
    "REGISTRY",
    "SERVABLE",
    "FixedStyle",
    "make_policy",
    "BetaTS",
    "Decision",
    "DecisionBatch",
    "EpsilonGreedy",
    "FeatureConfig",
    "FeatureEncoder",
    "FixedArm",
    "HybridLinUCB",
    "LinTS",
    "LinUCB",
    "ModelFileError",
    "Policy",
    "UCB1",
    "Uniform",
]
