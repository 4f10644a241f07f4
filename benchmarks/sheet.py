"""A before/after contact sheet of chosen creatives from two stores of the same catalog.

    python benchmarks/sheet.py BEFORE_STORE AFTER_STORE OUT.png PRODUCT:STYLE:PLACEMENT[@X0,Y0,X1,Y1] ...

Each case is a row: the creative of that product, style and placement in the first store, then in
the second, downscaled (the sheet is for RESULTS.md; the photos stay in ../shared); with a box
(canvas pixels), that part of it, at 100% when it fits the tile. Used for the
hard cases of the shared Magento set (issue 28); the stores are made with ``backdrop generate``
at the two commits compared.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import update_section

TILE = 220


def creative(store: Path, product: str, style: str, placement: str, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    con = sqlite3.connect(store / "index.sqlite")
    try:
        row = con.execute(
            "SELECT path FROM creatives WHERE product_id = ? AND style = ? AND placement = ? ORDER BY created_at DESC LIMIT 1",
            (product, style, placement),
        ).fetchone()
    finally:
        con.close()
    if row is None:
        raise SystemExit(f"{store}: no creative of {product} / {style} / {placement}")
    img = Image.open(store / row[0]).convert("RGB")
    if box is not None:
        img = img.crop(box)
    img.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    return img


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        raise SystemExit(__doc__)
    before, after, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    cases = []
    for arg in argv[3:]:
        item, _, box = arg.partition("@")
        product, style, placement = item.split(":")
        cases.append((product, style, placement, tuple(int(v) for v in box.split(",")) if box else None))
    label_h = 16
    sheet = Image.new("RGB", (2 * TILE + 10, len(cases) * (TILE + label_h + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (product, style, placement, box) in enumerate(cases):
        y = i * (TILE + label_h + 6)
        draw.text((4, y + 2), f"{product} / {style} / {placement}{' (detail)' if box else ''}: before | after", fill="black")
        for j, store in enumerate((before, after)):
            img = creative(store, product, style, placement, box)
            sheet.paste(img, (j * (TILE + 10) + (TILE - img.width) // 2, y + label_h + (TILE - img.height) // 2))
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)  # small enough to commit
    print(f"{out}: {len(cases)} cases")
    if out.resolve().parent == Path(__file__).resolve().parent:  # a sheet kept with the benchmarks: say so in RESULTS.md
        listed = "\n".join(f"- {p} / {s} / {pl}" + (f", detail {b}" if b else "") for p, s, pl, b in cases)
        update_section(
            f"sheet-{out.stem}",
            f"## Before / after: `{out.name}` (`sheet.py`)\n\nLeft: {before}; right: {after} (stores of the shared Magento set).\n\n"
            f"![before and after]({out.name})\n\n{listed}",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
