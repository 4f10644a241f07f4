"""What a simulation run produced: per-policy arrays, the table, JSON records, curves and the plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import SimulationConfig


@dataclass
class PolicyRun:
    """What one policy did in a run (per-round arrays and totals)."""

    name: str
    kind: str  # "policy" (learns through the API), "baseline"
    p: np.ndarray  # expected reward (true p of the shown creative) per round
    clicks: np.ndarray  # 0/1 per round
    choice: np.ndarray  # index into the round's styles (-1: the catalog image)
    updates: int = 0  # feedback rows delivered to the policy
    in_flight: int = 0  # feedback rows not delivered when the run ended
    seconds: float = 0.0


@dataclass
class SimulationResult:
    config: SimulationConfig
    n_rounds: int
    seed: int
    oracle_p: np.ndarray  # (n,) the oracle's p per round
    runs: dict[str, PolicyRun]
    checkpoints: np.ndarray  # rounds (1-based counts) at which curves are sampled
    calibration: dict = field(default_factory=dict)
    seconds: float = 0.0

    # -- summaries ------------------------------------------------------------------------------

    def _ref(self, name: str) -> float | None:
        run = self.runs.get(name)
        return float(run.p.mean()) if run is not None and self.n_rounds else None

    @property
    def window(self) -> int:
        """The rounds the windowed lifts are over: the last 50k, or the last half of a shorter run."""
        return min(WINDOW, max(1, self.n_rounds // 2))

    def _window_ref(self, name: str) -> float | None:
        run = self.runs.get(name)
        return float(run.p[-self.window :].mean()) if run is not None and self.n_rounds else None

    def to_records(self) -> list[dict]:
        """One JSON-able dict per policy (the table's rows).

        Lifts are of the expected CTR (the true click probability of what was shown, so without
        click noise) against each baseline the run has (None where it lacks one): the catalog
        image, a random style (``uniform``), the non-personalized bandit (``bandit``: Thompson
        sampling per category x style) and the best single style in hindsight (``best-fixed``);
        ``window_*`` over the last :attr:`window` rounds only, where a learner has learnt.
        """
        refs = {k: self._ref(b) for k, b in _REFS.items()}
        wrefs = {k: self._window_ref(b) for k, b in _REFS.items()}
        w = self.window
        oracle_total = float(self.oracle_p.sum())
        out = []
        for name, r in self.runs.items():
            n = len(r.p)
            exp_ctr = float(r.p.mean()) if n else 0.0
            win_ctr = float(r.p[-w:].mean()) if n else 0.0
            regret = float((self.oracle_p - r.p).sum())
            out.append(
                {
                    "policy": name,
                    "kind": r.kind,
                    "rounds": n,
                    "clicks": int(r.clicks.sum()),
                    "ctr": float(r.clicks.mean()) if n else 0.0,
                    "expected_ctr": exp_ctr,
                    **{f"lift_vs_{k}": exp_ctr / v - 1 if v else None for k, v in refs.items()},
                    "window_rounds": w,
                    **{f"window_lift_vs_{k}": win_ctr / v - 1 if v else None for k, v in wrefs.items()},
                    "cum_regret": regret,
                    "regret_share": regret / oracle_total if oracle_total else 0.0,
                    "updates": r.updates,
                    "in_flight": r.in_flight,
                    "seconds": round(r.seconds, 3),
                }
            )
        return out

    def curves(self) -> dict[str, dict[str, list[float]]]:
        """Per policy, at each checkpoint: cumulative clicks, expected reward, regret; windowed expected CTR."""
        idx = self.checkpoints - 1
        out = {}
        for name, r in self.runs.items():
            cum_p = np.cumsum(r.p)
            cum_reg = np.cumsum(self.oracle_p - r.p)
            cum_clicks = np.cumsum(r.clicks)
            window = np.diff(np.concatenate([[0.0], cum_p[idx]])) / np.diff(np.concatenate([[0], self.checkpoints]))
            out[name] = {
                "clicks": cum_clicks[idx].astype(float).tolist(),
                "expected_reward": cum_p[idx].tolist(),
                "regret": cum_reg[idx].tolist(),
                "window_expected_ctr": window.tolist(),
            }
        return out

    def to_dict(self, curves: bool = True) -> dict:
        """Everything JSON-able: config, calibration, records, and the curves."""
        d = {
            "rounds": self.n_rounds,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "config": self.config.model_dump(mode="json"),
            "calibration": _jsonable(self.calibration),
            "oracle_expected_ctr": float(self.oracle_p.mean()) if self.n_rounds else 0.0,
            "policies": self.to_records(),
        }
        if curves:
            d["checkpoints"] = self.checkpoints.tolist()
            d["curves"] = self.curves()
        return d

    def to_markdown(self) -> str:
        w = f"last {self.window // 1000}k" if self.window >= 1000 else f"last {self.window}"
        head = (
            "| policy | rounds | clicks | expected CTR | vs catalog image | vs random style | vs bandit | vs best style | "
            f"{w}: vs bandit | {w}: vs best style | cum. regret | s |"
        )
        lines = [head, "|---|" + "--:|" * (head.count("|") - 2)]
        for r in self.to_records():
            lines.append(
                f"| {r['policy']} | {r['rounds']} | {r['clicks']} | {r['expected_ctr']:.3%} | "
                f"{_lift(r['lift_vs_original'])} | {_lift(r['lift_vs_uniform'])} | {_lift(r['lift_vs_bandit'])} | "
                f"{_lift(r['lift_vs_best_fixed'])} | {_lift(r['window_lift_vs_bandit'])} | "
                f"{_lift(r['window_lift_vs_best_fixed'])} | {r['cum_regret']:.1f} | {r['seconds']:.1f} |"
            )
        return "\n".join(lines)

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """PNG: cumulative regret vs rounds (left) and expected CTR over time (right), per policy."""
        from ...render import figure, save

        fig, (ax1, ax2) = figure(12, 4.8, 1, 2)
        x = self.checkpoints
        n = max(self.n_rounds, 1)
        span = max(1, n // 20)  # smoothing window for the CTR panel
        for name, r in self.runs.items():
            style = {"linestyle": "--"} if r.kind == "baseline" else {}
            ax1.plot(x, np.cumsum(self.oracle_p - r.p)[x - 1], label=name, **style)
            smooth = np.convolve(r.p, np.ones(span) / span, mode="valid")  # mean of rounds t-span+1..t
            ends = np.clip(x, span, n)
            ax2.plot(ends, smooth[ends - span], label=name, **style)
        ax1.set(
            xlabel="round",
            ylabel="cumulative regret (expected clicks)",
            title="Regret vs the oracle",
        )
        ax2.set(
            xlabel="round",
            ylabel=f"expected CTR (moving mean of {span} rounds)",
            title="CTR over time",
        )
        ax2.yaxis.set_major_formatter(lambda v, _: f"{v:.2%}")
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
        ax1.legend(fontsize=8)
        if title:
            fig.suptitle(title)
        return save(fig, path, dpi=100)


#: the windowed lifts are over the last this many rounds (or the last half of a shorter run)
WINDOW = 50_000

#: lift key -> the baseline run it is against
_REFS = {"original": "original", "uniform": "uniform", "bandit": "bandit", "best_fixed": "best-fixed"}


def _lift(v: float | None) -> str:
    return "" if v is None else f"{v:+.1%}"


#: the lifts :func:`summarize` averages over seeds
SUMMARY_KEYS = (
    "lift_vs_uniform",
    "lift_vs_bandit",
    "lift_vs_best_fixed",
    "window_lift_vs_bandit",
    "window_lift_vs_best_fixed",
)


def summarize(results: list[SimulationResult]) -> list[dict]:
    """Per policy, the mean and sd over runs (seeds) of each lift in :data:`SUMMARY_KEYS`, and the runs' values.

    >>> summarize([])
    []
    """
    by: dict[str, list[dict]] = {}
    for res in results:
        for rec in res.to_records():
            by.setdefault(rec["policy"], []).append(rec)
    out = []
    for policy, recs in by.items():
        row: dict = {"policy": policy, "kind": recs[0]["kind"], "runs": len(recs), "seconds": float(np.mean([r["seconds"] for r in recs]))}
        for key in SUMMARY_KEYS:
            values = [r[key] for r in recs if r[key] is not None]
            row[key] = {
                "mean": float(np.mean(values)) if values else None,
                "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                "values": values,
            }
        out.append(row)
    return out


def summary_markdown(rows: list[dict], window: int) -> str:
    """The table of :func:`summarize`: mean +- sd over the seeds."""
    w = f"last {window // 1000}k" if window >= 1000 else f"last {window}"

    def cell(v: dict) -> str:
        if v["mean"] is None:
            return ""
        return f"{v['mean']:+.1%}" + (f" ± {v['sd']:.1%}" if v["sd"] is not None else "")

    head = f"| policy | seeds | vs random style | vs bandit | vs best style | {w}: vs bandit | {w}: vs best style | s per run |"
    lines = [head, "|---|" + "--:|" * (head.count("|") - 2)]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['runs']} | " + " | ".join(cell(r[k]) for k in SUMMARY_KEYS) + f" | {r['seconds']:.1f} |")
    return "\n".join(lines)


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o
