"""A/B/n analysis of impression-level logs of ad creatives: load, analyze, report, plan.

One row per impression: the arm (creative/style) that was shown, whether it was clicked, and
optionally a pre-period covariate (for CUPED) and a timestamp (for the over-time plot and the
always-valid p-value's history). :func:`analyze` compares every arm with one control arm:

* per arm: impressions, clicks, CTR with a Wilson interval;
* per non-control arm: relative lift with a log-ratio interval, the pooled two-proportion z-test,
  Holm-adjusted p-values across the (arms - 1) comparisons, and the mSPRT always-valid p-value;
* a sample-ratio-mismatch (SRM) check of the arm counts against the planned split;
* CUPED-adjusted lifts when a covariate is present.

The formulas and their references are in :mod:`backdrop.experiments.stats`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import BackdropError, CatalogError
from . import stats

#: column aliases, first match wins (header names are compared case-insensitively)
ALIASES = {
    "arm": ("arm", "variant", "style"),
    "click": ("click", "reward"),
    "covariate": ("covariate", "pre_ctr"),
    "at": ("at", "timestamp"),
    "unit": ("user_id", "user", "unit"),
}
#: default control arm names, in order of preference (case-insensitive)
CONTROL_NAMES = ("control", "original", "a")
#: SRM p-value below which the result carries a warning (the usual, deliberately strict threshold)
SRM_ALPHA = 0.001
#: most looks the always-valid p-value is evaluated at along the time-ordered log
MAX_LOOKS = 2000


@dataclass
class Impressions:
    """Impression-level data: one entry per impression in every array.

    ``arm`` (str), ``click`` (float: 0/1 clicks, or reward values), optional ``covariate`` (float,
    pre-period metric for CUPED) and ``at`` (float, seconds since the epoch); ``source`` names where
    the data came from (a file path) for messages and reports.
    """

    arm: np.ndarray
    click: np.ndarray
    covariate: np.ndarray | None = None
    at: np.ndarray | None = None
    source: str = "<memory>"
    #: the randomisation unit of each impression (a user id) when arms are assigned per user
    unit: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.arm = np.asarray(self.arm, dtype=str)
        if self.unit is not None:
            self.unit = np.asarray(self.unit, dtype=str)
            if self.unit.shape != self.arm.shape:
                raise ValueError(f"unit has shape {self.unit.shape}, arm has {self.arm.shape}; one entry per impression")
        self.click = np.asarray(self.click, dtype=float)
        n = self.arm.shape[0] if self.arm.ndim == 1 else -1
        for name in ("click", "covariate", "at"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=float)
            setattr(self, name, value)
            if value.shape != (n,):
                raise ValueError(f"{name} has shape {value.shape}, arm has {self.arm.shape}; one entry per impression")

    def __len__(self) -> int:
        return int(self.arm.shape[0])


# --------------------------------------------------------------------------- loading


def load_impressions(path: str | Path) -> Impressions:
    """Read impressions from a CSV (stdlib ``csv``) or Parquet (pyarrow) file.

    Columns (case-insensitive; aliases in brackets): ``arm`` [variant, style], ``click`` [reward],
    optional ``covariate`` [pre_ctr], optional ``at`` [timestamp] as epoch seconds or ISO 8601
    (naive times are taken as UTC). Raises :class:`~backdrop.errors.CatalogError` naming the file,
    row (CSV: line number, header = 1; Parquet: record number from 1) and field of the first bad
    value, or listing the columns found when a required one is missing.
    """
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: impressions file not found")
    if path.is_dir():
        raise CatalogError(f"{path}: is a directory; pass the impressions file (CSV or Parquet)")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        columns, rows = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".parquet", ".pq"):
        columns, rows = _read_parquet(path)
    else:
        raise CatalogError(f"{path}: unsupported impressions format '{suffix}'; use .csv or .parquet")
    return _build(path, columns, rows)


def _resolve(path: Path, header: Sequence[str]) -> dict[str, str]:
    """Map canonical field -> actual column name; error if arm or click is missing."""
    lower = {h.strip().lower(): h for h in header}
    found = {}
    for field, names in ALIASES.items():
        for name in names:
            if name in lower:
                found[field] = lower[name]
                break
    for field in ("arm", "click"):
        if field not in found:
            aliases = " or ".join(f"'{a}'" for a in ALIASES[field])
            have = ", ".join(header) if header else "(none)"
            raise CatalogError(f"{path}: missing column {aliases}; found columns: {have}")
    return found


def _read_csv(path: Path, delimiter: str) -> tuple[dict[str, str], list[tuple[int, dict]]]:
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        raise CatalogError(f"{path}: cannot open: {e.strerror}") from e
    with f:
        reader = csv.DictReader(f, delimiter=delimiter)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as e:
            raise CatalogError(f"{path}: row 1: cannot parse header: {e}") from e
        if not header:
            raise CatalogError(f"{path}: empty file; expected a header row with arm and click columns")
        columns = _resolve(path, header)
        rows = []
        try:
            for record in reader:
                if None in record:  # more values than header fields
                    raise CatalogError(
                        f"{path}: row {reader.line_num}: has {len(header) + len(record[None])} fields, "
                        f"the header has {len(header)}; quote values that contain '{delimiter}'"
                    )
                rows.append((reader.line_num, record))
        except (csv.Error, UnicodeDecodeError) as e:
            raise CatalogError(f"{path}: row {reader.line_num}: cannot parse CSV: {e}") from e
    return columns, rows


def _read_parquet(path: Path) -> tuple[dict[str, str], list[tuple[int, dict]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise CatalogError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from e
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt/non-Parquet files
        raise CatalogError(f"{path}: cannot read Parquet: {e}") from e
    columns = _resolve(path, table.column_names)
    data = {}
    for name in columns.values():
        col = table.column(name)
        if _is_timestamp(col.type):
            import pyarrow as pa

            # -> float epoch seconds; nulls stay None
            col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            data[name] = [None if v is None else v / 1e6 for v in col.to_pylist()]
        else:
            data[name] = col.to_pylist()
    names = list(data)
    rows = [(i + 1, dict(zip(names, values, strict=True))) for i, values in enumerate(zip(*data.values(), strict=True))]
    return columns, rows


def _is_timestamp(arrow_type) -> bool:
    import pyarrow.types as pt

    return pt.is_timestamp(arrow_type) or pt.is_date(arrow_type)


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _timestamp(value) -> float | None:
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _build(path: Path, columns: dict[str, str], rows: list[tuple[int, dict]]) -> Impressions:
    if not rows:
        raise CatalogError(f"{path}: no impressions (the file has a header but no rows)")

    def bad(row: int, message: str) -> CatalogError:
        return CatalogError(f"{path}: row {row}: {message}")

    n = len(rows)
    arm = np.empty(n, dtype=object)
    click = np.empty(n)
    covariate = np.empty(n) if "covariate" in columns else None
    at = np.empty(n) if "at" in columns else None
    unit = np.empty(n, dtype=object) if "unit" in columns else None
    for i, (row, record) in enumerate(rows):
        if unit is not None:
            raw = record.get(columns["unit"])
            unit[i] = "" if raw is None else str(raw).strip()
            if not unit[i]:
                raise bad(row, f"{columns['unit']} is empty; give every impression its user (or drop the column)")
        raw = record.get(columns["arm"])
        name = "" if raw is None else str(raw).strip()
        if not name:
            raise bad(row, f"{columns['arm']} is empty; every impression needs the arm it showed")
        arm[i] = name

        raw = record.get(columns["click"])
        value = _number(raw)
        if value is None or not math.isfinite(value):
            raise bad(row, f"{columns['click']} {_show(raw)} is not a number; expected 0/1 or a reward value")
        click[i] = value

        if covariate is not None:
            raw = record.get(columns["covariate"])
            value = _number(raw)
            if value is None or not math.isfinite(value):
                raise bad(
                    row,
                    f"{columns['covariate']} {_show(raw)} is not a number; give every row its pre-period value "
                    "(e.g. the user's CTR before the test, 0 if unknown) or drop the column",
                )
            covariate[i] = value

        if at is not None:
            raw = record.get(columns["at"])
            value = _timestamp(raw)
            if value is None or not math.isfinite(value):
                raise bad(row, f"{columns['at']} {_show(raw)} is not a time; use epoch seconds or ISO 8601")
            at[i] = value
    return Impressions(arm=arm.astype(str), click=click, covariate=covariate, at=at, source=str(path),
                       unit=None if unit is None else unit.astype(str))


def _show(raw) -> str:
    return "(empty)" if raw is None or str(raw).strip() == "" else f"'{raw}'"


# --------------------------------------------------------------------------- analysis


def choose_control(arms: Iterable[str], control: str | None = None) -> str:
    """The control arm: ``control`` if given (must exist), else the first arm named ``control``,
    ``original`` or ``A`` (case-insensitive, in that order of preference), else the first arm in
    alphabetical order."""
    arms = sorted(arms)
    if control is not None:
        if control not in arms:
            raise BackdropError(f"control arm '{control}' not in the data; arms: {', '.join(arms)}")
        return control
    by_lower = {a.lower(): a for a in reversed(arms)}
    for name in CONTROL_NAMES:
        if name in by_lower:
            return by_lower[name]
    return arms[0]


def _counts(imp: Impressions, arms: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arm index per impression, impressions and clicks per arm (in ``arms`` order)."""
    index = {a: i for i, a in enumerate(arms)}
    idx = np.fromiter((index[a] for a in imp.arm), dtype=np.intp, count=len(imp))
    n = np.bincount(idx, minlength=len(arms)).astype(float)
    clicks = np.bincount(idx, weights=imp.click, minlength=len(arms))
    return idx, n, clicks


def _always_valid(imp: Impressions, idx: np.ndarray, t: int, c: int, tau, alpha: float, deff=(1.0, 1.0)) -> tuple[float, float, float]:
    """mSPRT p and CI for arm t vs arm c: the running min over the time-ordered log if timestamps
    exist (up to MAX_LOOKS looks; fewer looks only make it more conservative), else one look.
    ``deff``: the arms' design effects (clustered / binomial variance); counts are divided by them
    (effective sample sizes), so per-user assignment does not make the test overconfident."""
    mask = (idx == t) | (idx == c)
    clicks, is_t = imp.click[mask], idx[mask] == t
    d_t, d_c = (max(float(d), 1.0) if np.isfinite(d) else 1.0 for d in deff)
    if imp.at is None:
        p, low, high = stats.msprt(clicks[is_t].sum() / d_t, is_t.sum() / d_t, clicks[~is_t].sum() / d_c, (~is_t).sum() / d_c, tau, alpha)
        return p, low, high
    order = np.argsort(imp.at[mask], kind="stable")
    clicks, is_t = clicks[order], is_t[order]
    n_t, n_c = np.cumsum(is_t) / d_t, np.cumsum(~is_t) / d_c
    c_t, c_c = np.cumsum(clicks * is_t) / d_t, np.cumsum(clicks * ~is_t) / d_c
    looks = np.unique(np.linspace(0, len(clicks) - 1, min(len(clicks), MAX_LOOKS)).astype(np.intp))
    p, low, high = stats.msprt_path(c_t[looks], n_t[looks], c_c[looks], n_c[looks], tau=tau, alpha=alpha)
    return float(p[-1]), float(low[-1]), float(high[-1])


def _by_unit(imp: Impressions, idx: np.ndarray, k: int, alpha: float) -> dict:
    """Per arm: the CTR's delta-method variance over users, its interval, users, design effect."""
    from scipy.stats import norm

    zq = norm.ppf(1 - alpha / 2)
    out = {key: np.zeros(k) for key in ("ctr", "var", "low", "high", "units", "design_effect")}
    seen: dict[str, int] = {}
    shared = 0
    for i in range(k):
        m = idx == i
        users, inverse = np.unique(imp.unit[m], return_inverse=True)
        y = np.bincount(inverse, weights=imp.click[m], minlength=len(users))
        n = np.bincount(inverse, minlength=len(users)).astype(float)
        ctr, var = stats.ratio_delta(y, n)
        binomial = ctr * (1 - ctr) / n.sum() if n.sum() else float("nan")
        out["ctr"][i], out["var"][i], out["units"][i] = ctr, var, len(users)
        out["low"][i], out["high"][i] = ctr - zq * np.sqrt(var), ctr + zq * np.sqrt(var)
        out["design_effect"][i] = var / binomial if binomial > 0 else float("nan")
        for u in users:
            shared += seen.setdefault(u, i) != i
    out["shared_units"] = shared
    return out


def _clustered_comparisons(cl: dict, others: np.ndarray, alpha: float):
    """Lift (log-ratio delta method) and z-test of each arm against arm 0 from clustered variances."""
    from scipy.stats import norm

    zq = norm.ppf(1 - alpha / 2)
    r_t, v_t, r_c, v_c = cl["ctr"][others], cl["var"][others], cl["ctr"][0], cl["var"][0]
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = r_t / r_c - 1
        se_log = np.sqrt(v_t / r_t**2 + v_c / r_c**2)
        lift_low = np.exp(np.log(r_t / r_c) - zq * se_log) - 1
        lift_high = np.exp(np.log(r_t / r_c) + zq * se_log) - 1
        z = (r_t - r_c) / np.sqrt(v_t + v_c)
    p = 2 * norm.sf(np.abs(z))
    return lift, lift_low, lift_high, z, p


def compare(imp: Impressions, treatment: str, control: str, alpha: float = 0.05) -> dict:
    """One arm against another (any pair, not only against the control): lift, interval, p-value.

    The same statistics as :func:`analyze`: per-user delta method when ``imp.unit`` is given,
    else the log-ratio interval and the pooled two-proportion test.
    """
    pair = [control, treatment]
    missing = [a for a in pair if a not in set(imp.arm.tolist())]
    if missing:
        raise BackdropError(f"{imp.source}: no impressions of arm(s) {', '.join(missing)}")
    mask = np.isin(imp.arm, pair)
    idx = (imp.arm[mask] == treatment).astype(np.intp)
    sub = Impressions(arm=imp.arm[mask], click=imp.click[mask], source=imp.source,
                      unit=None if imp.unit is None else imp.unit[mask])
    if sub.unit is not None:
        lift, low, high, _, p = (float(v[0]) for v in _clustered_comparisons(_by_unit(sub, idx, 2, alpha), np.array([1]), alpha))
    else:
        n = np.bincount(idx, minlength=2).astype(float)
        c = np.bincount(idx, weights=sub.click, minlength=2)
        lift, low, high = stats.relative_lift(c[1], n[1], c[0], n[0], alpha)
        _, p = stats.two_proportion_test(c[1], n[1], c[0], n[0])
    return {"lift": lift, "ci_low": low, "ci_high": high, "p": p}


def _srm_block(arms: list[str], n: np.ndarray, planned_shares: Mapping[str, float] | None) -> dict:
    if planned_shares is None:
        shares = np.full(len(arms), 1.0 / len(arms))
    else:
        unknown = sorted(set(planned_shares) - set(arms))
        missing = sorted(set(arms) - set(planned_shares))
        if missing:
            raise BackdropError(
                f"planned_shares lacks arm(s) {', '.join(missing)}; give a share for every arm: {', '.join(arms)}"
            )
        if unknown:
            # planned arms that got no impressions at all are part of the mismatch
            arms = arms + unknown
            n = np.concatenate([n, np.zeros(len(unknown))])
        shares = np.array([float(planned_shares[a]) for a in arms])
        if np.any(shares < 0) or shares.sum() <= 0:
            raise BackdropError(f"planned_shares must be >= 0 and not all 0, got {dict(planned_shares)}")
        shares = shares / shares.sum()
    chi2, p = stats.srm_check(n, shares)
    observed = n / n.sum()
    warning = None
    if p < SRM_ALPHA:
        split = ", ".join(f"{a} {o:.2%} (planned {s:.2%})" for a, o, s in zip(arms, observed, shares, strict=True))
        warning = (
            f"SAMPLE RATIO MISMATCH (chi2 = {chi2:.1f}, p = {p:.2g}): the arms did not get the planned split "
            f"[{split}]. Assignment or logging is broken (an arm that fails to render or redirect, bot "
            "filtering that hits one arm, a changed split mid-test...), so the arms are not comparable and "
            "the lifts and p-values below cannot be trusted. Find and fix the cause before reading them."
        )
    return {
        "chi2": chi2,
        "p": p,
        "planned_shares": dict(zip(arms, shares.tolist(), strict=True)),
        "observed_shares": dict(zip(arms, observed.tolist(), strict=True)),
        "warning": warning,
    }


def analyze(
    imp: Impressions,
    control: str | None = None,
    planned_shares: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    tau: float | None = None,
) -> dict:
    """Compare every arm with the control; a JSON-serialisable dict (nan/inf become ``None``).

    ``control``: see :func:`choose_control`. ``planned_shares``: arm -> planned traffic share
    (normalised; default equal split). ``tau``: mSPRT mixing scale on the absolute CTR difference
    (default 0.1 × the pooled CTR of each comparison, see :func:`stats.msprt`). ``click`` must be 0/1.

    Keys: ``source, alpha, control, impressions, clicks, arms`` (list, control first, then
    alphabetical; per arm ``arm, control, n, clicks, ctr, ctr_low, ctr_high`` and for the others
    ``lift, lift_low, lift_high, z, p, p_holm, always_valid_p, always_valid_diff_low/high, tau,
    significant`` where significant means ``p_holm < alpha``), ``srm`` (``chi2, p, planned_shares,
    observed_shares, warning``) and ``cuped`` (``None`` without a covariate, else per arm the
    fields of :class:`stats.CupedDiff`).
    """
    if len(imp) == 0:
        raise BackdropError(f"{imp.source}: no impressions to analyze")
    if not np.all((imp.click == 0) | (imp.click == 1)):
        bad = imp.click[(imp.click != 0) & (imp.click != 1)][0]
        raise BackdropError(
            f"{imp.source}: click must be 0 or 1 for a click-through-rate analysis, found {bad:g}; "
            "convert rewards to clicks (reward > 0 -> 1) first"
        )
    names = sorted(set(imp.arm.tolist()))
    if len(names) < 2:
        raise BackdropError(f"{imp.source}: only one arm ({names[0]}); an experiment needs at least two")
    control = choose_control(names, control)
    arms = [control] + [a for a in names if a != control]
    idx, n, clicks = _counts(imp, arms)

    low, high = stats.wilson_interval(clicks, n, alpha)
    clustered = _by_unit(imp, idx, len(arms), alpha) if imp.unit is not None else None
    if clustered is not None:
        low, high = clustered["low"], clustered["high"]
    rows = [
        {
            "arm": a,
            "control": a == control,
            "n": int(n[i]),
            "clicks": int(clicks[i]),
            "ctr": clicks[i] / n[i],
            "ctr_low": low[i],
            "ctr_high": high[i],
        }
        for i, a in enumerate(arms)
    ]
    others = np.arange(1, len(arms))
    if clustered is None:
        lift, lift_low, lift_high = stats.relative_lift(clicks[others], n[others], clicks[0], n[0], alpha)
        z, p = stats.two_proportion_test(clicks[others], n[others], clicks[0], n[0])
        deff = np.ones(len(arms))
    else:
        lift, lift_low, lift_high, z, p = _clustered_comparisons(clustered, others, alpha)
        deff = clustered["design_effect"]
        for i, row in enumerate(rows):
            row.update(units=int(clustered["units"][i]), design_effect=float(deff[i]))
    p_holm = stats.holm(p)
    for j, i in enumerate(others):
        pooled = (clicks[i] + clicks[0]) / (n[i] + n[0])
        tau_i = stats.TAU_RELATIVE * pooled if tau is None else tau
        av_p, av_low, av_high = _always_valid(imp, idx, i, 0, tau_i, alpha, (deff[i], deff[0]))
        rows[i].update(
            lift=lift[j],
            lift_low=lift_low[j],
            lift_high=lift_high[j],
            z=z[j],
            p=p[j],
            p_holm=p_holm[j],
            always_valid_p=av_p,
            always_valid_diff_low=av_low,
            always_valid_diff_high=av_high,
            tau=tau_i,
            significant=bool(p_holm[j] < alpha),
        )

    cuped = None
    if imp.covariate is not None:
        cuped = {}
        y_c, x_c = imp.click[idx == 0], imp.covariate[idx == 0]
        for i in others:
            res = stats.cuped_difference(imp.click[idx == i], imp.covariate[idx == i], y_c, x_c, alpha)
            cuped[arms[i]] = res._asdict()

    result = {
        "source": imp.source,
        "alpha": alpha,
        "control": control,
        "impressions": int(n.sum()),
        "clicks": int(clicks.sum()),
        "arms": rows,
        "srm": _srm_block(arms, clustered["units"] if clustered is not None else n, planned_shares),
        "cuped": cuped,
        "unit": "impression" if clustered is None else "user",
        "variance": "binomial (Wilson intervals, pooled z-test)" if clustered is None else (
            "delta method over users (arms are assigned per user; SRM counts users)"),
    }
    if clustered is not None and clustered["shared_units"]:
        result["srm"]["warning"] = (result["srm"]["warning"] or "") + (
            f" {clustered['shared_units']} user(s) appear in more than one arm: assignment is not sticky.").strip()
    return _clean(result)


def _clean(obj):
    """numpy scalars -> Python, nan/inf -> None, recursively (strict-JSON safe)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def over_time(imp: Impressions, bins: int = 20) -> dict:
    """Per-arm impressions, clicks and CTR in ``bins`` equal-width time bins (needs ``at``).

    Returns ``{"edges": [bins + 1 times], "arms": {arm: {"n", "clicks", "ctr", "cumulative_ctr"}}}``
    (lists of length ``bins``; CTR is ``None`` in a bin without impressions) for a plot.
    """
    if imp.at is None:
        raise BackdropError(f"{imp.source}: over-time CTR needs timestamps (an 'at' or 'timestamp' column)")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    start, end = float(imp.at.min()), float(imp.at.max())
    if end <= start:
        end = start + 1.0
    edges = np.linspace(start, end, bins + 1)
    b = np.clip(np.searchsorted(edges, imp.at, side="right") - 1, 0, bins - 1)
    out = {}
    for a in sorted(set(imp.arm.tolist())):
        m = imp.arm == a
        n = np.bincount(b[m], minlength=bins).astype(float)
        c = np.bincount(b[m], weights=imp.click[m], minlength=bins)
        out[a] = {
            "n": n.astype(int).tolist(),
            "clicks": c.tolist(),
            "ctr": stats._div(c, n).tolist(),
            "cumulative_ctr": stats._div(np.cumsum(c), np.cumsum(n)).tolist(),
        }
    return _clean({"edges": edges.tolist(), "arms": out})


# --------------------------------------------------------------------------- reports


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
        note = (f"Arms are assigned per user ({users} users): intervals and tests use the delta method over users, "
                "and the SRM check counts users.")
        lines += ["", note]
    srm = result["srm"]
    split = ", ".join(
        f"{a} {srm['observed_shares'][a]:.1%}/{srm['planned_shares'][a]:.1%}" for a in srm["planned_shares"]
    )
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


# --------------------------------------------------------------------------- planning


def plan(
    baseline_ctr: float,
    lift: float,
    power: float = 0.8,
    alpha: float = 0.05,
    arms: int = 2,
    daily_impressions: float | None = None,
    method: str = "arcsine",
) -> dict:
    """Impressions needed to detect a relative ``lift`` over ``baseline_ctr`` with every arm.

    With ``arms`` arms there are ``arms - 1`` comparisons against the control; each is planned at
    the Bonferroni level ``alpha / (arms - 1)``. :func:`analyze` adjusts with Holm, which rejects
    whenever Bonferroni does, so the plan is (slightly) conservative. Per-arm size from
    :func:`stats.sample_size_per_arm` (two-sided); ``days`` = total / daily traffic, rounded up.
    """
    if arms < 2:
        raise ValueError(f"an experiment needs at least 2 arms, got {arms}")
    comparisons = arms - 1
    alpha_each = alpha / comparisons
    per_arm = stats.sample_size_per_arm(baseline_ctr, lift, alpha=alpha_each, power=power, method=method)
    total = per_arm * arms
    days = None
    if daily_impressions is not None:
        if daily_impressions <= 0:
            raise ValueError(f"daily_impressions must be > 0, got {daily_impressions}")
        days = math.ceil(total / daily_impressions)
    return {
        "baseline_ctr": baseline_ctr,
        "lift": lift,
        "target_ctr": baseline_ctr * (1 + lift),
        "power": power,
        "alpha": alpha,
        "arms": arms,
        "comparisons": comparisons,
        "alpha_per_comparison": alpha_each,
        "method": method,
        "impressions_per_arm": per_arm,
        "impressions_total": total,
        "daily_impressions": daily_impressions,
        "days": days,
    }


def plan_table(
    baselines: Iterable[float],
    lifts: Iterable[float],
    power: float = 0.8,
    alpha: float = 0.05,
    arms: int = 2,
    daily_impressions: float | None = None,
    method: str = "arcsine",
) -> list[dict]:
    """:func:`plan` for every (baseline, lift) pair, baseline-major."""
    lifts = list(lifts)
    return [plan(b, lf, power, alpha, arms, daily_impressions, method) for b in baselines for lf in lifts]


def plan_markdown(plans: dict | Sequence[dict]) -> str:
    """A table of one :func:`plan` result or a :func:`plan_table` grid."""
    rows = [plans] if isinstance(plans, Mapping) else list(plans)
    if not rows:
        return ""
    first = rows[0]
    head = (
        f"{first['arms']} arms, power {first['power']:.0%}, two-sided alpha {first['alpha']:g}"
        + (
            f" split over {first['comparisons']} comparisons (Bonferroni: {first['alpha_per_comparison']:.3g} each)"
            if first["comparisons"] > 1
            else ""
        )
        + f", {first['method']} formula"
    )
    days = any(r["days"] is not None for r in rows)
    lines = [
        head,
        "",
        "| baseline CTR | lift | target CTR | impressions per arm | total impressions |" + (" days |" if days else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|" if days else ""),
    ]
    for r in rows:
        line = (
            f"| {r['baseline_ctr']:.2%} | {r['lift'] * 100:+g}% | {r['target_ctr']:.3%} | {r['impressions_per_arm']:,} "
            f"| {r['impressions_total']:,} |"
        )
        if days:
            line += f" {r['days']:,} |" if r["days"] is not None else " – |"
        lines.append(line)
    return "\n".join(lines) + "\n"
