"""From a retailer's free-text category to a style-library category, and why.

Retail category trees name the same things in many ways (``Men > Tops > Jackets``, ``Outerwear``,
``Coats & Jackets``, Google's ``Apparel & Accessories > Clothing > Outerwear``). A product's
style category is found by the first rule that matches:

1. ``path``: the library names the category path itself, an ancestor of it, or its leaf;
2. ``google``: the product's ``google_product_category`` (an id or a path of Google's product
   taxonomy, read from the file shipped in ``styles/data``) falls under a path a library category
   lists in ``google``, else one of its segments carries a keyword;
3. ``keyword``: a segment of the category path carries a library category's keyword or synonym
   (leaf first: ``Men > Tops > Jackets`` is outerwear, not tops); then the ``product_type`` path;
4. ``default``.

Keywords match whole words, singular or plural (``bag`` matches ``Bags``); the longest keyword
wins, then the library's order.

>>> tokens("Hoodies & Sweatshirts")
['hoody', 'sweatshirt']
>>> taxonomy_path("5322")
'Apparel & Accessories > Clothing > Activewear'
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..text import split_path

TAXONOMY_FILE = Path(__file__).resolve().parent / "data" / "taxonomy-with-ids.en-US.txt.gz"
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _fold(word: str) -> str:
    """A word's singular form, crudely but consistently: 'bags', 'watches', 'hoodies' meet 'bag', 'watch', 'hoodie'."""
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word.endswith("ie"):  # hoodie / hoodies / hoody
        word = word[:-2] + "y"
    return word


def tokens(text: str) -> list[str]:
    """Lower-case words of ``text``, each folded to its singular."""
    return [_fold(w) for w in _WORD.findall(text.lower().replace("&amp;", "&"))]


@lru_cache(maxsize=1)
def load_taxonomy() -> dict[int, str]:
    """Google's product taxonomy: id -> full path."""
    out: dict[int, str] = {}
    with gzip.open(TAXONOMY_FILE, "rt", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or " - " not in line:
                continue
            num, path = line.rstrip("\n").split(" - ", 1)
            out[int(num)] = path.strip()
    return out


@lru_cache(maxsize=1)
def _paths_lower() -> dict[str, str]:
    return {p.lower(): p for p in load_taxonomy().values()}


def taxonomy_path(value: str) -> str | None:
    """The taxonomy path of a ``google_product_category`` value (an id like ``"1604"`` or a path), None if unknown."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return load_taxonomy().get(int(value))
    norm = " > ".join(split_path(value, ">"))
    return _paths_lower().get(norm.lower())


@dataclass(frozen=True)
class Keyword:
    words: tuple[str, ...]
    category: str
    order: int
    text: str = ""

    def found_in(self, words: list[str]) -> bool:
        n = len(self.words)
        return any(tuple(words[i : i + n]) == self.words for i in range(len(words) - n + 1))


def best_keyword(text: str, keywords: list[Keyword]) -> Keyword | None:
    """The longest keyword (then the first in library order) found in ``text``, or None."""
    words = tokens(text)
    if not words:
        return None
    found = [k for k in keywords if k.found_in(words)]
    if not found:
        return None
    return min(found, key=lambda k: (-len(k.words), -len(" ".join(k.words)), k.order))
