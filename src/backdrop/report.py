"""Static HTML reports: the creative contact sheet (product x style x placement).

Pages are plain HTML with their images in a ``<name>_files/`` folder next to them: no server,
no JavaScript, no network; open the file in any browser.
"""

from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from pathlib import Path

from PIL import Image

from .store import CreativeStore

THUMB_MAX = 360

CSS = """
:root { --fg:#1d1f23; --muted:#6b7280; --line:#e5e7eb; --bg:#fafafa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; padding: 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted, small { color: var(--muted); }
section.product { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px 16px; margin: 18px 0; }
table { border-collapse: collapse; } th, td { padding: 6px 8px; vertical-align: top; text-align: left; }
thead th { font-weight: 600; border-bottom: 1px solid var(--line); }
table.sheet td { text-align: center; }
table.data td, table.data th { border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
figure { margin: 0; display: inline-block; }
figure img { display: block; max-height: 240px; max-width: 240px; border-radius: 4px; box-shadow: 0 1px 3px rgba(0,0,0,.15); background: #eee; }
figcaption { font-size: 11px; color: var(--muted); margin-top: 3px; }
.original img { max-height: 140px; max-width: 140px; background: #fff; border: 1px solid var(--line); }
.row { display: flex; gap: 16px; align-items: flex-start; }
.warn { color: #b45309; font-weight: 600; }
img.plot { max-width: 100%; height: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def thumbnail(src: Path, dst: Path, max_side: int = THUMB_MAX) -> None:
    """A JPEG thumbnail (white behind transparency); skipped when ``dst`` is already newer than ``src``."""
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.thumbnail((max_side, max_side), Image.LANCZOS)
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


def write_contact_sheet(store: CreativeStore, out: str | Path, title: str = "Backdrop creatives") -> Path:
    """Write the contact sheet of every creative in ``store`` to ``out`` (HTML); returns its path."""
    out = Path(out)
    files = out.with_name(out.stem + "_files")
    files.mkdir(parents=True, exist_ok=True)
    records = store.creatives()
    by_product: dict[str, list] = defaultdict(list)
    for r in records:
        by_product[r.product_id].append(r)
    products = {p["product_id"]: p for p in store.products()}

    sections = []
    for pid in sorted(by_product):
        recs = by_product[pid]
        info = products.get(pid, {"title": pid, "category": "", "image_path": ""})
        shape = {r.placement: r.width / r.height for r in recs}
        placements = sorted(shape, key=lambda n: (-shape[n], n))  # widest first: landscape ... story
        styles = sorted({r.style for r in recs})
        cell = {(r.style, r.placement): r for r in recs}
        original = ""
        src = Path(info.get("image_path") or "")
        if src.is_file():
            dst = files / "originals" / f"{_safe(pid)}.jpg"
            thumbnail(src, dst, 200)
            original = f'<figure class="original"><img src="{esc(_rel(dst, out))}" alt="{esc(pid)} catalog image"><figcaption>catalog image</figcaption></figure>'
        head = "".join(f"<th>{esc(p)}</th>" for p in placements)
        rows = []
        for style in styles:
            tds = []
            for placement in placements:
                r = cell.get((style, placement))
                if r is None:
                    tds.append("<td></td>")
                    continue
                dst = files / "thumbs" / f"{r.key}.jpg"
                thumbnail(store.root / r.path, dst)
                tip = f"{r.prompt}\nkey {r.key} · seed {r.seed} · {r.generator}@{r.generator_version} · {json.dumps(r.metrics)}"
                tds.append(
                    f'<td><figure><a href="{esc(_rel(store.root / r.path, out))}"><img src="{esc(_rel(dst, out))}" '
                    f'alt="{esc(pid)} {esc(style)} {esc(placement)}" title="{esc(tip)}" loading="lazy"></a>'
                    f"<figcaption>{esc(_caption(r.metrics))}</figcaption></figure></td>"
                )
            prompt = recs[[r.style for r in recs].index(style)].prompt
            rows.append(f'<tr><th title="{esc(prompt)}">{esc(style)}</th>{"".join(tds)}</tr>')
        sections.append(
            f'<section class="product" id="{esc(_safe(pid))}"><div class="row">{original}<div>'
            f'<h2>{esc(info["title"])} <small>{esc(info["category"])} · {esc(pid)}</small></h2>'
            f'<table class="sheet"><thead><tr><th>style</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            "</div></div></section>"
        )
    n_products = len(by_product)
    body = (
        f"<h1>{esc(title)}</h1>"
        f'<p class="muted">{len(records)} creatives of {n_products} products from store <code>{esc(store.root)}</code>. '
        "Hover a thumbnail for its prompt, key and quality scores; click it for the full-size creative. "
        "ΔE = colour contrast between the product's edge and the background around it; for generated "
        "backgrounds, exp = object expansion (generated foreground beyond the product, share of its area), "
        "iou = overlap of that foreground with the product, halo = ΔE of the ring around the product.</p>"
        + ("".join(sections) if sections else "<p>The store has no creatives yet: run <code>backdrop generate</code>.</p>")
    )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page(title, body), encoding="utf-8")
    os.replace(tmp, out)
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _rel(path: Path, page_path: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), page_path.resolve().parent)).as_posix()

