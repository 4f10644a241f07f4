"""An analysis as a Markdown report."""

from __future__ import annotations


def _pct(x, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.1%}" if signed else f"{x:.2%}"


def _p(x) -> str:
    if x is None:
        return "–"
    return "<0.0001" if x < 1e-4 else f"{x:.2g}" if x < 0.01 else f"{x:.3f}"


def to_markdown(result: dict) -> str:
    """Render :func:`analyze`'s result: a table per arm, the SRM line (and its warning), CUPED."""
    level = f"{1 - result['alpha']:.0%}"
    lines = [
        (
            f"**{result['source']}**: {result['impressions']:,} impressions, {result['clicks']:,} clicks; "
            f"control `{result['control']}`, alpha = {result['alpha']:g}"
        ),
        "",
        f"| arm | impressions | clicks | CTR [{level} CI] | lift [{level} CI] | p (Holm) | always-valid p |",
        "|---|---:|---:|---|---|---|---:|",
    ]
    for r in result["arms"]:
        ctr = f"{_pct(r['ctr'])} [{_pct(r['ctr_low'])}, {_pct(r['ctr_high'])}]"
        if r["control"]:
            lines.append(f"| {r['arm']} (control) | {r['n']:,} | {r['clicks']:,} | {ctr} | – | – | – |")
            continue
        lift = f"{_pct(r['lift'], True)} [{_pct(r['lift_low'], True)}, {_pct(r['lift_high'], True)}]"
        star = " *" if r["significant"] else ""
        lines.append(
            f"| {r['arm']} | {r['n']:,} | {r['clicks']:,} | {ctr} | {lift} | {_p(r['p'])} ({_p(r['p_holm'])}){star} "
            f"| {_p(r['always_valid_p'])} |"
        )
    lines += ["", f"\\* Holm-adjusted p < {result['alpha']:g}. Always-valid p: mSPRT, safe to read at any time."]
    if result.get("unit") == "user":
        users = ", ".join(f"{r['arm']} {r['units']:,}" for r in result["arms"])
        note = (
            f"Arms are assigned per user ({users} users): intervals and tests use the delta method over users, "
            "and the SRM check counts users."
        )
        lines += ["", note]
    srm = result["srm"]
    split = ", ".join(f"{a} {srm['observed_shares'][a]:.1%}/{srm['planned_shares'][a]:.1%}" for a in srm["planned_shares"])
    chi2 = "–" if srm["chi2"] is None else f"{srm['chi2']:.2f}"
    verdict = "MISMATCH" if srm["warning"] else "ok"
    p = _p(srm["p"])
    p = p if p.startswith("<") else f"= {p}"
    lines += ["", f"SRM check (observed/planned: {split}): chi2 = {chi2}, p {p} — {verdict}"]
    if srm["warning"]:
        lines += ["", f"> **WARNING: {srm['warning']}**"]
    if result.get("cuped"):
        lines += [
            "",
            "CUPED (pre-period covariate):",
            "",
            f"| arm | adjusted lift [{level} CI] | adjusted diff [{level} CI] | variance reduction |",
            "|---|---|---|---:|",
        ]
        for arm, c in result["cuped"].items():
            lift = f"{_pct(c['lift'], True)} [{_pct(c['lift_low'], True)}, {_pct(c['lift_high'], True)}]"
            diff = "–" if c["diff"] is None else f"{c['diff']:+.4%} [{c['low']:+.4%}, {c['high']:+.4%}]"
            vr = "–" if c["variance_reduction"] is None else f"{c['variance_reduction']:.1%}"
            lines.append(f"| {arm} | {lift} | {diff} | {vr} |")
    return "\n".join(lines) + "\n"


def values_markdown(result: dict) -> str:
    """Render :func:`analyze_values`'s result: mean per impression and lift, each with its interval."""
    level = f"{1 - result['alpha']:.0%}"
    lines = [
        (
            f"**{result['source']}**: {result['metric']} ({result['measures']}), {result['impressions']:,} impressions, "
            f"total {result['total']:,.2f}; control `{result['control']}`, {result['variance']}"
        ),
        "",
        f"| arm | impressions | total | per impression [{level} CI] | lift [{level} CI] | p (Holm) |",
        "|---|---:|---:|---|---|---|",
    ]
    for r in result["arms"]:
        mean = "–" if r["mean"] is None else f"{r['mean']:.4g} [{_num(r['mean_low'])}, {_num(r['mean_high'])}]"
        lift = "control" if r["control"] else f"{_pct(r['lift'], True)} [{_pct(r['lift_low'], True)}, {_pct(r['lift_high'], True)}]"
        p = "" if r["control"] else f"{_p(r['p'])} ({_p(r['p_holm'])})"
        lines.append(f"| {r['arm']} | {r['n']:,} | {r['total']:,.2f} | {mean} | {lift} | {p} |")
    return "\n".join(lines)


def _num(x) -> str:
    return "–" if x is None else f"{x:.4g}"
