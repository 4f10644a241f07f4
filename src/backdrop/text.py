"""Text as it arrives in real catalogs and feeds: entities, stray whitespace, control characters."""

from __future__ import annotations

import functools
import html
import re
import unicodedata


def clean_text(text: str) -> str:
    """Catalog text as a person reads it: HTML entities decoded (``&trade;`` -> ``™``), control
    characters dropped, whitespace trimmed and collapsed.

    >>> clean_text("Logan  HeatTec&reg; Tee ")
    'Logan HeatTec® Tee'
    """
    text = str(text)
    for _ in range(2):  # feeds double-escape: "&amp;trade;"
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


#: what separates the levels of a retailer's category path: ``Men > Tops``, ``Men/Tops``, ``Men › Tops``
PATH_SEPARATORS = ">/›"


def split_path(value: str, separators: str = PATH_SEPARATORS) -> tuple[str, ...]:
    """The levels of a category path, trimmed, empty levels dropped (the one parser every module uses).

    >>> split_path(" Men > Tops/Jackets ")
    ('Men', 'Tops', 'Jackets')
    >>> split_path("Apparel & Accessories > Clothing", separators=">")
    ('Apparel & Accessories', 'Clothing')
    """
    return tuple(p.strip() for p in _separators(separators).split(value or "") if p.strip())


@functools.lru_cache(maxsize=16)
def _separators(separators: str) -> re.Pattern:
    return re.compile("[" + re.escape(separators) + "]")


def redact_url(url: str) -> str:
    """A URL as it may be printed: its password hidden.

    >>> redact_url("postgresql://app:s3cret@db/backdrop")
    'postgresql://app:***@db/backdrop'
    """
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
