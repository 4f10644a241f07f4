"""Read a product catalog (CSV, JSONL or Parquet) into :class:`Product` records.

Bad rows never stop the load: each one becomes a :class:`~backdrop.errors.RowError`
(``FILE:ROW: FIELD: reason``) and the good rows go on. Row numbers are line numbers in the
file with the header as line 1 (CSV), the line number (JSONL), or the record index + 2 as if
there were a header line (Parquet).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError

from ..errors import CatalogError, RowError
from ..overlays.money import MoneyError, check_currency, check_locale, parse_amount
from ..text import clean_text, split_path
from . import feeds
from .fetch import Fetched, FetchStats, ImageFetcher, cache_path, is_url

if TYPE_CHECKING:
    import numpy as np

REQUIRED = ("product_id", "title", "category", "image")
SUPPORTED_IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"}
MAX_IMAGE_PIXELS = 64_000_000


@dataclass(frozen=True)
class Product:
    """One catalog product. ``category_path`` runs from the root to the leaf category."""

    product_id: str
    title: str
    category_path: tuple[str, ...]
    image_path: Path
    description: str = ""
    attributes: dict = field(default_factory=dict)
    brand: str = ""
    color: str = ""
    product_type: str = ""
    #: Google product taxonomy id or path (feeds' ``google_product_category``): maps to the style library
    google_category: str = ""
    #: where the image came from when it was downloaded (``image_path`` is then the cached copy)
    image_url: str = ""
    source_file: str = ""
    source_row: int = 0
    #: what overlays show (validated; not prompt fields, so a price change never changes a scene)
    price: Decimal | None = None
    sale_price: Decimal | None = None
    currency: str = ""
    badge: str = ""
    brand_logo: Path | None = None
    locale: str = ""

    @property
    def category(self) -> str:
        return self.category_path[-1]

    def in_category(self, path: str) -> bool:
        """Whether the product is in ``path`` or below it (case-insensitive).

        >>> p = Product("p", "Mug", ("Home", "Kitchen", "Mugs"), Path("mug.png"))
        >>> p.in_category("home > kitchen"), p.in_category("Home > Garden")
        (True, False)
        """
        wanted = tuple(part.strip().lower() for part in path.split(">"))
        return tuple(x.lower() for x in self.category_path[: len(wanted)]) == wanted

    @property
    def category_str(self) -> str:
        return " > ".join(self.category_path)

    def attribute(self, name: str) -> str:
        """An attribute by case-insensitive name, '' when absent."""
        want = name.lower()
        for key, value in self.attributes.items():
            if key.lower() == want:
                return str(value)
        return ""

    def fields(self) -> dict[str, str]:
        """The fields a prompt template may use: every attribute (lower-cased key) plus the columns."""
        out = {str(k).lower().replace(" ", "_"): str(v) for k, v in self.attributes.items()}
        out.update(
            title=self.title,
            category=self.category,
            category_path=self.category_str,
            description=self.description,
            product_type=self.product_type,
            brand=self.brand or self.attribute("brand"),
            color=self.color or self.attribute("color") or self.attribute("colour"),
            material=self.attribute("material"),
            product_id=self.product_id,
        )
        return out

    def image_sha256(self) -> str:
        return file_sha256(self.image_path)


@dataclass
class CatalogResult:
    products: list[Product]
    errors: list[RowError]
    path: Path
    #: what fetching the rows' image URLs did (None: no URL fetched)
    images: FetchStats | None = None

    @property
    def rows(self) -> int:
        return len(self.products) + len(self.errors)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_category(value: str) -> tuple[str, ...]:
    return split_path(value)


#: suffixes read as text whose content decides the format (CSV, TSV or feed XML; gzip or not)
_SNIFFED = (".csv", ".tsv", ".txt", ".tab", ".xml", ".rss", ".atom", ".gz", "")


def load_catalog(
    path: str | Path, *, check_images: bool = True, fetcher: ImageFetcher | None = None, progress: bool = False
) -> CatalogResult:
    """Load every good row of ``path``; bad rows are returned as errors, not raised.

    ``path`` is a catalog (CSV, TSV, JSONL, Parquet) or a Google Merchant Center / Meta product
    feed (TSV, CSV or XML, gzip or not; see :mod:`backdrop.creative.feeds`). Images given as
    http(s) URLs are downloaded by ``fetcher`` (one with the default cache when None), with a
    progress bar when ``progress``. Raises :class:`CatalogError` only when the file itself cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: catalog file not found")
    if path.is_dir():
        raise CatalogError(f"{path}: is a directory; pass the catalog file (CSV, JSONL or Parquet)")
    suffix = path.suffix.lower()
    records: Iterator[tuple[int, dict | RowError]]
    if suffix in (".jsonl", ".ndjson"):
        records = _read_jsonl(path)
    elif suffix in (".parquet", ".pq"):
        records = _read_parquet(path)
    elif suffix in _SNIFFED:
        kind = feeds.sniff(path)
        records = feeds.read_xml(path) if kind == "xml" else _read_csv(path, delimiter="\t" if kind == "tsv" else ",")
    else:
        raise CatalogError(
            f"{path}: unsupported catalog format '{suffix}'; use .csv, .tsv, .jsonl, .parquet or a product feed (.txt, .xml, .gz)"
        )

    rows = list(records)
    urls = [v for _, r in rows if not isinstance(r, RowError) and is_url(v := _text(r, "image"))]
    fetched: dict[str, Fetched] = {}
    stats = None
    if urls and check_images:
        own = fetcher is None
        active = fetcher or ImageFetcher()
        try:
            fetched = active.fetch_many(urls, progress=progress)
            stats = active.stats
        finally:
            if own:
                active.close()

    products: list[Product] = []
    errors: list[RowError] = []
    seen: dict[str, str] = {}
    for row, record in rows:
        if isinstance(record, RowError):
            errors.append(record)
            continue
        product, error = _to_product(path, row, record, seen, check_images, fetched)
        if error is not None:
            errors.append(error)
        elif product is not None:
            products.append(product)
            seen[product.product_id] = record.get("_where") or f"row {row}"
    return CatalogResult(products=products, errors=errors, path=path, images=stats)


def _read_csv(path: Path, delimiter: str) -> Iterator[tuple[int, dict | RowError]]:
    with feeds.open_text(path) as f:  # an open error names the file (CatalogError), a parse error the row
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise CatalogError(f"{path}: empty file, expected a header row") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise CatalogError(f"{path}:1: cannot parse header: {e}") from e
        except (OSError, EOFError) as e:  # a corrupt or truncated gzip stream
            raise CatalogError(f"{path}: cannot read: {e}") from e
        header = [h.strip() for h in header]
        feed = feeds.is_feed_header(header)
        if feed:
            names = {feeds.column(h) for h in header}
            lacking = [c for c in ("id", "title", "image_link") if c not in names]
            if lacking:
                raise CatalogError(f"{path}:1: product feed header lacks required column(s): {', '.join(lacking)}")
        else:
            missing = [c for c in ("product_id", "title", "image") if c not in header]
            if missing or not ({"category", "category_path"} & set(header)):
                need = missing + ([] if {"category", "category_path"} & set(header) else ["category"])
                raise CatalogError(f"{path}:1: header lacks required column(s): {', '.join(need)}")
        next_line = reader.line_num + 1
        while True:
            start = next_line
            try:
                values = next(reader)
            except StopIteration:
                return
            except (OSError, EOFError) as e:  # a corrupt or truncated gzip stream
                raise CatalogError(f"{path}:{start}: cannot read further: {e}") from e
            except (csv.Error, UnicodeDecodeError) as e:
                next_line = reader.line_num + 1
                yield start, RowError(str(path), start, "row", f"cannot parse CSV: {e}")
                continue
            next_line = reader.line_num + 1
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                yield (
                    start,
                    RowError(
                        str(path),
                        start,
                        "row",
                        f"has {len(values)} fields, header has {len(header)}; quote values that contain '{delimiter}'",
                    ),
                )
                continue
            record = dict(zip(header, values, strict=True))
            yield start, feeds.feed_record(record) if feed else record


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 - as in _read_csv
    except OSError as e:
        raise CatalogError(f"{path}: cannot open: {e.strerror}") from e
    with f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                yield lineno, RowError(str(path), lineno, "row", f"invalid JSON: {e.msg} at column {e.colno}")
                continue
            if not isinstance(record, dict):
                yield lineno, RowError(str(path), lineno, "row", "expected a JSON object per line")
                continue
            yield lineno, record


def _read_parquet(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for bad files
        raise CatalogError(f"{path}: cannot read Parquet: {e}") from e
    for i, record in enumerate(table.to_pylist()):
        yield i + 2, record


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from Parquet/pandas
        return ""
    return str(value).strip()


#: a feed's names for the catalog fields, so that a row error names the column the user wrote
_FEED_FIELD = {"product_id": "id", "image": "image_link", "category": "product_type"}


def _to_product(
    path: Path, row: int, record: dict, seen: dict[str, str], check_images: bool, fetched: dict[str, Fetched] | None = None
) -> tuple[Product | None, RowError | None]:
    feed = "_category_hint" in record

    def err(fieldname: str, reason: str) -> tuple[None, RowError]:
        name = _FEED_FIELD.get(fieldname, fieldname) if feed else fieldname
        return None, RowError(str(path), row, name, reason, record.get("_where", ""))

    for key in ("product_id", "title", "image"):
        if not _text(record, key):
            return err(key, "missing value (required)")
    product_id = _text(record, "product_id")
    if product_id in seen:
        return err("product_id", f"duplicate id '{product_id}' (first on {seen[product_id]})")

    category_value = clean_text(_text(record, "category_path") or _text(record, "category"))
    if not category_value:
        if feed:
            return err("category", record["_category_hint"])
        return err("category", "missing value (required; a path like 'Apparel > Sneakers' is allowed)")
    category_path = split_path(category_value, ">") if feed else parse_category(category_value)
    if not category_path:
        return err("category", f"cannot parse category '{category_value}'")

    attributes = record.get("attributes")
    if isinstance(attributes, str):
        if attributes.strip():
            try:
                attributes = json.loads(attributes)
            except json.JSONDecodeError as e:
                return err("attributes", f'invalid JSON: {e.msg} at column {e.colno}; expected an object like {{"Material": "Cotton"}}')
        else:
            attributes = {}
    elif attributes is None or (isinstance(attributes, float) and attributes != attributes):
        attributes = {}
    if not isinstance(attributes, dict):
        return err("attributes", f"expected a JSON object, got {type(attributes).__name__}")

    image = _text(record, "image")
    image_url = image if is_url(image) else ""
    if image_url:
        got = (fetched or {}).get(image_url)
        if got is None:  # not fetched (check_images=False): where the cache keeps it
            image_path, reason = cache_path(image_url)[0], None
        elif got.path is None:
            image_path, reason = Path(), f"{image_url}: {got.error}"
        else:
            image_path, reason = got.path, None
    else:
        image_path, reason = _resolve_image(path, image)
    if reason is None and check_images:
        reason = check_image(image_path)
        if reason is not None and image_url:
            reason = f"{image_url}: {reason.replace(str(image_path), 'the downloaded file')}"
    if reason is not None:
        return err("image", reason)

    try:
        money = _money(record)
    except MoneyError as e:
        fieldname, _, reason = str(e).partition(": ")
        return err(fieldname, reason)
    badge = clean_text(_text(record, "badge"))
    if len(badge) > 24:
        return err("badge", f"'{badge[:30]}...' is {len(badge)} characters; a badge holds at most 24 (New, Bestseller, -20%)")
    logo_value = _text(record, "brand_logo")
    brand_logo = None
    if logo_value:
        brand_logo, reason = _resolve_image(path, logo_value)
        reason = reason or check_image(brand_logo)
        if reason is not None:
            return err("brand_logo", reason)

    return (
        Product(
            product_id=product_id,
            title=clean_text(_text(record, "title")),
            category_path=category_path,
            image_path=image_path,
            description=clean_text(_text(record, "description")),
            attributes={k: clean_text(v) if isinstance(v, str) else v for k, v in attributes.items()},
            brand=clean_text(_text(record, "brand")),
            color=clean_text(_text(record, "color")),
            product_type=clean_text(_text(record, "product_type")),
            google_category=clean_text(_text(record, "google_product_category")),
            image_url=image_url,
            source_file=str(path),
            source_row=row,
            badge=badge,
            brand_logo=brand_logo,
            **money,
        ),
        None,
    )


def _money(record: dict) -> dict:
    """price, sale_price, currency and locale of a row, checked (a :class:`MoneyError` names the field)."""
    out: dict = {}
    price_text, sale_text = _text(record, "price"), _text(record, "sale_price")
    currency = _text(record, "currency")
    if price_text:
        out["price"], in_price = parse_amount(price_text, "price")
        currency = currency or in_price
    if sale_text:
        if not price_text:
            raise MoneyError("sale_price: given without a price; give the regular price too")
        out["sale_price"], in_sale = parse_amount(sale_text, "sale_price")
        currency = currency or in_sale
        if out["sale_price"] >= out["price"]:
            raise MoneyError(f"sale_price: {sale_text} is not below the price {price_text}")
    if price_text and not currency:
        raise MoneyError("currency: missing; give a currency column (EUR, USD...) or write the price as '12.50 EUR'")
    if currency:
        out["currency"] = check_currency(currency)
    locale = _text(record, "locale")
    if locale:
        out["locale"] = check_locale(locale.replace("-", "_"))
    return out


def _resolve_image(catalog: Path, value: str) -> tuple[Path, str | None]:
    if value.startswith("file://"):
        parsed = urlparse(value)
        return Path(unquote(parsed.path)), None
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        scheme = value.split(":", 1)[0]
        return Path(value), f"unsupported image location '{scheme}://'; give an http(s) URL, a local path or a file:// URI"
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = catalog.parent / p
    return p, None


def check_image(path: Path) -> str | None:
    """Why ``path`` is not a usable product image, or None when it is."""
    if not path.exists():
        return f"file not found: {path}"
    if not path.is_file():
        return f"not a file: {path}"
    try:
        with Image.open(path) as im:
            fmt = im.format
            size = im.size
            im.verify()
    except UnidentifiedImageError:
        return f"not an image or unsupported format: {path}"
    except (OSError, SyntaxError, ValueError) as e:
        return f"corrupt image {path}: {e}"
    if fmt not in SUPPORTED_IMAGE_FORMATS:
        return f"unsupported image format {fmt} ({path}); use PNG, JPEG or WebP"
    if size[0] < 16 or size[1] < 16:
        return f"image too small ({size[0]}x{size[1]}): {path}"
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        return f"image too large ({size[0]}x{size[1]} pixels): {path}"
    return None


def load_image(path: Path) -> np.ndarray:
    """Decode an image fully as RGBA uint8 (H, W, 4); raises ValueError with the path when corrupt."""
    import numpy as np
    from PIL import ImageOps

    try:
        with Image.open(path) as opened:
            im = ImageOps.exif_transpose(opened)
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            rgba = im.convert("RGBA") if has_alpha else im.convert("RGB").convert("RGBA")
            return np.asarray(rgba, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot decode image {path}: {e}") from e
