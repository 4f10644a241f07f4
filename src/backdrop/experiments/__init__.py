"""A/B/n experiment analysis for ad creatives (CTR experiments).

:mod:`.stats` holds the statistics as pure numpy/scipy functions (Wilson intervals, relative lift,
the pooled z-test, Holm, the SRM check, the mSPRT always-valid p-value, CUPED, sample sizes);
:mod:`.abtest` loads impression logs and turns them into an analysis, a Markdown report and plans.
"""

from .abtest import (
    Impressions,
    analyze,
    choose_control,
    load_impressions,
    over_time,
    plan,
    plan_markdown,
    plan_table,
    to_markdown,
)
from .stats import (
    CupedDiff,
    cuped,
    cuped_difference,
    detectable_lift,
    holm,
    msprt,
    msprt_path,
    relative_lift,
    sample_size_per_arm,
    srm_check,
    two_proportion_test,
    wilson_interval,
)

__all__ = [
    "CupedDiff",
    "Impressions",
    "analyze",
    "choose_control",
    "cuped",
    "cuped_difference",
    "detectable_lift",
    "holm",
    "load_impressions",
    "msprt",
    "msprt_path",
    "over_time",
    "plan",
    "plan_markdown",
    "plan_table",
    "relative_lift",
    "sample_size_per_arm",
    "srm_check",
    "to_markdown",
    "two_proportion_test",
    "wilson_interval",
]
