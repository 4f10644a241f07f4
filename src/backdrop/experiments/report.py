"""Static HTML reports for a study or an A/B analysis: tables plus PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

ARM_COLORS = {"original": "#8c8c8c", "random": "#4c9be8", "fixed": "#f0a030", "personalized": "#2ca05a"}

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
.sim{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em;border-radius:6px;font-weight:600}
.warn{background:#fde2e1;border:1px solid #d9534f;padding:.6em 1em;border-radius:6px;font-weight:600}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}.muted{color:#666;font-size:.9em}
"""


def _pct(x, signed=False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.2f}%"


def _p(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def arm_table(result: dict) -> str:
    rows = []
    for a in result["arms"]:
        lift = "–" if a.get("control") else f"{_pct(a['lift'], True)} [{_pct(a['lift_low'], True)}, {_pct(a['lift_high'], True)}]"
        rows.append([
            html.escape(a["arm"]) + (" (control)" if a.get("control") else ""),
            f"{a['n']:,}", f"{a['clicks']:,}",
            f"{_pct(a['ctr'])} [{_pct(a['ctr_low'])}, {_pct(a['ctr_high'])}]",
            lift, _p(a.get("p")), _p(a.get("p_holm")), _p(a.get("always_valid_p")),
        ])
    return _table(["arm", "impressions", "clicks", "CTR [95% CI]", "lift vs control [95% CI]", "p", "p (Holm)", "always-valid p"], rows)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_ctr(result: dict, path: Path) -> Path:
    plt = _plt()
    arms = result["arms"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(arms))
    ctr = np.array([a["ctr"] for a in arms]) * 100
    err = np.array([[a["ctr"] - a["ctr_low"], a["ctr_high"] - a["ctr"]] for a in arms]).T * 100
    ax.bar(x, ctr, yerr=err, capsize=6, color=[ARM_COLORS.get(a["arm"], "#777") for a in arms])
    ax.set_xticks(x, [a["arm"] for a in arms])
    ax.set_ylabel("CTR (%) with 95% interval")  # Wilson, or the delta method over users
    return _save(fig, path)


def plot_over_time(ot: dict, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    edges = np.asarray(ot["edges"], dtype=float)
    mid = (edges[:-1] + edges[1:]) / 2 - edges[0]
    for arm, s in ot["arms"].items():
        ax.plot(mid, np.array(s["cumulative_ctr"], dtype=float) * 100, label=arm, color=ARM_COLORS.get(arm))
    ax.set_xlabel("seconds since the first impression")
    ax.set_ylabel("cumulative CTR (%)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_regret(regret: dict, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for arm, r in regret.items():
        if r["impressions"]:
            ax.plot(r["impressions"], r["regret"], label=arm, color=ARM_COLORS.get(arm))
    ax.set_xlabel("impressions of the arm")
    ax.set_ylabel("cumulative regret vs oracle (expected clicks)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_ablations(ablations: list[dict], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(ablations)))
    y = np.arange(len(ablations))[::-1]
    for yi, a in zip(y, ablations):
        ax.plot([a["ci_low"] * 100, a["ci_high"] * 100], [yi, yi], color="#333")
        ax.plot(a["lift"] * 100, yi, "o", color="#333")
        ax.plot(a["true_lift"] * 100, yi, "x", color="#d62728", markersize=9)
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_yticks(y, [a["ablation"] for a in ablations], fontsize=8)
    ax.set_xlabel("relative lift (%): estimate and 95% CI (black), truth of the click model (red x)")
    return _save(fig, path)


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>"


def write_study_report(result: dict, out: Path) -> Path:
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    table = result["table"]
    plot_ctr(table, figs / "ctr.png")
    plot_over_time(result["over_time"], figs / "ctr_over_time.png")
    plot_regret(result["regret"], figs / "regret.png")
    plot_ablations(result["ablations"], figs / "ablations.png")
    cfg = result["config"]
    parts = [f"<p class='sim'>{html.escape(result['note'])}</p>", "<h1>Backdrop study: generated backgrounds and personalisation</h1>"]
    parts.append(
        f"<p class='muted'>{table['impressions']:,} impressions served over HTTP by the decision service "
        f"({result.get('impressions_per_s', '?')} per second, {result.get('seconds', {}).get('total', '?')} s), "
        f"{table['clicks']:,} clicks. Click model: base CTR {_pct(cfg['base_ctr'])}, generated {_pct(cfg['generated_lift'], True)}, "
        f"best style vs random {_pct(cfg['style_spread'], True)}, oracle vs best style {_pct(cfg['personal_spread'], True)} "
        f"(defaults chosen to mirror the paper's reported effects); seed {cfg['seed']}.</p>"
    )
    if table["srm"].get("warning"):
        parts.append(f"<p class='warn'>{html.escape(table['srm']['warning'])}</p>")
    parts += ["<h2>The paper-style table</h2>", arm_table(table), "<img src='figures/ctr.png' alt='CTR per arm'>"]
    srm = table["srm"]
    parts.append(f"<p class='muted'>Sample-ratio check against the planned split: chi² = {srm['chi2']:.2f}, p = {_p(srm['p'])}.</p>")
    parts.append("<h2>Ablations, each isolating one step</h2>")
    rows = [[html.escape(a["ablation"]), html.escape(a["treatment"]), html.escape(a["control"]),
             f"{_pct(a['lift'], True)} [{_pct(a['ci_low'], True)}, {_pct(a['ci_high'], True)}]", _p(a["p"]),
             _pct(a["true_lift"], True), "yes" if a["covered"] else "<b>no</b>",
             f"{a['impressions_per_arm_for_80pct_power']:,}" if a["impressions_per_arm_for_80pct_power"] else "–"]
            for a in result["ablations"]]
    parts.append(_table(["ablation", "treatment", "control", "lift [95% CI]", "p", "true lift", "CI covers truth",
                         "impressions/arm for 80% power"], rows))
    parts.append("<img src='figures/ablations.png' alt='ablations'>")
    parts.append(
        "<p class='muted'>True lifts: the click model's exact expectation for the fixed serving rules; for the personalised arm, "
        "the mean true click probability of what it served (it learns as it goes). The last column is the sample a "
        "two-sided test at alpha 0.05 needs to detect the true lift with 80% power.</p>"
    )
    parts += ["<h2>CTR over time</h2>", "<img src='figures/ctr_over_time.png' alt='CTR over time'>"]
    parts += ["<h2>Cumulative regret against the oracle</h2>", "<img src='figures/regret.png' alt='regret'>"]
    parts.append("<h2>Off-policy first: what the randomised arm's log predicted</h2>")
    if result["off_policy"]:
        rows = [[html.escape(r["target"]), r["estimator"], f"{_pct(r['value'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]",
                 f"{_pct(r['online_ctr'])} [{_pct(r['online_low'])}, {_pct(r['online_high'])}]", "yes" if r["agrees"] else "<b>no</b>", f"{r['n']:,}"]
                for r in result["off_policy"]]
        parts.append(_table(["arm predicted", "estimator", "offline estimate [95% CI]", "online CTR [95% CI]", "intervals overlap", "logged rows"], rows))
    parts.append(
        "<p class='muted'>Only the random-style arm's log can predict other policies: its propensities are 1/K. The fixed "
        "arm logs one style per product with propensity 1, so no other policy's value is identifiable from it (no support), "
        "and the catalog-image arm offers no style at all.</p>"
    )
    page = out / "report.html"
    page.write_text(_page("Backdrop study", "".join(parts)))
    return page


def write_abtest_report(result: dict, ot: dict | None, out: Path) -> Path:
    """``out`` is the HTML file; figures go beside it."""
    out = Path(out)
    figs = out.parent / (out.stem + "_figures")
    figs.mkdir(parents=True, exist_ok=True)
    plot_ctr(result, figs / "ctr.png")
    parts = [f"<h1>A/B analysis: {html.escape(str(result['source']))}</h1>"]
    if result["srm"].get("warning"):
        parts.append(f"<p class='warn'>{html.escape(result['srm']['warning'])}</p>")
    parts += [arm_table(result), f"<img src='{figs.name}/ctr.png' alt='CTR per arm'>"]
    if ot is not None:
        plot_over_time(ot, figs / "ctr_over_time.png")
        parts += ["<h2>CTR over time</h2>", f"<img src='{figs.name}/ctr_over_time.png' alt='CTR over time'>"]
    out.write_text(_page("Backdrop A/B analysis", "".join(parts)))
    return out
