"""Static HTML reports for a study or an A/B analysis: Jinja2 templates (``study.html.j2``,
``abtest.html.j2``) plus PNG plots (matplotlib's object API, see :mod:`backdrop.render`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..render import figure, render, save

ARM_COLORS = {"original": "#8c8c8c", "random": "#4c9be8", "fixed": "#f0a030", "personalized": "#2ca05a"}


def plot_ctr(result: dict, path: Path) -> Path:
    arms = result["arms"]
    fig, ax = figure(7, 3.6)
    x = np.arange(len(arms))
    ctr = np.array([a["ctr"] for a in arms]) * 100
    err = np.array([[a["ctr"] - a["ctr_low"], a["ctr_high"] - a["ctr"]] for a in arms]).T * 100
    ax.bar(x, ctr, yerr=err, capsize=6, color=[ARM_COLORS.get(a["arm"], "#777") for a in arms])
    ax.set_xticks(x, [a["arm"] for a in arms])
    ax.set_ylabel("CTR (%) with 95% interval")  # Wilson, or the delta method over users
    return save(fig, path)


def plot_over_time(ot: dict, path: Path) -> Path:
    fig, ax = figure(7, 3.6)
    edges = np.asarray(ot["edges"], dtype=float)
    mid = (edges[:-1] + edges[1:]) / 2 - edges[0]
    for arm, s in ot["arms"].items():
        ax.plot(mid, np.array(s["cumulative_ctr"], dtype=float) * 100, label=arm, color=ARM_COLORS.get(arm))
    ax.set_xlabel("seconds since the first impression")
    ax.set_ylabel("cumulative CTR (%)")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_regret(regret: dict, path: Path) -> Path:
    fig, ax = figure(7, 3.6)
    for arm, r in regret.items():
        if r["impressions"]:
            ax.plot(r["impressions"], r["regret"], label=arm, color=ARM_COLORS.get(arm))
    ax.set_xlabel("impressions of the arm")
    ax.set_ylabel("cumulative regret vs oracle (expected clicks)")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_ablations(ablations: list[dict], path: Path) -> Path:
    fig, ax = figure(7, 0.6 + 0.55 * len(ablations))
    y = np.arange(len(ablations))[::-1]
    for yi, a in zip(y, ablations, strict=True):
        ax.plot([a["ci_low"] * 100, a["ci_high"] * 100], [yi, yi], color="#333")
        ax.plot(a["lift"] * 100, yi, "o", color="#333")
        ax.plot(a["true_lift"] * 100, yi, "x", color="#d62728", markersize=9)
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_yticks(y, [a["ablation"] for a in ablations], fontsize=8)
    ax.set_xlabel("relative lift (%): estimate and 95% CI (black), truth of the click model (red x)")
    return save(fig, path)


def write_study_report(result: dict, out: Path) -> Path:
    out = Path(out)
    figs = out / "figures"
    table = result["table"]
    plot_ctr(table, figs / "ctr.png")
    plot_over_time(result["over_time"], figs / "ctr_over_time.png")
    plot_regret(result["regret"], figs / "regret.png")
    plot_ablations(result["ablations"], figs / "ablations.png")
    page = out / "report.html"
    page.write_text(render("study.html.j2", title="Backdrop study", r=result, table=table, cfg=result["config"]))
    return page


def write_abtest_report(result: dict, ot: dict | None, out: Path) -> Path:
    """``out`` is the HTML file; figures go beside it."""
    out = Path(out)
    figs = out.parent / (out.stem + "_figures")
    plot_ctr(result, figs / "ctr.png")
    if ot is not None:
        plot_over_time(ot, figs / "ctr_over_time.png")
    out.write_text(render("abtest.html.j2", title="Backdrop A/B analysis", result=result, over_time=ot is not None, figures=figs.name))
    return out
