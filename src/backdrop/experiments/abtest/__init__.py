"""A/B/n analysis of impression-level logs of ad creatives: load, analyze, report, plan.

One row per impression: the arm (creative/style) that was shown, whether it was clicked, and
optionally a pre-period covariate (for CUPED) and a timestamp (for the over-time plot and the
always-valid p-value's history). :func:`analyze` compares every arm with one control arm:

* per arm: impressions, clicks, CTR with a Wilson interval;
* per non-control arm: relative lift with a log-ratio interval, the pooled two-proportion z-test,
  Holm-adjusted p-values across the (arms - 1) comparisons, and the mSPRT always-valid p-value;
* a sample-ratio-mismatch (SRM) check of the arm counts against the planned split;
* CUPED-adjusted lifts when a covariate is present.

:func:`analyze_values` does the same for per-impression values (conversion, revenue) with
delta-method intervals. The formulas and their references are in :mod:`backdrop.experiments.stats`.
"""

from __future__ import annotations

from .analysis import (
    CONTROL_NAMES,
    MAX_LOOKS,
    METRICS,
    SRM_ALPHA,
    analyze,
    analyze_values,
    choose_control,
    compare,
    over_time,
)
from .impressions import ALIASES, Impressions, load_impressions
from .markdown import to_markdown, values_markdown
from .planning import plan, plan_markdown, plan_table

__all__ = [
    "ALIASES",
    "CONTROL_NAMES",
    "MAX_LOOKS",
    "METRICS",
    "SRM_ALPHA",
    "Impressions",
    "analyze",
    "analyze_values",
    "choose_control",
    "compare",
    "load_impressions",
    "over_time",
    "plan",
    "plan_markdown",
    "plan_table",
    "to_markdown",
    "values_markdown",
]
