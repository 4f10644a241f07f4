"""Off-policy evaluation on the Open Bandit Dataset sample (Saito et al., NeurIPS 2021 D&B; CC BY 4.0).

Real logs from a fashion e-commerce site: per round, the item (of 80 / 34 / 46) shown in one of
3 positions, the click, and the logging policy's propensity. Two logging policies (uniform random
and Bernoulli Thompson sampling), three campaigns (all, men, women), 10,000 rounds each.

Protocol of :func:`evaluate_obd` (per logging policy and campaign):

1. Context: the four hashed user features plus the position, encoded by :class:`FeatureEncoder`
   (the position plays the placement's role, the campaign the category's).
2. The log is split in time: the first half trains every evaluation policy (``update_many`` on the
   logged arms and clicks) and the reward model of DM/DR (per-arm CTR shrunk toward the overall
   CTR); the second half evaluates.
3. On the second half: IPS, SNIPS, DM and DR of each frozen policy's action distribution, with
   bootstrap intervals; on the uniform-random logs also replay (the policy keeps learning on the
   rounds it matches). The logging policy's own CTR on the same rows is the reference.

With 38-69 clicks per file the intervals are wide: these numbers check that the estimators work on
real logs, they do not rank the policies.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import policies
from .evaluation import action_distribution, bootstrap_interval, estimate, replay, shrunk_ctr_reward_model
from .features import FeatureEncoder

LOGS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
POLICY_NAMES = ("linucb", "lints", "epsilon-greedy", "uniform", "best-fixed-arm")
RECORD_FIELDS = ("policy", "estimator", "logs", "campaign", "value", "ci_low", "ci_high", "n")


@dataclass
class LoggedFeedback:
    """One OBD file: logged rounds in time order."""

    logs: str
    campaign: str
    action: np.ndarray  # item index 0..K-1
    position: np.ndarray  # 1..3
    reward: np.ndarray
    pscore: np.ndarray
    users: list[dict]
    n_actions: int

    def __len__(self) -> int:
        return len(self.action)


def load_obd(data_dir: str | Path, logs: str, campaign: str) -> LoggedFeedback:
    """Read ``<data_dir>/<logs>/<campaign>/<campaign>.csv`` (the layout of the OBD sample)."""
    if logs not in LOGS:
        raise ValueError(f"logs must be one of {LOGS}, got {logs!r}")
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {CAMPAIGNS}, got {campaign!r}")
    folder = Path(data_dir) / logs / campaign
    path = folder / f"{campaign}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --data must point at the Open Bandit Dataset folder (with random/ and bts/)")
    action, position, reward, pscore, users = [], [], [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"item_id", "position", "click", "propensity_score", "user_feature_0"}
        fieldnames = reader.fieldnames or []
        missing = need - set(fieldnames)
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {', '.join(sorted(missing))}")
        user_cols = [c for c in fieldnames if c.startswith("user_feature_")]
        for row in reader:
            action.append(int(row["item_id"]))
            position.append(int(row["position"]))
            reward.append(float(row["click"]))
            pscore.append(float(row["propensity_score"]))
            users.append({c: row[c] for c in user_cols})
    with open(folder / "item_context.csv", newline="") as f:
        n_actions = sum(1 for _ in csv.DictReader(f))
    return LoggedFeedback(
        logs=logs,
        campaign=campaign,
        action=np.asarray(action, np.intp),
        position=np.asarray(position, np.intp),
        reward=np.asarray(reward),
        pscore=np.asarray(pscore),
        users=users,
        n_actions=n_actions,
    )


def encode(data: LoggedFeedback, encoder: FeatureEncoder) -> np.ndarray:
    return encoder.encode_many([(u, ("obd", data.campaign), f"position-{p}") for u, p in zip(data.users, data.position, strict=True)])


#: the evaluation policies and their settings here (wider exploration than serving: the logs are short)
_SETTINGS = {
    "linucb": {"alpha": 0.5, "epsilon": 0.05},
    "lints": {"alpha": 0.1},
    "epsilon-greedy": {"epsilon": 0.1},
    "uniform": {},
}


def make_policy(name: str, n_features: int, seed: int, best_arm: int | None = None):
    """An evaluation policy by name (``best-fixed-arm``: the arm with the best IPS on the training half)."""
    if name == "best-fixed-arm":
        return policies.make_policy("fixed", arm=best_arm, seed=seed)
    if name not in _SETTINGS:
        raise ValueError(f"unknown policy '{name}'; choose from {', '.join(POLICY_NAMES)}")
    return policies.make_policy(name, lenient=True, n_features=n_features, seed=seed, **_SETTINGS[name])


def evaluate_file(
    data: LoggedFeedback,
    *,
    policies=POLICY_NAMES,
    n_features: int = 32,
    n_boot: int = 500,
    seed: int = 0,
) -> list[dict]:
    encoder = FeatureEncoder(n_features=n_features, segment_field=None, cross_category_placement=False)
    X = encode(data, encoder)
    arms = list(range(data.n_actions))
    half = len(data) // 2
    tr, te = slice(0, half), slice(half, None)
    q = shrunk_ctr_reward_model(data.action[tr], data.reward[tr], data.n_actions)(X[te])
    # best fixed arm: the highest IPS-estimated CTR on the training half
    ips_per_arm = np.bincount(data.action[tr], weights=data.reward[tr] / data.pscore[tr], minlength=data.n_actions) / half
    best_arm = int(np.argmax(ips_per_arm))

    base = {"logs": data.logs, "campaign": data.campaign}
    r_te = data.reward[te]
    low, high = bootstrap_interval(r_te, n_boot=n_boot, seed=seed)
    records = [
        base
        | {
            "policy": "logging-policy",
            "estimator": "on-policy",
            "value": float(r_te.mean()),
            "ci_low": low,
            "ci_high": high,
            "n": int(len(r_te)),
        }
    ]
    for name in policies:
        policy = make_policy(name, n_features, seed, best_arm)
        policy.update_many(X[tr], list(data.action[tr]), data.reward[tr])
        dist = action_distribution(policy, X[te], arms)
        for est in estimate(r_te, data.action[te], data.pscore[te], dist, q, n_boot=n_boot, seed=seed):
            records.append(base | {"policy": name} | est.to_dict())
        if data.logs == "random":
            res = replay(policy, X[te], data.action[te], r_te, arms, n_boot=n_boot, seed=seed)
            records.append(
                base
                | {
                    "policy": name,
                    "estimator": "replay",
                    "value": res.value,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "n": res.matched,
                }
            )
    return [{k: r[k] for k in RECORD_FIELDS} for r in records]


def evaluate_obd(
    data_dir: str | Path,
    *,
    logs=LOGS,
    campaigns=CAMPAIGNS,
    policies=POLICY_NAMES,
    n_boot: int = 500,
    seed: int = 0,
    progress=None,
) -> list[dict]:
    """Records ``{policy, estimator, logs, campaign, value, ci_low, ci_high, n}`` for every file."""
    records = []
    for lg in logs:
        for campaign in campaigns:
            records += evaluate_file(load_obd(data_dir, lg, campaign), policies=policies, n_boot=n_boot, seed=seed)
            if progress is not None:
                progress(lg, campaign)
    return records


def write_csv(records: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RECORD_FIELDS)
        w.writeheader()
        w.writerows(records)
    return path


def to_markdown(records: list[dict]) -> str:
    lines = ["| logs | campaign | policy | estimator | value | 95% interval | n |", "|---|---|---|---|---:|---|---:|"]
    for r in records:
        lines.append(
            f"| {r['logs']} | {r['campaign']} | {r['policy']} | {r['estimator']} | {r['value']:.4f} "
            f"| [{r['ci_low']:.4f}, {r['ci_high']:.4f}] | {r['n']} |"
        )
    return "\n".join(lines)


def plot(records: list[dict], path: str | Path) -> Path:
    """One panel per (logs, campaign): each policy's estimates with their intervals."""
    from ..render import figure, save

    path = Path(path)
    panels = sorted({(r["logs"], r["campaign"]) for r in records}, key=lambda t: (LOGS.index(t[0]), CAMPAIGNS.index(t[1])))
    estimators = list(dict.fromkeys(r["estimator"] for r in records if r["policy"] != "logging-policy"))
    policies = list(dict.fromkeys(r["policy"] for r in records if r["policy"] != "logging-policy"))
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = figure(5.2 * cols, 3.6 * rows, rows, cols, squeeze=False)
    width = 0.8 / max(1, len(estimators))
    for ax, (lg, campaign) in zip(axes.flat, panels, strict=False):  # the grid may have spare axes
        sub = [r for r in records if r["logs"] == lg and r["campaign"] == campaign]
        ref = next((r for r in sub if r["policy"] == "logging-policy"), None)
        if ref is not None:
            ax.axhspan(ref["ci_low"], ref["ci_high"], color="0.9", zorder=0)
            ax.axhline(ref["value"], color="0.5", lw=1, ls="--", label="logging policy (on-policy)")
        for j, est in enumerate(estimators):
            xs, ys, lo, hi = [], [], [], []
            for i, pol in enumerate(policies):
                r = next((r for r in sub if r["policy"] == pol and r["estimator"] == est), None)
                if r is None or r["value"] != r["value"]:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(r["value"])
                lo.append(r["value"] - r["ci_low"])
                hi.append(r["ci_high"] - r["value"])
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", ms=3.5, capsize=2, label=est)
        ax.set_xticks(range(len(policies)), policies, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{lg} logs, campaign {campaign}", fontsize=10)
        ax.set_ylabel("estimated CTR")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Off-policy estimates on the Open Bandit Dataset sample (95% bootstrap intervals)", fontsize=11)
    return save(fig, path, rect=(0, 0.06, 1, 0.96))
