"""Build the committed demo catalog (src/backdrop/data/demo/) from the shared Saleor sample.

Takes 20 products covering every category, crops each cut-out to its product (with the baked-in
shadow and a small margin) and downscales it to at most 512 px. Run from the repo root:
    python scripts/make_demo_catalog.py [../shared/data/saleor-catalog]
"""

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PRODUCTS = [
    "apple-juice", "banana-juice", "carrot-juice",
    "ascii-tee-1", "dark-polygon-tee-1", "cubes-fountain-tee-1",
    "blue-plimsolls-1", "dash-force-1", "white-plimsolls-4",
    "battle-tested-at-brands-like-lush", "enterprise-cloud-on-premises-tales",
    "blue-hoodie", "white-hoodie", "darko-polo-1",
    "dry-sunglasses", "monokai-dimmed-sunnies", "gift-card-50",
    "pirates-beanie-1", "mighty-mug", "tactical-neck-warmer",
]
MAX_SIDE = 512

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/saleor-catalog")
dst = Path("src/backdrop/data/demo")
(dst / "images").mkdir(parents=True, exist_ok=True)
rows = {r["product_id"]: r for r in csv.DictReader(open(src / "products.csv", encoding="utf-8"))}
with open(dst / "products.csv", "w", newline="", encoding="utf-8") as f:
    writer = None
    for pid in PRODUCTS:
        row = dict(rows[pid])
        im = Image.open(src / row["image"]).convert("RGBA")
        alpha = np.asarray(im)[..., 3]
        ys, xs = np.nonzero(alpha > 0)
        pad = 8
        box = (max(0, xs.min() - pad), max(0, ys.min() - pad), min(im.width, xs.max() + 1 + pad), min(im.height, ys.max() + 1 + pad))
        im = im.crop(box)
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        name = Path(row["image"]).name
        im.save(dst / "images" / name, optimize=True)
        row["image"] = f"images/{name}"
        if writer is None:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)
print(f"wrote {len(PRODUCTS)} products to {dst}")
