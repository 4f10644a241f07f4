"""Static HTML reports: the creative contact sheet (product x style x placement).

Pages are plain HTML with their images in a ``<name>_files/`` folder next to them: no server,
no JavaScript, no network; open the file in any browser. Creatives QA flagged come first: a table
of every flagged creative with its reasons at the top, products with flagged creatives before the
others, each flagged thumbnail outlined with its reasons under it. Each product's first row is its
``original`` arm, labelled :data:`ORIGINAL_LABEL`: the catalog photo fitted to each placement, the
baseline the generated styles are measured against. Each thumbnail also says what a
reviewer decided (who, why) and whether the decision service serves it, by the one rule
(:func:`~backdrop.creative.review.servability`) that ``backdrop serve`` and ``backdrop export feed``
apply: a creative rejected in review is marked rejected and never shown as usable. The page is
rendered from a Jinja2 template with autoescaping (``templates/contact_sheet.html.j2``).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from PIL import Image

from ..render import render
from .review import REJECTED, SERVABILITY_TEXT, SERVABLE, ReviewState, review_details, servability
from .store import ORIGINAL, CreativeRecord, CreativeStore

THUMB_MAX = 360
#: the row label of the :data:`~backdrop.creative.store.ORIGINAL` arm, pinned first in each product
ORIGINAL_LABEL = "catalog photo (baseline)"


def thumbnail(src: Path | bytes, dst: Path, max_side: int = THUMB_MAX) -> None:
    """A JPEG thumbnail (white behind transparency) of a file or of image bytes; skipped when ``dst``
    is already newer than the file, or already there for bytes (content-addressed: they never change)."""
    if dst.exists() and (isinstance(src, bytes) or dst.stat().st_mtime >= src.stat().st_mtime):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as opened:
        im: Image.Image = opened
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)  # box-reduce first: 3x faster, same look
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGB", im.size, (255, 255, 255))
            bg.paste(im, mask=im.split()[-1])
            im = bg
        tmp = dst.with_suffix(".tmp")
        im.convert("RGB").save(tmp, "JPEG", quality=85)
        os.replace(tmp, dst)


def _caption(metrics: dict) -> str:
    parts = []
    if "edge_contrast" in metrics:
        parts.append(f"ΔE {metrics['edge_contrast']:.0f}")
    if "expansion" in metrics:
        parts.append(f"exp {metrics['expansion']:.2f} · iou {metrics['iou']:.2f} · halo {metrics['halo']:.0f}")
    if metrics.get("gate") == "fallback":
        parts.append(f"gate: procedural fallback after {metrics.get('attempts')} tries")
    elif metrics.get("attempts", 1) > 1:
        parts.append(f"gate: passed on try {metrics['attempts']}")
    return " · ".join(parts)


def _tags(params: dict) -> list[str]:
    """What the photo analysis and the category mapping said, for a product's heading."""
    out = []
    subject = params.get("subject") or {}
    if subject.get("on_model"):
        out.append(f"on-model ({subject.get('person', {}).get('reason', '')})")
    if subject.get("cut"):
        out.append("cut by the photo at the " + " and ".join(subject["cut"]))
    cat = params.get("category") or {}
    if cat:
        out.append(f"styles of {cat.get('category')} ({cat.get('why')})")
    return out


def scene_family(procedural: dict) -> str:
    """How the contact sheet groups a style: staged (a podium, colour blocking, props) or its set.

    >>> scene_family({"scene": "room", "podium": "cube"}), scene_family({"scene": "tabletop"}), scene_family({})
    ('staged', 'tabletop', 'sweep')
    """
    if procedural.get("podium", "none") != "none" or procedural.get("backdrop_shape", "none") != "none" or procedural.get("props", 0):
        return "staged"
    return str(procedural.get("scene", "sweep"))


def _review_text(review: ReviewState | None) -> str:
    """'approved by Ana: QA false alarm', 'rejected by Bo', or '' (pending)."""
    if review is None or review.status == "pending":
        return ""
    return f"{review.status} by {review.reviewer}" + (f": {review.reason}" if review.reason else "")


def usability(store: CreativeStore, review_required: bool = False) -> dict[str, str]:
    """key -> what the decision service does with each creative (``servable`` or why not), reviews included."""
    return _usability(store.creatives(), review_details(store), review_required)


def _usability(records: list[CreativeRecord], reviews: dict[str, ReviewState], review_required: bool) -> dict[str, str]:
    return {
        r.key: servability(
            flagged=r.flagged,
            status=reviews[r.key].status if r.key in reviews else "pending",
            review_required=review_required,
            arm=r.arm,
        )
        for r in records
    }


def write_contact_sheet(store: CreativeStore, out: str | Path, title: str = "Backdrop creatives", review_required: bool = False) -> Path:
    """Write the contact sheet of every creative in ``store`` to ``out`` (HTML); returns its path.

    ``review_required``: say what ``backdrop serve --review-required`` would serve (only approved)."""
    out = Path(out)
    files = out.with_name(out.stem + "_files")
    files.mkdir(parents=True, exist_ok=True)
    records = store.creatives()
    reviews = review_details(store)
    usable_as = _usability(records, reviews, review_required)
    rejected: list[dict] = []
    by_product: dict[str, list] = defaultdict(list)
    for r in records:
        by_product[r.product_id].append(r)
    products = {p["product_id"]: p for p in store.products()}

    sections, flagged = [], []
    jobs: list[Callable[[], None]] = []  # the thumbnails, made in parallel once the page is laid out
    checks: Counter = Counter()
    # products with flagged creatives first, then by id
    order = sorted(by_product, key=lambda pid: (not any(r.flagged for r in by_product[pid]), pid))
    for pid in order:
        recs = by_product[pid]
        info = products.get(pid, {"title": pid, "category": "", "image_path": ""})
        anchor = _safe(pid)
        shape = {r.placement: r.width / r.height for r in recs}
        placements = sorted(shape, key=lambda n: (-shape[n], n))  # widest first: landscape ... story
        # one row per arm (a style, or a style with an overlay): the original (the baseline the others
        # are measured against) first, then flagged ones, then by scene family
        family = {r.arm: scene_family(r.params.get("style", {}).get("procedural", {})) for r in recs}
        family[ORIGINAL] = ORIGINAL  # no scene: the arm's name, as the tables and results call it
        styles = sorted({r.arm for r in recs}, key=lambda s: (s != ORIGINAL, not any(r.flagged for r in recs if r.arm == s), family[s], s))
        cell = {(r.arm, r.placement): r for r in recs}
        original = None
        src = Path(info.get("image_path") or "")
        if src.is_file():
            dst = files / "originals" / f"{anchor}.jpg"
            jobs.append(partial(thumbnail, src, dst, 200))
            original = _rel(dst, out)
        rows = []
        for style in styles:
            cells: list[dict | None] = []
            for placement in placements:
                found = cell.get((style, placement))
                if found is None:
                    cells.append(None)
                    continue
                r = found
                dst = files / "thumbs" / f"{r.key}.jpg"
                local = store.files.local_path(r.path)
                if local is None:  # object storage: the thumbnail, and a full-size preview to link to
                    full = files / "full" / f"{r.key}.jpg"
                    if not (dst.exists() and full.exists()):
                        jobs.append(partial(_remote_thumbnails, store, r, dst, full))
                    local = full
                else:
                    jobs.append(partial(thumbnail, local, dst))
                tip = f"key {r.key} · seed {r.seed} · {r.generator}@{r.generator_version} · {json.dumps(r.metrics)}"
                if r.prompt:  # the original rendition has none
                    tip = f"{r.prompt}\n{tip}"
                review = reviews.get(r.key)
                usable = usable_as[r.key]
                c = {
                    "placement": placement,
                    "href": _rel(local, out),
                    "thumb": _rel(dst, out),
                    "tip": tip,
                    "caption": _caption(r.metrics),
                    "flagged": r.flagged,
                    "reasons": list(r.qa_reasons),
                    "anchor": f"c-{r.key}",
                    "review": review.status if review is not None else "pending",
                    "review_text": _review_text(review),
                    "usable": usable == SERVABLE,
                    "serving": "" if usable == SERVABLE else SERVABILITY_TEXT[usable],
                }
                cells.append(c)
                entry = {
                    "product_id": pid,
                    "style": style,
                    "placement": placement,
                    "reasons": list(r.qa_reasons),
                    "anchor": c["anchor"],
                    "review_text": c["review_text"] or "pending review",
                    "serving": c["serving"] or SERVABILITY_TEXT[SERVABLE],
                }
                if usable == REJECTED:
                    rejected.append(entry)
                if r.flagged:
                    flagged.append(entry)
                    checks.update(reason["check"] for reason in r.qa_reasons)
            prompt = recs[[r.arm for r in recs].index(style)].prompt
            baseline = style == ORIGINAL
            label = ORIGINAL_LABEL if baseline else style
            rows.append({"style": style, "label": label, "baseline": baseline, "family": family[style], "prompt": prompt, "cells": cells})
        sections.append(
            {
                "product_id": pid,
                "anchor": anchor,
                "title": info["title"],
                "category": info["category"],
                "original": original,
                "placements": placements,
                "rows": rows,
                "tags": _tags(recs[0].params),
                "n_flagged": sum(r.flagged for r in recs),
            }
        )
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # decoding and resizing release the GIL
        list(pool.map(lambda job: job(), jobs))  # list(): a job's exception is raised here
    flagged_by_product: dict[str, list[dict]] = defaultdict(list)
    for f in flagged:
        flagged_by_product[f["product_id"]].append(f)
    flagged_groups = [
        {
            "product_id": pid,
            "anchor": _safe(pid),
            "title": products.get(pid, {"title": pid})["title"],
            "entries": entries,
            "checks": Counter(reason["check"] for f in entries for reason in f["reasons"]).most_common(),
        }
        for pid, entries in flagged_by_product.items()
    ]
    page = render(
        "contact_sheet.html.j2",
        title=title,
        store_root=store.location,
        n_creatives=len(records),
        n_flagged=len(flagged),
        flagged=flagged,
        flagged_groups=flagged_groups,
        rejected=rejected,
        n_approved=sum(1 for r in records if r.key in reviews and reviews[r.key].status == "approved"),
        n_usable=sum(1 for u in usable_as.values() if u == SERVABLE),
        review_required=review_required,
        by_check=checks.most_common(),
        sections=sections,
    )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def _remote_thumbnails(store: CreativeStore, r, dst: Path, full: Path) -> None:
    data = store.read_bytes(r)
    thumbnail(data, dst)
    thumbnail(data, full, max(r.width, r.height))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _rel(path: Path, page_path: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), page_path.resolve().parent)).as_posix()
